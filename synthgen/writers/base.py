"""The writer lifecycle.

``encode(sample)`` is pure (sample -> small picklable payload: bytes, strings, dicts) and may
run in a worker process. ``start`` and ``finish`` run once in the main process. ``write(payload)``
does the file I/O: for a writer whose files are one per sample (``per_sample = True``: images,
YOLO, VOC) it runs in the process that made the sample, since order does not matter there;
for a writer that streams into shared files (COCO, the manifest) it runs in the main process,
in sample order. Writers stream: memory does not grow with the number of samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..sample import Sample
from ..spec import Spec


class Writer:
    name = "base"
    per_sample = False
    """True when each sample gets files of its own, written wherever the sample was made."""

    def __init__(self, out_dir: Path, spec: Spec):
        self.out_dir = Path(out_dir)
        self.spec = spec

    def image_id(self, sample: Sample) -> int:
        """The integer id of the sample's image in every format that numbers images: the sample
        index (the file stem), or, for a blend variant, 10 x index + the variant's position in
        ``write_blend_variants`` (at most 5 modes, so ids never collide)."""
        if sample.variant is None:
            return sample.index
        return 10 * sample.index + list(self.spec.write_blend_variants).index(sample.variant)

    def image_file(self, sample: Sample) -> str:
        """Image path relative to the output folder."""
        return f"images/{sample.split}/{sample.stem}.{self.spec.output.image_format}"

    def encode(self, sample: Sample) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        """Create folders; called once before the first write."""

    def write(self, payload: Any) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the files; called once after the last write."""
