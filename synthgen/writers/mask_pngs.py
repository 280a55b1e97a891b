"""Per-object mask PNGs for the compositor, in BOP's naming (the renderer writes them inside its
BOP output): with ``placement.amodal_masks: true``,

    OUT/masks/<split>/<id>_<j>.png          the whole object drawn alone, cut to the frame (amodal)
    OUT/masks_visib/<split>/<id>_<j>.png    its visible pixels

``j`` is the annotation's position in the image (as in COCO's order); 255 = object, 0 = not.
"""

from __future__ import annotations

from ..sample import Sample
from .base import Encoded, Writer
from .bop import _png


class MaskPngWriter(Writer):
    name = "masks"

    def encode(self, sample: Sample) -> Encoded:
        files = []
        for j, a in enumerate(sample.annotations):
            files.append((f"masks_visib/{sample.split}/{sample.stem}_{j:06d}.png", _png(a.mask)))
            if a.amodal_mask is not None:
                files.append((f"masks/{sample.split}/{sample.stem}_{j:06d}.png", _png(a.amodal_mask)))
        return Encoded(files=files)

    def start(self, out, library) -> None:
        for split in self.spec.output.split:
            out.makedirs(f"masks/{split}")
            out.makedirs(f"masks_visib/{split}")
