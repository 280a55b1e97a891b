"""The Generator: item i = sample i, and whole runs written to disk (CLI and Python)."""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .augment import Augmenter
from .backend import backend_kind
from .errors import SpecError
from .labels import annotate, annotate_3d
from .sample import Sample
from .sources import Problems
from .spec import RendererSpec, Spec, load_spec

if TYPE_CHECKING:
    from .compositor.assets import AssetLibrary
    from .renderer.meshes import MeshLibrary


def whole(value: Any) -> int | None:
    """``value`` as a Python int where it is a whole number (a numpy or torch integer too; not a
    bool, a float such as 2.0, or a string), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def sample_index(index: Any) -> int:
    """``index`` as a sample index: a whole number >= 0 (a numpy integer too). A float such as
    1.5 was taken as sample 1 and written with the id 1.5."""
    value = whole(index)
    if value is None:
        raise TypeError(f"a sample index is a whole number, not {index!r}")
    if value < 0:
        raise IndexError(f"sample index must be >= 0, got {value}")
    return value


class Generator:
    """Samples of one spec and seed. ``gen[i]`` is a pure function of (spec, seed, i).

    Assets are listed when the Generator is made (bad paths fail at once); decoding and the
    backend are created lazily in the process that uses them, so a Generator pickles cheaply
    into worker processes.
    """

    def __init__(self, spec: Spec | RendererSpec, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise SpecError(f"seed must be a whole number >= 0, got {seed!r}")
        self.spec = spec if seed is None else spec.model_copy(update={"seed": int(seed)})
        self._lib: AssetLibrary | MeshLibrary | None = None
        self._backend: Any = None
        self._backend_pid = 0
        self._checked = False
        problems = self._spec_problems() + self.library.problems
        if problems:  # something is already wrong: report everything, decoded assets included
            raise SpecError("\n".join(problems + self.library.verify()))

    def _spec_problems(self) -> list[str]:
        """What the spec asks for that cannot work, beyond what the spec models check."""
        found = Problems()
        found.run("", Augmenter, self.spec)  # bad transform names or parameters, naming the key
        W, H = self.spec.output.size
        for c in self.spec.categories:
            p = self.spec.placement_for(c)
            vr = getattr(p, "visibility_range", None)
            if vr is not None and vr[1] < p.min_visibility:
                found.add(f"classes.{c}", f"visibility_range {list(vr)} lies below min_visibility "
                                          f"{p.min_visibility}: no object could be labelled")
            largest = float(W * H)  # an object's area is at most its longer side squared, and the frame
            scale = getattr(p, "scale_range", None)
            if scale is not None:
                largest = min(largest, (scale.support[1] * min(W, H)) ** 2)
            if p.min_area > largest:
                found.add(f"classes.{c}", f"min_area {p.min_area} is more than the {int(largest)} pixels the largest "
                                          f"object can cover in a {W}x{H} image: no object could be labelled")
        return found.lines

    @classmethod
    def from_yaml(cls, path: str | Path, seed: int | None = None, overrides: Iterable[str] = ()) -> Generator:
        return cls(load_spec(path, overrides=overrides), seed=seed)

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def library(self) -> Any:
        """The spec's assets (AssetLibrary, or MeshLibrary for the renderer)."""
        if self._lib is None:
            self._lib = backend_kind(self.spec.kind).library(self.spec)
        return self._lib

    @property
    def backend(self) -> Any:
        """The backend of this process, created on first use (in the thread that renders). A
        forked process makes its own: the one it inherited belongs to its parent (and a GL
        context does not survive a fork)."""
        if self._backend is None or self._backend_pid != os.getpid():
            self._backend = backend_kind(self.spec.kind).backend(self.library)
            self._backend_pid = os.getpid()
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"])

    def plan(self, index: int, categories: Sequence[str] | None = None) -> Any:
        """The planned scene of sample ``index``: every random choice, as plain data."""
        return backend_kind(self.spec.kind).plan(self.spec, self.library, self.seed, sample_index(index), categories)

    def sample(self, index: int, categories: Sequence[str] | None = None, variant: str | None = None) -> Sample:
        """Sample ``index``.

        categories: fixes which classes are placed (the scheduler's request; [] = negative).
        variant: render the planned scene with this blend mode on every object.
        """
        return self._render(self.plan(index, categories), variant)

    def _render(self, scene: Any, variant: str | None) -> Sample:
        render = self.backend.render(scene, blend=variant)
        anns = annotate(self.spec, scene, render)
        if "poses" in render.extras:
            annotate_3d(anns, render)
            return Sample(scene.index, render.image, anns, scene, variant, render.extras["depth"], render.extras["K"])
        return Sample(scene.index, render.image, anns, scene, variant)

    def samples(self, index: int, categories: Sequence[str] | None = None) -> list[Sample]:
        """What a run writes for ``index``: one sample, or one per ``write_blend_variants`` mode
        (the same planned scene, so the same labels)."""
        variants = self.spec.write_blend_variants
        if not variants:
            return [self.sample(index, categories)]
        scene = self.plan(index, categories)
        return [self._render(scene, v) for v in variants]

    def __getitem__(self, index: int) -> Sample:
        return self.sample(index)

    def __iter__(self) -> Iterator[Sample]:
        i = 0
        while True:
            yield self.sample(i)
            i += 1

    def check(self) -> None:
        """Decode or verify every input the spec names (once per Generator); raises SpecError
        listing every problem, one per line, each naming the spec key and the file. What it
        decoded stays cached for generating."""
        if not self._checked:
            problems = self.library.verify()
            if problems:
                raise SpecError("\n".join(problems))
            self._checked = True

    def generate(
        self,
        out_dir: str | Path,
        n: int | None = None,
        per_class: int | None = None,
        workers: int = 1,
        overwrite: bool = False,
        resume: bool = False,
        progress: Callable[[int, int], None] | None = None,
        shard: str | tuple[int, int] | None = None,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> dict[str, Any]:
        """Write a dataset: ``n`` images, or exactly ``per_class`` labelled instances per class.

        Everything is checked before the first file is written. ``overwrite`` replaces a previous
        run in ``out_dir`` (deleting only files runs recorded writing); ``resume`` finishes an
        interrupted run there, byte-identical to one never stopped. With ``workers`` > 1 the
        samples are made in spawned processes: call this under ``if __name__ == "__main__":``
        in a script. progress(images_done, instances_done) is called once with (0, 0) when every check has
        passed and the run starts, then after each image.
        ``shard="K/N"`` (or (K, N)) makes shard K of N, counted from 0: a part of the dataset
        that ``synthgen merge`` joins with the others into exactly the unsharded dataset.
        ``backend="ray"`` makes the samples in ``workers`` Ray actors (a local Ray, or the
        cluster at ``ray_address``); the output is the same bytes.
        Returns the summary also written to OUT/dataset.json.
        """
        from .runs.run import execute

        return execute(self, out_dir, n=n, per_class=per_class, workers=workers, overwrite=overwrite,
                       resume=resume, progress=progress, shard=shard, backend=backend, ray_address=ray_address)
