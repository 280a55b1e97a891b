"""Planning: every random choice of a sample, made up front and kept as plain data.

``plan_scene(spec, lib, seed, index)`` is the only function that draws random numbers for a
compositor sample; backends and writers receive a finished ``Scene`` and draw none.

Geometry: image pixels, x right, y down, origin at the top-left corner of the top-left pixel.
An object is its cutout scaled so that its longer side is ``size_px``, flipped horizontally
if ``flip``, rotated ``angle`` degrees counter-clockwise about its centre, with that centre at
``center`` = (x, y).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .assets import AssetLibrary, Cutout
from .rng import SCENE, SPLIT, rng_for
from .spec import Spec

PLACEMENT_ATTEMPTS = 20  # bounded retries for a position that meets max_truncation; never a hang


@dataclass
class BackgroundPlan:
    asset: str
    """Background image path, relative to the spec's folder."""
    fit: str
    crop: tuple[float, float]
    """random_crop offset as fractions (0..1) of the free width and height."""


@dataclass
class ObjectPlan:
    category: str
    asset: str
    """Cutout image path, relative to the spec's folder."""
    size_px: float
    """Longer side of the scaled cutout, pixels."""
    angle: float
    """Rotation, degrees counter-clockwise."""
    flip: bool
    center: tuple[float, float]
    """(x, y) of the object's centre, pixels; may lie outside the frame (truncation)."""
    labelled: bool = True


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

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scene:
        """Rebuild a Scene from ``to_json`` output (e.g. a manifest line's ``scene``)."""
        bg = data["background"]
        return cls(
            data["index"], data["seed"], tuple(data["size"]), data["split"],
            BackgroundPlan(bg["asset"], bg["fit"], tuple(bg["crop"])),
            [ObjectPlan(o["category"], o["asset"], o["size_px"], o["angle"], o["flip"], tuple(o["center"]), o["labelled"])
             for o in data["objects"]],
        )


def choose_split(splits: dict[str, float], seed: int, index: int) -> str:
    """Split of sample ``index``: a draw from its own stream, so it never shifts the scene."""
    u = rng_for(seed, index, SPLIT).random()
    acc = 0.0
    names = list(splits)
    for name in names:
        acc += splits[name]
        if u < acc:
            return name
    return names[-1]


def object_transform(cut_size: tuple[int, int], size_px: float, angle: float, flip: bool) -> np.ndarray:
    """(2, 3) affine from cutout pixels to object-centred pixels (centre at 0, 0)."""
    w, h = cut_size
    s = size_px / max(w, h)
    a = math.radians(angle)
    # y points down, so a counter-clockwise turn on screen is a clockwise one in these axes.
    c, si = math.cos(a), math.sin(a)
    rot = np.array([[c, si], [-si, c]])
    lin = rot @ np.diag([-s if flip else s, s])
    return np.hstack([lin, -lin @ np.array([[w / 2], [h / 2]])])


def rotated_extent(cut_size: tuple[int, int], size_px: float, angle: float) -> tuple[float, float]:
    """(width, height) of the axis-aligned box around the scaled, rotated cutout."""
    w, h = cut_size
    s = size_px / max(w, h)
    a = math.radians(angle)
    c, si = abs(math.cos(a)), abs(math.sin(a))
    return (w * c + h * si) * s, (w * si + h * c) * s


def estimate_truncation(cut: Cutout, size_px: float, angle: float, flip: bool, center: tuple[float, float], size: tuple[int, int]) -> float:
    """Share of the object's footprint outside the frame (coarse; labels measure it exactly)."""
    m = object_transform(cut.size, size_px, angle, flip)
    pts = cut.footprint @ m[:, :2].T + m[:, 2] + np.asarray(center)
    W, H = size
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H)
    return float(1.0 - inside.mean()) if len(pts) else 0.0


def _place(rng: np.random.Generator, cut: Cutout, size_px: float, angle: float, flip: bool, size: tuple[int, int], max_trunc: float) -> tuple[float, float]:
    W, H = size
    ew, eh = rotated_extent(cut.size, size_px, angle)
    best: tuple[float, tuple[float, float]] | None = None
    for _ in range(PLACEMENT_ATTEMPTS):
        # Centre ranges that keep the box inside, widened by the allowed truncation.
        lo_x, hi_x = sorted((ew / 2 - max_trunc * ew, W - ew / 2 + max_trunc * ew))
        lo_y, hi_y = sorted((eh / 2 - max_trunc * eh, H - eh / 2 + max_trunc * eh))
        center = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
        t = estimate_truncation(cut, size_px, angle, flip, center, size)
        if t <= max_trunc:
            return center
        if best is None or t < best[0]:
            best = (t, center)
    assert best is not None
    return best[1]


def plan_scene(
    spec: Spec,
    lib: AssetLibrary,
    seed: int,
    index: int,
    categories: Sequence[str] | None = None,
) -> Scene:
    """Plan sample ``index``.

    categories: the classes to place (the per-class scheduler's request), in any order; when
        None, ``objects_per_image`` and the class weights decide.
    """
    rng = rng_for(seed, index, SCENE)
    W, H = spec.output.size
    bg_key = lib.backgrounds[int(rng.integers(len(lib.backgrounds)))]
    background = BackgroundPlan(bg_key, spec.backgrounds.fit, (float(rng.random()), float(rng.random())))

    names = spec.categories
    if categories is None:
        k = int(spec.objects_per_image.sample(rng))
        w = np.array([spec.classes[c].weight for c in names], dtype=float)
        chosen = [names[int(i)] for i in rng.choice(len(names), size=k, p=w / w.sum())]
    else:
        unknown = [c for c in categories if c not in spec.classes]
        if unknown:
            raise KeyError(f"unknown categories {unknown}")
        chosen = [categories[int(i)] for i in rng.permutation(len(categories))]

    objects = []
    for cat in chosen:
        p = spec.placement_for(cat)
        refs = lib.cutouts[cat]
        ref = refs[int(rng.integers(len(refs)))]
        cut = lib.cutout(ref)
        size_px = float(p.scale_range.sample(rng)) * min(W, H)
        angle = float(p.rotation_range.sample(rng))
        flip = bool(rng.random() < p.flip)
        center = _place(rng, cut, size_px, angle, flip, (W, H), p.max_truncation)
        objects.append(ObjectPlan(cat, ref.image, size_px, angle, flip, center))
    return Scene(index, seed, (W, H), choose_split(spec.output.split, seed, index), background, objects)
