"""Draw a sample's labels over its image, for looking at your data."""

from __future__ import annotations

import cv2
import numpy as np

from ..sample import Sample


def palette(i: int) -> tuple[int, int, int]:
    """A distinct RGB colour for category ``i`` (golden-ratio hues)."""
    hue = int((i * 0.618033988749895 % 1.0) * 180)
    rgb = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def draw_sample(sample: Sample, masks: bool = True, mask_alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the image with masks tinted, mask outlines, boxes and class names."""
    out = sample.image.copy()
    for a in sample.annotations:
        color = np.array(palette(a.category_id), np.float32)
        if masks:
            out[a.mask] = (out[a.mask] * (1 - mask_alpha) + color * mask_alpha).astype(np.uint8)
            edges, _ = cv2.findContours(a.mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, edges, -1, tuple(int(c) for c in color), 1)
    for a in sample.annotations:
        color = palette(a.category_id)
        x0, y0, x1, y1 = a.bbox
        # the box encloses pixels x0..x1-1: draw on its outermost pixels
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), color, 2)
        text = f"{a.category} {a.visibility:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = int(y0) - 3 if y0 >= th + 6 else int(y0) + th + 3
        cv2.rectangle(out, (int(x0), ty - th - 3), (int(x0) + tw + 4, ty + base - 1), color, -1)
        cv2.putText(out, text, (int(x0) + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def grid(images: list[np.ndarray], cols: int, pad: int = 4) -> np.ndarray:
    """Tile same-sized RGB images into one, white gaps of ``pad`` pixels."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return out


def depth_image(depth: np.ndarray) -> np.ndarray:
    """(H, W) float metres -> (H, W, 3) uint8 RGB, near = warm, far = cool, nothing = black."""
    valid = depth > 0
    out = np.zeros(depth.shape + (3,), np.uint8)
    if not valid.any():
        return out
    lo, hi = float(depth[valid].min()), float(depth[valid].max())
    norm = np.zeros(depth.shape, np.uint8)
    norm[valid] = np.clip(255 * (1 - (depth[valid] - lo) / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(norm, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[valid] = colour[valid]
    return out
