"""A COCO instances file and its images, read with pycocotools.

``CocoFile(ann_file, image_dir)[i]`` is the i-th image (in image id order) with its objects in
synthgen's conventions: boxes xyxy float pixels, category names, masks decoded on request.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SynthgenError
from .jsonstream import read_json
from .model import decode_segmentation
from .records import check_coco, record_name


@dataclass
class CocoObject:
    category: str
    bbox: tuple[float, float, float, float]
    """xyxy float pixels."""
    area: float
    iscrowd: int
    segmentation: Any = None
    """COCO RLE or polygons, as in the file (None when absent)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other keys of the annotation (visibility, keypoints, ...)."""
    source: str = ""
    """Where it was read (``file: annotation 12``), for errors."""

    def mask(self, height: int, width: int) -> np.ndarray:
        """(height, width) bool; the box filled when the annotation has no segmentation."""
        m = decode_segmentation(self.segmentation, height, width, self.source)
        if m is None:
            m = np.zeros((height, width), bool)
            x0, y0, x1, y1 = (int(round(v)) for v in self.bbox)
            m[max(0, y0) : y1, max(0, x0) : x1] = True
        return m


@dataclass
class CocoImage:
    image_id: Any
    path: Path
    width: int
    height: int
    objects: list[CocoObject]


def load_coco(ann_file: Path) -> Any:
    """A COCO instances file in pycocotools' ``COCO`` index, every record checked first
    (``check_coco``): pycocotools itself stops with a bare KeyError or TypeError on a malformed
    one, or lets it through to fail later."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = check_coco(read_json(Path(ann_file), "COCO instances file"), str(ann_file))
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index..."
        coco.createIndex()
    return coco


class CocoFile:
    """The images of a COCO instances file, in image id order."""

    def __init__(self, ann_file: str | Path | None, image_dir: str | Path, coco: Any = None):
        """From a file, or from a pycocotools ``COCO`` already loaded (``coco``)."""
        self.ann_file, self.image_dir = Path(ann_file) if ann_file else None, Path(image_dir)
        if coco is not None:
            check_coco(coco.dataset, self.name)
            self.coco = coco
        else:
            self.coco = load_coco(self.ann_file)
        cats = sorted(self.coco.dataset.get("categories", []), key=lambda c: c["id"])
        self.category_names = {c["id"]: str(c["name"]) for c in cats}
        for n, a in enumerate(self.coco.dataset.get("annotations", [])):
            if a["category_id"] not in self.category_names:  # its label would be unknown
                raise SynthgenError(f"{self.name}: {record_name('annotation', a, n)}: category_id {a['category_id']} "
                                    "is not a category of the file")
        self.categories = list(self.category_names.values())
        self.ids = sorted(self.coco.getImgIds(), key=lambda v: (type(v).__name__, v if isinstance(v, int) else str(v)))

    @property
    def name(self) -> str:
        """The file, as errors name it."""
        return str(self.ann_file) if self.ann_file else "the COCO dataset"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> CocoImage:
        image_id = self.ids[i]
        info = self.coco.imgs[image_id]
        objs = []
        for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
            x, y, w, h = a["bbox"]
            extra = {k: v for k, v in a.items() if k not in ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation")}
            objs.append(CocoObject(self.category_names[a["category_id"]], (x, y, x + w, y + h),
                                   float(a["area"] if a.get("area") is not None else w * h), int(a.get("iscrowd") or 0),
                                   a.get("segmentation"), extra, f"{self.name}: {record_name('annotation', a, None)}"))
        return CocoImage(image_id, self.image_dir / str(info["file_name"]), int(info["width"]), int(info["height"]), objs)
