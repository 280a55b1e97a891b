"""A bank of real objects, cut out of a real annotated COCO dataset.

``extract_bank`` writes every usable instance as an RGBA cutout under BANK/<class>/ with an
index file, BANK/index.json. A bank folder is a class source like any folder of RGBA cutouts:
``classes: {mug: {source: bank/mug}}``.

Skipped, and counted by reason: crowd annotations, instances under ``min_area`` pixels,
instances whose mask touches the image border (probably cut off by the frame), and classes
not asked for.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import SpecError, SynthgenError
from ..runs.files import write_atomic
from ..sources import read_image


def safe_name(name: str) -> str:
    """A name (class, id) as one path component: letters, digits, '_', '.', '-' only, never
    '.' or '..', at most 64 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:64] or "x"


def _id_part(v) -> str:
    """A COCO id as part of a file name (ids should be integers; anything else is sanitised)."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else safe_name(str(v))


def class_folders(names: list[str]) -> dict[str, str]:
    """A distinct folder for every class, in the order given: ``a/b`` and ``a_b`` (or ``Cat`` and
    ``cat``, the same folder on a case-insensitive disk) do not share one."""
    used: set[str] = set()
    out = {}
    for name in names:
        base = safe_name(name)
        folder, k = base, 2
        while folder.casefold() in used:
            folder, k = f"{base}-{k}", k + 1
        used.add(folder.casefold())
        out[name] = folder
    return out


def extract_bank(
    coco_json: str | Path,
    images_dir: str | Path,
    out: str | Path,
    min_area: int = 400,
    classes: Sequence[str] | None = None,
) -> dict:
    """Cut instances out of a COCO dataset into ``out``; returns the index written there."""
    from ..datasets.coco import load_coco

    coco_json, images_dir, out = Path(coco_json), Path(images_dir), Path(out)
    coco = load_coco(coco_json)
    names = {c["id"]: str(c["name"]) for c in coco.dataset.get("categories", [])}
    folders = class_folders(list(dict.fromkeys(names.values())))
    if classes:
        unknown = sorted(set(classes) - set(names.values()))
        if unknown:
            raise SynthgenError(f"--classes {', '.join(unknown)}: not in {coco_json} (it has {', '.join(sorted(names.values()))})")
    ids = sorted(coco.getImgIds(), key=lambda v: (type(v).__name__, str(v)))
    missing = [str(images_dir / str(coco.imgs[i].get("file_name", ""))) for i in ids
               if not (images_dir / str(coco.imgs[i].get("file_name", ""))).is_file()]
    if missing:  # checked before the first cutout is written
        raise SynthgenError("\n".join(f"{m}: image named in {coco_json} does not exist" for m in missing[:20]))
    _check_masks(coco, coco_json, images_dir, ids, names, classes)
    root = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SynthgenError(f"--out {out}: cannot create the folder: {e.strerror or e}") from None
    skipped: Counter = Counter()
    cutouts = []
    stems: set[str] = set()
    for img_id in ids:
        info = coco.imgs[img_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
        if not anns:
            continue
        path = images_dir / str(info["file_name"])
        try:
            image = read_image(path, "RGB")
        except SpecError as e:
            raise SynthgenError(f"{e} (image id {img_id} of {coco_json})") from None
        H, W = image.shape[:2]
        for ann in sorted(anns, key=lambda a: (type(a.get("id")).__name__, str(a.get("id")))):
            name = names.get(ann.get("category_id"))
            if name is None:
                skipped["unknown category"] += 1
                continue
            if classes and name not in classes:
                skipped["class not asked for"] += 1
                continue
            if ann.get("iscrowd", 0):
                skipped["crowd"] += 1
                continue
            try:
                mask = coco.annToMask(ann).astype(bool)
            except Exception as e:  # noqa: BLE001 - pycocotools fails in many ways on a bad segmentation
                raise SynthgenError(f"{coco_json}: annotation {ann.get('id')!r} has an unreadable segmentation "
                                    f"({type(e).__name__}: {e})") from None
            if mask.shape != (H, W):
                raise SynthgenError(f"{coco_json}: annotation {ann.get('id')!r} is {mask.shape[1]}x{mask.shape[0]}, image {path} is {W}x{H}")
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
            stem, k = f"{_id_part(img_id)}_{_id_part(ann['id'])}", 2
            while f"{folders[name]}/{stem}".casefold() in stems:
                stem, k = f"{_id_part(img_id)}_{_id_part(ann['id'])}-{k}", k + 1
            rel = f"{folders[name]}/{stem}.png"
            stems.add(rel[:-4].casefold())
            target = out / rel
            if root not in target.resolve().parents:  # cannot happen with sanitised parts; never write outside
                raise SynthgenError(f"{rel}: would lie outside --out {out}")
            _write(target, cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes())
            cutouts.append({"file": rel, "class": name, "image": info["file_name"], "annotation_id": ann.get("id"), "area": area})
    index = {
        "source": str(coco_json),
        "classes": dict(Counter(c["class"] for c in cutouts)),
        "folders": {c["class"]: folders[c["class"]] for c in cutouts},
        "skipped": dict(skipped),
        "cutouts": cutouts,
    }
    _write(out / "index.json", (json.dumps(index, indent=1) + "\n").encode())
    return index


def _write(path: Path, data: bytes) -> None:
    """A file of the bank, atomically; a full disk or a read-only folder is one line (what was
    written before stays whole: each file is written in full or not at all)."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise SynthgenError(f"{path}: cannot write: {e.strerror or e}; the cutouts written so far are whole: make room, "
                            "then extract again with --overwrite") from None


def _check_masks(coco, coco_json: Path, images_dir: Path, ids: list, names: dict, classes: Sequence[str] | None) -> None:
    """Before the first cutout is written: every segmentation that will be cut decodes, to the
    size of its image as the file declares it and as the image is (pycocotools draws polygons
    at the declared size). Masks are decoded once more here, and only image headers read."""
    from ..datasets.model import decode_rle
    from ..sources import image_size

    problems = []
    for img_id in ids:
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
                if a.get("category_id") in names and (not classes or names[a["category_id"]] in classes) and not a.get("iscrowd")]
        if not anns:
            continue
        info = coco.imgs[img_id]
        path = images_dir / info["file_name"]
        try:
            size = image_size(path)
        except (OSError, SynthgenError) as e:
            problems.append(f"{path}: not a readable image ({e}) (image id {img_id!r} of {coco_json})")
            continue
        if tuple(size) != (info["width"], info["height"]):
            problems.append(f"{path}: is {size[0]}x{size[1]}, {coco_json} says {info['width']}x{info['height']} (image id {img_id!r})")
            continue
        for a in anns:
            try:
                rle = coco.annToRLE(a)
                decode_rle(rle)
            except Exception as e:  # noqa: BLE001 - pycocotools fails in many ways on a bad segmentation
                problems.append(f"{coco_json}: annotation {a.get('id')!r} has an unreadable segmentation ({type(e).__name__}: {e})")
                continue
            if list(rle["size"]) != [info["height"], info["width"]]:
                problems.append(f"{coco_json}: annotation {a.get('id')!r}: its RLE is {rle['size'][1]}x{rle['size'][0]}, "
                                f"its image {info['width']}x{info['height']}")
    if problems:
        raise SynthgenError("\n".join(problems[:20]))
