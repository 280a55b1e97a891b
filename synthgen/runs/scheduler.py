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

A run of more than BLOCK instances per class is split into blocks, so that it can be sharded
(``--shard K/N`` runs whole blocks) with the shards merging into exactly the unsharded run:
B = ceil(N / BLOCK) blocks, block b aims for N(b+1)//B - Nb//B instances of every class with
rounds of its own, and numbers its images in its own lane, b, b + B, b + 2B, ... (so no block
needs to know how many images another used). Blocks run one after another, in order. A run of
at most BLOCK per class is one block in lane 0, 1, 2, ...
"""

from __future__ import annotations

from itertools import islice
from typing import Iterator, Sequence

from ..errors import SynthgenError
from ..rng import COUNT, rng_for
from ..spec import Spec


BLOCK = 100  # labelled instances per class in one block of a --per-class run


def block_count(per_class: int) -> int:
    """How many blocks a --per-class run of ``per_class`` is made of (the most shards it takes)."""
    return max(1, -(-per_class // BLOCK))


def request_round(spec: Spec, seed: int, deficit: dict[str, int], first_index: int, stride: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(index, categories) for the images of one round, from ``first_index`` in steps of
    ``stride``, made lazily (a round of a million instances is never held as a list)."""

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
        index += stride
        positives += 1
    # negative images (no labelled object) in the ratio asked for, after the round's positives
    r = spec.negative_ratio
    for _ in range(int(round(positives * r / (1 - r)))):
        yield index, []
        index += stride


class PerClassSchedule:
    """Iterate rounds of tasks; report each finished image's labels with ``record``. ``blocks``
    limits the run to some of its blocks (a shard)."""

    def __init__(self, spec: Spec, seed: int, per_class: int, blocks: Sequence[int] | None = None, max_rounds: int = 100):
        self.spec = spec
        self.seed = seed
        self.per_class = per_class
        self.count = block_count(per_class)
        self.blocks = range(self.count) if blocks is None else blocks
        self.deficit = {c: 0 for c in spec.categories}
        self.next_index = 0
        self.max_rounds = max_rounds

    def quota(self, block: int) -> int:
        """Instances per class block ``block`` aims for."""
        n, b = self.per_class, self.count
        return n * (block + 1) // b - n * block // b

    def rounds(self) -> Iterator[Iterator[tuple[int, list[str]]]]:
        """Rounds of tasks. Finish (and ``record``) each round's tasks before asking for the next:
        a round is planned from the deficit its predecessors left."""
        for block in self.blocks:
            self.deficit = {c: self.quota(block) for c in self.spec.categories}
            self.next_index = block
            yield from self._block_rounds(block)

    def _block_rounds(self, block: int) -> Iterator[Iterator[tuple[int, list[str]]]]:
        stalled = 0
        for _ in range(self.max_rounds):
            if not any(self.deficit.values()):
                return
            before = dict(self.deficit)
            yield self._counted(request_round(self.spec, self.seed, dict(self.deficit), self.next_index, self.count))
            stalled = stalled + 1 if self.deficit == before else 0
            if stalled >= 5:
                break
        short = {c: d for c, d in self.deficit.items() if d}
        if short:
            where = f" of block {block} of {self.count}" if self.count > 1 else ""
            raise SynthgenError(
                f"could not get enough visible instances of {short}{where} after {(self.next_index - block) // self.count} "
                "images: objects keep falling below min_visibility/min_area; lower them or raise scale_range"
            )

    def _counted(self, tasks: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
        for task in tasks:
            self.next_index = task[0] + self.count
            yield task

    def record(self, categories: list[str]) -> None:
        for c in categories:
            self.deficit[c] -= 1
