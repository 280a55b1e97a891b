"""YOLO (ultralytics conventions): OUT/labels/<split>/<id>.txt and OUT/data.yaml.

detect: ``class cx cy w h`` normalised to [0, 1]; segment: ``class x1 y1 x2 y2 ...``, one
polygon per object (parts and holes joined by zero-width bridges). Class ids are 0-based.
"""

from __future__ import annotations

import numpy as np
import yaml

from ..sample import Sample
from .base import Encoded, Writer
from .masks import contours, merge_segments


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def encode_yolo(sample: Sample, task: str = "detect") -> list[str]:
    """One line per annotation."""
    W, H = sample.size
    lines = []
    for a in sample.annotations:
        if task == "segment":
            parts, _ = contours(a.mask)
            poly = merge_segments(parts).astype(np.float64)
            # contour points are pixel centres: + 0.5 puts them in [0, W] continuous coordinates
            xy = np.stack([(poly[:, 0] + 0.5) / W, (poly[:, 1] + 0.5) / H], axis=1).clip(0, 1)
            lines.append(f"{a.category_id} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1)))
        else:
            x0, y0, x1, y1 = a.bbox
            cx, cy = _clip01((x0 + x1) / 2 / W), _clip01((y0 + y1) / 2 / H)
            bw, bh = _clip01((x1 - x0) / W), _clip01((y1 - y0) / H)
            lines.append(f"{a.category_id} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


class YoloWriter(Writer):
    name = "yolo"

    def encode(self, sample: Sample) -> Encoded:
        lines = encode_yolo(sample, self.spec.output.yolo_task)
        return Encoded(files=[(f"labels/{sample.split}/{sample.stem}.txt", "".join(line + "\n" for line in lines).encode())])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"labels/{split}")

    def finish(self, out) -> None:
        data = {"path": str(out.root.resolve())}
        for split in self.spec.output.split:
            data[split] = f"images/{split}"
        data["names"] = dict(enumerate(self.spec.categories))
        out.write_file("data.yaml", yaml.safe_dump(data, sort_keys=False).encode())
