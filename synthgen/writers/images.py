"""Image files: OUT/images/<split>/<id>.<jpg|png>."""

from __future__ import annotations

import cv2

from ..errors import SynthgenError
from ..sample import Sample
from .base import Encoded, Writer


def encode_image(image, image_format: str, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> encoded file bytes (deterministic for the same input)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise SynthgenError(f"could not encode an image as {image_format}")
    return buf.tobytes()


class ImageWriter(Writer):
    name = "images"

    def encode(self, sample: Sample) -> Encoded:
        out = self.spec.output
        return Encoded(files=[(self.image_file(sample), encode_image(sample.image, out.image_format, out.quality))])

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"images/{split}")
