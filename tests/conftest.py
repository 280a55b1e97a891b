"""Fixtures: tiny assets made here (shapes with holes, several parts and soft alpha), and the
real ones in ../shared/data."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _rgba(shape_mask: np.ndarray, color: tuple[int, int, int], soft: bool) -> np.ndarray:
    h, w = shape_mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = color
    rgb[..., 0] = (rgb[..., 0].astype(int) + (xx * 3) % 60).clip(0, 255)  # some texture
    alpha = shape_mask.astype(np.float32) * 255
    if soft:
        alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    return np.dstack([rgb, alpha.astype(np.uint8)])


def make_assets(root: Path) -> Path:
    """Write a small asset tree under ``root``; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bg").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(160, 120), (90, 200), (300, 220)]):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        cv2.imwrite(str(root / "bg" / f"bg{i}.png"), img)
    # ring: one part with a hole; soft alpha
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 18, 1, -1)
    cv2.circle(ring, (20, 20), 8, 0, -1)
    # two parts
    pair = np.zeros((30, 50), np.uint8)
    pair[2:28, 2:20] = 1
    pair[10:25, 30:48] = 1
    # a thin bar, hard alpha
    bar = np.zeros((10, 60), np.uint8)
    bar[1:9, :] = 1
    (root / "ring").mkdir(exist_ok=True)
    (root / "pair").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "ring" / "ring.png"), cv2.cvtColor(_rgba(ring, (200, 40, 40), True), cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(root / "pair" / "pair.png"), cv2.cvtColor(_rgba(pair, (40, 200, 40), False), cv2.COLOR_RGBA2BGRA))
    # image + inverted mask pair, with a margin the cutout must be cropped from
    (root / "bar").mkdir(exist_ok=True)
    photo = np.full((50, 100, 3), 255, np.uint8)
    photo[20:30, 20:80] = (40, 40, 200)
    mask = np.full((50, 100), 255, np.uint8)
    mask[20:30, 20:80][bar[:, :] > 0] = 0  # black = object
    cv2.imwrite(str(root / "bar" / "bar.jpg"), photo)
    cv2.imwrite(str(root / "bar" / "bar.pbm"), mask)
    return root


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def base_spec(assets: Path) -> dict:
    return {
        "seed": 1,
        "output": {"size": [128, 96], "split": {"train": 0.75, "val": 0.25}},
        "backgrounds": {"paths": [str(assets / "bg")]},
        "classes": {
            "ring": {"source": str(assets / "ring")},
            "pair": {"source": str(assets / "pair")},
            "bar": {"source": str(assets / "bar"), "mask": "{stem}.pbm", "mask_inverted": True},
        },
        "objects_per_image": [1, 5],
        "placement": {"scale_range": [0.2, 0.7], "rotation_range": [-180, 180], "flip": 0.5,
                      "max_truncation": 0.4, "min_visibility": 0.2, "min_area": 10},
    }


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    return make_assets(tmp_path_factory.mktemp("assets"))


@pytest.fixture
def spec_file(assets: Path, tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec.yaml", base_spec(assets))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real assets not found at {SHARED}")
    return SHARED


@functools.lru_cache(maxsize=None)
def gl_error() -> str | None:
    """Why offscreen OpenGL (EGL) cannot start here, or None when it can."""
    code = ("import os; os.environ.setdefault('PYOPENGL_PLATFORM', 'egl'); import numpy as np; np.infty = np.inf; "
            "import pyrender; r = pyrender.OffscreenRenderer(8, 8); r.delete()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["unknown error"])[-1]


def needs_gl():
    return pytest.mark.skipif(gl_error() is not None, reason=f"no offscreen OpenGL (EGL) on this machine: {gl_error()}")
