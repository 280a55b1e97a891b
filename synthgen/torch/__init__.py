"""Inside the training loop: PyTorch datasets that generate samples on the fly (``pip install
synthgen[torch]``).

- ``SynthDataset(spec, length)``: map-style; item ``i`` of epoch ``e`` is sample
  ``e * length + i``, made when it is asked for (no disk). ``set_epoch(e)`` gives every epoch
  new samples: a dataset written with ``synthgen generate SPEC --n length*E`` (same spec and
  seed) holds exactly the samples of epochs 0 to E-1, image id = sample index.
- ``SynthIterableDataset(spec)``: an endless (or bounded) stream, split across DataLoader workers
  and ``torch.distributed`` ranks with no duplicates and no gaps.
- ``MixedDataset(real, synthetic, real_fraction)``: real COCO images mixed in at a fixed share.
- ``DataLoader``: torch's, with the detection ``collate`` and, for the renderer, spawned workers
  (a worker forked from a process that holds an OpenGL context hangs).

Items follow torchvision's detection convention: ``(image, target)``, image uint8 CHW (a
``tv_tensors.Image`` when torchvision is installed; float32 in [0, 1] with
``float_images=True``), target ``boxes`` (N, 4) float32 XYXY pixels (``tv_tensors.BoundingBoxes``
with the canvas size when torchvision is installed), ``labels`` int64 **1-based** (0 is the
background class of torchvision's detectors: label = class id in spec order + 1), ``masks``
uint8 (N, H, W), ``image_id`` (the sample index, as COCO files write it), ``area`` float32
(visible pixels), ``iscrowd`` int64 zeros, and from the renderer when asked: ``keypoints``
(N, 9, 3: x, y, visibility), ``depth`` (H, W) float32 metres, ``camera_K`` (3, 3), ``poses``
(N, 4, 4) model-to-camera, OpenCV axes. An image with no object gets tensors of shape (0, 4),
(0,), (0, H, W): never a missing key.
"""

from __future__ import annotations

from .datasets import ENDLESS_EPOCH, CocoDataset, MixedDataset, SynthDataset, SynthIterableDataset
from .items import to_torch
from .loader import DataLoader, collate
from .segments import POOL_SLOTS

__all__ = ["ENDLESS_EPOCH", "POOL_SLOTS", "CocoDataset", "DataLoader", "MixedDataset", "SynthDataset",
           "SynthIterableDataset", "collate", "to_torch"]
