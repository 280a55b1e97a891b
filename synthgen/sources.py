"""Files named by a spec: each path entry (a file, a folder or a glob, relative to the spec's
folder) listed eagerly, so a bad path fails before anything is written; the one image decoder,
which refuses truncated or corrupt files; and the collector that reports every problem at once."""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import struct
import sys
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SURROGATE, SpecError, SynthgenWarning, printable


def _pillow_reads(feature: str) -> bool:
    from PIL import features

    try:
        return bool(features.check(feature))
    except (ValueError, OSError):  # a Pillow that does not know the feature
        return False


# what synthgen reads, in asset folders and in datasets (ultralytics reads these too): AVIF
# (phones, the web) and JPEG 2000 where this Pillow decodes them, and MPO (cameras' JPEG)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".mpo") \
    + ((".avif",) if _pillow_reads("avif") else ()) + ((".jp2",) if _pillow_reads("jpg_2000") else ())
# photos synthgen does not read; a folder's are named in a warning, not passed over without a word
UNREAD_EXTS = (".heic", ".heif", ".dng", ".cr2", ".nef", ".arw", ".raw", ".gif", ".jxl", ".psd", ".svg", ".avif", ".jp2")


def expand_paths(base: Path, pattern: str, key: str) -> list[str]:
    """Files for one spec path entry (file, folder or glob), relative to ``base``, sorted."""
    if "\x00" in pattern:
        raise SpecError(f"{key}: {pattern!r} holds a NUL character")
    full = base / pattern
    listed: list[Path] | None = None
    if full.is_dir():
        listed = sorted(full.iterdir())
    elif any(ch in pattern for ch in "*?["):
        # the pattern is the entry's; the spec's own folder is taken as written ("proj [v2]/"
        # would be a character class, and "bg/*.jpg" beside it matched nothing)
        root = "" if Path(pattern).is_absolute() else glob.escape(str(base)) + os.sep
        listed = [Path(p) for p in sorted(glob.glob(root + pattern, recursive=True))]
    if listed is not None:
        files = [p for p in listed if p.suffix.lower() in IMAGE_EXTS]
        note = _unread(listed)
        if note and not files:
            raise SpecError(f"{key}: {pattern!r} matches no image files ({', '.join(IMAGE_EXTS)}) in {shown(full)}, only {note}")
        if note:
            warnings.warn(f"{key}: {shown(full)} holds {note}; they are left out", SynthgenWarning, stacklevel=2)
    elif full.is_file():
        files = [full]
    elif full.exists():  # a device, pipe or socket: reading one may never end
        raise SpecError(f"{key}: {pattern!r} is not a file or a folder (a device, pipe or socket: {shown(full)})")
    else:
        raise SpecError(f"{key}: {pattern!r} does not exist (looked for {shown(full)})")
    if not files:
        raise SpecError(f"{key}: {pattern!r} matches no image files ({', '.join(IMAGE_EXTS)}) in {shown(full)}")
    names = [str(p) for p in files] if Path(pattern).is_absolute() else [os.path.relpath(p, base) for p in files]
    # a name of bytes that are not UTF-8 cannot be written into the UTF-8 JSON that names each
    # label's source (Python would write a lone surrogate, which strict JSON readers refuse)
    odd = [n for n in names if SURROGATE.search(n)]
    if odd:
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise SpecError(f"{key}: {shown(base / odd[0])}{more}: the file name is not UTF-8 text, and labels name their "
                        "sources in UTF-8: rename the file")
    return names


def _unread(listed: list[Path]) -> str:
    """What of ``listed`` are photos synthgen does not read ("2 .heic files ..."), or ""."""
    unread = Counter(p.suffix.lower() for p in listed if p.suffix.lower() in UNREAD_EXTS and p.suffix.lower() not in IMAGE_EXTS)
    if not unread:
        return ""
    what = ", ".join(f"{k} {ext}" for ext, k in sorted(unread.items()))
    return f"{what} file{'s' if sum(unread.values()) > 1 else ''} that synthgen does not read: convert them to PNG or JPEG"


