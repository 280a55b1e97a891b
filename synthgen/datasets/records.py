"""What a well-formed record of a dataset on disk is: one check per kind of record, giving what
is wrong with it (``Fault``s: a stable kind and a message each; none when nothing is).

``validate`` reports every fault it finds; the readers behind ``show``, ``report`` and the
torch mixing dataset stop at the first, with one line naming the file and the record, so a
malformed box never reaches the drawing code as an ``unexpected TypeError``. Only the shape of
a record is checked here (types, counts, finite numbers); whether a box fits its image or a
mask agrees with its box is ``validate``'s business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import SynthgenError


@dataclass(frozen=True)
class Fault:
    kind: str
    """Short and stable (``box-invalid``), for machines."""
    message: str


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a hostile file's values stay readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(v: Any) -> bool:
    """A finite int or float that a float can hold (a JSON ``true`` is not a number; Python's
    JSON reader gives 1e400 as inf and a 400-digit integer as an int no float holds)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _size(v: Any) -> bool:
    """An image side in pixels: a whole number from 1 to 2**31 - 1."""
    return is_int(v) and 0 < v < 2**31


def is_int(v: Any) -> bool:
    """An integer (a JSON ``true`` is not one)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _key(v: Any) -> bool:
    """What COCO uses as an id: an integer (or, in the wild, a string)."""
    return is_int(v) or isinstance(v, str)


_LISTS = {"category": "categories", "image": "images", "annotation": "annotations"}


def record_name(kind: str, record: Any, position: int | None) -> str:
    """How a record of ``kind`` (category, image, annotation) is named in a message: by its id
    (``annotation 12``), else by its place in its list (``annotations[3]``) when known."""
    rid = record.get("id") if isinstance(record, dict) else None
    if _key(rid):
        return f"{kind} {short(rid)}"
    return f"{_LISTS[kind]}[{position}]" if position is not None else f"an {kind} without an id"


# -- COCO ---------------------------------------------------------------------------------------
def coco_category_faults(c: Any) -> list[Fault]:
    """Everything wrong with the shape of a COCO category (empty when nothing is)."""
    if not isinstance(c, dict):
        return [Fault("category-invalid", f"a category is a mapping, not {short(c)}")]
    out = []
    if not is_int(c.get("id")):
        out.append(Fault("category-id-invalid", f"id {short(c.get('id'))}: a category id must be an integer"))
    if not isinstance(c.get("name"), str) or not c["name"].strip():
        out.append(Fault("category-name-invalid", f"name {short(c.get('name'))}: a category needs a name (a string)"))
    return out


def coco_image_faults(im: Any) -> list[Fault]:
    """Everything wrong with the shape of a COCO image record (empty when nothing is)."""
    if not isinstance(im, dict):
        return [Fault("image-invalid", f"an image is a mapping, not {short(im)}")]
    out = []
    if im.get("id") is None:
        out.append(Fault("image-id-missing", "an image without an id"))
    elif not _key(im["id"]):
        out.append(Fault("image-id-invalid", f"id {short(im['id'])}: an image id must be an integer or a string"))
    if not isinstance(im.get("file_name"), str) or not im["file_name"].strip():
        out.append(Fault("image-file-name-missing", f"file_name {short(im.get('file_name'))}: an image needs a file name"))
    W, H = im.get("width"), im.get("height")
    if not (_size(W) and _size(H)):
        out.append(Fault("image-size-missing", f"width/height {short(W)}x{short(H)} are not positive integers (below 2**31)"))
    return out


def coco_annotation_faults(a: Any) -> list[Fault]:
    """Everything wrong with the shape of a COCO annotation (empty when nothing is). Whether
    its ids name an image and a category of the file is for the caller, which knows them."""
    if not isinstance(a, dict):
        return [Fault("annotation-invalid", f"an annotation is a mapping, not {short(a)}")]
    out = []
    if a.get("id") is not None and not _key(a["id"]):
        out.append(Fault("annotation-id-invalid", f"id {short(a['id'])}: an annotation id must be an integer or a string"))
    if not _key(a.get("image_id")):
        out.append(Fault("annotation-orphaned", f"image_id {short(a.get('image_id'))} is not an image id"))
    if not is_int(a.get("category_id")):
        out.append(Fault("category-id-invalid", f"category_id {short(a.get('category_id'))} is not an integer"))
    bbox = a.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        out.append(Fault("box-invalid", f"bbox {short(bbox)} is not [x, y, w, h] (four finite numbers)"))
    if a.get("area") is not None and not _number(a["area"]):
        out.append(Fault("area-invalid", f"area {short(a['area'])} is not a finite number"))
    if a.get("iscrowd", 0) not in (0, 1, None):  # True and False are 1 and 0
        out.append(Fault("iscrowd-invalid", f"iscrowd {short(a['iscrowd'])} is not 0 or 1"))
    seg = segmentation_fault(a.get("segmentation"))
    if seg:
        out.append(Fault("mask-unreadable", seg))
    kp = a.get("keypoints")
    if kp is not None and not (isinstance(kp, list) and len(kp) % 3 == 0 and all(_number(v) for v in kp)):
        out.append(Fault("keypoints-invalid", f"keypoints {short(kp)} are not x, y, v triples of numbers"))
    for key in ("visibility", "truncation"):  # synthgen's own keys: fractions
        if a.get(key) is not None and not _number(a[key]):
            out.append(Fault(f"{key}-invalid", f"{key} {short(a[key])} is not a number"))
    return out


def segmentation_fault(seg: Any) -> str | None:
    """What is wrong with the shape of a COCO segmentation (polygons or RLE), or None. Whether
    it decodes to the image's size is checked where it is decoded."""
    if seg is None or seg == [] or seg == {}:
        return None
    if isinstance(seg, list):
        if all(isinstance(p, list) and all(_number(v) for v in p) for p in seg):
            return None
        return f"segmentation {short(seg)} is not a list of polygons (lists of numbers)"
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) and v >= 0 for v in size)):
            return f"the RLE's size {short(size)} is not [height, width]"
        if isinstance(counts, str) or (isinstance(counts, list) and all(is_int(v) and v >= 0 for v in counts)):
            return None
        return f"the RLE's counts {short(counts)} are neither a string nor a list of run lengths"
    return f"segmentation {short(seg)} is neither polygons nor an RLE"


def check_coco(data: Any, file: str) -> dict[str, Any]:
    """``data``, a COCO file's content, with every record checked: the first malformed one
    stops the reader with one line naming the file and the record."""
    if not isinstance(data, dict):
        raise SynthgenError(f"{file}: not a COCO file (the top level is not a mapping)")
    for kind, key, faults in (("category", "categories", coco_category_faults), ("image", "images", coco_image_faults),
                              ("annotation", "annotations", coco_annotation_faults)):
        records = data.get(key, [])
        if not isinstance(records, list):
            raise SynthgenError(f"{file}: {key} is {short(records)}, not a list")
        for n, rec in enumerate(records):
            found = faults(rec)
            if found:
                raise refuse(file, record_name(kind, rec, n), found[0])
    return data


def refuse(file: str, record: str, fault: Fault) -> SynthgenError:
    """The error a reader raises for a malformed record: one line, the file and the record."""
    return SynthgenError(f"{file}: {record}: {fault.message} (synthgen validate lists every problem)")
