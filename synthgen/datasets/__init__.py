"""Reading datasets on disk (synthgen's own output, and any COCO, YOLO or Pascal VOC dataset):
one reader layer shared by ``show``, ``report``, ``validate`` and the torch mixing dataset."""

from .coco import CocoFile, CocoImage, CocoObject
from .model import DiskDataset, Item, Obj
from .readers import FORMATS, CocoDataset, VocDataset, YoloDataset, open_dataset

__all__ = ["FORMATS", "CocoDataset", "CocoFile", "CocoImage", "CocoObject", "DiskDataset", "Item", "Obj",
           "VocDataset", "YoloDataset", "open_dataset"]