MAX_PIXELS = 1 << 28  # 268 megapixels: the limit where a program has turned Pillow's off


def pixel_limit() -> int:
    """The most pixels an image may have; larger ones are refused from their header, never
    decoded. Pillow's own limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``: about 179 megapixels,
    unless the program using synthgen set it), or ``MAX_PIXELS`` where it is turned off."""
    pillow = Image.MAX_IMAGE_PIXELS
    return 2 * int(pillow) if pillow else MAX_PIXELS


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.0f}" if pixels >= 1e6 else f"{pixels / 1e6:.2g}"


def _too_large(name: str, pixels: int, size: str = "") -> SpecError:
    return SpecError(f"{name}: {size + ' ' if size else ''}is too large ({_megapixels(pixels)} megapixels; images of "
                     f"at most {_megapixels(pixel_limit())} megapixels are read: scale it down)")


def _pillow_open():
    """Pillow's own ``Image.open``, even where a library imported earlier replaced it: importing
    ultralytics (8.4) wraps it so that a file Pillow cannot identify makes it pip-install a HEIF
    plugin, and where that fails the caller gets ModuleNotFoundError, not
    UnidentifiedImageError (a corrupt image in a training script that imported both became
    'unexpected ModuleNotFoundError'). Such a wrapper keeps the original in its module."""
    current = Image.open
    if getattr(current, "__module__", None) == "PIL.Image":
        return current
    module = sys.modules.get(getattr(current, "__module__", None) or "")
    for value in (vars(module).values() if module is not None else ()):
        if callable(value) and getattr(value, "__module__", None) == "PIL.Image" and getattr(value, "__name__", None) == "open":
            return value
    return current


_PIL_OPEN = _pillow_open()  # taken now: a wrapper installed later does not reach synthgen's reads


def open_image(path):
    """``PIL.Image.open`` as Pillow defines it (see ``_pillow_open``): every image synthgen reads
    is opened here."""
    return _PIL_OPEN(path)


@contextmanager
def _opening(name: str) -> Iterator[None]:
    """Around Pillow's opening of a file: an image over the pixel limit is one clear line, and
    one under it loads without Pillow's decompression-bomb warning (meant for images from
    strangers, where synthgen decodes the user's own files and refuses larger ones itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except Image.DecompressionBombError as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            if found is None:
                raise SpecError(f"{name}: is too large to decode ({e})") from None
            raise _too_large(name, int(found.group(1))) from None


def _why(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "does not exist"
    if e.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if isinstance(e, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(e, PermissionError):
        return "cannot be read (permission denied)"
    return f"cannot be read ({e.strerror or e})"


def shown(path: str | Path) -> str:
    """A path as errors show it: normalised, relative to the working folder when inside it, and
    with control characters escaped (a line break in a file's name must not split its problem's
    one line in two)."""
    p = os.path.normpath(str(path))
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive (Windows)
        return printable(p)
    return printable(rel if not rel.startswith("..") else p)


def _image_file(path: Path, name: str) -> None:
    """A SpecError unless ``path`` is a regular file with something in it: missing, a folder, a
    symlink loop, a device, pipe or socket (reading a pipe may never end), or empty."""
    try:
        st = path.stat()
    except OSError as e:
        raise SpecError(f"{name}: {_why(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(f"{name}: is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"{name}: is not a file (a device, pipe or socket), not an image")
    if st.st_size == 0:
        raise SpecError(f"{name}: is empty (0 bytes)")


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Decode an image file in full: the one decoder for every image synthgen reads.

    mode "RGB" -> (h, w, 3) uint8; "RGBA" -> (h, w, 4) uint8 (alpha 255 where the file has none;
    palette transparency and LA honoured); "L" -> (h, w) uint8. EXIF orientation is applied;
    16-bit images are scaled to 8 bits; CMYK is converted. Raises SpecError naming the file for
    anything that is not a whole, readable image: missing, a folder, a symlink loop, empty, not
    an image, truncated or corrupt (which OpenCV would fill with grey without a word), too large.
    """
    path = Path(path)
    name = shown(path)
    _image_file(path, name)
    try:
        with _opening(name), open_image(path) as im:
            w, h = im.size
            if w * h > pixel_limit():
                raise _too_large(name, w * h, f"{w}x{h}")
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # no copy of the pixels where none is turned
            return pixels_as(im, mode)
    except SpecError:
        raise
    except UnidentifiedImageError:
        raise SpecError(f"{name}: is not an image (or not one Pillow can read)") from None
    except OSError as e:
        if e.errno is not None:
            raise SpecError(f"{name}: {_why(e)}") from None
        raise SpecError(f"{name}: cannot be decoded: truncated or corrupt ({e})") from None
    except (SyntaxError, ValueError, EOFError, struct.error, MemoryError) as e:
        raise SpecError(f"{name}: cannot be decoded: truncated or corrupt ({e})") from None


