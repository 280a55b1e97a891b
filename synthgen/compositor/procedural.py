"""Procedural distractors: random shapes with random textures (or colours).

``plan_shape`` draws a shape's parameters (plain data for the scene); ``shape_cutout`` turns
them into a cutout deterministically, so the planner and the backend see the same shape.
"""

from __future__ import annotations

import cv2
import numpy as np

from .assets import AssetLibrary, Cutout, make_cutout

SIDE = 128  # canonical longer side of a procedural cutout; rasterize scales it like any other


def plan_shape(rng: np.random.Generator, lib: AssetLibrary) -> dict:
    kind = ["ellipse", "rectangle", "polygon"][int(rng.integers(3))]
    shape: dict = {"kind": kind, "aspect": float(rng.uniform(0.3, 1.0))}
    if kind == "polygon":
        k = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.4, 1.0, k)
        shape["points"] = [[float(0.5 + 0.5 * r * np.cos(t)), float(0.5 + 0.5 * r * np.sin(t))] for r, t in zip(radii, angles)]
    if lib.textures:
        shape["texture"] = lib.textures[int(rng.integers(len(lib.textures)))]
        shape["texture_xy"] = [float(rng.random()), float(rng.random())]
    else:
        shape["color"] = [int(v) for v in rng.integers(0, 256, 3)]
    return shape


def shape_cutout(shape: dict, lib: AssetLibrary) -> Cutout:
    w, h = SIDE, max(8, int(round(SIDE * shape["aspect"])))
    mask = np.zeros((h, w), np.uint8)
    if shape["kind"] == "ellipse":
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 255, -1, cv2.LINE_AA)
    elif shape["kind"] == "rectangle":
        mask[:] = 255
    else:
        pts = np.array([[x * (w - 1), y * (h - 1)] for x, y in shape["points"]], np.float32)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    if "texture" in shape:
        tex = lib.texture(shape["texture"])
        th, tw = tex.shape[:2]
        if th < h or tw < w:
            tex = cv2.resize(tex, (max(w, tw), max(h, th)))
            th, tw = tex.shape[:2]
        ox, oy = int(shape["texture_xy"][0] * (tw - w)), int(shape["texture_xy"][1] * (th - h))
        rgb = tex[oy : oy + h, ox : ox + w]
    else:
        rgb = np.empty((h, w, 3), np.uint8)
        rgb[:] = shape["color"]
    ys, xs = np.nonzero(mask)
    rgba = np.dstack([rgb, mask])[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    a = rgba[..., 3:4].astype(np.uint16)
    rgba = np.ascontiguousarray(rgba)
    rgba[..., :3] = ((rgba[..., :3] * a + 127) // 255).astype(np.uint8)
    return make_cutout(rgba)
