"""WebDataset: OUT/webdataset/<split>/<split>-000000.tar, ``output.shard_size`` images per tar.

Each image is a sample of adjacent tar members sharing its key, the image's file stem (no dots):
``<key>.jpg`` (or ``.png``), ``<key>.json`` (its labels, COCO-like: ``image_id``, ``file_name``,
``width``, ``height``, ``annotations`` with ``category_id`` 1-based as in COCO, ``category``
name, ``bbox`` xywh, ``area``, ``segmentation`` as COCO RLE (always: one type), visibility,
truncation, amodal box, and from the renderer keypoints, pose and ``camera_K``), in a
single-class dataset ``<key>.cls`` (0, or -1 for an image with no labelled object), and from
the renderer with depth on ``<key>.depth.png`` (16-bit millimetres). Every sample of a dataset
has the same members (Hugging Face's reader requires it).

A tar is assembled by the main process as soon as its last image is journaled, from the image
files already on disk and the label lines kept in the run's parts, and installed atomically; the
last tar of each split when the run finishes. Tar headers carry no time, owner or permissions of
the machine, so the same run writes the same bytes (resumed, on any machine, or merged from
shards). The tars hold copies: ``images/`` is written as for every format.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..sample import Sample
from .base import Encoded, Writer
from .coco import encode_coco

ROOT = "webdataset"


def tar_name(split: str, shard: int) -> str:
    return f"{ROOT}/{split}/{split}-{shard:06d}.tar"


class WebDatasetWriter(Writer):
    name = "webdataset"

    def __init__(self, spec):
        super().__init__(spec)
        self.size = spec.output.shard_size
        self._pending: dict[str, list[str]] = {}  # split -> the lines of its tar being filled
        self._count: dict[str, int] = {}  # split -> images journaled so far

    def encode(self, sample: Sample) -> Encoded:
        image = self.image_file(sample)
        rec = encode_coco(sample, image.rsplit("/", 1)[1], "rle")  # one type for every mask: readers infer a schema
        for a, src in zip(rec["annotations"], sample.annotations):
            a["category"] = src.category
        labels = {"image_id": self.image_id(sample), **rec["image"], "annotations": rec["annotations"]}
        line = {"key": sample.stem, "image": image, "json": labels}
        if len(self.spec.categories) == 1:
            line["cls"] = 0 if sample.annotations else -1
        if sample.depth is not None and getattr(self.spec.output, "depth", False):
            line["depth"] = f"depth/{sample.split}/{sample.stem}.png"
        return Encoded(parts=[(f"wds/{sample.split}", json.dumps(line, separators=(",", ":")) + "\n")])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"{ROOT}/{split}")

    # -- as the run goes ---------------------------------------------------------------------------
    def committed(self, out, parts: list[tuple[str, str]]) -> None:
        """A task's lines are journaled: install every tar that is now full."""
        for name, line in parts:
            if not name.startswith("wds/"):
                continue
            split = name[4:]
            if split not in self._count:
                self._catch_up(out, split)  # first line since the run (re)started: the part holds it already
                continue
            self._pending[split].append(line)
            self._count[split] += 1
            if self._count[split] % self.size == 0:
                self._write(out, split, self._count[split] // self.size - 1, self._pending.pop(split))
                self._pending[split] = []

    def _catch_up(self, out, split: str) -> None:
        """Rebuild the state from the part on disk (a resumed run)."""
        self._pending[split], self._count[split] = self._replay(out, split)

    def _replay(self, out, split: str) -> tuple[list[str], int]:
        """Read a split's part on disk, writing any full tar that is missing (a crash kept it
        from being installed); returns the lines of the unfinished tar and the count."""
        pending: list[str] = []
        count = 0
        for line in out.part_lines(f"wds/{split}"):
            pending.append(line)
            count += 1
            if count % self.size == 0:
                shard = count // self.size - 1
                if not (out.root / tar_name(split, shard)).is_file():
                    self._write(out, split, shard, pending)
                pending = []
        return pending, count

    def finish(self, out) -> None:
        for split in self.spec.output.split:
            pending, count = self._replay(out, split)
            if pending:
                self._write(out, split, count // self.size, pending)
        self._pending.clear()
        self._count.clear()

    def _write(self, out, split: str, shard: int, lines: list[str]) -> None:
        out.assemble_bytes(tar_name(split, shard), _tar(out.root, lines, self.spec.output.image_format))


def _members(root: Path, lines: Iterable[str], image_format: str) -> Iterator[tuple[str, bytes]]:
    for text in lines:
        line: dict[str, Any] = json.loads(text)
        key = line["key"]
        yield f"{key}.{image_format}", (root / line["image"]).read_bytes()
        yield f"{key}.json", json.dumps(line["json"], separators=(",", ":")).encode()
        if line.get("cls") is not None:
            yield f"{key}.cls", str(line["cls"]).encode()
        if line.get("depth"):
            yield f"{key}.depth.png", (root / line["depth"]).read_bytes()


def _tar(root: Path, lines: list[str], image_format: str) -> Iterator[bytes]:
    """The tar's bytes, in pieces: members in order, headers the same on every machine."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in _members(root, lines, image_format):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
