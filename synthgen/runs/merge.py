"""``synthgen merge``: join the shards of a run (``generate --shard K/N``) into one dataset, the
same, byte for byte, as the run made unsharded.

A shard is a complete dataset of its own, and it keeps its journal and parts (the lines of its
whole-dataset files, in sample order) in ``.synthgen/``. Merging takes every shard's per-sample
files (hard links where the filesystem allows, copies otherwise; the shards are left as they
are), appends the shards' parts in shard order and assembles the whole-dataset files from them
with the same code a run finishes with; the counts of ``dataset.json`` are replayed from the
journals. COCO image ids are sample indices in every shard already; annotation ids are numbered
again over the merged file, as the unsharded run numbers them. Nothing is held in memory per
image.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import __version__
from ..errors import SynthgenError
from ..writers import make_writers
from . import outdir
from .files import META, OutputFolder
from .journal import JOURNAL, part_shortfall, result_of
from .run import finish
from .stats import RunStats


def merge(shards: list[str | Path], out: str | Path, overwrite: bool = False,
          progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Merge the shard folders into ``out``; returns the summary written to OUT/dataset.json."""
    if not shards:
        raise SynthgenError("merge: name the shard folders to merge")
    ordered, identity = check_shards(shards)
    out = Path(out)
    _guard(out, ordered)
    from ..spec import spec_from_dict

    spec = spec_from_dict(identity["spec"], name=f"{ordered[0]}/{META}/{outdir.RUN}")
    for shard in ordered:  # before the first file is written
        _check_journal_and_parts(OutputFolder(shard), spec)
    folder = _prepare(out, identity, overwrite)
    if progress:
        progress(0, 0)  # everything is checked: the merge starts
    try:
        writers = make_writers(spec)
        stats = RunStats(spec)
        images = 0
        for k, shard in enumerate(ordered):
            src = OutputFolder(shard)
            _take_files(folder, src)
            for rec in _records(src):
                stats.add(result_of(rec))
                images += 1
                if progress:
                    progress(images, stats.instances_done)
            _append_parts(folder, src)
        summary = finish(folder, writers, stats.summary(identity["seed"], identity["request"]))
        folder.write_file(f"{META}/{outdir.RUN}", outdir._run_json(identity, "complete"))
        shutil.rmtree(folder.parts, ignore_errors=True)
        return summary
    except OSError as e:
        raise SynthgenError(f"{e.filename or out}: {e.strerror or e}; nothing of the shards was changed: free the "
                            "space or fix the folder, then merge again with --overwrite") from None
    finally:
        folder.close()
        folder.clean_temporary()


def check_shards(shards: list[str | Path]) -> tuple[list[Path], dict[str, Any]]:
    """The shard folders in shard order, and the identity of the unsharded run they make."""
    by_k: dict[int, Path] = {}
    first: tuple[Path, dict[str, Any]] | None = None
    total = None
    for s in map(Path, shards):
        run = s / META / outdir.RUN
        if not run.is_file():
            raise SynthgenError(f"{s}: not a synthgen shard (no {META}/{outdir.RUN}); make shards with generate --shard K/N")
        rec = outdir._read_run(run)
        ident = rec.get("identity")
        request = ident.get("request") if isinstance(ident, dict) else None
        if not isinstance(request, dict) or not isinstance(ident.get("spec"), dict):
            raise SynthgenError(f"{run}: unreadable run record (no identity with a spec and a request); make the shard again")
        if "shard" not in request:
            raise SynthgenError(f"{s}: a whole run, not a shard (made without --shard K/N): nothing to merge it with")
        if rec.get("state") != "complete":
            raise SynthgenError(f"{s}: shard {request['shard']} is not finished; finish it with generate ... --shard "
                                f"{request['shard']} --resume")
        if ident.get("synthgen_version") != __version__:
            raise SynthgenError(f"{s}: made by synthgen {ident.get('synthgen_version')}, this is {__version__}; merge "
                                "with the version that made the shards")
        if not (s / META / JOURNAL).is_file():
            raise SynthgenError(f"{s}: shard {request['shard']} has lost its journal ({META}/{JOURNAL}); make it again")
        m = re.fullmatch(r"(\d+)/(\d+)", str(request["shard"]))
        if not m or not int(m[1]) < int(m[2]):
            raise SynthgenError(f"{run}: unreadable run record (shard {request['shard']!r} is not K/N); make the shard again")
        k, n = int(m[1]), int(m[2])
        whole = copy.deepcopy(ident)
        del whole["request"]["shard"]
        if first is None:
            first, total = (s, whole), n
        else:
            diff = outdir._first_difference(first[1], whole)
            if diff:
                raise SynthgenError(f"{s}: a shard of another run than {first[0]} ({diff})")
            if n != total:
                raise SynthgenError(f"{s}: shard {k}/{n}, but {first[0]} is one of {total} shards")
        if k in by_k:
            raise SynthgenError(f"{s}: shard {k}/{n} is given twice (also {by_k[k]})")
        by_k[k] = s
    assert first is not None and total is not None
    missing = [f"{k}/{total}" for k in range(total) if k not in by_k]
    if missing:
        raise SynthgenError(f"merge: shard(s) {', '.join(missing)} missing; give all {total} shards of the run")
    return [by_k[k] for k in range(total)], first[1]


