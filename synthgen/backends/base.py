"""What every backend returns: plain arrays, no labels (labels come from ``annotate``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Render:
    """The final pixels of one sample and who owns each of them.

    image : (H, W, 3) uint8 RGB, after every paste.
    instance_map : (H, W) int32; 0 = background, k + 1 = scene.objects[k] (the top-most object
        whose alpha >= ALPHA_ON at that pixel).
    own_area : (K,) int64, pixels of each object drawn alone on an unbounded canvas.
    inframe_area : (K,) int64, those of ``own_area`` that fall inside the frame.
    regions : (K, 4) int64 x0, y0, x1, y1 of a window clipped to the frame that holds all of
        each object's visible pixels (x1 <= x0 when it is wholly outside). Lets annotation look
        at a small window instead of the whole map.
    extras : backend-specific outputs (the renderer's depth, K, poses, amodal boxes and masks).
    """

    image: np.ndarray
    instance_map: np.ndarray
    own_area: np.ndarray
    inframe_area: np.ndarray
    regions: np.ndarray
    extras: dict = field(default_factory=dict)
