"""BOP (6D pose benchmark) layout, one BOP "scene" per split:

    OUT/bop/models/obj_000001.ply + models_info.json   (the normalised meshes, millimetres)
    OUT/bop/<split>/000000/rgb/<im_id>.jpg|png
    OUT/bop/<split>/000000/depth/<im_id>.png          (16-bit, depth_scale 1.0: millimetres)
    OUT/bop/<split>/000000/mask/<im_id>_<gt_id>.png    (amodal: the object alone)
    OUT/bop/<split>/000000/mask_visib/<im_id>_<gt_id>.png
    OUT/bop/<split>/000000/scene_camera.json, scene_gt.json, scene_gt_info.json

``im_id`` is the sample index; ``obj_id`` the 1-based class id. Poses are model-to-camera,
OpenCV camera axes, R row-major, t in millimetres. Per-image files are written by the process
that made the sample; the three JSON files are assembled from parts when the run finishes.
"""

from __future__ import annotations

import json
from typing import Iterator

import cv2
import numpy as np

from ..sample import Sample
from .base import Encoded, Writer
from .depth import encode_depth_png
from .images import encode_image

SCENE = "000000"


def _png(mask: np.ndarray) -> bytes:
    return cv2.imencode(".png", mask.astype(np.uint8) * 255)[1].tobytes()


def _xywh(box) -> list[int]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


class BopWriter(Writer):
    name = "bop"

    def encode(self, sample: Sample) -> Encoded:
        im = sample.index
        ext = self.spec.output.image_format
        base = f"bop/{sample.split}/{SCENE}"
        # the image last: a BOP image on disk always has its depth and masks beside it
        files = []
        if sample.depth is not None:
            files.append((f"{base}/depth/{im:06d}.png", encode_depth_png(sample.depth)))
        gt, info = [], []
        for j, a in enumerate(sample.annotations):
            files.append((f"{base}/mask_visib/{im:06d}_{j:06d}.png", _png(a.mask)))
            full = a.amodal_mask if a.amodal_mask is not None else a.mask
            files.append((f"{base}/mask/{im:06d}_{j:06d}.png", _png(full)))
            gt.append({"cam_R_m2c": [float(v) for v in a.pose[:3, :3].reshape(-1)],
                       "cam_t_m2c": [float(v) * 1000.0 for v in a.pose[:3, 3]],
                       "obj_id": a.category_id + 1})
            own = a.area / a.visibility if a.visibility > 0 else 0
            info.append({"bbox_obj": _xywh(a.amodal_bbox), "bbox_visib": _xywh(a.bbox),
                         "px_count_all": int(round(own)), "px_count_valid": int(full.sum()),
                         "px_count_visib": int(a.area), "visib_fract": float(a.visibility)})
        files.append((f"{base}/rgb/{im:06d}.{ext}", encode_image(sample.image, ext, self.spec.output.quality)))
        camera = {"cam_K": [float(v) for v in sample.camera_K.reshape(-1)], "depth_scale": 1.0}
        key = json.dumps(str(im))
        parts = [(f"bop/{sample.split}.{k}", f"{key}: {json.dumps(v)}\n") for k, v in (("camera", camera), ("gt", gt), ("gt_info", info))]
        return Encoded(files=files, parts=parts)

    def start(self, out, library) -> None:
        info = {}
        for i, name in enumerate(self.spec.classes):
            mesh = library.mesh(name).copy()
            mesh.apply_scale(1000.0)  # BOP models are in millimetres
            out.write_file(f"bop/models/obj_{i + 1:06d}.ply", mesh.export(file_type="ply", vertex_normal=True))
            lo, hi = mesh.bounds
            info[str(i + 1)] = {"diameter": model_diameter(library.hull(name) * 1000.0), "min_x": float(lo[0]), "min_y": float(lo[1]),
                                "min_z": float(lo[2]), "size_x": float(hi[0] - lo[0]), "size_y": float(hi[1] - lo[1]),
                                "size_z": float(hi[2] - lo[2]), "name": name}
        out.write_file("bop/models/models_info.json", (json.dumps(info, indent=1) + "\n").encode())
        for split in self.spec.output.split:
            for sub in ("rgb", "depth", "mask", "mask_visib"):
                out.makedirs(f"bop/{split}/{SCENE}/{sub}")

    def finish(self, out) -> None:
        for split in self.spec.output.split:
            for k in ("camera", "gt", "gt_info"):
                out.assemble(f"bop/{split}/{SCENE}/scene_{k}.json", _json_object(out.part_lines(f"bop/{split}.{k}")))


