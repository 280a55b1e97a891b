"""A bank of real objects, cut out of a real annotated COCO dataset.

``extract_bank`` writes every usable instance as an RGBA cutout under BANK/<class>/ with an
index file, BANK/index.json. A bank folder is a class source like any folder of RGBA cutouts:
``classes: {mug: {source: bank/mug}}``.

Skipped, and counted by reason: crowd annotations, instances under ``min_area`` pixels,
instances whose mask touches the image border (probably cut off by the frame), and classes
not asked for.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import SynthgenError


def safe_name(name: str) -> str:
    """A class name as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "class"


def extract_bank(
    coco_json: str | Path,
    images_dir: str | Path,
    out: str | Path,
    min_area: int = 400,
    classes: Sequence[str] | None = None,
) -> dict:
    """Cut instances out of a COCO dataset into ``out``; returns the index written there."""
    from pycocotools.coco import COCO

    coco_json, images_dir, out = Path(coco_json), Path(images_dir), Path(out)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(coco_json))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SynthgenError(f"{coco_json}: not a readable COCO instances file: {e}") from None
    names = {c["id"]: c["name"] for c in coco.dataset.get("categories", [])}
    if classes:
        unknown = sorted(set(classes) - set(names.values()))
        if unknown:
            raise SynthgenError(f"--classes {', '.join(unknown)}: not in {coco_json} (it has {', '.join(sorted(names.values()))})")
    out.mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    cutouts = []
    for img_id in sorted(coco.getImgIds()):
        info = coco.imgs[img_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
        if not anns:
            continue
        path = images_dir / info["file_name"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SynthgenError(f"{path}: image of {coco_json} (id {img_id}) is missing or unreadable")
        H, W = image.shape[:2]
        for ann in sorted(anns, key=lambda a: a["id"]):
            name = names.get(ann["category_id"])
            if name is None:
                skipped["unknown category"] += 1
                continue
            if classes and name not in classes:
                skipped["class not asked for"] += 1
                continue
            if ann.get("iscrowd", 0):
                skipped["crowd"] += 1
                continue
            mask = coco.annToMask(ann).astype(bool)
            if mask.shape != (H, W):
                raise SynthgenError(f"{coco_json}: annotation {ann['id']} is {mask.shape[1]}x{mask.shape[0]}, image {path} is {W}x{H}")
            area = int(mask.sum())
            if area < min_area:
                skipped["smaller than min_area"] += 1
                continue
            if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
                skipped["touches the image border"] += 1
                continue
            ys, xs = np.nonzero(mask)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            rgba = np.dstack([image[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.uint8) * 255])
            rel = f"{safe_name(name)}/{img_id}_{ann['id']}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / rel), rgba)
            cutouts.append({"file": rel, "class": name, "image": info["file_name"], "annotation_id": ann["id"], "area": area})
    index = {
        "source": str(coco_json),
        "classes": dict(Counter(c["class"] for c in cutouts)),
        "folders": {c["class"]: safe_name(c["class"]) for c in cutouts},
        "skipped": dict(skipped),
        "cutouts": cutouts,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index
