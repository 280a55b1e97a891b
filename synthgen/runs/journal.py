"""The run journal: which tasks are finished, so a run killed at any moment can be resumed and
end byte-identical to one that was never stopped.

Per finished task (in task order) the main process appends the task's lines to the parts, flushes
them, then appends one journal line to ``OUT/.synthgen/journal.jsonl``: the task, what it
labelled (to replay the per-class scheduler and the counts) and the length of every part after
it. On resume, parts are cut back to the lengths of the last complete journal line, which drops
whatever a crash left half-appended, and the tasks after it are done again; their per-sample
files are rewritten with the same bytes.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ..errors import SynthgenError
from .files import OutputFolder

JOURNAL = "journal.jsonl"


def result_of(record: dict[str, Any]):
    """A journal record as the TaskResult it was made from (labels and notes; no part lines:
    those are on disk already)."""
    from .pool import TaskResult

    return TaskResult([(split, [tuple(x) for x in labels], []) for split, labels in record["v"]], record["n"])


def part_shortfall(folder: OutputFolder, sizes: dict[str, int], exact: bool) -> tuple[str, str] | None:
    """The first part shorter than ``sizes`` (a journal record's lengths) says, or of another
    length at all when ``exact`` (a finished shard's): (its path, "NAME lines WHAT is wrong")."""
    for name, size in sizes.items():
        part = folder.part_path(name)
        have = part.stat().st_size if part.is_file() else None
        if have is None or have < size or (exact and have != size):
            return str(part), f"{name} lines {'is missing' if have is None else f'holds {have} bytes, its journal says {size}'}"
    return None


class Journal:
    def __init__(self, folder: OutputFolder):
        self.folder = folder
        self.path = folder.meta / JOURNAL
        self._parts: dict[str, Any] = {}
        self._offsets: dict[str, int] = {}
        self._f = None

    # -- resume ---------------------------------------------------------------------------------
    def check_parts(self) -> None:
        """Before a resume writes anything: every part the journal's last record names is there
        and at least as long as it says. A part lost or cut (by hand, or by a disk) would be
        appended to from nothing, and the finished dataset would hold the interrupted run's
        images without their labels, silently."""
        short = part_shortfall(self.folder, self._tail_offsets(), exact=False)
        if short:
            raise SynthgenError(f"{short[0]}: the part of the run's {short[1]}: the interrupted run cannot be finished; "
                                "start it again with --overwrite")

    def _tail_offsets(self) -> dict[str, int]:
        """The part lengths in the journal's last complete record, read from its end (a journal
        holds a line per task: reading it all twice would cost a large run minutes)."""
        if not self.path.is_file():
            return {}
        with self.path.open("rb") as f:
            end = f.seek(0, 2)
            tail = b""
            while end > 0:
                start = max(0, end - (1 << 16))
                f.seek(start)
                tail = f.read(end - start) + tail
                end = start
                pieces = tail.split(b"\n")
                for raw in reversed(pieces[1 if start else 0 : -1]):  # whole lines only
                    try:
                        sizes = json.loads(raw)["o"]
                        if isinstance(sizes, dict) and all(isinstance(v, int) for v in sizes.values()):
                            return sizes
                    except (ValueError, KeyError, TypeError):
                        continue
        return {}

    def replay(self) -> Iterator[dict[str, Any]]:
        """The finished tasks' records, in order; afterwards the journal and every part are cut
        back to the last complete record, ready to append to."""
        good = 0  # bytes of the journal that hold complete records
        last: dict[str, int] = {}
        if self.path.exists():
            with self.path.open("rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break  # a line cut short by a crash
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        break
                    good += len(raw)
                    last = rec["o"]
                    yield rec
            with self.path.open("r+b") as f:
                f.truncate(good)
        self._offsets = dict(last)
        if self.folder.parts.is_dir():
            for p in self.folder.parts.iterdir():
                name = p.name.replace("__", "/")
                keep = last.get(name, 0)
                if p.stat().st_size != keep:
                    with p.open("r+b") as f:
                        f.truncate(keep)

    # -- appending ------------------------------------------------------------------------------
    def _part(self, name: str):
        f = self._parts.get(name)
        if f is None:
            self.folder.parts.mkdir(parents=True, exist_ok=True)
            f = self._parts[name] = open(self.folder.part_path(name), "ab")
        return f

    def commit(self, record: dict[str, Any], parts: list[tuple[str, str]]) -> None:
        """Append a finished task's part lines, then its journal line."""
        touched = set()
        for name, text in parts:
            self._part(name).write(text.encode("utf-8"))
            touched.add(name)
        for name in touched:
            f = self._parts[name]
            f.flush()
            self._offsets[name] = f.tell()
        if self._f is None:
            self._f = self.path.open("a", encoding="utf-8")
        self._f.write(json.dumps({**record, "o": self._offsets}, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        for f in self._parts.values():
            f.close()
        self._parts.clear()
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self) -> None:
        """The run is complete: the journal and parts are no longer needed."""
        self.close()
        self.path.unlink(missing_ok=True)
        if self.folder.parts.is_dir():
            for p in self.folder.parts.iterdir():
                os.unlink(p)
            self.folder.parts.rmdir()
