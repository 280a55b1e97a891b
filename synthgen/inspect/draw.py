"""Draw a sample's labels over its image, for looking at your data."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import unicode_text
from ..sample import Sample


def palette(i: int) -> tuple[int, int, int]:
    """A distinct RGB colour for category ``i`` (golden-ratio hues)."""
    hue = int((i * 0.618033988749895 % 1.0) * 180)
    rgb = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


@dataclass
class Drawn:
    """What is drawn of one object: class (name and index for its colour), box xyxy pixels, and
    what the dataset has of the rest."""

    name: str
    index: int
    bbox: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    visibility: float | None = None
    truncation: float | None = None
    keypoints: np.ndarray | None = None
    """(9, 3) x, y, v: the 3D box's corners and centre (v = 0 outside, 1 hidden, 2 visible)."""


# the 3D box's edges between its corners (keypoint order of synthgen's renderer)
BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def draw_sample(sample: Sample, masks: bool = True, mask_alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the image with masks tinted, mask outlines, boxes and class names."""
    objs = [Drawn(a.category, a.category_id, a.bbox, a.mask, a.visibility, a.truncation, a.keypoints) for a in sample.annotations]
    return draw_objects(sample.image, objs, masks, mask_alpha)


def draw_objects(image: np.ndarray, objs: list[Drawn], masks: bool = True, mask_alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 RGB: ``image`` with each object's mask tinted and outlined, its box, its
    class (and visibility, truncation where known) and its projected 3D box where given."""
    out = image.copy()
    H, W = out.shape[:2]
    for o in objs:
        if masks and o.mask is not None:
            color = np.array(palette(o.index), np.float32)
            out[o.mask] = (out[o.mask] * (1 - mask_alpha) + color * mask_alpha).astype(np.uint8)
            edges, _ = cv2.findContours(o.mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, edges, -1, tuple(int(c) for c in color), 1)
    for o in objs:
        color = palette(o.index)
        if o.keypoints is not None and len(o.keypoints) >= 8:
            kp = o.keypoints
            for a, b in BOX_EDGES:
                if kp[a, 2] > 0 and kp[b, 2] > 0:
                    thick = 1 if min(kp[a, 2], kp[b, 2]) < 2 else 2  # an edge to a hidden corner: thin
                    cv2.line(out, (int(round(kp[a, 0])), int(round(kp[a, 1]))), (int(round(kp[b, 0])), int(round(kp[b, 1]))),
                             color, thick, cv2.LINE_AA)
        x0, y0, x1, y1 = (min(max(v, -1e6), 1e6) for v in o.bbox)
        # the box encloses pixels x0..x1-1: draw on its outermost pixels
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), color, 2)
        text = unicode_text(o.name)  # OpenCV crashes (SIGSEGV) on a lone surrogate, a name's non-UTF-8 byte
        if o.visibility is not None:
            text += f" {o.visibility:.0%}"
        if o.truncation:
            text += f" t{o.truncation:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        tx = int(min(max(x0, 0), max(0, W - tw - 4)))
        ty = int(y0) - 3 if y0 >= th + 6 else int(max(y0, 0)) + th + 3
        cv2.rectangle(out, (tx, ty - th - 3), (tx + tw + 4, ty + base - 1), color, -1)
        cv2.putText(out, text, (tx + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_item(item, categories: list[str], masks: bool = True) -> np.ndarray:
    """An image of a dataset on disk (``datasets.Item``) drawn with its labels."""
    from ..sources import read_image

    image = read_image(item.path, "RGB")
    H, W = image.shape[:2]
    objs = []
    for o in item.objects:
        name = o.category if o.category in categories else unicode_text(o.category)  # as a report's table shows it
        idx = categories.index(name) if name in categories else len(categories)
        m = o.mask(H, W) if masks else None
        objs.append(Drawn(o.category, idx, o.bbox, m, o.visibility, o.truncation, o.keypoints))
    return draw_objects(image, objs, masks)


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
