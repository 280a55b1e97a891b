"""Pascal VOC, in the standard layout its readers look for (torchvision's ``VOCDetection``,
datumaro's ``voc`` importer, supervision):

    OUT/voc/VOCdevkit/VOC2012/Annotations/<id>.xml          boxes 1-based inclusive integer pixels
    OUT/voc/VOCdevkit/VOC2012/JPEGImages/<id>.<ext>         hard links to OUT/images/<split>/<id>.<ext>
    OUT/voc/VOCdevkit/VOC2012/ImageSets/Main/<split>.txt    the ids of each split (+ trainval.txt)
    OUT/voc/VOCdevkit/VOC2012/labelmap.txt                  the classes, for datumaro (name:r,g,b::)

``JPEGImages`` holds hard links (a copy where the filesystem has none), so the images take no
more disk. torchvision's reader wants ``.jpg`` files and splits named train, val or trainval.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from ..sample import Sample
from .base import Encoded, Writer

VOC_ROOT = "voc/VOCdevkit/VOC2012"


def voc_box(bbox: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """xyxy [0, W] float box -> VOC (xmin, ymin, xmax, ymax), 1-based, inclusive, covering it."""
    x0, y0, x1, y1 = bbox
    return math.floor(x0) + 1, math.floor(y0) + 1, math.ceil(x1), math.ceil(y1)


def voc_color(i: int) -> tuple[int, int, int]:
    """The Pascal VOC colour map (label i's colour in its segmentation PNGs)."""
    r = g = b = 0
    for j in range(8):
        r |= ((i >> (3 * j)) & 1) << (7 - j)
        g |= ((i >> (3 * j + 1)) & 1) << (7 - j)
        b |= ((i >> (3 * j + 2)) & 1) << (7 - j)
    return r, g, b


def encode_voc(sample: Sample, file_name: str) -> str:
    W, H = sample.size
    objs = []
    for a in sample.annotations:
        xmin, ymin, xmax, ymax = voc_box(a.bbox)
        # occluded: something hides part of what of it lies in the frame
        occluded = a.visibility < 1.0 - a.truncation - 1e-9
        objs.append(
            "  <object>\n"
            f"    <name>{escape(a.category)}</name>\n"
            "    <pose>Unspecified</pose>\n"
            f"    <truncated>{int(a.truncation > 0)}</truncated>\n"
            f"    <occluded>{int(occluded)}</occluded>\n"
            "    <difficult>0</difficult>\n"
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\n"
            "  </object>\n"
        )
    return (
        "<annotation>\n"
        "  <folder>VOC2012</folder>\n"
        f"  <filename>{escape(file_name)}</filename>\n"
        "  <source><database>synthgen</database></source>\n"
        f"  <size><width>{W}</width><height>{H}</height><depth>3</depth></size>\n"
        "  <segmented>0</segmented>\n" + "".join(objs) + "</annotation>\n"
    )


class VocWriter(Writer):
    name = "voc"

    def encode(self, sample: Sample) -> Encoded:
        image = self.image_file(sample)
        file_name = image.rsplit("/", 1)[1]
        return Encoded(files=[(f"{VOC_ROOT}/Annotations/{sample.stem}.xml", encode_voc(sample, file_name).encode())],
                       links=[(f"{VOC_ROOT}/JPEGImages/{file_name}", image)],
                       parts=[(f"voc/{sample.split}", sample.stem + "\n")])

    def start(self, out, library) -> None:
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            out.makedirs(f"{VOC_ROOT}/{sub}")
        lines = ["# label:color_rgb:parts:actions"]
        lines += [f"{name}:{','.join(map(str, voc_color(i)))}::" for i, name in enumerate(["background", *self.spec.categories])]
        out.write_file(f"{VOC_ROOT}/labelmap.txt", ("\n".join(lines) + "\n").encode())

    def finish(self, out) -> None:
        splits = list(self.spec.output.split)
        for split in splits:
            out.assemble(f"{VOC_ROOT}/ImageSets/Main/{split}.txt", out.part_lines(f"voc/{split}"))
        if "train" in splits and "val" in splits and "trainval" not in splits:
            out.assemble(f"{VOC_ROOT}/ImageSets/Main/trainval.txt",
                         (line for s in ("train", "val") for line in out.part_lines(f"voc/{s}")))
