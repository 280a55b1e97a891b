"""The Generator: item i = sample i, and whole runs written to disk (CLI and Python)."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from . import __version__
from .augment import Augmenter
from .backend import backend_kind
from .errors import SpecError, SynthgenError
from .labels import annotate, annotate_3d
from .runs.scheduler import PerClassSchedule
from .sample import Sample
from .spec import RendererSpec, Spec, load_spec
from .writers import make_writers

if TYPE_CHECKING:
    from .compositor.assets import AssetLibrary
    from .renderer.meshes import MeshLibrary

# What a run writes; --overwrite removes exactly these, nothing else in the folder.
OUTPUTS = ("images", "annotations", "labels", "voc", "depth", "bop", "manifest.jsonl", "dataset.json", "data.yaml")
CHUNK = 16  # tasks per worker hand-off


class Generator:
    """Samples of one spec and seed. ``gen[i]`` is a pure function of (spec, seed, i).

    Assets are listed when the Generator is made (bad paths fail at once); decoding and the
    backend are created lazily in the process that uses them, so a Generator pickles cheaply
    into worker processes.
    """

    def __init__(self, spec: Spec | RendererSpec, seed: int | None = None):
        self.spec = spec if seed is None else spec.model_copy(update={"seed": int(seed)})
        self._lib: AssetLibrary | MeshLibrary | None = None
        self._backend: Any = None
        _ = self.library
        Augmenter(self.spec)  # bad transform names or parameters fail now, naming the key
        for c in self.spec.categories:
            p = self.spec.placement_for(c)
            vr = getattr(p, "visibility_range", None)
            if vr is not None and vr[1] < p.min_visibility:
                raise SpecError(f"classes.{c}: visibility_range {list(vr)} lies below min_visibility "
                                f"{p.min_visibility}: no object could be labelled")

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
        """The backend of this process, created on first use (in the thread that renders)."""
        if self._backend is None:
            self._backend = backend_kind(self.spec.kind).backend(self.library)
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"])

    def plan(self, index: int, categories: Sequence[str] | None = None) -> Any:
        """The planned scene of sample ``index``: every random choice, as plain data."""
        return backend_kind(self.spec.kind).plan(self.spec, self.library, self.seed, index, categories)

    def sample(self, index: int, categories: Sequence[str] | None = None, variant: str | None = None) -> Sample:
        """Sample ``index``.

        categories: fixes which classes are placed (the scheduler's request; [] = negative).
        variant: render the planned scene with this blend mode on every object.
        """
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
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

    def generate(
        self,
        out_dir: str | Path,
        n: int | None = None,
        per_class: int | None = None,
        workers: int = 1,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Write a dataset: ``n`` images, or exactly ``per_class`` labelled instances per class.

        progress(images_done, instances_done) is called after each image is written.
        Returns the summary also written to OUT/dataset.json.
        """
        if (n is None) == (per_class is None):
            raise SynthgenError("give exactly one of n (images) or per_class (labelled instances per class)")
        if (n is not None and n < 0) or (per_class is not None and per_class < 0):
            raise SynthgenError("n and per_class must be >= 0")
        if workers < 1:
            raise SynthgenError(f"workers must be >= 1, got {workers}")
        out = Path(out_dir)
        _prepare_out(out, overwrite)
        writers = make_writers(out, self.spec)
        for w in writers:
            w.start()
        counts: dict[str, Counter] = {s: Counter() for s in self.spec.output.split}
        images: Counter = Counter()
        distinct: Counter = Counter()
        measured: dict[str, list[tuple[float, float]]] = {c: [] for c in self.spec.categories}
        done = [0, 0]
        pool = _pool(self, workers, out) if workers > 1 else None
        try:
            def run(tasks: list[tuple[int, list[str] | None]]) -> Iterator[list[Result]]:
                if pool is None:
                    return (_produce_with(self, writers, t) for t in tasks)
                return pool.imap(_produce, tasks, chunksize=CHUNK)

            def consume(results: list[Result]) -> list[str]:
                for split, labels, payloads in results:
                    for w, p in zip(writers, payloads):
                        if not w.per_sample:
                            w.write(p)
                    images[split] += 1
                    counts[split].update(c for c, _, _ in labels)
                    done[1] += len(labels)
                done[0] += 1
                labels = results[0][1]  # every variant has the same labels
                distinct.update(c for c, _, _ in labels)
                for c, vis, trunc in labels:
                    measured[c].append((vis, trunc))
                if progress:
                    progress(done[0], sum(distinct.values()))
                return [c for c, _, _ in labels]

            if n is not None:
                for r in run([(i, None) for i in range(n)]):
                    consume(r)
            else:
                schedule = PerClassSchedule(self.spec, self.seed, per_class)  # type: ignore[arg-type]
                for tasks in schedule.rounds():
                    for r in run(tasks):
                        schedule.record(consume(r))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        for w in writers:
            w.finish()
        summary = {
            "synthgen_version": __version__,
            "seed": self.seed,
            "request": {"n": n} if n is not None else {"per_class": per_class},
            "scenes": done[0],
            "images": sum(images.values()),
            "images_per_split": {s: images[s] for s in self.spec.output.split},
            "instances_per_class": {c: sum(counts[s][c] for s in counts) for c in self.spec.categories},
            "instances_per_split": {s: {c: counts[s][c] for c in self.spec.categories} for s in counts},
            "distinct_instances_per_class": {c: distinct[c] for c in self.spec.categories},
            "blend_variants": list(self.spec.write_blend_variants),
            "targets": _target_report(self.spec, measured),
            "spec": self.spec.to_json(),
        }
        (out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def _target_report(spec: Spec, measured: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """How well labelled instances met visibility_range / truncation_range, per class."""
    report: dict[str, Any] = {}
    for c in spec.categories:
        p = spec.placement_for(c)
        vals = measured[c]
        entry: dict[str, Any] = {}
        for key, i in (("visibility_range", 0), ("truncation_range", 1)):
            rng_ = getattr(p, key, None)
            if rng_ is None or not vals:
                continue
            xs = [v[i] for v in vals]
            entry[key] = {
                "target": list(rng_),
                "share_in_range": round(sum(rng_[0] <= x <= rng_[1] for x in xs) / len(xs), 4),
                "mean": round(sum(xs) / len(xs), 4),
            }
        if entry:
            report[c] = entry
    return report


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthgenError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SynthgenError(f"--out {out} is not empty; pass --overwrite to replace a previous run there")
        for name in OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


# -- worker processes ----------------------------------------------------------------------
# Each worker holds its own Generator (assets, backend) and encoders, built once in the
# worker by the pool initializer; nothing is shared with the parent but the pickled spec.
_worker: dict[str, Any] = {}


def _init_worker(gen: Generator, out_dir: Path) -> None:
    _worker["gen"] = gen
    _worker["writers"] = make_writers(out_dir, gen.spec)


Result = tuple[str, list[tuple[str, float, float]], list[Any]]  # split, labels, stream payloads


def _produce(task: tuple[int, list[str] | None]) -> list[Result]:
    return _produce_with(_worker["gen"], _worker["writers"], task)


def _produce_with(gen: Generator, writers: list, task: tuple[int, list[str] | None]) -> list[Result]:
    index, cats = task
    results = []
    for sample in gen.samples(index, cats):
        payloads = []
        for w in writers:
            payload = w.encode(sample)
            if w.per_sample:  # its own files: write here, hand nothing back
                w.write(payload)
                payload = None
            elif hasattr(w, "write_local"):  # per-image files here, shared files in the main process
                payload = w.write_local(payload)
            payloads.append(payload)
        labels = [(a.category, float(a.visibility), float(a.truncation)) for a in sample.annotations]
        results.append((sample.split, labels, payloads))
    return results


def _pool(gen: Generator, workers: int, out_dir: Path):
    # spawn, never fork: a forked child of a process holding a GL context hangs.
    ctx = mp.get_context("spawn")
    return ctx.Pool(workers, initializer=_init_worker, initargs=(gen, out_dir))
