"""Image files: OUT/images/<split>/<id>.<jpg|png>, and beside them ``metadata.jsonl`` for Hugging
Face ``datasets`` (``load_dataset("imagefolder", data_dir="OUT/images")``): per image its
``file_name``, ``image_id`` (as in COCO), ``width``, ``height`` and ``objects`` {``bbox``: COCO
xywh, ``category``: 0-based class id, ``area``: visible pixels}."""

from __future__ import annotations

import json

import cv2

from ..errors import SynthgenError
from ..sample import Sample
from .base import Encoded, Writer


def encode_image(image, image_format: str, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> encoded file bytes (deterministic for the same input)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise SynthgenError(f"could not encode an image as {image_format}")
    return buf.tobytes()


class ImageWriter(Writer):
    name = "images"

    def encode(self, sample: Sample) -> Encoded:
        out = self.spec.output
        path = self.image_file(sample)
        W, H = sample.size
        objects = {"bbox": [[a.bbox[0], a.bbox[1], a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]] for a in sample.annotations],
                   "category": [a.category_id for a in sample.annotations],
                   "area": [int(a.area) for a in sample.annotations]}
        meta = {"file_name": path.rsplit("/", 1)[1], "image_id": self.image_id(sample), "width": W, "height": H, "objects": objects}
        return Encoded(files=[(path, encode_image(sample.image, out.image_format, out.quality))],
                       parts=[(f"hf/{sample.split}", json.dumps(meta) + "\n")])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"images/{split}")

    def finish(self, out) -> None:
        for split in self.spec.output.split:
            out.assemble(f"images/{split}/metadata.jsonl", out.part_lines(f"hf/{split}"))
