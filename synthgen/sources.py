"""Files named by a spec: each path entry (a file, a folder or a glob, relative to the spec's
folder) listed eagerly, so a bad path fails before anything is written."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from .errors import SpecError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def expand_paths(base: Path, pattern: str, key: str) -> list[str]:
    """Files for one spec path entry (file, folder or glob), relative to ``base``, sorted."""
    full = base / pattern
    if full.is_dir():
        files = [p for p in sorted(full.iterdir()) if p.suffix.lower() in IMAGE_EXTS]
    elif any(ch in pattern for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(str(full), recursive=True)) if Path(p).suffix.lower() in IMAGE_EXTS]
    elif full.is_file():
        files = [full]
    else:
        raise SpecError(f"{key}: {pattern!r} does not exist (looked for {full})")
    if not files:
        raise SpecError(f"{key}: {pattern!r} matches no image files ({', '.join(IMAGE_EXTS)}) in {full}")
    if Path(pattern).is_absolute():
        return [str(p) for p in files]
    return [os.path.relpath(p, base) for p in files]
