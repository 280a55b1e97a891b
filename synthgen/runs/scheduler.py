"""The balanced per-class scheduler: ``--per-class N`` ends with exactly N labelled instances
of every class.

It works in rounds. Each round asks for at most the remaining deficit of each class, spread
over new images in round-robin class order (so images mix classes), with each image's object
count drawn from ``objects_per_image`` on the sample's own COUNT stream. A requested object
yields at most one label, so no class overshoots; objects dropped by the visibility filter
are asked for again in the next round. With ``negative_ratio`` r, each round adds
round(positives * r / (1 - r)) images with no labelled object. Rounds depend only on
(spec, seed, N) and the labels of earlier rounds, never on worker count or timing, so the run
is deterministic.
"""

from __future__ import annotations

from itertools import islice
from typing import Iterator

from ..errors import SynthgenError
from ..rng import COUNT, rng_for
from ..spec import Spec


def request_round(spec: Spec, seed: int, deficit: dict[str, int], first_index: int) -> Iterator[tuple[int, list[str]]]:
    """(index, categories) for the images of one round, starting at ``first_index``, made lazily
    (a round of a million instances is never held as a list)."""

    def queue() -> Iterator[str]:  # round-robin over the classes still short
        for j in range(max(deficit.values(), default=0)):
            for c in spec.categories:
                if deficit.get(c, 0) > j:
                    yield c

    q = queue()
    index = first_index
    positives = 0
    while True:
        k = max(1, int(spec.objects_per_image.sample(rng_for(seed, index, COUNT))))
        cats = list(islice(q, k))
        if not cats:
            break
        yield index, cats
        index += 1
        positives += 1
    # negative images (no labelled object) in the ratio asked for, after the round's positives
    r = spec.negative_ratio
    for _ in range(int(round(positives * r / (1 - r)))):
        yield index, []
        index += 1


class PerClassSchedule:
    """Iterate rounds of tasks; report each finished image's labels with ``record``."""

    def __init__(self, spec: Spec, seed: int, per_class: int, max_rounds: int = 100):
        self.spec = spec
        self.seed = seed
        self.deficit = {c: per_class for c in spec.categories}
        self.next_index = 0
        self.max_rounds = max_rounds

    def rounds(self) -> Iterator[Iterator[tuple[int, list[str]]]]:
        """Rounds of tasks. Finish (and ``record``) each round's tasks before asking for the next:
        a round is planned from the deficit its predecessors left."""
        stalled = 0
        for _ in range(self.max_rounds):
            if not any(self.deficit.values()):
                return
            before = dict(self.deficit)
            yield self._counted(request_round(self.spec, self.seed, dict(self.deficit), self.next_index))
            stalled = stalled + 1 if self.deficit == before else 0
            if stalled >= 5:
                break
        short = {c: d for c, d in self.deficit.items() if d}
        if short:
            raise SynthgenError(
                f"could not get enough visible instances of {short} after {self.next_index} images: "
                "objects keep falling below min_visibility/min_area; lower them or raise scale_range"
            )

    def _counted(self, tasks: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
        for task in tasks:
            self.next_index = task[0] + 1
            yield task

    def record(self, categories: list[str]) -> None:
        for c in categories:
            self.deficit[c] -= 1
