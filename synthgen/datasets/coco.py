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

    def mask(self, height: int, width: int) -> np.ndarray:
        """(height, width) bool; the box filled when the annotation has no segmentation."""
        from pycocotools import mask as mask_utils

        seg = self.segmentation
        if not seg:
            m = np.zeros((height, width), bool)
            x0, y0, x1, y1 = (int(round(v)) for v in self.bbox)
            m[max(0, y0) : y1, max(0, x0) : x1] = True
            return m
        if isinstance(seg, list):
            rles = mask_utils.frPyObjects(seg, height, width)
            rle = mask_utils.merge(rles)
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]}
        return mask_utils.decode(rle).astype(bool)


@dataclass
class CocoImage:
    image_id: Any
    path: Path
    width: int
    height: int
    objects: list[CocoObject]


class CocoFile:
    """The images of a COCO instances file, in image id order."""

    def __init__(self, ann_file: str | Path | None, image_dir: str | Path, coco: Any = None):
        """From a file, or from a pycocotools ``COCO`` already loaded (``coco``)."""
        from pycocotools.coco import COCO

        self.ann_file, self.image_dir = Path(ann_file) if ann_file else None, Path(image_dir)
        if coco is not None:
            self.coco = coco
        else:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    self.coco = COCO(str(self.ann_file))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise SynthgenError(f"{self.ann_file}: not a readable COCO instances file: {type(e).__name__}: {e}") from None
        cats = sorted(self.coco.dataset.get("categories", []), key=lambda c: c["id"])
        self.category_names = {c["id"]: str(c["name"]) for c in cats}
        self.categories = list(self.category_names.values())
        self.ids = sorted(self.coco.getImgIds(), key=lambda v: (type(v).__name__, v if isinstance(v, int) else str(v)))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> CocoImage:
        image_id = self.ids[i]
        info = self.coco.imgs[image_id]
        objs = []
        for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
            x, y, w, h = a["bbox"]
            extra = {k: v for k, v in a.items() if k not in ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation")}
            objs.append(CocoObject(self.category_names.get(a["category_id"], str(a["category_id"])), (x, y, x + w, y + h),
                                   float(a.get("area", w * h)), int(a.get("iscrowd", 0)), a.get("segmentation"), extra))
        return CocoImage(image_id, self.image_dir / str(info["file_name"]), int(info["width"]), int(info["height"]), objs)
