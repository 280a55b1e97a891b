"""Mask encodings shared by writers: COCO RLE, polygons."""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO compressed RLE {"size": [H, W], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def contours(mask: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """Outer and hole contours of a mask, (k, 2) int (x, y) pixel centres each, and whether
    any hole exists. Parts with fewer than 3 points are kept as thin polygons by padding."""
    found, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    has_hole = hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())
    out = []
    for c in found:
        pts = c.reshape(-1, 2)
        if len(pts) < 3:  # a 1- or 2-pixel part: make a degenerate but valid polygon
            pts = np.concatenate([pts, pts[::-1], pts[:1]])[:max(3, len(pts))]
        out.append(pts)
    return out, has_hole


def polygons(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """COCO polygons (flat [x0, y0, x1, y1, ...]) for each outer part, and whether the mask
    has holes (which COCO polygons cannot express; the caller then falls back to RLE)."""
    parts, has_hole = contours(mask)
    return [[float(v) for v in p.reshape(-1)] for p in parts], has_hole


def merge_segments(parts: list[np.ndarray]) -> np.ndarray:
    """Join several contours into one polygon.

    Walks the first contour and, at its point nearest to each other contour, makes an
    excursion: out along a zero-width bridge, once around that contour, and back. Holes keep
    their opposite orientation, so a polygon fill (even-odd or non-zero) leaves them empty.
    Ultralytics joins multi-part masks into one YOLO line the same way.
    """
    if len(parts) == 1:
        return parts[0]
    base = parts[0]
    excursions: dict[int, list[np.ndarray]] = {}
    for other in parts[1:]:
        d = ((base[:, None, :].astype(np.int64) - other[None, :, :]) ** 2).sum(-1)
        a, b = np.unravel_index(int(d.argmin()), d.shape)
        loop = np.roll(other, -int(b), axis=0)
        excursions.setdefault(int(a), []).append(np.concatenate([loop, loop[:1], base[a : a + 1]]))
    out = []
    for i in range(len(base)):
        out.append(base[i : i + 1])
        out += excursions.get(i, [])
    return np.concatenate(out)
