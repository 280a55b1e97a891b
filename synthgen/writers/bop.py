"""BOP (6D pose benchmark) layout, one BOP "scene" per split:

    OUT/bop/models/obj_000001.ply + models_info.json   (the normalised meshes, millimetres)
    OUT/bop/<split>/000000/rgb/<im_id>.jpg|png
    OUT/bop/<split>/000000/depth/<im_id>.png          (16-bit, depth_scale 1.0: millimetres)
    OUT/bop/<split>/000000/mask/<im_id>_<gt_id>.png    (amodal: the object alone)
    OUT/bop/<split>/000000/mask_visib/<im_id>_<gt_id>.png
    OUT/bop/<split>/000000/scene_camera.json, scene_gt.json, scene_gt_info.json

``im_id`` is the sample index; ``obj_id`` the 1-based class id. Poses are model-to-camera,
OpenCV camera axes, R row-major, t in millimetres. Per-image files are written by the process
that made the sample; the three JSON files stream through the main process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..sample import Sample
from .base import Writer
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

    def __init__(self, out_dir: Path, spec):
        super().__init__(out_dir, spec)
        self._files: dict[str, dict[str, Any]] = {}

    def _dir(self, split: str) -> Path:
        return self.out_dir / "bop" / split / SCENE

    def encode(self, sample: Sample) -> dict[str, Any]:
        im = sample.index
        ext = self.spec.output.image_format
        base = f"bop/{sample.split}/{SCENE}"
        files = [(f"{base}/rgb/{im:06d}.{ext}", encode_image(sample.image, ext, self.spec.output.quality))]
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
        camera = {"cam_K": [float(v) for v in sample.camera_K.reshape(-1)], "depth_scale": 1.0}
        return {"split": sample.split, "im_id": im, "files": files, "camera": camera, "gt": gt, "info": info}

    def write_local(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Write the per-image files here (in the worker); hand the JSON entries on."""
        for rel, data in payload.pop("files"):
            (self.out_dir / rel).write_bytes(data)
        return payload

    def start(self) -> None:
        from ..renderer.meshes import load_mesh

        models = self.out_dir / "bop" / "models"
        models.mkdir(parents=True, exist_ok=True)
        info = {}
        for i, (name, c) in enumerate(self.spec.classes.items()):
            mesh = load_mesh(self.spec.base_dir / c.mesh, c.size if c.scale is None else None, c.scale).copy()
            mesh.apply_scale(1000.0)  # BOP models are in millimetres
            mesh.export(str(models / f"obj_{i + 1:06d}.ply"))
            lo, hi = mesh.bounds
            info[str(i + 1)] = {"diameter": float(np.linalg.norm(hi - lo)), "min_x": float(lo[0]), "min_y": float(lo[1]),
                                "min_z": float(lo[2]), "size_x": float(hi[0] - lo[0]), "size_y": float(hi[1] - lo[1]),
                                "size_z": float(hi[2] - lo[2]), "name": name}
        (models / "models_info.json").write_text(json.dumps(info, indent=1) + "\n")
        for split in self.spec.output.split:
            d = self._dir(split)
            for sub in ("rgb", "depth", "mask", "mask_visib"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            self._files[split] = {k: (d / f"scene_{k}.json.part").open("w") for k in ("camera", "gt", "gt_info")}
            self._files[split]["n"] = 0

    def write(self, payload: dict[str, Any]) -> None:
        f = self._files[payload["split"]]
        sep = ",\n" if f["n"] else "{\n"
        f["n"] += 1
        key = json.dumps(str(payload["im_id"]))
        f["camera"].write(f"{sep}{key}: {json.dumps(payload['camera'])}")
        f["gt"].write(f"{sep}{key}: {json.dumps(payload['gt'])}")
        f["gt_info"].write(f"{sep}{key}: {json.dumps(payload['info'])}")

    def finish(self) -> None:
        for split, f in self._files.items():
            for k in ("camera", "gt", "gt_info"):
                f[k].write(("\n}\n" if f["n"] else "{}\n"))
                f[k].close()
                part = self._dir(split) / f"scene_{k}.json.part"
                part.replace(part.with_suffix(""))
