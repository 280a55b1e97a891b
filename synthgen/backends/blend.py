"""Blend modes: how an object's pixels meet what is under them.

Every mode works on a window around the object (its patch grown by the mode's reach, clipped
to the frame) and changes colours only. Ownership, and so every label, is decided elsewhere
from the object's geometric alpha (>= 0.5), the same for all modes: a feathered or smeared edge
that spills past that line is colour on the neighbour's pixels and belongs to whoever owns them.

Inputs are premultiplied RGBA patches (colour already multiplied by alpha), which is what
makes feathering and motion blur halo-free: blurring premultiplied colour together with alpha
weights every colour by how much object is there.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np


def reach(mode: str, params: dict[str, Any]) -> int:
    """How far (pixels) outside the patch a mode may change colours."""
    if mode == "gaussian":
        return int(math.ceil(3 * params["sigma"])) + 1
    if mode == "motion":
        return int(math.ceil(params["length"] / 2)) + 1
    if mode == "pyramid":
        return 2 ** params["levels"]
    return 0


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels at ``angle`` degrees (counter-clockwise)."""
    n = max(1, int(round(length)))
    size = n if n % 2 else n + 1
    k = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    a = math.radians(angle)
    dx, dy = math.cos(a) * (n - 1) / 2, -math.sin(a) * (n - 1) / 2
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _laplacian_blend(a: np.ndarray, b: np.ndarray, m: np.ndarray, levels: int) -> np.ndarray:
    """Blend float images a over b with mask m (0..1) band by band (Burt and Adelson)."""
    ga, gb, gm = [a], [b], [m]
    for _ in range(levels):
        if min(ga[-1].shape[:2]) < 4:
            break
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = ga[-1] * gm[-1][..., None] + gb[-1] * (1 - gm[-1][..., None])
    for i in range(len(ga) - 2, -1, -1):
        size = (ga[i].shape[1], ga[i].shape[0])
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + la * gm[i][..., None] + lb * (1 - gm[i][..., None])
    return out


def paste(image: np.ndarray, patch: np.ndarray, x0: int, y0: int, mode: str = "none", params: dict[str, Any] | None = None) -> None:
    """Paste premultiplied RGBA ``patch`` with its top-left at (x0, y0) into ``image`` in place."""
    params = params or {}
    H, W = image.shape[:2]
    ph, pw = patch.shape[:2]
    r = reach(mode, params)
    wx0, wy0, wx1, wy1 = max(0, x0 - r), max(0, y0 - r), min(W, x0 + pw + r), min(H, y0 + ph + r)
    if wx1 <= wx0 or wy1 <= wy0:
        return
    # the patch laid into the window (zero = transparent outside it)
    fg = np.zeros((wy1 - wy0, wx1 - wx0, 4), np.float32)
    sx0, sy0, sx1, sy1 = max(x0, wx0), max(y0, wy0), min(x0 + pw, wx1), min(y0 + ph, wy1)
    if sx1 <= sx0 or sy1 <= sy0:
        return
    fg[sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    window = image[wy0:wy1, wx0:wx1]
    bg = window.astype(np.float32)
    if mode == "gaussian":
        fg = cv2.GaussianBlur(fg, (0, 0), params["sigma"])
    elif mode == "motion":
        fg = cv2.filter2D(fg, -1, motion_kernel(params["length"], params["angle"]), borderType=cv2.BORDER_CONSTANT)
    a = fg[..., 3:4] * (1.0 / 255.0)
    hard = fg[..., :3] + bg * (1.0 - a)
    if mode == "pyramid":
        out = _laplacian_blend(hard, bg, a[..., 0], params["levels"])
    elif mode == "poisson":
        out = _poisson(hard, bg, a[..., 0], params.get("mixed", False))
    else:
        out = hard
    np.copyto(window, np.clip(out + 0.5, 0, 255).astype(np.uint8))


def _poisson(hard: np.ndarray, bg: np.ndarray, a: np.ndarray, mixed: bool) -> np.ndarray:
    """OpenCV seamless cloning of the object's pixels (alpha >= 0.5) into bg, without moving them."""
    mask = (a >= 0.5).astype(np.uint8) * 255
    inner = mask.copy()
    inner[0, :] = inner[-1, :] = 0  # seamlessClone needs the region strictly inside the window
    inner[:, 0] = inner[:, -1] = 0
    if inner.shape[0] < 3 or inner.shape[1] < 3 or not inner.any():
        return hard
    x, y, w, h = cv2.boundingRect(inner)
    if w < 3 or h < 3:  # OpenCV's solver fails on a region this thin; nothing to blend anyway
        return hard
    # OpenCV centres the mask's bounding box on `center` (integer division): this keeps it in place.
    center = (x + w // 2, y + h // 2)
    src = np.clip(hard + 0.5, 0, 255).astype(np.uint8)
    dst = np.clip(bg + 0.5, 0, 255).astype(np.uint8)
    cloned = cv2.seamlessClone(src, dst, inner, center, cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE).astype(np.float32)
    out = hard.copy()  # outside the clone region: the hard composite (soft edge, frame border)
    sel = inner > 0
    out[sel] = cloned[sel]
    return out