EXACT_HULL = 16384  # convex hulls up to this many vertices are measured pair by pair
DIRECTIONS = 4096  # directions of a hemisphere for a larger hull's widths
PAIR_BLOCK = 1 << 20  # differences of pairs held at once (x3 coordinates, float64: 24 MiB)


def model_diameter(hull: np.ndarray) -> float:
    """The largest distance between two vertices, as BOP defines a model's diameter (its pose
    error thresholds scale with it), from ``hull``: the vertices of the model's convex hull
    (``hull_vertices``), between two of which it is attained. Every pair is compared, in blocks
    of bounded memory, for a hull of up to ``EXACT_HULL`` vertices. A larger hull (a scan or a
    fine sphere can have all of its hundreds of thousands of vertices on it) would take hours
    pair by pair; there it is the distance of two vertices found by ``_widest``, at most 0.1%
    short of the largest."""
    pts = np.asarray(hull, np.float64)
    return _all_pairs(pts) if len(pts) <= EXACT_HULL else _widest(pts)


def _all_pairs(pts: np.ndarray) -> float:
    """The largest distance between two of ``pts``, every pair compared."""
    rows = max(1, PAIR_BLOCK // max(1, len(pts)))
    best = 0.0
    for start in range(0, len(pts), rows):
        block = pts[start : start + rows]
        d = ((block[:, None, :] - pts[None, start:, :]) ** 2).sum(-1)
        best = max(best, float(d.max()))
    return float(np.sqrt(best))


def _hemisphere(n: int) -> np.ndarray:
    """``n`` unit vectors spread evenly over a hemisphere (a Fibonacci lattice). With their
    opposites, every direction lies within 1.8 degrees of one of 4096 of them."""
    i = np.arange(n) + 0.5
    z = 1.0 - i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _widest(pts: np.ndarray, directions: int = DIRECTIONS) -> float:
    """A distance between two of ``pts`` at most 0.1% short of their diameter D. Along the
    direction u of the diameter's two points, their width is D; some lattice direction lies
    within an angle t of u (t < 1.8 degrees for 4096), and the width along it is at least
    D cos t. The two points that span the largest width along a lattice direction are at least
    that far apart: D (1 - 0.0005). Each such pair is then improved while it can be: the points
    farthest out along the line through the pair are taken instead (a diameter's two points are
    each other's farthest along it), which finds D itself in the usual case."""
    U = _hemisphere(directions).astype(np.float32)  # to pick points; distances are float64
    hi = np.full(len(U), -np.inf, np.float32)
    lo = np.full(len(U), np.inf, np.float32)
    arg_hi = np.zeros(len(U), np.int64)
    arg_lo = np.zeros(len(U), np.int64)
    rows = max(1, 4 * PAIR_BLOCK // len(U))
    lattice = np.arange(len(U))
    for start in range(0, len(pts), rows):
        proj = U @ pts[start : start + rows].astype(np.float32).T  # (directions, rows)
        top, bottom = proj.argmax(1), proj.argmin(1)
        t, b = proj[lattice, top], proj[lattice, bottom]
        up, down = t > hi, b < lo
        hi[up], arg_hi[up] = t[up], top[up] + start
        lo[down], arg_lo[down] = b[down], bottom[down] + start
    pairs = np.unique(np.stack([arg_hi, arg_lo], 1), axis=0)
    dist = np.linalg.norm(pts[pairs[:, 0]] - pts[pairs[:, 1]], axis=1)
    best = float(dist.max())
    for k in np.argsort(dist)[::-1][:16]:
        a, b = pts[pairs[k, 0]], pts[pairs[k, 1]]
        d = float(np.linalg.norm(a - b))
        for _ in range(32):
            along = pts @ ((a - b) / d)
            a2, b2 = pts[int(along.argmax())], pts[int(along.argmin())]
            d2 = float(np.linalg.norm(a2 - b2))
            if d2 <= d:
                break
            a, b, d = a2, b2, d2
        best = max(best, d)
    return best


def _json_object(lines: Iterator[str]) -> Iterator[str]:
    """``"key": value`` lines -> one JSON object, formatted as BOP's files are."""
    n = 0
    for line in lines:
        yield ("{\n" if n == 0 else ",\n") + line.rstrip("\n")
        n += 1
    yield "\n}\n" if n else "{}\n"
