"""Readers for datasets on disk: COCO, YOLO (ultralytics layout) and Pascal VOC, synthgen's own
output or anyone's, found by ``open_dataset`` from a folder or a file.

- COCO: a folder with ``annotations/instances_<split>.json`` (images in ``images/<split>/``,
  ``<split>/`` or ``<split>2017/``), or one ``.json`` file (``--images`` names its folder when
  it cannot be found beside it).
- YOLO: a ``data.yaml`` (ultralytics: ``path``, one key per split, ``names``), or a folder
  holding one; labels lie where ultralytics looks: ``.../images/...`` -> ``.../labels/...txt``.
- VOC: a folder holding ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``,
  up to three levels down (``voc/VOCdevkit/VOC2012``); ``trainval`` is read only when it is
  the only list.

A synthgen output folder holds all three; COCO is read (it carries visibility, truncation and
keypoints), and ``manifest.jsonl`` adds what synthgen planned for each image (background,
cutouts or meshes, blend modes) to ``Item.meta``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from ..errors import SynthgenError
from ..sources import IMAGE_EXTS, image_size
from .jsonstream import json_error, not_a_pipe, not_utf8, read_json, stream_items
from .model import DiskDataset, Item, Obj
from .records import check_coco, coco_category_faults, is_int, record_name, refuse, short

FORMATS = ("coco", "yolo", "voc")


def open_dataset(path: str | Path, format: str | None = None, images: str | Path | None = None) -> DiskDataset:
    """The dataset at ``path`` (a folder, a COCO .json or a YOLO data.yaml), its format found
    or given."""
    p = Path(path)
    if not p.exists():
        raise SynthgenError(f"{p}: does not exist")
    if format is not None and format not in FORMATS:
        raise SynthgenError(f"--format {format!r}: choose from {', '.join(FORMATS)}")
    if images is not None and not Path(images).is_dir():
        raise SynthgenError(f"--images {images}: {'is not a folder' if Path(images).exists() else 'does not exist'}")
    if p.is_file():
        if p.suffix.lower() == ".json" and format in (None, "coco"):
            return CocoDataset({p.stem.removeprefix("instances_"): (p, Path(images) if images else None)}, p.parent)
        if p.suffix.lower() in (".yaml", ".yml") and format in (None, "yolo"):
            return YoloDataset(p)
        raise SynthgenError(f"{p}: not a dataset I can read (a folder, a COCO .json or a YOLO data.yaml)")
    found = {"coco": _coco_files(p, images), "yolo": _yolo_file(p), "voc": _voc_root(p)}
    order = [format] if format else list(FORMATS)
    for f in order:
        if found[f]:
            if f == "coco":
                return CocoDataset(found["coco"], p)
            if f == "yolo":
                return YoloDataset(found["yolo"])
            return VocDataset(found["voc"])
    if format:
        raise SynthgenError(f"{p}: no {format.upper()} dataset found there")
    raise SynthgenError(f"{p}: no COCO (annotations/*.json), YOLO (data.yaml) or Pascal VOC (Annotations/, "
                        "ImageSets/Main/) dataset found there; give --format")


# -- COCO ---------------------------------------------------------------------------------------
def _coco_files(root: Path, images: str | Path | None) -> dict[str, tuple[Path, Path | None]]:
    """The COCO files of a folder, by split: ``annotations/instances_*.json`` (COCO's own
    folder also holds captions_*, person_keypoints_* and panoptic files, which are not read),
    else any ``annotations/*.json``, else ``instances_*.json`` beside."""
    ann = root / "annotations"
    files = sorted(ann.glob("*.json")) if ann.is_dir() else sorted(root.glob("instances_*.json"))
    files = [f for f in files if not f.name.startswith(".") and ("instances" in f.name or ann.is_dir())]
    if any(f.name.startswith("instances_") for f in files):
        files = [f for f in files if f.name.startswith("instances_")]
    return {f.stem.removeprefix("instances_"): (f, Path(images) if images else None) for f in files}


def _image_dir(ann_file: Path, split: str, first_file: str | None, given: Path | None) -> Path:
    if given is not None:
        return given
    root = ann_file.parent.parent if ann_file.parent.name == "annotations" else ann_file.parent
    cands = (root / "images" / split, root / split, root / f"{split}2017", root / "images", root, ann_file.parent)
    for cand in cands:
        if first_file is None or (cand / first_file).exists():
            return cand
    for cand in cands[:3]:  # the first image may be the one that is missing
        if cand.is_dir():
            return cand
    raise SynthgenError(f"{ann_file}: cannot find the folder of its images (tried images/{split}, {split}, "
                        f"{split}2017 beside it); give --images")


def _coco_obj(a: dict[str, Any], names: dict[Any, str], source: str) -> Obj:
    x, y, w, h = (float(v) for v in a["bbox"])
    kp = a.get("keypoints")
    return Obj(names.get(a["category_id"], str(a["category_id"])), (x, y, x + w, y + h), a.get("area"),
               a.get("segmentation"), int(a.get("iscrowd") or 0), a.get("visibility"), a.get("truncation"),
               np.asarray(kp, float).reshape(-1, 3) if kp else None,
               {k: a[k] for k in ("amodal_bbox", "pose", "id") if k in a}, source)


def _coco_categories(f: Path) -> list[dict[str, Any]]:
    """A COCO file's categories, streamed (the images and annotations are loaded when asked
    for), each checked."""
    cats = list(stream_items(f, "categories.item"))
    for n, c in enumerate(cats):
        faults = coco_category_faults(c)
        if faults:
            raise refuse(str(f), record_name("category", c, n), faults[0])
    return cats


class CocoDataset(DiskDataset):
    format = "coco"

    def __init__(self, files: dict[str, tuple[Path, Path | None]], root: Path):
        self.root = root
        self.files = files
        self.splits = list(files)
        self._data: dict[str, dict[str, Any]] = {}
        self._categories: list[str] | None = None
        self.manifest = _manifest(root)

    @property
    def categories(self) -> list[str]:  # type: ignore[override]
        """The class names of every split's file, in id order: read when first asked for, so
        that ``validate`` reports a malformed category as a problem instead of stopping."""
        if self._categories is None:
            cats: dict[str, None] = {}
            for split in self.splits:
                for c in sorted(_coco_categories(self.files[split][0]), key=lambda c: c["id"]):
                    cats[c["name"]] = None
            self._categories = list(cats)
        return self._categories

    def _load(self, split: str) -> dict[str, Any]:
        if split not in self._data:
            f = self.files[split][0]
            self._data[split] = check_coco(read_json(f, "COCO file"), str(f))
        return self._data[split]

    def items(self, split: str | None = None) -> Iterator[Item]:
        for s in [split] if split else self.splits:
            data = self._load(s)
            names = {c["id"]: c["name"] for c in data.get("categories", [])}
            by_image: dict[Any, list[dict]] = defaultdict(list)
            for n, a in enumerate(data.get("annotations", [])):
                by_image[a["image_id"]].append((n, a))
            images = data.get("images", [])
            ann_file = self.files[s][0]
            folder = _image_dir(ann_file, s, images[0]["file_name"] if images else None, self.files[s][1])
            for im in images:
                file = im["file_name"]
                meta = self.manifest.get(f"images/{s}/{file}", {}) if self.manifest else {}
                yield Item(s, folder / file, im["id"], im["width"], im["height"],
                           [_coco_obj(a, names, f"{ann_file}: {record_name('annotation', a, n)}")
                            for n, a in by_image.get(im["id"], [])], meta)


# -- YOLO ---------------------------------------------------------------------------------------
def _yolo_file(root: Path) -> Path | None:
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    return None


def label_path(image: Path) -> Path:
    """Where ultralytics looks for an image's labels: the last ``/images/`` becomes ``/labels/``."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        head, tail = s.rsplit(sa, 1)
        s = head + sb + tail
    return Path(s).with_suffix(".txt")


def text_lines(path: Path, what: str) -> list[str]:
    """The lines of a small text file a dataset lists (labels, image lists), or a
    ``SynthgenError`` naming it: a folder, unreadable, or not UTF-8 text."""
    not_a_pipe(path, what)
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except IsADirectoryError:
        raise SynthgenError(f"{path}: is a folder, not {what}") from None
    except OSError as e:
        raise SynthgenError(f"{path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise SynthgenError(f"{path}: not {what}: not UTF-8 text ({not_utf8(e)})") from None


def yolo_class(word: str) -> int:
    """A label line's class: a whole number, written as ultralytics reads it ("1" or "1.0": it
    reads every column as a float and takes a class with no fraction); ValueError otherwise."""
    value = float(word)
    if not value.is_integer():
        raise ValueError(f"class {word!r} is not a whole number")
    return int(value)


def parse_yolo_line(line: str, W: int, H: int) -> tuple[int, tuple[float, float, float, float], list[float] | None]:
    """(class, xyxy pixels, polygon in pixels or None); ValueError for a malformed line."""
    parts = line.split()
    cls = yolo_class(parts[0])
    vals = [float(v) for v in parts[1:]]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("a coordinate is not a finite number")
    if len(vals) == 4:
        cx, cy, w, h = vals
        return cls, ((cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H), None
    if len(vals) >= 6 and len(vals) % 2 == 0:
        xs, ys = np.array(vals[0::2]) * W, np.array(vals[1::2]) * H
        poly = [float(v) for xy in zip(xs, ys) for v in xy]
        return cls, (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), poly
    raise ValueError(f"{len(parts)} columns (a box has 5, a polygon 7 or more, odd)")


def _data_yaml(path: Path) -> dict[str, Any]:
    """An ultralytics data.yaml, its keys checked: ``path`` a string, each split a path or a
    list of paths, ``names`` a list of names or a mapping from class index to name."""
    not_a_pipe(path, "a YOLO data.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        what = " ".join(str(e).replace('in "<unicode string>", ', "").split()) if isinstance(e, yaml.YAMLError) else json_error(e)
        raise SynthgenError(f"{path}: not a readable YOLO data.yaml ({what})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise SynthgenError(f"{path}: not a YOLO data.yaml (the top level is {short(data)}, not a mapping)")
    if data.get("path") is not None and not isinstance(data["path"], str):
        raise SynthgenError(f"{path}: path: {short(data['path'])} is not a folder's path")
    for split in ("train", "val", "test"):
        v = data.get(split)
        if v is not None and not isinstance(v, str) and not (isinstance(v, list) and all(isinstance(e, str) for e in v)):
            raise SynthgenError(f"{path}: {split}: {short(v)} is not a path or a list of paths")
    names = data.get("names", [])
    if isinstance(names, dict):
        if not all(is_int(k) for k in names):
            raise SynthgenError(f"{path}: names: the keys of {short(names)} are not all class indices (integers)")
    elif not isinstance(names, list):
        raise SynthgenError(f"{path}: names: {short(names)} is neither a list of class names nor a mapping from "
                            "class index to name")
    return data


class YoloDataset(DiskDataset):
    format = "yolo"

    def __init__(self, data_yaml: Path):
        self.data_yaml = data_yaml
        data = _data_yaml(data_yaml)
        given = data_yaml.parent  # ultralytics: no path means the yaml's folder
        if data.get("path"):
            given = Path(data["path"])
            if not given.is_absolute():
                given = (data_yaml.parent / given).resolve()
        first = next((data[s] for s in ("train", "val", "test") if isinstance(data.get(s), str)), None)
        here = data_yaml.parent
        # a dataset that was moved or copied keeps the old absolute path: read the one beside
        # the yaml when it is there (ultralytics would read the old one: validate says so)
        base = given
        if first and (here / first).exists():
            if not (given / first).exists() or not os.path.samefile(given / first, here / first):
                base = here
        if not base.is_dir():
            base = here
        self.root = base
        self.path_elsewhere = given if base.resolve() != given.resolve() else None
        names = data.get("names", [])
        self.categories = [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
        self.sources = {s: data[s] for s in ("train", "val", "test") if data.get(s)}
        self.sources.update({k: v for k, v in data.items() if k not in ("path", "names", "nc", "train", "val", "test", "download")
                             and isinstance(v, str) and (base / v).exists()})
        self.splits = list(self.sources)
        self.manifest = _manifest(base)

    def split_paths(self, split: str) -> list[Path]:
        """Where a split's images are (folders or .txt lists), as ultralytics finds them: under
        the root, and a single ``../x`` that is not there read as ``x`` (Roboflow's exports write
        ``train: ../train/images`` in a data.yaml beside ``train/``)."""
        src = self.sources[split]
        if isinstance(src, list):
            return [self.root / entry for entry in src]
        p = self.root / src
        if not p.exists() and src.startswith("../"):
            p = self.root / src[3:]
        return [p]

    def images_of(self, split: str) -> list[Path]:
        out: list[Path] = []
        for p in self.split_paths(split):
            if p.is_dir():
                out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTS)
            elif p.is_file() and p.suffix == ".txt":
                out += [self.root / line.strip() for line in text_lines(p, "a list of images") if line.strip()]
        return out

    def items(self, split: str | None = None) -> Iterator[Item]:
        for s in [split] if split else self.splits:
            for img in self.images_of(s):
                try:
                    W, H = image_size(img)
                except (OSError, SynthgenError):  # unreadable, or over the pixel limit
                    W = H = None
                objs = []
                lbl = label_path(img)
                if lbl.exists() and W:
                    for n, line in enumerate(text_lines(lbl, "a label file"), 1):
                        if not line.strip():
                            continue
                        try:
                            cls, box, poly = parse_yolo_line(line, W, H)
                        except (ValueError, IndexError) as e:
                            raise SynthgenError(f"{lbl}: line {n}: {short(line.strip())}: {e} "
                                                "(synthgen validate lists every problem)") from None
                        name = self.categories[cls] if 0 <= cls < len(self.categories) else str(cls)
                        objs.append(Obj(name, box, None, [poly] if poly else None))
                rel = img.relative_to(self.root).as_posix() if img.is_relative_to(self.root) else str(img)
                stem = img.stem
                yield Item(s, img, int(stem) if stem.isdigit() else stem, W, H, objs, self.manifest.get(rel, {}) if self.manifest else {})


# -- Pascal VOC -----------------------------------------------------------------------------------
def _voc_root(root: Path) -> Path | None:
    for depth in range(4):
        for cand in [root] if depth == 0 else root.glob("/".join(["*"] * depth)):
            if (cand / "Annotations").is_dir() and (cand / "ImageSets" / "Main").is_dir():
                return cand
    return None


class VocDataset(DiskDataset):
    format = "voc"

    def __init__(self, root: Path):
        self.root = root
        lists = {f.stem: f for f in sorted((root / "ImageSets" / "Main").glob("*.txt")) if "_" not in f.stem}
        if "trainval" in lists and len(lists) > 1:
            lists.pop("trainval")  # the union of the others
        self.lists = lists
        self.splits = list(lists)
        self.manifest = _manifest(root.parent.parent.parent) if root.parent.name == "VOCdevkit" else {}
        labelmap = root / "labelmap.txt"
        if labelmap.exists():
            names = [ln.split(":")[0] for ln in text_lines(labelmap, "a VOC label map") if ln.strip() and not ln.startswith("#")]
            self.categories = [n for n in names if n != "background"]
        else:
            found: dict[str, None] = {}
            for s in self.splits:
                for stem in self.stems(s):
                    try:
                        objs = read_voc_xml(self.root / "Annotations" / f"{stem}.xml")[3]
                    except SynthgenError:
                        continue  # validate reports it; the other readers stop there
                    for o in objs:
                        found.setdefault(o.category)
            self.categories = sorted(found)

    def stems(self, split: str) -> list[str]:
        """The image names a split's list holds (the first word of each line)."""
        return [ln.split()[0] for ln in text_lines(self.lists[split], "a VOC image list") if ln.strip()]

    def items(self, split: str | None = None) -> Iterator[Item]:
        for s in [split] if split else self.splits:
            for stem in self.stems(s):
                file, W, H, objs = read_voc_xml(self.root / "Annotations" / f"{stem}.xml")
                img = self.root / "JPEGImages" / (file or f"{stem}.jpg")
                if not img.exists():
                    hits = sorted((self.root / "JPEGImages").glob(f"{glob.escape(stem)}.*"))
                    img = hits[0] if hits else img
                meta = self.manifest.get(f"images/{s}/{img.name}", {}) if self.manifest else {}
                yield Item(s, img, int(stem) if stem.isdigit() else stem, W, H, objs, meta)


def voc_size(r: ET.Element) -> tuple[int, int] | None:
    """A VOC annotation's <size> width and height, or None when it gives no numbers."""
    try:
        return int(float(r.findtext("size/width"))), int(float(r.findtext("size/height")))
    except (TypeError, ValueError, OverflowError):
        return None


def voc_box(o: ET.Element) -> tuple[float, float, float, float] | None:
    """An <object>'s <bndbox> as written (1-based, inclusive), or None without four numbers."""
    try:
        x0, y0, x1, y1 = (float(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        return None
    return x0, y0, x1, y1


def read_voc_xml(xml: Path) -> tuple[str | None, int | None, int | None, list[Obj]]:
    """A VOC annotation: (its image's file name or None, width and height or None when it
    gives none, objects with 0-based boxes), or a ``SynthgenError`` naming the file and what is
    wrong."""
    tail = "(synthgen validate lists every problem)"
    not_a_pipe(xml, "a VOC annotation")
    if not xml.is_file():
        raise SynthgenError(f"{xml}: does not exist (its image is in the split's list) {tail}")
    try:
        r = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise SynthgenError(f"{xml}: not well-formed XML ({e}) {tail}") from None
    except OSError as e:
        raise SynthgenError(f"{xml}: cannot be read ({e.strerror or e})") from None
    W, H = voc_size(r) or (0, 0)
    objs = []
    for k, o in enumerate(r.findall("object")):
        box = voc_box(o)
        if box is None:
            raise SynthgenError(f"{xml}: object {k}: no numeric <bndbox> xmin, ymin, xmax, ymax {tail}")
        x0, y0, x1, y1 = box
        if not all(math.isfinite(v) for v in box):
            raise SynthgenError(f"{xml}: object {k}: a <bndbox> coordinate is not a finite number {tail}")
        objs.append(Obj(o.findtext("name") or "", (x0 - 1, y0 - 1, x1, y1), extra={
            "truncated": o.findtext("truncated"), "difficult": o.findtext("difficult")}, source=f"{xml}: object {k}"))
    return r.findtext("filename"), (W if W > 0 and H > 0 else None), (H if W > 0 and H > 0 else None), objs


# -- synthgen's manifest ----------------------------------------------------------------------------
def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    """What synthgen planned for each image of its output at ``root``, by image path: the
    background, and for each labelled object (in label order) its asset, blend mode and class.
    It only adds to what the labels say: a line that is not one synthgen wrote is skipped."""
    f = root / "manifest.jsonl"
    out: dict[str, dict[str, Any]] = {}
    if not f.is_file():
        return out
    with f.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                m = json.loads(line)
                scene = m.get("scene", {})
                objs = scene.get("objects", [])
                bg = scene.get("background", {})
                background = bg.get("asset") or bg.get("texture") or bg.get("mode")
                labels = []
                for lab in m.get("labels", []):
                    o = objs[lab["object"]] if lab.get("object") is not None and lab["object"] < len(objs) else {}
                    labels.append({"asset": o.get("asset") or o.get("category"), "blend": o.get("blend"),
                                   "category": lab.get("category")})
                out[str(m.get("file", ""))] = {"background": background, "labels": labels, "index": m.get("index"),
                                               "variant": m.get("variant")}
            except (ValueError, RecursionError, AttributeError, TypeError, KeyError, IndexError):
                continue
    return out
