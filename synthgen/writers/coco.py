"""COCO instances: OUT/annotations/instances_<split>.json, streamed.

An image's id is the sample index, the integer of its file stem (so predictions keyed by
``int(stem)``, as ultralytics' ``save_json`` writes them, evaluate against it); a blend variant's
is 10 x index + its position in ``write_blend_variants``. Annotation ids run from 1 in each file,
categories are 1-based in spec order.
``bbox`` is xywh of the visible mask, ``area`` its pixel count, ``iscrowd`` 0, segmentation
compressed RLE (counts as str) or polygons; with polygons, an object with holes is written as
RLE, since COCO polygons are filled as a union and cannot hold a hole.
Extra per-annotation keys ``visibility`` and ``truncation`` are kept (COCO tools ignore them).
From the renderer also: ``amodal_bbox`` (xywh, may reach outside the image), ``keypoints``
(the 3D box's 8 corners and centre, COCO visibility flags), ``pose`` (R row-major, t in metres,
OpenCV camera axes), ``amodal_segmentation`` with amodal masks on, and the image's ``camera_K``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..sample import Sample
from .base import Writer
from .masks import encode_rle, polygons

# The projected 3D box: corners i = 4 * (x > 0) + 2 * (y > 0) + (z > 0) in the model frame,
# then the centre. Skeleton edges are 1-based, as COCO's are.
KEYPOINT_NAMES = [f"corner_{'+' if i & 4 else '-'}x{'+' if i & 2 else '-'}y{'+' if i & 1 else '-'}z" for i in range(8)] + ["center"]
BOX_SKELETON = [[a + 1, b + 1] for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def encode_coco(sample: Sample, file_name: str, segmentation: str = "rle") -> dict[str, Any]:
    """Image and annotation records without ids (the writer numbers them)."""
    W, H = sample.size
    anns = []
    for a in sample.annotations:
        x0, y0, x1, y1 = a.bbox
        seg: Any
        if segmentation == "polygon":
            polys, has_hole = polygons(a.mask)
            seg = encode_rle(a.mask) if has_hole else polys
        else:
            seg = encode_rle(a.mask)
        anns.append({
            "category_id": a.category_id + 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": int(a.area),
            "iscrowd": 0,
            "segmentation": seg,
            "visibility": round(float(a.visibility), 6),
            "truncation": round(float(a.truncation), 6),
        })
        if a.pose is not None:  # renderer: amodal box, 6D pose, projected 3D box as keypoints
            ax0, ay0, ax1, ay1 = a.amodal_bbox
            kp = a.keypoints
            anns[-1].update({
                "amodal_bbox": [ax0, ay0, ax1 - ax0, ay1 - ay0],
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "pose": {"R": [float(v) for v in a.pose[:3, :3].reshape(-1)], "t": [float(v) for v in a.pose[:3, 3]]},
            })
            if a.amodal_mask is not None:
                anns[-1]["amodal_segmentation"] = encode_rle(a.amodal_mask)
    image = {"file_name": file_name, "width": W, "height": H}
    if sample.camera_K is not None:
        image["camera_K"] = [float(v) for v in sample.camera_K.reshape(-1)]
    return {"split": sample.split, "image": image, "annotations": anns}


class CocoWriter(Writer):
    name = "coco"

    def __init__(self, out_dir: Path, spec):
        super().__init__(out_dir, spec)
        self._parts: dict[str, tuple[Any, Any]] = {}
        self._ids: dict[str, list[int]] = {}

    def encode(self, sample: Sample) -> dict[str, Any]:
        # file_name relative to images/<split>/ as most COCO loaders expect.
        file_name = self.image_file(sample).split("/", 2)[2]
        rec = encode_coco(sample, file_name, self.spec.output.coco_segmentation)
        # Serialised here (in the worker); write() only prefixes the ids.
        return {"split": rec["split"], "image_id": self.image_id(sample), "image": json.dumps(rec["image"])[1:],
                "annotations": [json.dumps(a)[1:] for a in rec["annotations"]]}

    def _tmp(self, split: str, what: str) -> Path:
        return self.out_dir / "annotations" / f".instances_{split}.{what}.part"

    def start(self) -> None:
        (self.out_dir / "annotations").mkdir(parents=True, exist_ok=True)
        for split in self.spec.output.split:
            self._parts[split] = (self._tmp(split, "images").open("w"), self._tmp(split, "annotations").open("w"))
            self._ids[split] = [0, 0]

    def write(self, payload: dict[str, Any]) -> None:
        split = payload["split"]
        img_f, ann_f = self._parts[split]
        ids = self._ids[split]
        ids[0] += 1
        image_id = payload["image_id"]
        img_f.write(f'{"," if ids[0] > 1 else ""}{{"id": {image_id}, {payload["image"]}\n')
        for ann in payload["annotations"]:
            ids[1] += 1
            ann_f.write(f'{"," if ids[1] > 1 else ""}{{"id": {ids[1]}, "image_id": {image_id}, {ann}\n')

    def finish(self) -> None:
        categories = [{"id": i + 1, "name": c, "supercategory": "object"} for i, c in enumerate(self.spec.categories)]
        if self.spec.kind == "renderer":
            for c in categories:
                c["keypoints"] = KEYPOINT_NAMES
                c["skeleton"] = BOX_SKELETON
        for split, (img_f, ann_f) in self._parts.items():
            img_f.close()
            ann_f.close()
            final = self.out_dir / "annotations" / f"instances_{split}.json"
            tmp = final.with_suffix(".json.part")
            with tmp.open("w") as out:
                out.write('{"info": ' + json.dumps({"description": "synthgen", "version": __version__}) + ',\n"licenses": [],\n')
                out.write('"categories": ' + json.dumps(categories) + ',\n"images": [\n')
                _copy(self._tmp(split, "images"), out)
                out.write('],\n"annotations": [\n')
                _copy(self._tmp(split, "annotations"), out)
                out.write("]}\n")
            tmp.replace(final)
            self._tmp(split, "images").unlink()
            self._tmp(split, "annotations").unlink()


def _copy(src: Path, out) -> None:
    with src.open() as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
