"""What every reader gives: images with their objects, in synthgen's conventions (boxes xyxy
float pixels in [0, W] x [0, H], category names, masks decoded only when asked for)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """pycocotools' decode of a compressed RLE, (h, w) uint8; a ValueError for one whose runs
    stop short of h x w, which pycocotools fills from uninitialised memory (its area, counted
    from the runs, then disagrees with the mask)."""
    from pycocotools import mask as mask_utils

    m = mask_utils.decode(rle)
    if int(m.sum()) != int(mask_utils.area(rle)):
        raise ValueError("its runs do not cover height x width")
    return m


def decode_segmentation(seg: Any, height: int, width: int, source: str = "") -> np.ndarray | None:
    """A COCO segmentation (polygons in pixels, or an RLE) as a (height, width) bool mask, or
    None when there is none (polygons of fewer than 3 points are none). One that does not
    decode, or not to (height, width), is a ``SynthgenError`` naming ``source`` (the readers
    check a segmentation's shape; whether it decodes is only known here)."""
    from pycocotools import mask as mask_utils

    from ..errors import SynthgenError

    if not seg:
        return None
    try:
        if isinstance(seg, list):
            polys = [p for p in seg if len(p) >= 6]
            if not polys:
                return None
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            counts = seg["counts"]
            rle = {"size": seg["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
        m = decode_rle(rle)
    except Exception as e:  # noqa: BLE001 - pycocotools fails many ways on a bad mask
        raise SynthgenError(f"{source or 'an object'}: the segmentation cannot be decoded ({type(e).__name__}: {e})") from None
    if m.shape[:2] != (height, width):
        raise SynthgenError(f"{source or 'an object'}: the segmentation is {m.shape[1]}x{m.shape[0]}, its image {width}x{height}")
    return m.astype(bool)


@dataclass
class Obj:
    category: str
    bbox: tuple[float, float, float, float]
    """xyxy float pixels."""
    area: float | None = None
    segmentation: Any = None
    """COCO RLE or polygons (pixel coordinates), or None."""
    iscrowd: int = 0
    visibility: float | None = None
    truncation: float | None = None
    keypoints: np.ndarray | None = None
    """(K, 3) x, y, v (COCO flags), when the dataset has them."""
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    """Where the object was read (``file: annotation 12``), for errors."""

    def mask(self, height: int, width: int) -> np.ndarray | None:
        """(height, width) bool, or None when the object has no segmentation."""
        return decode_segmentation(self.segmentation, height, width, self.source)


@dataclass
class Item:
    """One image of a dataset on disk."""

    split: str
    path: Path
    image_id: Any
    width: int | None
    height: int | None
    objects: list[Obj]
    meta: dict[str, Any] = field(default_factory=dict)
    """What synthgen's manifest says about the sample, when there is one (background, assets)."""


class DiskDataset:
    """A dataset on disk, read by one of the readers (``open_dataset``)."""

    format = "?"
    root: Path
    categories: list[str]
    splits: list[str]

    def items(self, split: str | None = None) -> Iterator[Item]:
        raise NotImplementedError

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def find(self, key: int) -> Item:
        """The image whose id (COCO id, or the file stem as a number) is ``key``, else the
        ``key``-th image in reading order."""
        nth, seen = None, 0
        for n, item in enumerate(self.items()):
            seen = n + 1
            if item.image_id == key or (isinstance(item.image_id, str) and item.image_id.isdigit() and int(item.image_id) == key):
                return item
            if n == key:
                nth = item
        if nth is None:
            from ..errors import SynthgenError, counted

            if not seen:
                raise SynthgenError(f"{self.root}: the dataset holds no image: nothing to show")
            raise SynthgenError(f"--index {key}: no image with that id, and the dataset has {counted(seen, 'image')}")
        return nth
