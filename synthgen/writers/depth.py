"""Depth maps: OUT/depth/<split>/<id>.png, 16-bit, millimetres (0 = nothing drawn)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import SynthgenError
from ..sample import Sample
from .base import Writer


def encode_depth_png(depth: np.ndarray) -> bytes:
    """(H, W) float32 metres -> 16-bit PNG bytes in millimetres, clipped to 65.535 m."""
    mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", mm, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise SynthgenError("could not encode a depth map")
    return buf.tobytes()


class DepthWriter(Writer):
    name = "depth"
    per_sample = True

    def encode(self, sample: Sample) -> tuple[str, bytes] | None:
        if sample.depth is None:
            return None
        return f"depth/{sample.split}/{sample.stem}.png", encode_depth_png(sample.depth)

    def start(self) -> None:
        for split in self.spec.output.split:
            (self.out_dir / "depth" / split).mkdir(parents=True, exist_ok=True)

    def write(self, payload) -> None:
        if payload is not None:
            (self.out_dir / payload[0]).write_bytes(payload[1])
