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


def fill_small_holes(mask: np.ndarray, max_px: int) -> np.ndarray:
    """``mask`` with every hole of fewer than ``max_px`` pixels filled. A hole is a 4-connected
    region of background enclosed by the (8-connected) object, as findContours sees them."""
    if max_px <= 0:
        return mask
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = np.pad(mask[y0:y1, x0:x1], 1)  # background around it: the outside is one component
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~sub).astype(np.uint8), connectivity=4)
    outside = labels[0, 0]
    small = [k for k in range(1, n) if k != outside and stats[k, cv2.CC_STAT_AREA] < max_px]
    if not small:
        return mask
    out = mask.copy()
    out[y0:y1, x0:x1] |= np.isin(labels, small)[1:-1, 1:-1]
    return out


def polygons(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """COCO polygons (flat [x0, y0, x1, y1, ...]) tracing the *edges* of the mask's pixels, one
    per 8-connected part, and whether the mask has holes (which COCO polygons cannot express;
    the caller then falls back to RLE).

    A pixel (x, y) is the square [x, x + 1] x [y, y + 1], and pycocotools fills a polygon's
    inside, so a polygon through pixel centres loses half a pixel all round (IoU 0.98 on the
    demo); along the edges it gives back exactly the mask (IoU 1.0). Traced on the mask grown 2x:
    each contour point at sub-pixel u there is the pixel edge (u + 1) // 2.
    """
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return [], False
    y0, x0 = int(ys.min()), int(xs.min())
    sub = mask[y0 : ys.max() + 1, x0 : xs.max() + 1].astype(np.uint8)
    up = np.pad(np.repeat(np.repeat(sub, 2, axis=0), 2, axis=1), 1)  # a border for findContours
    found, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    has_hole = bool((hierarchy[0][:, 3] >= 0).any())
    out = []
    for c, h in zip(found, hierarchy[0]):
        if h[3] >= 0:
            continue  # a hole
        pts = (c.reshape(-1, 2) - 1 + 1) // 2  # undo the border, then sub-pixel -> pixel edge
        pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]  # points that fell together
        out.append([float(v) for v in (pts + (x0, y0)).reshape(-1)])
    return out, has_hole


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
