"""The one file that ``show`` and ``report`` write: checked before any work, replaced only when
synthgen wrote it, written atomically.

A picture or a report is written where the user says, but a name given by mistake (a background
photo, the spec, a dataset's image) must not be overwritten: an existing file is replaced only
when it carries synthgen's mark (a PNG text chunk, a generator meta tag)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ..errors import SynthgenError
from ..runs.files import write_atomic

PNG_MARK = ("Software", "synthgen show")  # a tEXt chunk of every picture show writes
HTML_MARK = "<meta name='generator' content='synthgen report'>"
_OLD_HTML_MARK = "<title>synthgen report: "  # reports written before the meta tag
KINDS = {"png": ((".png",), "show", "a PNG picture"), "html": ((".html", ".htm"), "report", "an HTML report")}


def check_output(out: str | Path, kind: str, flag: str = "--out") -> Path:
    """``out`` as a Path, or a SynthgenError saying why it may not be written: empty, a folder,
    a name of another kind, or a file that exists and was not written by synthgen."""
    suffixes, command, what = KINDS[kind]
    if str(out) == "":
        raise SynthgenError(f"{flag} is empty: name the {suffixes[0]} file to write")
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise SynthgenError(f"{flag} {out}: {command} writes {what}; give the name a {suffixes[0]} ending")
    if path.is_dir():
        raise SynthgenError(f"{flag} {out} is a folder; name the {suffixes[0]} file to write")
    if path.exists() or path.is_symlink():
        if not path.is_file() or not _marked(path, kind):
            raise SynthgenError(f"{flag} {out} exists and was not written by synthgen {command}: it is left as it is; "
                                "name another file, or remove it first")
    return path


def _marked(path: Path, kind: str) -> bool:
    """Whether synthgen wrote the file at ``path`` (from its first few kilobytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    if kind == "html":
        text = head.decode("utf-8", "replace")
        return HTML_MARK in text or text.startswith("<!doctype html>") and _OLD_HTML_MARK in text
    if not head.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    at, want = 8, ("\0".join(PNG_MARK)).encode("latin-1")
    while at + 8 <= len(head):
        length, ctype = struct.unpack(">I4s", head[at:at + 8])
        if ctype == b"tEXt" and head[at + 8:at + 8 + length] == want:
            return True
        if ctype == b"IDAT":
            return False
        at += 12 + length
    return False


def marked_png(png: bytes) -> bytes:
    """PNG bytes with synthgen's text chunk after the header chunk (pixels unchanged)."""
    data = ("\0".join(PNG_MARK)).encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]  # signature (8) + IHDR (25)


def write_output(path: Path, data: bytes, flag: str = "--out") -> None:
    """``data`` to ``path`` atomically (``runs.files.write_atomic``), a failure one line."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise SynthgenError(f"{flag} {path}: cannot write: {e.strerror or e}") from None