def _check_journal_and_parts(src: OutputFolder, spec: Any) -> None:
    """Every line of a shard's journal is a record its labels can be counted from, and each of
    its parts (the lines of its COCO, manifest, ...) is as long as the journal's last record
    says: a part lost or cut would leave the shard's images without their labels in the merged
    dataset, silently."""
    path = src.meta / JOURNAL
    sizes: dict[str, int] = {}
    counted = RunStats(spec)  # thrown away: merge counts again as it takes the files
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                rec = json.loads(raw)
                counted.add(result_of(rec))
                sizes = dict(rec["o"])
                if not raw.endswith(b"\n") or not all(isinstance(v, int) for v in sizes.values()):
                    raise ValueError
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
                raise SynthgenError(f"{path}: line {n} is not a journal record synthgen wrote; make the shard "
                                    f"{src.root} again") from None
    short = part_shortfall(src, sizes, exact=True)
    if short:
        raise SynthgenError(f"{short[0]}: the part of this shard's {short[1]}; make the shard {src.root} again")


def _guard(out: Path, shards: list[Path]) -> None:
    target = out.resolve()
    for s in shards:
        r = s.resolve()
        if r == target or r in target.parents or target in r.parents:
            raise SynthgenError(f"--out {out}: it is, holds or lies inside the shard {s}; merge into a folder of its own")


def _prepare(out: Path, identity: dict[str, Any], overwrite: bool) -> OutputFolder:
    if out.exists() and not out.is_dir():
        raise SynthgenError(f"--out {out} exists and is not a folder")
    folder = OutputFolder(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SynthgenError(f"--out {out} is not empty; pass --overwrite to replace a previous run there")
        target = out.resolve()
        if target == Path(target.anchor) or target == Path.home().resolve():
            raise SynthgenError(f"--overwrite refuses --out {out}: it is the root of the filesystem or your home folder")
        outdir.remove_previous(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        folder.meta.mkdir(exist_ok=True)
    except OSError as e:
        raise SynthgenError(f"--out {out}: cannot create the folder: {e.strerror or e}") from None
    folder.write_file(f"{META}/{outdir.RUN}", outdir._run_json(identity, "merging"))
    return folder


def _recorded(src: OutputFolder) -> Iterator[str]:
    """The per-sample files a shard wrote (streamed from its logs; whole-dataset files and its
    bookkeeping left out)."""
    skip = src.assembled()
    for log in sorted(src.meta.glob("files-*.log")):
        with log.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                rel = line.rstrip("\n")
                if rel and rel not in skip and not rel.startswith(META + "/") and ".." not in rel.split("/"):
                    yield rel


def _take_files(folder: OutputFolder, src: OutputFolder) -> None:
    for rel in _recorded(src):
        path = src.root / rel
        if not path.is_file():
            raise SynthgenError(f"{path}: recorded as written by shard {src.root}, but it is gone; make the shard again")
        dest = folder.root / rel
        if dest.exists():
            if os.path.samefile(dest, path) or _same_bytes(dest, path):
                continue  # written by every shard (VOC's labelmap, BOP's models), or recorded twice
            raise SynthgenError(f"{path}: differs from the same file of another shard ({dest}); the shards do not "
                                "belong together")
        folder.take_file(rel, path)


def _same_bytes(a: Path, b: Path) -> bool:
    import filecmp

    return filecmp.cmp(a, b, shallow=False)


def _records(src: OutputFolder) -> Iterator[dict[str, Any]]:
    with (src.meta / JOURNAL).open("rb") as f:
        for raw in f:
            if raw.endswith(b"\n"):
                yield json.loads(raw)


def _append_parts(folder: OutputFolder, src: OutputFolder) -> None:
    if not src.parts.is_dir():
        return
    folder.parts.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.parts.iterdir()):
        with p.open("rb") as fin, (folder.parts / p.name).open("ab") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
