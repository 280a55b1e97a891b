"""What a run made, counted as it goes (memory does not grow with the number of images), and
the summary written to OUT/dataset.json."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import __version__
from .pool import TaskResult


class RunStats:
    def __init__(self, spec):
        self.spec = spec
        self.scenes = 0
        self.images: Counter = Counter()
        self.counts: dict[str, Counter] = {s: Counter() for s in spec.output.split}
        self.distinct: Counter = Counter()
        self.notes: Counter = Counter()
        # per class and target key: [labelled instances, of them in range, sum of the values]
        self.targets: dict[str, dict[str, list]] = {}
        for c in spec.categories:
            p = spec.placement_for(c)
            keys = [k for k in ("visibility_range", "truncation_range") if getattr(p, k, None) is not None]
            if keys:
                self.targets[c] = {k: [0, 0, 0.0] for k in keys}

    def add(self, result: TaskResult) -> list[str]:
        """Count one task's images; returns the classes it labelled (once, whatever the variants)."""
        for split, labels, _ in result.images:
            self.images[split] += 1
            self.counts[split].update(c for c, _, _ in labels)
        self.scenes += 1
        self.notes.update(result.notes)
        labels = result.images[0][1]  # every blend variant has the same labels
        self.distinct.update(c for c, _, _ in labels)
        for c, vis, trunc in labels:
            for key, agg in self.targets.get(c, {}).items():
                x = vis if key == "visibility_range" else trunc
                lo, hi = getattr(self.spec.placement_for(c), key)
                agg[0] += 1
                agg[1] += lo <= x <= hi
                agg[2] += x
        return [c for c, _, _ in labels]

    @property
    def images_done(self) -> int:
        return self.scenes

    @property
    def instances_done(self) -> int:
        return sum(self.distinct.values())

    def summary(self, seed: int, request: dict[str, int]) -> dict[str, Any]:
        spec, cats = self.spec, self.spec.categories
        return {
            "synthgen_version": __version__,
            "seed": seed,
            "request": request,
            "scenes": self.scenes,
            "images": sum(self.images.values()),
            "images_per_split": {s: self.images[s] for s in spec.output.split},
            "instances_per_class": {c: sum(self.counts[s][c] for s in self.counts) for c in cats},
            "instances_per_split": {s: {c: self.counts[s][c] for c in cats} for s in self.counts},
            "distinct_instances_per_class": {c: self.distinct[c] for c in cats},
            "blend_variants": list(spec.write_blend_variants),
            "targets": self._target_report(),
            "placement": {c: {"requested": self.notes[f"requested/{c}"], "placed": self.notes[f"placed/{c}"],
                              "labelled": self.distinct[c],
                              **({"upscale_capped": self.notes[f"upscale_capped/{c}"]} if spec.kind == "compositor" else {})}
                          for c in cats},
            "spec": spec.to_json(),
        }

    def _target_report(self) -> dict[str, Any]:
        """How well labelled instances met visibility_range / truncation_range, per class."""
        report: dict[str, Any] = {}
        for c, keys in self.targets.items():
            entry = {}
            for key, (n, inside, total) in keys.items():
                if n:
                    entry[key] = {"target": list(getattr(self.spec.placement_for(c), key)),
                                  "share_in_range": round(inside / n, 4), "mean": round(total / n, 4)}
            if entry:
                report[c] = entry
        return report
