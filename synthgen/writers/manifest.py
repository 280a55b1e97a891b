"""OUT/manifest.jsonl: one line per sample with its planned scene (every random choice)."""

from __future__ import annotations

import json

from ..sample import Sample
from .base import Encoded, Writer


class ManifestWriter(Writer):
    name = "manifest"

    def encode(self, sample: Sample) -> Encoded:
        record = {
            "index": sample.index,
            "split": sample.split,
            "file": self.image_file(sample),
            "variant": sample.variant,
            "seed": sample.scene.seed,
            "scene": sample.scene.to_json(),
            "labels": [
                {"object": a.object_index, "category": a.category, "bbox": list(a.bbox), "area": a.area,
                 "visibility": round(a.visibility, 6), "truncation": round(a.truncation, 6)}
                for a in sample.annotations
            ],
        }
        return Encoded(parts=[("manifest", json.dumps(record) + "\n")])

    def finish(self, out) -> None:
        out.install_part("manifest", "manifest.jsonl")
