"""``synthgen validate``: what pycocotools, supervision and datumaro let through, found in any
COCO, YOLO or Pascal VOC dataset, real or synthetic.

Each problem names the file, the id (annotation, image or line) and what is wrong; ``kind`` is
a short stable name (``box-outside-image``, ``mask-disagrees-with-area``, ...) for machines.
COCO files are streamed (ijson), three passes over categories, images and annotations, so a
file of hundreds of thousands of annotations validates in bounded memory: only ids, image sizes
and file names are kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..datasets.jsonstream import stream_items, top_level_type
from ..datasets.readers import (CocoDataset, VocDataset, YoloDataset, _image_dir, label_path, open_dataset,
                                parse_yolo_line, text_lines, voc_box, voc_size)
from ..datasets.records import coco_annotation_faults, coco_category_faults, coco_image_faults, is_int, record_name
from ..errors import SynthgenError
from .duplicates import THUMB, image_hashes, leaks

BOX_TOLERANCE = 1.0  # pixels a box may differ from its mask's (rounding of float boxes)


@dataclass
class Problem:
    file: str
    id: str
    kind: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.id}: {self.kind}: {self.message}"


@dataclass
class Report:
    dataset: str
    format: str
    images: int
    annotations: int
    problems: list[Problem]

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "problems"},
                "problems": [asdict(p) for p in self.problems]}


def validate(path: str | Path, format: str | None = None, images: str | Path | None = None,
             duplicates: bool = True, progress: Callable[[int], None] | None = None) -> Report:
    """Check the dataset at ``path`` (found as ``open_dataset`` finds it)."""
    ds = open_dataset(path, format, images)
    counts = {"images": 0, "annotations": 0}
    hashes: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # split -> (dHash, pHash, file)

    def seen_image(split: str, file: Path) -> None:
        counts["images"] += 1
        if progress:
            progress(counts["images"])
        if duplicates:
            h = image_hashes(file)
            if h is not None:
                hashes[split].append((*h, str(file)))

    if isinstance(ds, CocoDataset):
        problems = list(_coco(ds, counts, seen_image))
    elif isinstance(ds, YoloDataset):
        problems = list(_yolo(ds, counts, seen_image))
    else:
        problems = list(_voc(ds, counts, seen_image))
    if duplicates:
        problems += [Problem(fa, f"split {sa}", "near-duplicate-across-splits",
                             f"looks like {fb} of split {sb} ({share:.1%} of a {THUMB}x{THUMB} thumbnail differs): "
                             "the splits leak") for fa, sa, fb, sb, share in leaks(hashes)]
    return Report(str(path), ds.format, counts["images"], counts["annotations"], problems)


# -- COCO ---------------------------------------------------------------------------------------
def _coco(ds: CocoDataset, counts: dict[str, int], seen_image: Callable[[str, Path], None]) -> Iterator[Problem]:
    for split, (ann_file, given_dir) in ds.files.items():
        name = str(ann_file)
        if top_level_type(ann_file, "") != "map":
            yield Problem(name, "file", "coco-invalid", "the top level is not a mapping: not a COCO file")
            continue
        cats: dict[Any, str] = {}
        n = -1
        for n, c in enumerate(stream_items(ann_file, "categories.item")):
            faults = coco_category_faults(c)
            where = record_name("category", c, n)
            yield from (Problem(name, where, f.kind, f.message) for f in faults)
            if any(f.kind in ("category-invalid", "category-id-invalid") for f in faults):
                continue
            if c["id"] in cats:
                yield Problem(name, where, "category-id-duplicated", "two categories have this id")
            else:
                cats[c["id"]] = str(c.get("name"))
        yield from _not_a_list(name, ann_file, "categories", n + 1)
        if not cats:
            yield Problem(name, "categories", "no-categories", "the file lists no categories")
        imgs: dict[Any, tuple[int, int, str]] = {}
        folder = None
        n = -1
        for n, im in enumerate(stream_items(ann_file, "images.item")):
            faults = coco_image_faults(im)
            where = record_name("image", im, n)
            yield from (Problem(name, where, f.kind, f.message) for f in faults)
            kinds = {f.kind for f in faults}
            if kinds & {"image-invalid", "image-id-missing", "image-id-invalid"}:
                continue
            iid = im["id"]
            if iid in imgs:
                yield Problem(name, where, "image-id-duplicated", "two images have this id")
                continue
            W, H = (0, 0) if "image-size-missing" in kinds else (im["width"], im["height"])
            file = im["file_name"] if "image-file-name-missing" not in kinds else None
            imgs[iid] = (W, H, file or "")
            if file is None:
                continue
            if folder is None:
                try:
                    folder = _image_dir(ann_file, split, file, given_dir)
                except SynthgenError as e:
                    yield Problem(name, where, "image-folder-not-found", str(e))
                    folder = ann_file.parent
            yield from _check_image_file(folder / file, name, where, (W, H), split, seen_image)
        yield from _not_a_list(name, ann_file, "images", n + 1)
        ann_ids: set[Any] = set()
        n = -1
        for n, a in enumerate(stream_items(ann_file, "annotations.item")):
            counts["annotations"] += 1
            faults = coco_annotation_faults(a)
            where = record_name("annotation", a, n)
            yield from (Problem(name, where, f.kind, f.message) for f in faults)
            if not isinstance(a, dict):
                continue
            aid = a.get("id")
            if aid is None:
                yield Problem(name, where, "annotation-id-missing", "an annotation without an id")
            elif aid in ann_ids:
                yield Problem(name, where, "annotation-id-duplicated", "two annotations have this id")
            elif not any(f.kind == "annotation-id-invalid" for f in faults):
                ann_ids.add(aid)
            if any(f.kind == "annotation-orphaned" for f in faults):
                continue
            iid = a["image_id"]
            if iid not in imgs:
                yield Problem(name, where, "annotation-orphaned", f"its image_id {iid!r} is not an image of the file")
                continue
            if is_int(a.get("category_id")) and a["category_id"] not in cats:
                yield Problem(name, where, "category-id-unknown", f"category_id {a['category_id']!r} is not a category of the file")
            if faults:
                continue  # the geometry of a malformed record says nothing more
            W, H, _ = imgs[iid]
            yield from _check_coco_annotation(a, W, H, name, where)
        yield from _not_a_list(name, ann_file, "annotations", n + 1)


def _not_a_list(name: str, ann_file: Path, key: str, streamed: int) -> Iterator[Problem]:
    """When a top-level list streamed no record, whether ``key`` is something else: ijson
    streams nothing from ``"annotations": {...}``, which would pass as a file of none."""
    if not streamed:
        kind = top_level_type(ann_file, key)
        if kind not in (None, "array"):
            yield Problem(name, key, "coco-invalid", f"{key} is a {kind}, not a list")


def _check_coco_annotation(a: dict[str, Any], W: int, H: int, name: str, where: str) -> Iterator[Problem]:
    """Whether a well-formed annotation (``coco_annotation_faults`` found nothing) fits its
    W x H image, and its box, area and mask agree."""
    from pycocotools import mask as mask_utils

    bbox = a["bbox"]
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        yield Problem(name, where, "box-not-positive", f"bbox {bbox} has no area (w or h <= 0)")
    if W and (x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > W + BOX_TOLERANCE or y + h > H + BOX_TOLERANCE):
        yield Problem(name, where, "box-outside-image", f"bbox {[round(v, 2) for v in bbox]} reaches outside the {W}x{H} image")
    seg = a.get("segmentation")
    area = a.get("area")
    if not seg or not W:
        return
    try:
        if isinstance(seg, list):
            polys = [p for p in seg if isinstance(p, list)]
            bad = [p for p in polys if len(p) < 6 or len(p) % 2 or _poly_area(p) < 0.5]
            if bad or not polys:
                yield Problem(name, where, "polygon-degenerate", f"{len(bad) or 'no'} polygon(s) with fewer than 3 points or no area")
                return
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, H, W))
            loose = 2.0  # polygons are filled by the rasteriser: allow a little more
        else:
            size = seg.get("size")
            if size != [H, W]:
                yield Problem(name, where, "mask-size-differs", f"the RLE is {size}, the image [H, W] is {[H, W]}")
                return
            counts = seg.get("counts")
            rle = mask_utils.frPyObjects(seg, H, W) if isinstance(counts, list) else \
                {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
            loose = 0.0
        m_area = float(mask_utils.area(rle))
        mx, my, mw, mh = (float(v) for v in mask_utils.toBbox(rle))
    except Exception as e:  # noqa: BLE001 - pycocotools fails many ways on a bad mask
        yield Problem(name, where, "mask-unreadable", f"the segmentation cannot be decoded ({type(e).__name__}: {e})")
        return
    if m_area == 0:
        yield Problem(name, where, "mask-empty", "the segmentation covers no pixel")
        return
    # an RLE is the mask itself; a polygon is rasterised by whoever reads it: 5% of slack
    if isinstance(area, (int, float)) and abs(m_area - area) > (max(2.0, 0.05 * m_area) if loose else 2.0):
        yield Problem(name, where, "mask-disagrees-with-area", f"the mask covers {m_area:g} px, area says {area:g}")
    tol = BOX_TOLERANCE + loose
    if w > 0 and h > 0 and (abs(mx - x) > tol or abs(my - y) > tol or abs(mx + mw - x - w) > tol or abs(my + mh - y - h) > tol):
        yield Problem(name, where, "mask-disagrees-with-box", f"the mask's box is {[mx, my, mw, mh]}, bbox says {[round(v, 2) for v in bbox]}")


def _poly_area(p: list[float]) -> float:
    xs, ys = np.asarray(p[0::2], float), np.asarray(p[1::2], float)
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def _check_image_file(path: Path, name: str, where: str, declared: tuple[int, int] | None, split: str,
                      seen_image: Callable[[str, Path], None]) -> Iterator[Problem]:
    from ..sources import image_size

    if not path.is_file():
        if path.exists():  # a folder, device, pipe or socket
            yield Problem(name, where, "image-unreadable", f"{path} is not a file")
        else:
            yield Problem(name, where, "image-missing", f"{path} does not exist")
        return
    try:
        size = image_size(path)
    except OSError as e:
        yield Problem(name, where, "image-unreadable", f"{path} is not a readable image ({e})")
        return
    except SynthgenError as e:  # over the pixel limit: the message names the file
        yield Problem(name, where, "image-unreadable", str(e))
        return
    if declared and declared[0] and tuple(size) != tuple(declared):
        yield Problem(name, where, "image-size-differs", f"{path} is {size[0]}x{size[1]}, the annotations say {declared[0]}x{declared[1]}")
    seen_image(split, path)


# -- YOLO ---------------------------------------------------------------------------------------
def _yolo(ds: YoloDataset, counts: dict[str, int], seen_image: Callable[[str, Path], None]) -> Iterator[Problem]:
    from ..sources import image_size

    nc = len(ds.categories)
    if ds.path_elsewhere is not None:
        yield Problem(str(ds.data_yaml), "path", "yolo-path-elsewhere",
                      f"path is {ds.path_elsewhere}, not this dataset's folder {ds.root}: ultralytics would read that one")
    if not nc:
        yield Problem(str(ds.data_yaml), "names", "no-categories", "data.yaml lists no class names")
    labelled: set[Path] = set()
    for split in ds.splits:
        imgs = ds.images_of(split)
        missing = [p for p in ds.split_paths(split) if not p.exists()]
        if missing:
            yield Problem(str(ds.data_yaml), split, "split-missing", f"split {split!r} names {missing[0]}, which does not exist")
        elif not imgs:
            yield Problem(str(ds.data_yaml), split, "split-empty", f"split {split!r} holds no image")
        for img in imgs:
            lbl = label_path(img)
            labelled.add(lbl)  # an unreadable image's labels are not orphans: the image is the problem
            problems = list(_check_image_file(img, str(img), "image", None, split, seen_image))
            yield from problems
            if problems:
                continue
            W, H = image_size(img)
            if not lbl.exists():
                continue  # a background image: allowed
            try:
                lines = text_lines(lbl, "a label file")
            except SynthgenError as e:
                yield Problem(str(lbl), "file", "label-unreadable", str(e).removeprefix(f"{lbl}: "))
                continue
            kinds = set()
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                counts["annotations"] += 1
                where = f"line {n}"
                parts = line.split()
                try:
                    cls, box, poly = parse_yolo_line(line, W, H)
                    vals = [float(v) for v in parts[1:]]
                except (ValueError, IndexError) as e:
                    yield Problem(str(lbl), where, "yolo-columns", f"{line.strip()[:60]!r}: {e}")
                    continue
                kinds.add("polygon" if poly else "box")
                if not 0 <= cls < max(nc, 1):
                    yield Problem(str(lbl), where, "category-id-unknown", f"class {parts[0]} is not one of the {nc} names")
                if any(not 0.0 <= v <= 1.0 for v in vals):
                    yield Problem(str(lbl), where, "yolo-outside-0-1", "a coordinate lies outside [0, 1]")
                if poly is None and (vals[2] <= 0 or vals[3] <= 0):
                    yield Problem(str(lbl), where, "box-not-positive", f"width {vals[2]}, height {vals[3]}")
                if poly is not None and _poly_area(poly) < 0.5:
                    yield Problem(str(lbl), where, "polygon-degenerate", "the polygon has no area")
            if len(kinds) > 1:
                yield Problem(str(lbl), "file", "yolo-mixed", "boxes and polygons in one label file (ultralytics drops one kind)")
    roots = {label_path(i).parent for s in ds.splits for i in ds.images_of(s)}
    for root in sorted(roots):
        for lbl in sorted(root.glob("*.txt")):
            if lbl not in labelled:
                yield Problem(str(lbl), "file", "label-orphaned", "a label file with no image")


# -- Pascal VOC ----------------------------------------------------------------------------------
def _voc(ds: VocDataset, counts: dict[str, int], seen_image: Callable[[str, Path], None]) -> Iterator[Problem]:
    for split, lst in ds.lists.items():
        for stem in ds.stems(split):
            xml = ds.root / "Annotations" / f"{stem}.xml"
            name = str(xml)
            if not xml.is_file():
                yield Problem(str(lst), stem, "annotation-missing", f"{xml} does not exist")
                continue
            try:
                r = ET.parse(xml).getroot()
            except (ET.ParseError, OSError) as e:
                yield Problem(name, "file", "xml-invalid", str(e))
                continue
            size = voc_size(r)
            if size is None:
                yield Problem(name, "size", "image-size-missing", "no <size><width>/<height>")
            W, H = size or (0, 0)
            img = ds.root / "JPEGImages" / (r.findtext("filename") or f"{stem}.jpg")
            yield from _check_image_file(img, name, "image", (W, H) if W else None, split, seen_image)
            for k, o in enumerate(r.findall("object")):
                counts["annotations"] += 1
                where = f"object {k}"
                cls = o.findtext("name")
                if ds.categories and cls not in ds.categories:
                    yield Problem(name, where, "category-unknown", f"{cls!r} is not in labelmap.txt")
                box = voc_box(o)
                if box is None:
                    yield Problem(name, where, "box-invalid", "no numeric <bndbox> xmin, ymin, xmax, ymax")
                    continue
                x0, y0, x1, y1 = box
                if x0 > x1 or y0 > y1:
                    yield Problem(name, where, "box-inverted", f"xmin {x0:g} > xmax {x1:g} or ymin {y0:g} > ymax {y1:g}")
                elif W and (x0 < 1 or y0 < 1 or x1 > W or y1 > H):
                    yield Problem(name, where, "box-outside-image", f"({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside 1..{W} x 1..{H} "
                                                                  "(VOC boxes are 1-based and inclusive)")
