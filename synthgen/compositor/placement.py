"""Where objects go: the placement solver used while planning.

It works on a coarse copy of the scene (a cell is a few pixels): each object is a small mask
warped with its planned transform. That is enough to estimate truncation, how much of an
object falls outside its background's placement region, and how much each object hides of
those under it, without rendering anything. Labels never use these estimates; they are
measured on the final pixels.

Bounded work: at most ``ATTEMPTS`` candidate positions per object; the best one is kept, so
placement never hangs, and a target it cannot meet shows up in the run's report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..spec.models import Placement
from .assets import Cutout
from .geometry import object_transform, rotated_extent

ATTEMPTS = 16
COARSE_SIDE = 128  # the coarse canvas's longer side, cells


@dataclass
class Placed:
    """An object already on the coarse canvas."""

    mask: np.ndarray  # (Hc + 2P, Wc + 2P) bool, padded canvas
    own: int
    visibility_range: tuple[float, float] | None
    center: tuple[float, float]
    extent: tuple[float, float]


@dataclass
class Canvas:
    """The coarse scene being planned."""

    size: tuple[int, int]  # (W, H) pixels
    region: np.ndarray | None  # (H, W) bool where objects may stand, or None for anywhere
    placed: list[Placed] = field(default_factory=list)

    def __post_init__(self) -> None:
        W, H = self.size
        self.cell = max(W, H) / COARSE_SIDE
        self.wc, self.hc = int(math.ceil(W / self.cell)), int(math.ceil(H / self.cell))
        self.pad = max(self.wc, self.hc)
        p = self.pad
        self.frame = np.zeros((self.hc + 2 * p, self.wc + 2 * p), bool)  # the image on the padded canvas
        self.frame[p : p + self.hc, p : p + self.wc] = True
        if self.region is not None:
            small = cv2.resize(self.region.astype(np.uint8), (self.wc, self.hc), interpolation=cv2.INTER_NEAREST).astype(bool)
            self.region_coarse = small
            ys, xs = np.nonzero(self.region)
            self.region_points = np.stack([xs, ys], axis=1)
        else:
            self.region_coarse = None
            self.region_points = None

    def coarse_mask(self, cut: Cutout, size_px: float, angle: float, flip: bool, center: tuple[float, float]) -> np.ndarray:
        m = object_transform(cut.size, size_px, angle, flip)  # cutout px -> object-centred px
        s = cut.small.shape[1] / cut.size[0]
        lin = m[:, :2] / s / self.cell
        t = (m[:, 2] + np.asarray(center)) / self.cell + self.pad
        full = (self.wc + 2 * self.pad, self.hc + 2 * self.pad)
        return cv2.warpAffine(cut.small, np.hstack([lin, t[:, None]]), full, flags=cv2.INTER_NEAREST).astype(bool)

    def inside(self, mask: np.ndarray) -> np.ndarray:
        p = self.pad
        return mask[p : p + self.hc, p : p + self.wc]


def _penalty(x: float, rng_: tuple[float, float] | None) -> float:
    if rng_ is None:
        return 0.0
    lo, hi = rng_
    return max(0.0, lo - x) + max(0.0, x - hi)


def needs_canvas(p: Placement, has_region: bool) -> bool:
    return has_region or p.visibility_range is not None or p.truncation_range is not None


def place(
    rng: np.random.Generator,
    canvas: Canvas,
    cut: Cutout,
    base_size: float,
    angle: float,
    flip: bool,
    p: Placement,
    use_canvas: bool,
) -> tuple[float, tuple[float, float]]:
    """(size_px, center) for one object; records it on the canvas when ``use_canvas``."""
    W, H = canvas.size
    max_trunc = p.truncation_range[1] if p.truncation_range is not None else p.max_truncation
    best: tuple[float, float, tuple[float, float], np.ndarray | None] | None = None
    for attempt in range(ATTEMPTS):
        size_px, center = _candidate(rng, canvas, cut, base_size, angle, flip, p, max_trunc, attempt)
        if not use_canvas:
            trunc = _footprint_truncation(cut, size_px, angle, flip, center, (W, H))
            score = max(0.0, trunc - max_trunc)
            mask = None
        else:
            mask = canvas.coarse_mask(cut, size_px, angle, flip, center)
            own = int(mask.sum())
            if own == 0:
                continue
            inside = canvas.inside(mask)
            if canvas.region_coarse is not None:
                inside = inside & canvas.region_coarse
            trunc = 1.0 - int(inside.sum()) / own
            score = 10.0 * max(0.0, trunc - max_trunc) + _penalty(trunc, p.truncation_range)
            for q in canvas.placed:  # what this object would leave visible of those under it
                if q.visibility_range is None:
                    continue
                vis = int((q.mask & ~mask & canvas.frame).sum()) / q.own
                score += _penalty(vis, q.visibility_range)
        if best is None or score < best[0]:
            best = (score, size_px, center, mask)
        if score == 0.0:
            break
    if best is None:  # the object is too small to show up on the coarse canvas
        return base_size, _candidate(rng, canvas, cut, base_size, angle, flip, p, max_trunc, 0)[1]
    _, size_px, center, mask = best
    if use_canvas and mask is not None:
        for q in canvas.placed:
            q.mask &= ~mask  # keep only what is still visible of each
        ext = rotated_extent(cut.size, size_px, angle)
        canvas.placed.append(Placed(mask, int(mask.sum()), p.visibility_range, center, ext))
    return size_px, center


def ground_factor(y_bottom: float, H: int, p: Placement) -> float:
    """Size factor of an object standing at ``y_bottom``: far_scale at the horizon, 1 at the bottom."""
    h0 = p.horizon * H
    t = min(1.0, max(0.0, (y_bottom - h0) / max(1e-6, H - h0)))
    return p.far_scale + (1.0 - p.far_scale) * t


def _candidate(rng, canvas: Canvas, cut: Cutout, base_size: float, angle: float, flip: bool, p: Placement,
               max_trunc: float, attempt: int) -> tuple[float, tuple[float, float]]:
    W, H = canvas.size
    pts = canvas.region_points
    if p.mode == "ground":
        if pts is not None:
            x, y = pts[int(rng.integers(len(pts)))] + rng.random(2)
        else:
            x, y = rng.uniform(0, W), rng.uniform(p.horizon * H, H)
        size_px = base_size * ground_factor(float(y), H, p)
        _, eh = rotated_extent(cut.size, size_px, angle)
        return size_px, (float(x), float(y - eh / 2))
    if pts is not None:
        x, y = pts[int(rng.integers(len(pts)))] + rng.random(2)
        return base_size, (float(x), float(y))
    targets = [q for q in canvas.placed if q.visibility_range is not None]
    if targets and attempt % 2 == 1:  # try to cover part of an object that is to be occluded
        q = targets[int(rng.integers(len(targets)))]
        ew, eh = q.extent
        return base_size, (float(q.center[0] + rng.uniform(-ew, ew) * 0.6), float(q.center[1] + rng.uniform(-eh, eh) * 0.6))
    ew, eh = rotated_extent(cut.size, base_size, angle)
    lo_x, hi_x = sorted((ew / 2 - max_trunc * ew, W - ew / 2 + max_trunc * ew))
    lo_y, hi_y = sorted((eh / 2 - max_trunc * eh, H - eh / 2 + max_trunc * eh))
    return base_size, (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))


def _footprint_truncation(cut: Cutout, size_px: float, angle: float, flip: bool, center: tuple[float, float], size: tuple[int, int]) -> float:
    """Share of the object's footprint outside the frame (coarse; labels measure it exactly)."""
    m = object_transform(cut.size, size_px, angle, flip)
    pts = cut.footprint @ m[:, :2].T + m[:, 2] + np.asarray(center)
    W, H = size
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H)
    return float(1.0 - inside.mean()) if len(pts) else 0.0
