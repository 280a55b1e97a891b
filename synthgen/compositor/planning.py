"""Planning: every random choice of a sample, made up front and kept as plain data.

``plan_scene(spec, lib, seed, index)`` is the only function that draws random numbers for a
compositor sample; backends and writers receive a finished ``Scene`` and draw none (seeds for
albumentations are drawn here and stored in the scene).

Geometry conventions are in ``geometry``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..choices import choose_categories, choose_split
from ..rng import LOOKS, SCENE, pick, rng_for
from ..spec import Spec
from .assets import DISTRACTOR, AssetLibrary, Cutout, crop_fitted
from .geometry import object_transform, rotated_extent  # noqa: F401 - object_transform re-exported
from .placement import Canvas, needs_canvas, place
from .procedural import plan_shape, shape_cutout

PROCEDURAL = "<procedural>"  # ObjectPlan.asset of a procedural distractor (its shape is in .shape)


@dataclass
class BackgroundPlan:
    asset: str
    """Background image path, relative to the spec's folder."""
    fit: str
    crop: tuple[float, float]
    """random_crop offset as fractions (0..1) of the free width and height."""


@dataclass
class ObjectPlan:
    category: str | None
    """Class name; None for a distractor (never labelled)."""
    asset: str
    """Cutout image path, relative to the spec's folder, or PROCEDURAL."""
    size_px: float
    """Longer side of the scaled cutout, pixels."""
    angle: float
    """Rotation, degrees counter-clockwise."""
    flip: bool
    center: tuple[float, float]
    """(x, y) of the object's centre, pixels; may lie outside the frame (truncation)."""
    labelled: bool = True
    blend: str = "none"
    blend_params: dict[str, Any] = field(default_factory=dict)
    harmonize: float = 0.0
    """LAB mean/std transfer strength, 0..1."""
    brightness: float = 0.0
    """Added to each channel, as a fraction of 255."""
    contrast: float = 1.0
    shadow: dict[str, float] | None = None
    """{dx, dy, blur, opacity} of a drop shadow, or None."""
    augment_seed: int | None = None
    shape: dict[str, Any] | None = None
    """A procedural distractor's shape (see procedural.plan_shape)."""
    upscale_capped: bool = False
    """The drawn size was capped at max_upscale x the cutout's own size."""


@dataclass
class Scene:
    """A planned sample; JSON-serialisable with ``to_json``."""

    index: int
    seed: int
    size: tuple[int, int]
    """(width, height) of the output image."""
    split: str
    background: BackgroundPlan
    objects: list[ObjectPlan] = field(default_factory=list)
    """Bottom to top: later objects are pasted over earlier ones."""
    image_augment_seed: int | None = None
    request: list[str] | None = None
    """The classes the per-class scheduler asked for (None: drawn from the spec)."""

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def notes(self) -> dict[str, int]:
        """Counts for the run's report: objects requested and placed per class (every requested
        object is placed), and how often max_upscale capped one."""
        out: dict[str, int] = {}
        for o in self.objects:
            if o.labelled and o.category is not None:
                for key in (f"requested/{o.category}", f"placed/{o.category}") + ((f"upscale_capped/{o.category}",) if o.upscale_capped else ()):
                    out[key] = out.get(key, 0) + 1
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scene:
        """Rebuild a Scene from ``to_json`` output (e.g. a manifest line's ``scene``)."""
        bg = data["background"]
        objects = []
        for o in data["objects"]:
            o = dict(o)
            o["center"] = tuple(o["center"])
            objects.append(ObjectPlan(**o))
        return cls(data["index"], data["seed"], tuple(data["size"]), data["split"],
                   BackgroundPlan(bg["asset"], bg["fit"], tuple(bg["crop"])), objects,
                   data.get("image_augment_seed"), data.get("request"))


def object_cutout(lib: AssetLibrary, obj: ObjectPlan) -> Cutout:
    """The cutout an ObjectPlan refers to (a procedural shape is made from its parameters)."""
    if obj.shape is not None:
        return shape_cutout(obj.shape, lib)
    return lib.cutout(lib.ref(obj.category, obj.asset))


