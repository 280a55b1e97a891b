"""Finished samples: the image and its labels, the only thing writers consume.

Conventions (one inside, converted only in writers): boxes are xyxy float pixels in
[0, W] x [0, H] (x1 = last column + 1); masks (H, W) bool; images (H, W, 3) uint8 RGB;
category ids are 0-based indices into the spec's class order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from typing import Any


@dataclass
class Annotation:
    category: str
    category_id: int
    """0-based index of ``category`` in the spec's classes."""
    bbox: tuple[float, float, float, float]
    """Tight box of ``mask``, xyxy pixels."""
    mask: np.ndarray
    """(H, W) bool: pixels where this object is on top."""
    area: int
    """Visible pixels (= mask.sum())."""
    visibility: float
    """Visible pixels / the object's own pixels (occlusion and truncation both count)."""
    truncation: float
    """Share of the object's own pixels outside the frame."""
    object_index: int
    """Index of this object in ``scene.objects``."""
    amodal_bbox: tuple[float, float, float, float] | None = None
    """Box of the whole object drawn alone, xyxy pixels; may reach outside the frame."""
    amodal_mask: np.ndarray | None = None
    """With amodal masks on: (H, W) bool, the whole object drawn alone, cut to the frame."""
    pose: np.ndarray | None = None
    """Renderer: (4, 4) model-to-camera, OpenCV camera axes (x right, y down, z forward), metres."""
    keypoints: np.ndarray | None = None
    """Renderer: (9, 3) x, y, v of the 3D box's 8 corners and centre; v = 2 visible, 1 hidden, 0 outside."""


@dataclass
class Sample:
    index: int
    image: np.ndarray
    annotations: list[Annotation]
    scene: Any
    """The planned scene (compositor.planning.Scene or renderer.planning.RenderScene)."""
    variant: str | None = None
    """The blend mode forced on every object when written as a blend variant, else None."""
    depth: np.ndarray | None = None
    """Renderer: (H, W) float32 metres along the optical axis, 0 where nothing was drawn."""
    camera_K: np.ndarray | None = None
    """Renderer: (3, 3) intrinsics matching the image, OpenCV convention."""

    @property
    def split(self) -> str:
        return self.scene.split

    @property
    def stem(self) -> str:
        """File stem: the zero-padded index, with ``-<variant>`` for a blend variant."""
        return f"{self.index:06d}" + (f"-{self.variant}" if self.variant else "")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[1], self.image.shape[0]

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy."""
        return np.array([a.bbox for a in self.annotations], np.float32).reshape(-1, 4)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 0-based category ids."""
        return np.array([a.category_id for a in self.annotations], np.int64)

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool. Where the annotations' masks are rows of one array, in order (as
        ``labels.annotate`` makes them), that array itself: writing into it writes into them."""
        h, w = self.image.shape[:2]
        if not self.annotations:
            return np.zeros((0, h, w), bool)
        first, n = self.annotations[0].mask, len(self.annotations)
        owner = first.base  # what the masks are views of (an array of them, or memory it is part of)
        if (isinstance(owner, np.ndarray) and owner.flags.c_contiguous
                and all(a.mask.base is owner and a.mask.dtype == bool and a.mask.shape == (h, w) and a.mask.flags.c_contiguous
                        and a.mask.ctypes.data == first.ctypes.data + j * h * w for j, a in enumerate(self.annotations))):
            # the annotations' masks are consecutive (H, W) rows, in order (labels.annotate makes them so)
            return np.ndarray((n, h, w), bool, buffer=owner, offset=first.ctypes.data - owner.ctypes.data)
        return np.stack([a.mask for a in self.annotations])
