"""Depth maps: OUT/depth/<split>/<id>.png, 16-bit, millimetres (0 = nothing drawn)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import SynthgenError
from ..sample import Sample
from .base import Encoded, Writer


def encode_depth_png(depth: np.ndarray) -> bytes:
    """(H, W) float32 metres -> 16-bit PNG bytes in millimetres, clipped to 65.535 m."""
    mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", mm, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise SynthgenError("could not encode a depth map")
    return buf.tobytes()


class DepthWriter(Writer):
    name = "depth"

    def encode(self, sample: Sample) -> Encoded:
        if sample.depth is None:
            return Encoded()
        return Encoded(files=[(f"depth/{sample.split}/{sample.stem}.png", encode_depth_png(sample.depth))])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"depth/{split}")