def _looks(spec: Spec, rng: np.random.Generator) -> dict[str, Any]:
    """Blend, colour, shadow and augmentation draws for one object."""
    b = spec.blend
    mode = pick(rng, b.modes)
    # Parameters for every mode, so any blend variant (write_blend_variants, show --blend)
    # renders the same planned scene.
    params: dict[str, Any] = {
        "sigma": float(b.gaussian_sigma.sample(rng)),
        "mixed": bool(rng.random() < b.poisson_mixed),
        "levels": b.pyramid_levels,
        "length": float(b.motion_length.sample(rng)),
        "angle": float(b.motion_angle.sample(rng)),
    }
    sh = spec.shadow
    shadow = None
    if sh.p > 0 and rng.random() < sh.p:
        shadow = {"dx": float(sh.offset.sample(rng)), "dy": float(sh.offset.sample(rng)),
                  "blur": float(sh.blur.sample(rng)), "opacity": float(sh.opacity.sample(rng))}
    return {
        "blend": mode,
        "blend_params": params,
        "harmonize": float(spec.harmonize.strength.sample(rng)),
        "brightness": float(spec.photometric.brightness.sample(rng)),
        "contrast": float(spec.photometric.contrast.sample(rng)),
        "shadow": shadow,
        "augment_seed": int(rng.integers(2**31)) if spec.augment.object else None,
    }


def plan_scene(
    spec: Spec,
    lib: AssetLibrary,
    seed: int,
    index: int,
    categories: Sequence[str] | None = None,
) -> Scene:
    """Plan sample ``index``.

    categories: the classes to place (the per-class scheduler's request; empty = a negative
        image), in any order; when None, ``negative_ratio``, ``objects_per_image`` and the class
        weights decide.
    """
    rng = rng_for(seed, index, SCENE)
    W, H = spec.output.size
    bg_key = lib.backgrounds[int(rng.integers(len(lib.backgrounds)))]
    background = BackgroundPlan(bg_key, spec.backgrounds.fit, (float(rng.random()), float(rng.random())))
    region = None
    if bg_key in lib.regions:
        region = crop_fitted(lib.region(bg_key, background.fit, (W, H)), background.crop, (W, H))

    chosen = choose_categories(spec, rng, categories)
    d = spec.distractors
    n_cut = int(d.count.sample(rng)) if d is not None and lib.distractors else 0
    n_proc = int(d.procedural.sample(rng)) if d is not None else 0
    items: list[tuple[str | None, str | None]] = [(c, None) for c in chosen]
    items += [(DISTRACTOR, "cutout")] * n_cut + [(DISTRACTOR, "shape")] * n_proc
    order = rng.permutation(len(items))

    canvas = Canvas((W, H), region)
    looks_rng = rng_for(seed, index, LOOKS)
    objects = []
    feet: list[float] = []  # bottom edge of each object, for ground mode's drawing order
    for i in order:
        cat, kind = items[int(i)]
        p = spec.placement_for(cat)
        shape = None
        if kind == "shape":
            shape = plan_shape(rng, lib)
            asset, cut = PROCEDURAL, shape_cutout(shape, lib)
        else:
            refs = lib.distractors if kind == "cutout" else lib.cutouts[cat]
            ref = refs[int(rng.integers(len(refs)))]
            asset, cut = ref.image, lib.cutout(ref)
        base = float(p.scale_range.sample(rng)) * min(W, H)
        # never blow a small cutout up beyond max_upscale x its own size: a blurred blob is no label
        cap = p.max_upscale * max(cut.size) if shape is None else float("inf")
        capped = base > cap
        base = min(base, cap)
        angle = float(p.rotation_range.sample(rng))
        flip = bool(rng.random() < p.flip)
        size_px, center = place(rng, canvas, cut, base, angle, flip, p, needs_canvas(p, region is not None))
        looks = _looks(spec, looks_rng)
        objects.append(ObjectPlan(cat, asset, size_px, angle, flip, center, labelled=kind is None, shape=shape,
                                  upscale_capped=capped, **looks))
        feet.append(center[1] + rotated_extent(cut.size, size_px, angle)[1] / 2)
    if spec.placement.mode == "ground":
        # nearer (lower) objects are drawn over farther ones; sorted() is stable, as before
        objects = [o for _, o in sorted(zip(feet, objects), key=lambda fo: fo[0])]
    image_seed = int(looks_rng.integers(2**31)) if spec.augment.image else None
    return Scene(index, seed, (W, H), choose_split(spec.output.split, seed, index), background, objects, image_seed,
                 None if categories is None else list(categories))
