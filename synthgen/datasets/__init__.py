"""Reading datasets on disk (synthgen's own output and any COCO dataset): one reader layer shared
by the torch mixing dataset and the inspection commands."""

from .coco import CocoFile, CocoImage, CocoObject

__all__ = ["CocoFile", "CocoImage", "CocoObject"]
