"""The output folder: every file a run writes goes through here.

- Every file is written atomically: to a temporary name in the run's bookkeeping folder
  (``OUT/.synthgen/tmp``, on the same filesystem), then renamed into place. A reader never sees
  half a file, whatever kills the run.
- Every file is recorded before it is created, in ``OUT/.synthgen/files-<pid>.log`` (one per
  process), so ``--overwrite`` can remove exactly what runs wrote and nothing else.
- Whole-dataset files (COCO, the manifest, BOP's JSON, ...) grow as parts in
  ``OUT/.synthgen/parts/`` and are assembled when the run finishes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

META = ".synthgen"  # the run's bookkeeping folder inside OUT
# What runs write at the top of OUT: --overwrite refuses these when it finds files in them that
# no run recorded.
OUTPUT_DIRS = ("images", "annotations", "labels", "voc", "depth", "bop", "masks", "masks_visib", "webdataset")
OUTPUT_FILES = ("manifest.jsonl", "dataset.json", "data.yaml")
ASSEMBLED = "assembled.txt"  # in META: the whole-dataset files written when the run finished


def write_atomic(path: Path, data: bytes) -> None:
    """One file written atomically outside a run's folder (a cutout bank, a picture, a
    report): to a temporary name beside it, then renamed into place; the temporary file is
    removed if the write fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class OutputFolder:
    """OUT as a run writes it. One per process; safe to use from several processes at once."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = self.root / META
        self.tmp = self.meta / "tmp"
        self.parts = self.meta / "parts"
        self._log = None
        self._assembled = None
        self._finishing = False
        self._dirs: set[str] = set()

    # -- recording ----------------------------------------------------------------------------
    def record(self, rels: Iterable[str], whole: bool = False) -> None:
        """Note files this run is about to create (before creating them)."""
        if self._log is None:
            self.meta.mkdir(exist_ok=True)
            self._log = (self.meta / f"files-{os.getpid()}.log").open("a", encoding="utf-8")
        text = "".join(r + "\n" for r in rels)
        self._log.write(text)
        self._log.flush()
        if whole or self._finishing:
            self._open_assembled()
            self._assembled.write(text)
            self._assembled.flush()

    def assembling(self) -> None:
        """From now on, what is written is whole-dataset files (also noted in ASSEMBLED: a merge
        of shards makes its own and takes only the per-sample files)."""
        self._finishing = True

    def _open_assembled(self) -> None:
        if self._assembled is None:
            self.meta.mkdir(exist_ok=True)
            self._assembled = (self.meta / ASSEMBLED).open("a", encoding="utf-8")

    def assembled(self) -> set[str]:
        """The whole-dataset files the run wrote when it finished."""
        p = self.meta / ASSEMBLED
        if not p.is_file():
            return set()
        # a damaged list is read as well as it can be: no line of it can name a file it should not
        return {line.rstrip("\n") for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()}

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._assembled is not None:
            self._assembled.close()
            self._assembled = None

    # -- files --------------------------------------------------------------------------------
    def makedirs(self, rel: str) -> None:
        if rel not in self._dirs:
            (self.root / rel).mkdir(parents=True, exist_ok=True)
            self._dirs.add(rel)

    def _temp(self, rel: str) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{os.getpid()}-{rel.replace('/', '__')}"

    def _install(self, tmp: Path, rel: str) -> None:
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if parent:
            self.makedirs(parent)
        os.replace(tmp, self.root / rel)

    def write_files(self, files: list[tuple[str, bytes]]) -> None:
        """Write a sample's files atomically, in the order given (callers put the image last, so
        an image on disk always has its labels beside it)."""
        self.record(rel for rel, _ in files)
        for rel, data in files:
            tmp = self._temp(rel)
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                self._install(tmp, rel)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def link_files(self, links: list[tuple[str, str]]) -> None:
        """Give existing files second names: (new path, existing path), relative to OUT."""
        self.record(rel for rel, _ in links)
        for rel, target in links:
            tmp = self._temp(rel)
            tmp.unlink(missing_ok=True)
            try:
                try:
                    os.link(self.root / target, tmp)
                except OSError:  # no hard links here (FAT, some network filesystems): a copy
                    shutil.copyfile(self.root / target, tmp)
                self._install(tmp, rel)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def take_file(self, rel: str, src: Path) -> None:
        """Install a file from elsewhere (another output folder) as ``rel``: a hard link where the
        filesystem allows, a copy otherwise; atomically, recorded, the source left as it is."""
        self.record([rel])
        tmp = self._temp(rel)
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
            self._install(tmp, rel)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_file(self, rel: str, data: bytes) -> None:
        self.write_files([(rel, data)])

    def assemble(self, rel: str, chunks: Iterable[str]) -> None:
        """Write a whole-dataset file from text chunks, streaming, atomically."""
        self.assemble_bytes(rel, (c.encode("utf-8") for c in chunks))

    def assemble_bytes(self, rel: str, chunks: Iterable[bytes]) -> None:
        """Write a whole-dataset file (noted as such, whenever it is written) from byte chunks,
        streaming, atomically."""
        self.record([rel], whole=True)
        tmp = self._temp(rel)
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            self._install(tmp, rel)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- parts ----------------------------------------------------------------------------------
    def part_path(self, name: str) -> Path:
        return self.parts / name.replace("/", "__")

    def part_lines(self, name: str) -> Iterator[str]:
        path = self.part_path(name)
        if not path.exists():
            return
        with path.open(encoding="utf-8") as f:
            yield from f

    def install_part(self, name: str, rel: str) -> None:
        """A part that is already the whole file, installed as ``rel`` (a hard link, no copy;
        the part stays until the run is complete, so finishing can be repeated)."""
        self.record([rel])
        src = self.part_path(name)
        tmp = self._temp(rel)
        tmp.unlink(missing_ok=True)
        if not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            src.touch()
        try:
            os.link(src, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(src, tmp)
        self._install(tmp, rel)

    def clean_temporary(self) -> None:
        """Remove what an interrupted write left behind (temporary files are never results)."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    def recorded(self) -> set[str]:
        """Every path any run in this folder recorded writing (relative to OUT)."""
        out: set[str] = set()
        if self.meta.is_dir():
            for log in sorted(self.meta.glob("files-*.log")):
                with log.open(encoding="utf-8", errors="replace") as f:
                    out.update(line.rstrip("\n") for line in f if line.strip())
        return out
