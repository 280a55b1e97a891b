"""The cut-and-paste backend: draws a planned Scene; draws no random numbers.

Per object, bottom to top: rasterize (scale, flip, rotate) -> per-object augmentation ->
light/contrast jitter -> colour harmonisation with the pixels around it -> drop shadow onto
what is already there -> blend. The instance map takes the object's geometric alpha (after
augmentation, before blending) >= ALPHA_ON: blending and shadows change colours, never who
owns a pixel. After the last object, per-image (pixel-level) augmentation.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .. import arena
from ..augment import Augmenter
from ..backend import Render
from .assets import ALPHA_ON, AssetLibrary, Cutout, crop_fitted
from .blend import paste
from .planning import ObjectPlan, Scene, object_cutout


def rasterize(cut: Cutout, obj: ObjectPlan) -> tuple[np.ndarray, int, int]:
    """The object's premultiplied RGBA patch and its top-left (x0, y0) in image pixels.

    The cutout scaled to (nw, nh), flipped and turned about its centre, in one bilinear warp
    from the pyramid level just above the drawn size (area-averaged halvings), so neither a big
    photo is resampled whole nor a small object aliased. Premultiplied colour: the zero border
    blends as fully transparent.
    """
    w, h = cut.size
    s = obj.size_px / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    src, _ = cut.level(s)
    lh, lw = src.shape[:2]
    # level pixels -> the scaled cutout's pixels (pixel centres at integers, as OpenCV resizes)
    sx, sy = nw / lw, nh / lh
    m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    if obj.flip:
        m = np.array([[-1.0, 0.0, nw - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ m
    angle = obj.angle % 360.0
    bw, bh = nw, nh
    if angle > 1e-9:
        a = math.radians(angle)
        c, si = abs(math.cos(a)), abs(math.sin(a))
        bw, bh = math.ceil(nw * c + nh * si), math.ceil(nw * si + nh * c)
        # OpenCV: positive angle = counter-clockwise on screen; pixel centres at integers.
        r = cv2.getRotationMatrix2D(((nw - 1) / 2, (nh - 1) / 2), angle, 1.0)
        r[0, 2] += (bw - nw) / 2
        r[1, 2] += (bh - nh) / 2
        m = np.vstack([r, [0.0, 0.0, 1.0]]) @ m
    if (lw, lh) == (bw, bh) and np.allclose(m, np.eye(3)):
        patch = src.copy()
    else:
        patch = cv2.warpAffine(src, m[:2], (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(0, 0, 0, 0))
    x0 = int(math.floor(obj.center[0] - bw / 2 + 0.5))
    y0 = int(math.floor(obj.center[1] - bh / 2 + 0.5))
    return patch, x0, y0


def adjust_colour(patch: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """Light/contrast jitter on premultiplied RGBA: straight rgb' = (rgb - 128) * c + 128 + 255 * b."""
    a = patch[..., 3:4].astype(np.float32) * (1.0 / 255.0)
    rgb = patch[..., :3].astype(np.float32)
    # in premultiplied form: rgb'*a = (rgb*a - 128a) * c + (128 + 255b) * a
    out = (rgb - 128.0 * a) * contrast + (128.0 + 255.0 * brightness) * a
    out = np.clip(out, 0, 255.0 * a)
    return np.dstack([(out + 0.5).astype(np.uint8), patch[..., 3]])


def harmonize(patch: np.ndarray, around: np.ndarray, strength: float) -> np.ndarray:
    """Move the object's LAB mean/std towards those of ``around`` (RGB pixels near it)."""
    own = patch[..., 3] >= ALPHA_ON
    if strength <= 0 or own.sum() < 4 or len(around) < 4:
        return patch
    a = patch[..., 3:4].astype(np.float32) * (1.0 / 255.0)
    straight = np.where(a > 0, patch[..., :3] / np.maximum(a, 1e-6), 0).astype(np.float32) / 255.0
    lab = cv2.cvtColor(np.clip(straight, 0, 1), cv2.COLOR_RGB2LAB)
    env = cv2.cvtColor(around.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    mu_o, sd_o = lab[own].mean(0), lab[own].std(0) + 1e-3
    mu_e, sd_e = env.mean(0), env.std(0) + 1e-3
    moved = (lab - mu_o) / sd_o * sd_e + mu_e
    lab = lab + strength * (moved - lab)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    rgb = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1) * 255.0 * a
    return np.dstack([(rgb + 0.5).astype(np.uint8), patch[..., 3]])


