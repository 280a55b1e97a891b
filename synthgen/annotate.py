"""Labels from the final pixels: the instance map of a Render, after every paste."""

from __future__ import annotations

import numpy as np

from .backends.base import Render
from .plan import Scene
from .sample import Annotation
from .spec import Spec


def annotate(spec: Spec, scene: Scene, render: Render) -> list[Annotation]:
    """One Annotation per labelled object that passes min_visibility and min_area, bottom to top.

    Objects that fail the filter stay in the image (they were pasted) but get no label; the
    policy is the spec's ``min_visibility`` (visible / own pixels) and ``min_area`` (visible
    pixels), per class.
    """
    H, W = render.instance_map.shape
    names = spec.categories
    out = []
    for k, obj in enumerate(scene.objects):
        if not obj.labelled or obj.category is None or render.own_area[k] == 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in render.regions[k])
        if x1 <= x0 or y1 <= y0:
            continue
        window = render.instance_map[y0:y1, x0:x1] == k + 1
        area = int(np.count_nonzero(window))
        if area == 0:
            continue
        own = int(render.own_area[k])
        visibility = area / own
        truncation = 1.0 - int(render.inframe_area[k]) / own
        p = spec.placement_for(obj.category)
        if visibility < p.min_visibility or area < p.min_area:
            continue
        cols = np.flatnonzero(window.any(axis=0))
        rows = np.flatnonzero(window.any(axis=1))
        bbox = (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1))
        mask = np.zeros((H, W), bool)
        mask[y0:y1, x0:x1] = window
        out.append(Annotation(obj.category, names.index(obj.category), bbox, mask, area, visibility, truncation, k))
    return out
