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
from scipy.fft import dstn, idstn, next_fast_len


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
    """Blend float images a over b with mask m (0..1) band by band (Burt and Adelson).

    The pyramid is linear, so sum_i G_i(m) L_i(a) + (1 - G_i(m)) L_i(b) = b + sum_i G_i(m) L_i(a - b):
    one pyramid of the difference (zero away from the object) instead of two.
    """
    gd, gm = [a - b], [m]
    for _ in range(levels):
        if min(gd[-1].shape[:2]) < 4:
            break
        gd.append(cv2.pyrDown(gd[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gd[-1] * gm[-1][..., None]
    for i in range(len(gd) - 2, -1, -1):
        size = (gd[i].shape[1], gd[i].shape[0])
        band = gd[i] - cv2.pyrUp(gd[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + band * gm[i][..., None]
    return b + out


def _feather(fg: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Soften only the edge: blur the alpha, keep the object's colours sharp.

    Outside the solid part the colour is the alpha-weighted average of the object's colours
    nearby (blurred premultiplied colour / blurred alpha: normalised convolution), so the
    feathered rim shows the object's own colour fading out, never black or an old background.
    """
    blurred = cv2.GaussianBlur(fg, (0, 0), sigma)
    a = cv2.extractChannel(fg, 3)
    soft = cv2.extractChannel(blurred, 3)
    # premultiplied result: (own colour) * soft where solid; (nearby average) * soft elsewhere,
    # which is just the blurred premultiplied colour (channels apart: numpy is slow on the
    # strided views of an interleaved image)
    rgb = cv2.cvtColor(blurred, cv2.COLOR_RGBA2RGB)
    np.copyto(rgb, cv2.cvtColor(fg, cv2.COLOR_RGBA2RGB) * (soft / np.maximum(a, 1e-3))[..., None], where=(a >= 127.5)[..., None])
    return rgb, soft


def paste(image: np.ndarray, patch: np.ndarray, x0: int, y0: int, mode: str = "none", params: dict[str, Any] | None = None) -> None:
    """Paste premultiplied RGBA ``patch`` with its top-left at (x0, y0) into ``image`` in place."""
    params = params or {}
    H, W = image.shape[:2]
    ph, pw = patch.shape[:2]
    if mode == "none":  # the common case: composite in place, in uint8, on the object's window only
        ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + pw), min(H, y0 + ph)
        if ix1 > ix0 and iy1 > iy0:
            sub = np.ascontiguousarray(patch[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0])
            region = image[iy0:iy1, ix0:ix1]
            # premultiplied "over": rgb + region * (255 - alpha) / 255, rounded, saturating
            inv = cv2.cvtColor(255 - sub[..., 3], cv2.COLOR_GRAY2RGB)
            np.copyto(region, cv2.add(cv2.cvtColor(sub, cv2.COLOR_RGBA2RGB), cv2.multiply(np.ascontiguousarray(region), inv, scale=1.0 / 255.0)))
        return
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
        rgb, alpha = _feather(fg, params["sigma"])  # premultiplied colour, alpha (0..255)
    else:
        if mode == "motion":
            fg = cv2.filter2D(fg, -1, motion_kernel(params["length"], params["angle"]), borderType=cv2.BORDER_CONSTANT)
        rgb, alpha = cv2.cvtColor(fg, cv2.COLOR_RGBA2RGB), cv2.extractChannel(fg, 3)
    a = alpha * (1.0 / 255.0)
    hard = rgb + bg * (1.0 - a)[..., None]
    if mode == "pyramid":
        out = _laplacian_blend(hard, bg, a, params["levels"])
    elif mode == "poisson":
        out = _poisson(hard, bg, a, params.get("mixed", False))
    else:
        out = hard
    np.copyto(window, np.clip(out + 0.5, 0, 255).astype(np.uint8))


def _poisson(hard: np.ndarray, bg: np.ndarray, a: np.ndarray, mixed: bool) -> np.ndarray:
    """Poisson (guided) blending of the object's pixels (alpha >= 0.5) into bg, in place.

    The same problem OpenCV's seamlessClone solves (Perez et al. 2003; NORMAL or MIXED guidance),
    solved here with one DST per channel over the window, about 3x faster than OpenCV on
    objects of a few hundred pixels. The object is not moved: only its own pixels change.
    """
    mask = a >= 0.5
    inner = mask.copy()
    inner[0, :] = inner[-1, :] = False  # the window border carries the boundary condition
    inner[:, 0] = inner[:, -1] = False
    if inner.shape[0] < 3 or inner.shape[1] < 3 or not inner.any():
        return hard
    out = hard.copy()  # outside the solved region: the hard composite (soft edge, frame border)
    out[inner] = poisson_solve(hard, bg, inner, mixed)[inner]
    return out


def poisson_solve(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, mixed: bool = False) -> np.ndarray:
    """f with the Laplacian of the guidance field where ``mask`` touches, f = dst on the border.

    src, dst : (h, w, 3) float32. mask : (h, w) bool, False on the border. The guidance on each
    pixel edge is src's gradient when either end is in the mask (MIXED: whichever of src's and
    dst's is larger), else dst's.
    """
    h, w = mask.shape
    # DST-I of length N runs an FFT of length 2(N + 1): pad to a size where that is fast.
    H, W = next_fast_len(2 * (h - 1)) // 2 + 1, next_fast_len(2 * (w - 1)) // 2 + 1
    if (H, W) != (h, w):
        src = cv2.copyMakeBorder(src, 0, H - h, 0, W - w, cv2.BORDER_REPLICATE)
        dst = cv2.copyMakeBorder(dst, 0, H - h, 0, W - w, cv2.BORDER_REPLICATE)
        mask = np.pad(mask, ((0, H - h), (0, W - w)))
    ex = (mask[:, 1:] | mask[:, :-1])[..., None]
    ey = (mask[1:] | mask[:-1])[..., None]
    sgx, sgy = src[:, 1:] - src[:, :-1], src[1:] - src[:-1]
    dgx, dgy = dst[:, 1:] - dst[:, :-1], dst[1:] - dst[:-1]
    if mixed:
        sgx = np.where(np.abs(dgx) > np.abs(sgx), dgx, sgx)
        sgy = np.where(np.abs(dgy) > np.abs(sgy), dgy, sgy)
    gx, gy = np.where(ex, sgx, dgx), np.where(ey, sgy, dgy)
    div = np.zeros_like(src)
    div[:, :-1] += gx
    div[:, 1:] -= gx
    div[:-1] += gy
    div[1:] -= gy
    rhs = div[1:-1, 1:-1]  # sum over neighbours (f_q - f_p) = guidance; known border values move right
    rhs[0] -= dst[0, 1:-1]
    rhs[-1] -= dst[-1, 1:-1]
    rhs[:, 0] -= dst[1:-1, 0]
    rhs[:, -1] -= dst[1:-1, -1]
    n, k = H - 2, W - 2
    ly = (2 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2).astype(np.float32)
    lx = (2 * np.cos(np.pi * np.arange(1, k + 1) / (k + 1)) - 2).astype(np.float32)
    f = idstn(dstn(rhs, type=1, axes=(0, 1)) / (ly[:, None, None] + lx[None, :, None]), type=1, axes=(0, 1))
    out = dst.copy()
    out[1:-1, 1:-1] = f
    return out[:h, :w]
