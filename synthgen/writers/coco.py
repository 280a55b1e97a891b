"""COCO instances: OUT/annotations/instances_<split>.json, streamed.

An image's id is the sample index, the integer of its file stem (so predictions keyed by
``int(stem)``, as ultralytics' ``save_json`` writes them, evaluate against it); a blend variant's
is 10 x index + its position in ``write_blend_variants``. Annotation ids run from 1 in each file,
categories are 1-based in spec order.
``bbox`` is xywh of the visible mask, ``area`` its pixel count, ``iscrowd`` 0, segmentation
compressed RLE (counts as str) or polygons along the pixels' edges (pycocotools fills them back
to exactly the mask); with polygons, holes under ``polygon_fill_holes`` pixels are filled first
and an object that still has a hole is written as RLE, since COCO polygons are filled as a union
and cannot hold one.
Extra per-annotation keys ``visibility``, ``truncation`` and ``amodal_bbox`` (xywh of the object
drawn alone, may reach outside the image) are kept (COCO tools ignore them), and with amodal masks
on ``amodal_segmentation``. From the renderer also: ``keypoints``
(the 3D box's 8 corners and centre, COCO visibility flags), ``pose`` (R row-major, t in metres,
OpenCV camera axes) and the image's ``camera_K``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from .. import __version__
from ..sample import Sample
from .base import Encoded, Writer
from .masks import encode_rle, fill_small_holes, polygons

# The projected 3D box: corners i = 4 * (x > 0) + 2 * (y > 0) + (z > 0) in the model frame,
# then the centre. Skeleton edges are 1-based, as COCO's are.
KEYPOINT_NAMES = [f"corner_{'+' if i & 4 else '-'}x{'+' if i & 2 else '-'}y{'+' if i & 1 else '-'}z" for i in range(8)] + ["center"]
BOX_SKELETON = [[a + 1, b + 1] for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
# Per-keypoint OKS sigmas for pycocotools' keypoint evaluation (its defaults are the 17 of a
# person): COCOeval(gt, dt, "keypoints") with params.kpt_oks_sigmas = np.array(these). 0.05
# tolerates an error of about 10% of the object's size (sqrt(area)) at OKS 0.5, as the
# person keypoints do for hips and shoulders.
KEYPOINT_SIGMAS = [0.05] * 9


def encode_coco(sample: Sample, file_name: str, segmentation: str = "rle", fill_holes: int = 16) -> dict[str, Any]:
    """Image and annotation records without ids (the writer numbers them)."""
    W, H = sample.size
    anns = []
    for a in sample.annotations:
        x0, y0, x1, y1 = a.bbox
        seg: Any
        area = int(a.area)
        if segmentation == "polygon":
            filled = fill_small_holes(a.mask, fill_holes)
            polys, has_hole = polygons(filled)
            seg = encode_rle(a.mask) if has_hole else polys
            if not has_hole:
                area = int(filled.sum())  # the area of what is written: pinholes filled
        else:
            seg = encode_rle(a.mask)
        anns.append({
            "category_id": a.category_id + 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": area,
            "iscrowd": 0,
            "segmentation": seg,
            "visibility": round(float(a.visibility), 6),
            "truncation": round(float(a.truncation), 6),
        })
        if a.amodal_bbox is not None:  # the object drawn alone; may reach outside the image
            ax0, ay0, ax1, ay1 = a.amodal_bbox
            anns[-1]["amodal_bbox"] = [ax0, ay0, ax1 - ax0, ay1 - ay0]
        if a.pose is not None:  # renderer: 6D pose, projected 3D box as keypoints
            kp = a.keypoints
            anns[-1].update({
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

    def encode(self, sample: Sample) -> Encoded:
        # file_name relative to images/<split>/ as most COCO loaders expect.
        file_name = self.image_file(sample).split("/", 2)[2]
        out = self.spec.output
        rec = encode_coco(sample, file_name, out.coco_segmentation, out.polygon_fill_holes)
        image_id = self.image_id(sample)
        split = rec["split"]
        # Serialised here (in the worker); annotation ids are numbered when the file is assembled.
        parts = [(f"coco/{split}.images", f'{{"id": {image_id}, {json.dumps(rec["image"])[1:]}\n')]
        parts += [(f"coco/{split}.annotations", f'"image_id": {image_id}, {json.dumps(a)[1:]}\n') for a in rec["annotations"]]
        return Encoded(parts=parts)

    def start(self, out, library) -> None:
        out.makedirs("annotations")

    def finish(self, out) -> None:
        categories = [{"id": i + 1, "name": c, "supercategory": "object"} for i, c in enumerate(self.spec.categories)]
        if self.spec.kind == "renderer":
            for c in categories:
                c["keypoints"] = KEYPOINT_NAMES
                c["skeleton"] = BOX_SKELETON
                c["keypoint_sigmas"] = KEYPOINT_SIGMAS
        for split in self.spec.output.split:
            out.assemble(f"annotations/instances_{split}.json", self._chunks(out, split, categories))

    def _chunks(self, out, split: str, categories: list) -> Iterator[str]:
        yield '{"info": ' + json.dumps({"description": "synthgen", "version": __version__}) + ',\n"licenses": [],\n'
        yield '"categories": ' + json.dumps(categories) + ',\n"images": [\n'
        for i, line in enumerate(out.part_lines(f"coco/{split}.images")):
            yield line if i == 0 else "," + line
        yield '],\n"annotations": [\n'
        for i, line in enumerate(out.part_lines(f"coco/{split}.annotations")):
            yield f'{"," if i else ""}{{"id": {i + 1}, {line}'
        yield "]}\n"