def pixels_as(im: Image.Image, mode: str) -> np.ndarray:
    """The pixels of loaded image ``im`` in ``mode`` ("RGB", "RGBA" or "L"), a writable array of
    our own, converted as every image synthgen reads (16-bit and float grey scaled to 8 bits,
    CMYK and palettes converted); ``im`` is closed. A big photo is held about twice at once, not five times: no copy where nothing is
    converted, the decoded image let go as soon as it is converted, and the pixels taken out in
    strips (``np.array`` of a whole image holds its bytes twice over besides)."""
    out = im
    if out.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float grey
        arr = np.asarray(out, dtype=np.float64)
        top = 65535.0 if out.mode != "F" and arr.max(initial=0) > 255 else 255.0
        out = Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    target = {"L": "L", "RGBA": "RGBA"}.get(mode, "RGB")
    if out.mode != target:
        out = out.convert(target)
    if out is not im:
        im.close()
    try:
        return _pixels(out)
    finally:
        out.close()


_STRIP_BYTES = 1 << 20  # bytes of pixels taken out at a time


def _pixels(im: Image.Image) -> np.ndarray:
    """``np.array(im)`` without its two whole copies of the pixels as bytes: strip by strip."""
    w, h = im.size
    bands = len(im.getbands())  # L, RGB or RGBA: 8 bits a band
    rows = max(1, _STRIP_BYTES // max(1, w * bands))
    if rows >= h:
        return np.array(im)
    out = np.empty((h, w, bands) if bands > 1 else (h, w), np.uint8)
    for y in range(0, h, rows):
        out[y : y + rows] = np.asarray(im.crop((0, y, w, min(h, y + rows))))
    return out


def has_alpha(path: str | Path) -> bool:
    """Whether an image file carries transparency (from its header)."""
    _image_file(Path(path), shown(path))
    with _opening(shown(path)), open_image(path) as im:
        return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info) \
            or (im.mode in ("RGB", "L") and "transparency" in im.info)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header, EXIF orientation applied."""
    w, h, orientation = _size_and_orientation(path)
    return (h, w) if orientation in TURNED else (w, h)


TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# what Pillow's exif_transpose does for each EXIF orientation
_EXIF_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def _size_and_orientation(path: str | Path) -> tuple[int, int, int]:
    """(width, height) as stored, and the EXIF orientation (1: none), from the header."""
    _image_file(Path(path), shown(path))
    with _opening(shown(path)), open_image(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return w, h, orientation


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation of an image file (1 where it has none)."""
    return _size_and_orientation(path)[2]


def turned_as(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (h, w) uint8 turned as ``read_image`` turns an image of that EXIF orientation."""
    method = _EXIF_TURNS.get(orientation)
    if method is None:
        return pixels
    with Image.fromarray(pixels) as im, im.transpose(method) as out:
        return np.array(out)


class Problems:
    """Problems found while checking a spec's inputs, one line each, all reported together."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{key}: {message}" if key else message)

    def run(self, key: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, or None with its SpecError recorded under ``key``."""
        try:
            return fn(*args, **kwargs)
        except SpecError as e:
            for line in str(e).split("\n"):
                self.add(key, line)
            return None
