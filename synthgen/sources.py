"""Files named by a spec: each path entry (a file, a folder or a glob, relative to the spec's
folder) listed eagerly, so a bad path fails before anything is written; the one image decoder,
which refuses truncated or corrupt files; and the collector that reports every problem at once."""

from __future__ import annotations

import errno
import glob
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SpecError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def expand_paths(base: Path, pattern: str, key: str) -> list[str]:
    """Files for one spec path entry (file, folder or glob), relative to ``base``, sorted."""
    if "\x00" in pattern:
        raise SpecError(f"{key}: {pattern!r} holds a NUL character")
    full = base / pattern
    if full.is_dir():
        files = [p for p in sorted(full.iterdir()) if p.suffix.lower() in IMAGE_EXTS]
    elif any(ch in pattern for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(str(full), recursive=True)) if Path(p).suffix.lower() in IMAGE_EXTS]
    elif full.is_file():
        files = [full]
    else:
        raise SpecError(f"{key}: {pattern!r} does not exist (looked for {shown(full)})")
    if not files:
        raise SpecError(f"{key}: {pattern!r} matches no image files ({', '.join(IMAGE_EXTS)}) in {shown(full)}")
    if Path(pattern).is_absolute():
        return [str(p) for p in files]
    return [os.path.relpath(p, base) for p in files]


MAX_PIXELS = 1 << 28  # 268 megapixels: larger images are refused, not decoded into memory


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
    """A path as errors show it: normalised, and relative to the working folder when inside it."""
    p = os.path.normpath(str(path))
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive (Windows)
        return p
    return rel if not rel.startswith("..") else p


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
    try:
        st = path.stat()
    except OSError as e:
        raise SpecError(f"{name}: {_why(e)}") from None
    if path.is_dir():
        raise SpecError(f"{name}: is a folder, not an image")
    if st.st_size == 0:
        raise SpecError(f"{name}: is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise SpecError(f"{name}: {w}x{h} is too large (more than {MAX_PIXELS // 1_000_000} megapixels)")
            im.load()
            return _as_array(ImageOps.exif_transpose(im), mode)
    except SpecError:
        raise
    except UnidentifiedImageError:
        raise SpecError(f"{name}: is not an image (or not one Pillow can read)") from None
    except OSError as e:
        if e.errno is not None:
            raise SpecError(f"{name}: {_why(e)}") from None
        raise SpecError(f"{name}: cannot be decoded: truncated or corrupt ({e})") from None
    except (SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError, MemoryError) as e:
        raise SpecError(f"{name}: cannot be decoded: truncated or corrupt ({e})") from None


def _as_array(im: Image.Image, mode: str) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float grey
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode != "F" and arr.max(initial=0) > 255 else 255.0
        im = Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    # np.array, not asarray: a writable array of our own (Pillow's buffer is read-only)
    return np.array(im.convert({"L": "L", "RGBA": "RGBA"}.get(mode, "RGB")))


def has_alpha(path: str | Path) -> bool:
    """Whether an image file carries transparency (from its header)."""
    with Image.open(path) as im:
        return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info) \
            or (im.mode in ("RGB", "L") and "transparency" in im.info)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header, EXIF orientation applied."""
    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


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
