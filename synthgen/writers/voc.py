"""Pascal VOC: OUT/voc/<split>/<id>.xml, boxes 1-based inclusive integer pixels."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from ..sample import Sample
from .base import Encoded, Writer


def voc_box(bbox: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """xyxy [0, W] float box -> VOC (xmin, ymin, xmax, ymax), 1-based, inclusive, covering it."""
    x0, y0, x1, y1 = bbox
    return math.floor(x0) + 1, math.floor(y0) + 1, math.ceil(x1), math.ceil(y1)


def encode_voc(sample: Sample, file_name: str) -> str:
    W, H = sample.size
    objs = []
    for a in sample.annotations:
        xmin, ymin, xmax, ymax = voc_box(a.bbox)
        objs.append(
            "  <object>\n"
            f"    <name>{escape(a.category)}</name>\n"
            "    <pose>Unspecified</pose>\n"
            f"    <truncated>{int(a.truncation > 0)}</truncated>\n"
            "    <difficult>0</difficult>\n"
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\n"
            "  </object>\n"
        )
    return (
        "<annotation>\n"
        f"  <folder>{escape(sample.split)}</folder>\n"
        f"  <filename>{escape(file_name)}</filename>\n"
        "  <source><database>synthgen</database></source>\n"
        f"  <size><width>{W}</width><height>{H}</height><depth>3</depth></size>\n"
        "  <segmented>0</segmented>\n" + "".join(objs) + "</annotation>\n"
    )


class VocWriter(Writer):
    name = "voc"

    def encode(self, sample: Sample) -> Encoded:
        file_name = self.image_file(sample).rsplit("/", 1)[1]
        return Encoded(files=[(f"voc/{sample.split}/{sample.stem}.xml", encode_voc(sample, file_name).encode())])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"voc/{split}")
