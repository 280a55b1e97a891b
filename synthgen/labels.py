"""Labels from the final pixels: the instance map of a Render, after every paste."""

from __future__ import annotations

import numpy as np

from . import arena
from .backend import Render
from .sample import Annotation
from .spec import Spec


def annotate(spec: Spec, scene, render: Render) -> list[Annotation]:
    """One Annotation per labelled object that passes min_visibility and min_area, bottom to top.

    Objects that fail the filter stay in the image (they were pasted) but get no label; the
    policy is the spec's ``min_visibility`` (visible / own pixels) and ``min_area`` (visible
    pixels), per class.
    """
    H, W = render.instance_map.shape
    names = spec.categories
    out, windows = [], []
    for k, obj in enumerate(scene.objects):
        if not obj.labelled or obj.category is None or render.own_area[k] == 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in render.regions[k])
        if x1 <= x0 or y1 <= y0:
            continue
        window = render.instance_map[y0:y1, x0:x1] == k + 1
        area = int(np.count_nonzero(window))
        if area == 0:
            continue
        own = int(render.own_area[k])
        visibility = area / own
        truncation = 1.0 - int(render.inframe_area[k]) / own
        p = spec.placement_for(obj.category)
        if visibility < p.min_visibility or area < p.min_area:
            continue
        if p.min_thickness > 0 and thickness(window) < p.min_thickness:
            continue
        cols = np.flatnonzero(window.any(axis=0))
        rows = np.flatnonzero(window.any(axis=1))
        bbox = (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1))
        windows.append((window, x0, y0, x1, y1))
        out.append(Annotation(obj.category, names.index(obj.category), bbox, None, area, visibility, truncation, k))  # type: ignore[arg-type]
    # every mask a view of one (N, H, W) array, so that Sample.masks is that array, not a copy
    stack = arena.zeros((len(out), H, W), bool)
    for a, m, (window, x0, y0, x1, y1) in zip(out, stack, windows):
        m[y0:y1, x0:x1] = window
        a.mask = m
    if "amodal_boxes" in render.extras:
        annotate_amodal(out, render)
    return out


def thickness(mask: np.ndarray) -> float:
    """How thick a mask is at its thickest, in pixels: the width of the widest stroke (the
    diameter of the largest inscribed disc). From pixel centres: a pixel d away from the nearest
    outside pixel sits in a stroke 2d - 1 wide (exact for odd widths, one less for even)."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    return max(0.0, 2.0 * float(cv2.distanceTransform(padded, cv2.DIST_L2, 5).max()) - 1.0)


def annotate_amodal(annotations: list[Annotation], render: Render) -> None:
    """The amodal box (the object drawn alone; it may reach outside the frame) and, when asked
    for, the amodal mask (the same, cut to the frame), in place. Every backend gives them."""
    ex = render.extras
    H, W = render.instance_map.shape
    for a in annotations:
        k = a.object_index
        x0, y0, x1, y1 = ex["amodal_boxes"][k]
        a.amodal_bbox = (float(x0), float(y0), float(x1), float(y1))
        m = ex["amodal_masks"].get(k)
        if ex["want_amodal_masks"] and m is not None:
            mask, ox, oy = m
            full = np.zeros((H, W), bool)
            sx0, sy0 = max(0, -ox), max(0, -oy)
            sx1, sy1 = min(mask.shape[1], W - ox), min(mask.shape[0], H - oy)
            if sx1 > sx0 and sy1 > sy0:
                full[oy + sy0 : oy + sy1, ox + sx0 : ox + sx1] = mask[sy0:sy1, sx0:sx1]
            a.amodal_mask = full


def annotate_3d(annotations: list[Annotation], render: Render) -> None:
    """Add the renderer's pose and projected 3D box keypoints, in place (amodal boxes and masks
    come from ``annotate``)."""
    ex = render.extras
    depth, K = ex["depth"], ex["K"]
    H, W = depth.shape
    for a in annotations:
        k = a.object_index
        a.pose = ex["poses"][k]
        pts = ex["corners"][k]
        kp = np.zeros((len(pts), 3))
        for i, (X, Y, Z) in enumerate(pts):
            if Z <= 1e-6:
                continue
            u, v = K[0, 0] * X / Z + K[0, 2], K[1, 1] * Y / Z + K[1, 2]
            if not (0 <= u < W - 0.5 and 0 <= v < H - 0.5):
                continue  # outside the frame: not labelled (COCO v = 0, x = y = 0)
            d = depth[int(round(v)), int(round(u))]
            visible = d == 0 or Z <= d + 0.005  # nothing drawn there, or the point is in front
            kp[i] = (u, v, 2 if visible else 1)
        a.keypoints = kp
