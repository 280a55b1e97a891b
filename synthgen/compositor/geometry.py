"""Object geometry shared by the planner, the placement solver and the compositor.

Image pixels: x right, y down, origin at the top-left corner of the top-left pixel. An object
is its cutout scaled so that its longer side is ``size_px``, flipped horizontally if ``flip``,
rotated ``angle`` degrees counter-clockwise (on screen) about its centre.
"""

from __future__ import annotations

import math

import numpy as np


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
