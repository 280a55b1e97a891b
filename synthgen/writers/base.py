"""The writer lifecycle. Writers are pure encoders; every file operation belongs to the run
(``runs.files.OutputFolder``), which writes each file atomically and records it.

``encode(sample)`` is pure and may run in a worker process. It returns an ``Encoded``: the
sample's own files (relative path, bytes), written by the process that made the sample, and
lines for whole-dataset files ("parts"), appended in sample order by the main process and
kept in the run's bookkeeping folder until ``finish`` assembles them. ``start`` writes what
is known before any sample (BOP models, folders); ``finish`` assembles the whole-dataset files
from the parts. Nothing a writer keeps grows with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sample import Sample
from ..spec import Spec

if TYPE_CHECKING:
    from ..runs.files import OutputFolder


@dataclass
class Encoded:
    files: list[tuple[str, bytes]] = field(default_factory=list)
    """The sample's own files: (path relative to the output folder, content)."""
    parts: list[tuple[str, str]] = field(default_factory=list)
    """(part name, text ending in a newline) to append to a whole-dataset file's part."""
    links: list[tuple[str, str]] = field(default_factory=list)
    """(path, existing path): a second name for a file already written (a hard link, or a copy
    where the filesystem has none), made after the sample's other files."""


class Writer:
    name = "base"

    def __init__(self, spec: Spec):
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

    def encode(self, sample: Sample) -> Encoded:
        raise NotImplementedError

    def start(self, out: OutputFolder, library: Any) -> None:
        """Write what is known before the first sample (called again, harmlessly, on resume)."""

    def committed(self, out: OutputFolder, parts: list[tuple[str, str]]) -> None:
        """A task's part lines are on disk and journaled (called in task order, in the main
        process, for the tasks this process made): a writer may install what is now complete."""

    def finish(self, out: OutputFolder) -> None:
        """Assemble the whole-dataset files from this writer's parts."""
