"""COCO JSON read a record at a time (ijson), so that a file of hundreds of thousands of
annotations is never held in memory, and a hostile one cannot take the machine down.

ijson keeps the path to the current value as a string for every level of nesting, so its
memory grows with the square of the depth: 200 KB of ``[[[[...]]]]`` (100,000 levels) took
more than 24 GiB and the kernel killed the process. ``check_nesting`` reads a file once before
ijson does and refuses one nested deeper than any COCO file is (``MAX_DEPTH``).

ijson's C backend cannot read a ``\\udce9`` escape that stands alone (a lone surrogate), which
is how Python's ``json.dump`` writes a file name that is not UTF-8; ``json`` and pycocotools read
it. A file with such escapes is read with ijson's Python backend (about 15 times slower, the
same items).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import SynthgenError

MAX_DEPTH = 100
"""Levels of nesting allowed: a COCO file needs 6 (file, annotations, annotation,
segmentation, polygon, number)."""

_STRUCTURE = b'[]{}"'
_OTHERS = bytes(c for c in range(256) if c not in _STRUCTURE)
_SAME = bytes(range(256))
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_OPEN, _CLOSE = np.zeros(256, np.int8), np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE[[ord("]"), ord("}")]] = 1


def check_nesting(path: Path, limit: int = MAX_DEPTH, chunk: int = 1 << 16) -> bool:
    """Raise a ``SynthgenError`` naming ``path`` when its JSON nests deeper than ``limit``;
    return whether it holds half of a surrogate pair alone (``\\udce9``), which ijson's C backend
    cannot read, or reads as "?" (a whole pair it reads).

    Brackets inside strings do not count (an RLE's counts hold ``[`` and ``]``). Escapes are
    dropped first (``\\\\`` then ``\\"``, as a JSON reader takes them, left to right), then every
    byte but brackets and quotes, so the scan in numpy sees a few percent of the file: about
    0.4 s for 60 MB here, half of what ijson itself takes.
    """
    depth, in_string, held, surrogates = 0, False, b"", False
    context = pending = b""
    try:
        with open(path, "rb") as f:
            while True:
                data = f.read(chunk)
                if not data:
                    return surrogates or _lone_surrogate(context + pending, len(context), len(context) + len(pending))
                data = held + data
                # a run of backslashes at the end may escape the next chunk's first byte
                kept = len(data.rstrip(b"\\"))
                data, held = data[:kept], data[kept:]
                if b"\\" in data:
                    data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
                # what is left of "\\ud83d" begins an escape; the last 11 bytes wait for the next read
                # (a pair's other half may be there), with the 6 before them (a low half's high one)
                if not surrogates:
                    window = context + pending + data
                    stop = max(len(context), len(window) - 11)
                    if b"\\" in window:  # memchr: ten times quicker than looking for "\\ud" itself
                        surrogates = _lone_surrogate(window, len(context), stop)
                    context, pending = window[max(0, stop - 6):stop], window[stop:]
                marks = np.frombuffer(data.translate(_SAME, _OTHERS), np.uint8)
                if not len(marks):
                    continue
                inside = (np.cumsum(marks == ord('"')) & 1).astype(bool) ^ in_string
                step = np.where(inside, 0, _OPEN[marks] - _CLOSE[marks].astype(np.int64))
                levels = depth + np.cumsum(step)
                if levels.max() > limit:
                    raise SynthgenError(f"{path}: JSON nested more than {limit} levels deep (a COCO file needs 6): "
                                        "not a COCO file")
                depth, in_string = int(levels[-1]), bool(inside[-1])
    except OSError as e:
        raise SynthgenError(f"{path}: cannot be read ({e.strerror or e})") from None


def _lone_surrogate(window: bytes, start: int, stop: int) -> bool:
    """Whether a surrogate escape that begins in ``window[start:stop]`` is half of a pair alone:
    a high one (``\\ud83d``) not followed by a low one, or a low one (``\\ude00``, ``\\udce9``)
    not after a high one. ``window`` holds the 6 bytes before ``start`` and 11 after ``stop``."""
    for m in _SURROGATE.finditer(window, start):
        p = m.start()
        if p >= stop:
            break
        if window[p + 3] in b"89abAB":
            if not _LOW.fullmatch(window, p + 6, p + 12):
                return True
        elif p < 6 or not _HIGH.fullmatch(window, p - 6, p):
            return True
    return False


def not_utf8(e: UnicodeDecodeError) -> str:
    """Where a text's first byte that is not UTF-8 is."""
    return f"byte {e.object[e.start]:#04x} at offset {e.start}"


def json_error(e: Exception) -> str:
    """One line for why a file could not be read: yajl's errors come as bytes over three lines
    (what, where, an arrow), which would print as three ``error:`` lines or a ``b'...'``; a
    decoding error says where the first byte that is not UTF-8 is."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text: {not_utf8(e)}"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    text = e.args[0] if e.args else str(e)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and "(right here)" not in ln]
    if not lines:
        return type(e).__name__
    what = lines[0].rstrip(".")
    return f"{what}, near {' '.join(lines[1:])[:60]!r}" if len(lines) > 1 else what


_CHECKED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) of files check_nesting passed: surrogates?


def not_a_pipe(path: Path, what: str) -> None:
    """A ``SynthgenError`` when ``path`` is there but is no regular file or folder (a named pipe
    or device): reading one may block for ever. What is missing is left to the reader to say."""
    try:
        st = path.stat()
    except OSError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise SynthgenError(f"{path}: is not a file (a device, pipe or socket), not {what}")


def _checked_once(path: Path):
    """ijson's backend for ``path``, once its nesting is checked (once per version of the file)."""
    not_a_pipe(path, "a COCO file")
    try:
        st = path.stat()
    except OSError as e:
        raise SynthgenError(f"{path}: cannot be read ({e.strerror or e})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = check_nesting(path)
    import ijson

    return ijson.get_backend("python") if _CHECKED[key] else ijson


def read_json(path: Path, what: str) -> Any:
    """A whole JSON file (``what`` it should be, e.g. "COCO file", names it in errors): one line
    for a pipe, an unreadable file, text that is not UTF-8 or not JSON, or nesting past Python's
    recursion limit."""
    not_a_pipe(path, f"a {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise SynthgenError(f"{path}: not a readable {what} ({json_error(e)})") from None


def _unreadable(path: Path, e: Exception) -> SynthgenError:
    """Why ijson could not read ``path``: it decodes each string on its own, so a decoding error
    names the string."""
    if isinstance(e, UnicodeDecodeError):
        return SynthgenError(f"{path}: not a readable COCO file (a string in it is not UTF-8 text: "
                             f"{e.object[max(0, e.start - 24):e.start + 24]!r})")
    return SynthgenError(f"{path}: not a readable COCO file ({json_error(e)})")


def stream_items(path: Path, prefix: str) -> Iterator[Any]:
    """The items of a JSON file under ``prefix`` (ijson's, e.g. ``"annotations.item"``), one
    at a time: the file is never held in memory. Its nesting is checked first, once per
    version of the file."""
    import ijson

    backend = _checked_once(path)
    try:
        with open(path, "rb") as f:
            yield from backend.items(f, prefix, use_float=True)
    except (OSError, ijson.JSONError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None


def top_level_type(path: Path, key: str) -> str | None:
    """The JSON type of the top-level ``key`` of a file ("array", "map", "string", ...), or None
    when it has no such key: what a stream of ``key.item`` that gave nothing was reading."""
    import ijson

    backend = _checked_once(path)
    try:
        with open(path, "rb") as f:
            for prefix, event, _ in backend.parse(f):
                if prefix == key:
                    return {"start_array": "array", "start_map": "map"}.get(event, event)
    except (OSError, ijson.JSONError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None
    return None
