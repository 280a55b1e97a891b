"""Writers: pure encoders plus streaming file sinks, one module per format."""

from __future__ import annotations

from ..spec import Spec
from .base import Encoded, Writer
from .bop import BopWriter
from .depth import DepthWriter, encode_depth_png
from .coco import CocoWriter, encode_coco
from .images import ImageWriter, encode_image
from .manifest import ManifestWriter
from .mask_pngs import MaskPngWriter
from .voc import VocWriter, encode_voc, voc_box
from .webdataset import WebDatasetWriter
from .yolo import YoloWriter, encode_yolo

FORMATS: dict[str, type[Writer]] = {"coco": CocoWriter, "yolo": YoloWriter, "voc": VocWriter, "bop": BopWriter,
                                    "webdataset": WebDatasetWriter}


def make_writers(spec: Spec) -> list[Writer]:
    """Images and manifest always, depth for the renderer, then the spec's label formats."""
    extra: list[Writer] = [DepthWriter(spec)] if spec.kind == "renderer" and spec.output.depth else []
    if spec.kind == "compositor" and spec.placement.amodal_masks:
        extra.append(MaskPngWriter(spec))
    return [ImageWriter(spec), ManifestWriter(spec), *extra] + [FORMATS[f](spec) for f in spec.output.formats]


__all__ = [
    "FORMATS", "BopWriter", "Encoded", "CocoWriter", "DepthWriter", "encode_depth_png", "ImageWriter", "ManifestWriter", "VocWriter", "WebDatasetWriter", "Writer", "YoloWriter",
    "encode_coco", "encode_image", "encode_voc", "encode_yolo", "make_writers", "voc_box",
]
