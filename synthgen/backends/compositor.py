"""The cut-and-paste backend: draws a planned Scene; draws no random numbers."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..assets import ALPHA_ON, AssetLibrary, Cutout
from ..plan import ObjectPlan, Scene
from .base import Render


def rasterize(cut: Cutout, obj: ObjectPlan) -> tuple[np.ndarray, int, int]:
    """The object's premultiplied RGBA patch and its top-left (x0, y0) in image pixels."""
    w, h = cut.size
    s = obj.size_px / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(cut.rgba, (nw, nh), interpolation=interp)
    if obj.flip:
        patch = patch[:, ::-1]
    angle = obj.angle % 360.0
    if angle > 1e-9:
        a = math.radians(angle)
        c, si = abs(math.cos(a)), abs(math.sin(a))
        bw, bh = math.ceil(nw * c + nh * si), math.ceil(nw * si + nh * c)
        # OpenCV: positive angle = counter-clockwise on screen; pixel centres at integers.
        m = cv2.getRotationMatrix2D(((nw - 1) / 2, (nh - 1) / 2), angle, 1.0)
        m[0, 2] += (bw - nw) / 2
        m[1, 2] += (bh - nh) / 2
        # Premultiplied colour, so the zero border blends as fully transparent.
        patch = cv2.warpAffine(np.ascontiguousarray(patch), m, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    ph, pw = patch.shape[:2]
    x0 = int(math.floor(obj.center[0] - pw / 2 + 0.5))
    y0 = int(math.floor(obj.center[1] - ph / 2 + 0.5))
    return patch, x0, y0


class CompositorBackend:
    """Pastes cutouts over a background in z-order with premultiplied alpha."""

    kind = "compositor"

    def __init__(self, lib: AssetLibrary):
        self.lib = lib

    def background(self, scene: Scene) -> np.ndarray:
        W, H = scene.size
        bg = self.lib.background(scene.background.asset, scene.background.fit, (W, H))
        bh, bw = bg.shape[:2]
        ox = int(round(scene.background.crop[0] * (bw - W)))
        oy = int(round(scene.background.crop[1] * (bh - H)))
        return bg[oy : oy + H, ox : ox + W].copy()

    def render(self, scene: Scene) -> Render:
        W, H = scene.size
        image = self.background(scene)
        imap = np.zeros((H, W), np.int32)
        k_n = len(scene.objects)
        own_area = np.zeros(k_n, np.int64)
        inframe = np.zeros(k_n, np.int64)
        regions = np.zeros((k_n, 4), np.int64)
        for k, obj in enumerate(scene.objects):
            patch, x0, y0 = rasterize(self.lib.cutout(self.lib.ref(obj.category, obj.asset)), obj)
            ph, pw = patch.shape[:2]
            own = patch[..., 3] >= ALPHA_ON
            own_area[k] = int(np.count_nonzero(own))
            ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + pw), min(H, y0 + ph)
            regions[k] = (ix0, iy0, ix1, iy1)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            sub = patch[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
            a = sub[..., 3:4].astype(np.float32) * (1.0 / 255.0)
            region = image[iy0:iy1, ix0:ix1]
            np.copyto(region, (sub[..., :3] + region * (1.0 - a) + 0.5).astype(np.uint8))
            sub_own = own[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
            inframe[k] = int(np.count_nonzero(sub_own))
            imap[iy0:iy1, ix0:ix1][sub_own] = k + 1
        return Render(image, imap, own_area, inframe, regions)