def cast_shadow(image: np.ndarray, alpha: np.ndarray, x0: int, y0: int, shadow: dict[str, float]) -> None:
    """Darken ``image`` under the object's alpha shifted by (dx, dy) and blurred, in place."""
    H, W = image.shape[:2]
    blur = shadow["blur"]
    r = int(math.ceil(3 * blur)) + 1
    sx, sy = x0 + int(round(shadow["dx"])), y0 + int(round(shadow["dy"]))
    ph, pw = alpha.shape
    padded = cv2.copyMakeBorder(alpha, r, r, r, r, cv2.BORDER_CONSTANT, value=0)
    soft = cv2.GaussianBlur(padded.astype(np.float32) * (shadow["opacity"] / 255.0), (0, 0), blur)
    gx0, gy0 = sx - r, sy - r
    ix0, iy0, ix1, iy1 = max(0, gx0), max(0, gy0), min(W, gx0 + pw + 2 * r), min(H, gy0 + ph + 2 * r)
    if ix1 <= ix0 or iy1 <= iy0:
        return
    s = soft[iy0 - gy0 : iy1 - gy0, ix0 - gx0 : ix1 - gx0, None]
    region = image[iy0:iy1, ix0:ix1]
    np.copyto(region, (region * (1.0 - s) + 0.5).astype(np.uint8))


class CompositorBackend:
    """Pastes cutouts over a background in z-order with premultiplied alpha."""

    kind = "compositor"

    def __init__(self, lib: AssetLibrary):
        self.lib = lib
        self.augmenter = Augmenter(lib.spec)

    def background(self, scene: Scene) -> np.ndarray:
        bg = self.lib.background(scene.background.asset, scene.background.fit, scene.size)
        crop = crop_fitted(bg, scene.background.crop, scene.size)
        image = arena.empty(crop.shape, crop.dtype)  # the canvas every object is pasted on
        np.copyto(image, crop)
        return image

    def render(self, scene: Scene, blend: str | None = None) -> Render:
        """Draw ``scene``; ``blend`` forces one blend mode for every object (blend variants)."""
        W, H = scene.size
        image = self.background(scene)
        imap = np.zeros((H, W), np.int32)
        k_n = len(scene.objects)
        own_area = np.zeros(k_n, np.int64)
        inframe = np.zeros(k_n, np.int64)
        regions = np.zeros((k_n, 4), np.int64)
        amodal_boxes = np.zeros((k_n, 4))
        amodal_masks: dict[int, tuple[np.ndarray, int, int]] = {}
        want_masks = self.lib.spec.placement.amodal_masks
        for k, obj in enumerate(scene.objects):
            patch, x0, y0 = rasterize(object_cutout(self.lib, obj), obj)
            if obj.augment_seed is not None and self.augmenter.object is not None:
                patch = self.augmenter.apply_object(patch, obj.augment_seed)
            ph, pw = patch.shape[:2]
            own = patch[..., 3] >= ALPHA_ON
            own_area[k] = int(np.count_nonzero(own))
            if obj.labelled and own_area[k]:  # the object drawn alone: its amodal box (and mask)
                rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
                amodal_boxes[k] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
                if want_masks:
                    amodal_masks[k] = (own, x0, y0)
            ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + pw), min(H, y0 + ph)
            regions[k] = (ix0, iy0, ix1, iy1)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            if obj.brightness != 0.0 or obj.contrast != 1.0:
                patch = adjust_colour(patch, obj.brightness, obj.contrast)
            if obj.harmonize > 0:
                window = image[iy0:iy1, ix0:ix1]
                sub_own = own[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
                around = window[~sub_own] if (~sub_own).sum() >= 16 else window.reshape(-1, 3)
                patch = harmonize(patch, around, obj.harmonize)
            if obj.shadow is not None:
                cast_shadow(image, patch[..., 3], x0, y0, obj.shadow)
            paste(image, patch, x0, y0, blend or obj.blend, obj.blend_params)
            sub_own = own[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
            inframe[k] = int(np.count_nonzero(sub_own))
            imap[iy0:iy1, ix0:ix1][sub_own] = k + 1
        if scene.image_augment_seed is not None and self.augmenter.image is not None:
            image = np.ascontiguousarray(self.augmenter.apply_image(image, scene.image_augment_seed))
        return Render(image, imap, own_area, inframe, regions,
                      {"amodal_boxes": amodal_boxes, "amodal_masks": amodal_masks, "want_amodal_masks": want_masks})
