"""Getting ``--out`` ready, and what ``--overwrite`` and ``--resume`` may do there.

A run records itself in ``OUT/.synthgen/run.json`` (what was asked for, and whether it is
complete) and every file it writes in ``OUT/.synthgen/files-*.log`` before writing it.

- A new run needs an empty or new ``--out``.
- ``--overwrite`` deletes exactly the files earlier runs recorded, and nothing else. It refuses,
  deleting nothing, when synthgen's output folders (``images/``, ``annotations/``, ``labels/``,
  ``voc/``, ``depth/``, ``bop/``) or files (``manifest.jsonl``, ``dataset.json``,
  ``data.yaml``) hold anything no run recorded, and it refuses ``/``, the home folder and any
  folder that holds the spec or one of its assets. Other files in ``--out`` are left alone.
- ``--resume`` finishes the run recorded in ``--out`` if it is the same run (spec, seed, count).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import SynthgenError
from .files import META, OUTPUT_DIRS, OUTPUT_FILES, OutputFolder

RUN = "run.json"


def identity(gen, request: dict[str, int]) -> dict[str, Any]:
    """What makes two runs the same run: resuming is allowed only between equal identities."""
    return {"synthgen_version": __version__, "seed": gen.seed, "request": request, "spec": gen.spec.to_json()}


def prepare(out: Path, gen, request: dict[str, int], overwrite: bool, resume: bool) -> tuple[OutputFolder, bool]:
    """Check ``out`` and make it ready; returns the folder and whether this run resumes one."""
    if out.is_symlink() and not out.exists():
        raise SynthgenError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist")
    if out.exists() and not out.is_dir():
        raise SynthgenError(f"--out {out} exists and is not a folder")
    folder = OutputFolder(out)
    run_file = folder.meta / RUN
    wanted = identity(gen, request)
    if resume and run_file.exists():
        rec = _read_run(run_file)
        if rec.get("state") == "complete":
            raise SynthgenError(f"--resume: the run in {out} is already complete")
        diff = _first_difference(rec.get("identity", {}), wanted)
        if diff:
            raise SynthgenError(f"--resume: {out} holds a different run ({diff}); resume it with the same "
                                "spec, --set, --seed and --n/--per-class, or choose another --out")
        folder.clean_temporary()
        return folder, True
    if resume and out.exists() and any(out.iterdir()):
        raise SynthgenError(f"--resume: {out} holds no synthgen run to resume (no {META}/{RUN})")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SynthgenError(f"--out {out} is not empty; pass --overwrite to replace a previous run there, "
                                "or --resume to finish an interrupted one")
        guard_overwrite(out, gen)
        remove_previous(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        folder.meta.mkdir(exist_ok=True)
    except OSError as e:
        raise SynthgenError(f"--out {out}: cannot create the folder: {e.strerror or e}") from None
    folder.write_file(f"{META}/{RUN}", _run_json(wanted, "running"))
    return folder, False


def mark_complete(folder: OutputFolder, gen, request: dict[str, int]) -> None:
    folder.write_file(f"{META}/{RUN}", _run_json(identity(gen, request), "complete"))


def _run_json(ident: dict[str, Any], state: str) -> bytes:
    return (json.dumps({"state": state, "identity": ident}, indent=1) + "\n").encode()


def _read_run(path: Path) -> dict[str, Any]:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rec, dict):
            raise ValueError("not a mapping")
        return rec
    except (OSError, ValueError) as e:
        raise SynthgenError(f"{path}: unreadable run record ({e})") from None


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return ""
    if a != b:
        return f"{path}: {_short(a)} there, {_short(b)} now"
    return ""


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def guard_overwrite(out: Path, gen) -> None:
    """Refuse to clear a folder that must never be cleared."""
    target = out.resolve()
    if target == Path(target.anchor):
        raise SynthgenError(f"--overwrite refuses --out {out}: it is the root of the filesystem")
    if target == Path.home().resolve():
        raise SynthgenError(f"--overwrite refuses --out {out}: it is your home folder")
    for p in [Path(gen.spec.base_dir), *gen.library.input_files()]:
        r = p.resolve()
        if r == target or target in r.parents:
            what = "the spec's folder" if p == Path(gen.spec.base_dir) else f"the asset {p}"
            raise SynthgenError(f"--overwrite refuses --out {out}: it holds {what}; choose an output folder "
                                "apart from your inputs")


def remove_previous(folder: OutputFolder) -> None:
    """Delete what earlier runs recorded writing; refuse (deleting nothing) if synthgen's output
    folders hold anything else."""
    root = folder.root
    recorded = folder.recorded()
    foreign: list[str] = []
    for name in OUTPUT_FILES:
        if (root / name).exists() and name not in recorded:
            foreign.append(name)
    for d in OUTPUT_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / d):
            dirnames.sort()
            for f in sorted(filenames):
                rel = Path(dirpath, f).relative_to(root).as_posix()
                if rel not in recorded:
                    foreign.append(rel)
            if len(foreign) > 3:
                break
    if foreign:
        more = " and more" if len(foreign) > 3 else ""
        raise SynthgenError(f"--overwrite: {root} holds files no synthgen run recorded writing "
                            f"({', '.join(foreign[:3])}{more}), so nothing was deleted; move them away or "
                            "choose another --out")
    tops = set(OUTPUT_DIRS) | set(OUTPUT_FILES) | {META}
    for rel in sorted(recorded):
        parts = rel.split("/")
        if parts[0] not in tops or ".." in parts or rel.startswith("/"):
            continue  # never outside what runs write
        p = root / rel
        if p.is_file() or p.is_symlink():
            p.unlink()
    for d in OUTPUT_DIRS:  # folders runs made, now empty
        for dirpath, _, _ in sorted(os.walk(root / d, topdown=False), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty: holds something of the user's
    folder.clean_temporary()
    for p in sorted(folder.meta.glob("*"), reverse=True):
        if p.is_file():
            p.unlink()
        else:
            shutil.rmtree(p, ignore_errors=True)
