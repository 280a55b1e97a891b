"""One run, start to finish: check everything, get --out ready, stream tasks through the local
executor, journal every finished task, assemble the whole-dataset files, write the summary.

Order matters for never losing work: every input is checked before the first file is written;
per-sample files are written atomically by whoever made the sample (the image last); a task is
journaled only after its part lines are on disk; whole-dataset files appear only when the run
finishes. A run stopped at any moment (Ctrl-C, kill -9 of any process, a full disk) leaves
nothing half-written, and ``--resume`` finishes it with the same bytes an uninterrupted run
writes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import SynthgenError
from ..writers import make_writers
from . import outdir
from .journal import Journal, result_of
from .pool import BACKENDS, Task, TaskResult, make_executor
from .scheduler import BLOCK, PerClassSchedule, block_count
from .stats import RunStats


class Interrupted(SynthgenError):
    """The run was stopped (Ctrl-C, SIGTERM); what was finished is kept and can be resumed.
    ``code`` is the exit status a shell gives a process the signal ended: 130, 143."""

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code


def execute(
    gen,
    out_dir: str | Path,
    n: int | None = None,
    per_class: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    shard: tuple[int, int] | str | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Write a dataset; see ``Generator.generate``."""
    if getattr(mp.current_process(), "_inheriting", False):
        # We are a spawned worker re-importing the user's script, which calls generate() at
        # import: one line instead of a traceback, and the parent fails the run at once.
        raise SystemExit("synthgen: generate() was called while a worker process was starting; "
                         "call it under `if __name__ == \"__main__\":`")
    if (n is None) == (per_class is None):
        raise SynthgenError("give exactly one of n (images) or per_class (labelled instances per class)")
    count = n if n is not None else per_class
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SynthgenError(f"{'n' if n is not None else 'per_class'} must be a whole number >= 0, got {count!r}")
    if count == 0:
        raise SynthgenError(f"{'n' if n is not None else 'per_class'} is 0: there is nothing to write")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SynthgenError(f"workers must be a whole number >= 1, got {workers!r}")
    if str(out_dir) == "":
        raise SynthgenError("--out is empty: name an output folder (an empty name would be the current folder)")
    part = parse_shard(shard, n, per_class)
    if backend not in BACKENDS:
        raise SynthgenError(f"--backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise SynthgenError("--ray-address needs --backend ray")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SynthgenError("--backend ray needs Ray: pip install 'synthgen[ray]'") from None
    gen.check()  # every input decoded or verified: all problems at once, nothing written yet
    request: dict[str, Any] = {"n": n} if n is not None else {"per_class": per_class}
    if part is not None:
        request["shard"] = f"{part[0]}/{part[1]}"
    try:
        folder, resuming = outdir.prepare(Path(out_dir), gen, request, overwrite=overwrite, resume=resume)
    except OSError as e:
        raise SynthgenError(f"--out {out_dir}: {e.filename or ''} {e.strerror or e}".replace("  ", " ")) from None
    journal = Journal(folder)
    if resuming:
        journal.check_parts()
    executor = None
    try:
        writers = make_writers(gen.spec)
        for w in writers:
            w.start(folder, gen.library)
        stats = RunStats(gen.spec)
        # whether the program handles SIGTERM itself, asked before ray.init installs its own
        program_sigterm = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        executor = make_executor(gen, folder, workers, backend, ray_address)
        if progress:  # every check passed: the run starts
            progress(0, 0)
        records = journal.replay() if resuming else iter(())
        with _stop_on_signals(sigterm=not program_sigterm) as stop:
            def consume(pairs: Iterator[tuple[Task, TaskResult | dict]]) -> Iterator[list[str]]:
                for task, result in pairs:
                    if isinstance(result, dict):  # replayed from the journal: already on disk
                        result = result_of(result)
                    else:
                        lines = [p for _, _, parts in result.images for p in parts]
                        journal.commit({"i": task[0], "v": [[split, labels] for split, labels, _ in result.images], "n": result.notes},
                                       lines)
                        for w in writers:
                            w.committed(folder, lines)
                    cats = stats.add(result)
                    if progress:
                        progress(stats.images_done, stats.instances_done)
                    if stop["requested"]:
                        what = "interrupted" if stop["requested"] == signal.SIGINT else f"terminated ({stop['requested'].name})"
                        raise Interrupted(f"{what}: {stats.images_done} images finished and kept in {folder.root}; "
                                          "finish the run with the same command and --resume", 128 + stop["requested"])
                    yield cats

            def run(tasks: Iterable[Task], total: int | None) -> Iterator[tuple[Task, TaskResult | dict]]:
                it = iter(tasks)
                for task in it:  # finished tasks first, from the journal
                    rec = next(records, None)
                    if rec is None:
                        it = _chain_one(task, it)
                        break
                    if rec["i"] != task[0]:
                        raise SynthgenError(f"{journal.path}: the journal does not match this run "
                                            f"(task {task[0]}, journal {rec['i']}); start again with --overwrite")
                    yield task, rec
                yield from executor.map(it, total)

            if n is not None:
                lo, hi = shard_range(n, part)
                for _ in consume(run(((i, None) for i in range(lo, hi)), hi - lo)):
                    pass
            else:
                blocks = None
                if part is not None:
                    lo, hi = shard_range(block_count(per_class), part)  # type: ignore[arg-type]
                    blocks = range(lo, hi)
                schedule = PerClassSchedule(gen.spec, gen.seed, per_class, blocks)  # type: ignore[arg-type]
                for tasks in schedule.rounds():
                    for cats in consume(run(tasks, sum(schedule.deficit.values()))):
                        schedule.record(cats)
        executor.close()
        executor = None
        journal.close()
        summary = finish(folder, writers, stats.summary(gen.seed, request))
        outdir.mark_complete(folder, gen, request)
        if part is None:
            journal.remove()  # a shard keeps its journal and parts: synthgen merge reads them
        folder.clean_temporary()
        return summary
    except OSError as e:
        raise SynthgenError(f"{e.filename or folder.root}: {e.strerror or e}; what was finished is kept: "
                            "free the space or fix the folder, then run again with --resume") from None
    finally:
        if executor is not None:
            executor.close()
        for close in (journal.close, folder.close, folder.clean_temporary):
            try:
                close()
            except OSError:
                pass  # the disk may still be full; what is journaled is safe


def finish(folder, writers: list, summary: dict[str, Any]) -> dict[str, Any]:
    """Assemble the whole-dataset files from the parts, then dataset.json."""
    folder.assembling()
    for w in writers:
        w.finish(folder)
    folder.write_file("dataset.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def parse_shard(shard: tuple[int, int] | str | None, n: int | None, per_class: int | None) -> tuple[int, int] | None:
    """``K/N`` (K counted from 0) as (K, N), checked against what the run makes."""
    if shard is None:
        return None
    text = shard if isinstance(shard, str) else f"{shard[0]}/{shard[1]}"
    try:
        k_s, n_s = str(text).split("/")
        k, count = int(k_s), int(n_s)
    except ValueError:
        raise SynthgenError(f"--shard {text}: give K/N, shard K of N counted from 0 (0/4, 1/4, 2/4, 3/4)") from None
    if count < 1 or not 0 <= k < count:
        raise SynthgenError(f"--shard {text}: K must be 0 to N-1 (shards are counted from 0: 0/{max(count, 1)} is the first)")
    if n is not None and count > n:
        raise SynthgenError(f"--shard {text}: more shards than the {n} images of --n {n}")
    if per_class is not None and count > block_count(per_class):
        raise SynthgenError(f"--shard {text}: --per-class {per_class} is made of {block_count(per_class)} block(s) of at most "
                            f"{BLOCK} instances per class, and a shard takes whole blocks: use at most "
                            f"{block_count(per_class)} shards")
    return k, count


def shard_range(total: int, part: tuple[int, int] | None) -> tuple[int, int]:
    """The items [lo, hi) of ``total`` that shard K of N makes: contiguous, in order, as even as can be."""
    if part is None:
        return 0, total
    k, count = part
    return total * k // count, total * (k + 1) // count


def _chain_one(first: Task, rest: Iterator[Task]) -> Iterator[Task]:
    yield first
    yield from rest


@contextmanager
def _stop_on_signals(sigterm: bool = True) -> Iterator[dict[str, Any]]:
    """Ctrl-C, or SIGTERM (what ``timeout``, ``docker stop``, Kubernetes and SLURM send before
    they kill) unless ``sigterm`` is False (the program has a handler of its own for it), asks
    the run to stop after the task being finished; ``state["requested"]`` is the signal. A
    second one stops at once. Ray's handler (``ray.init`` installs one that exits at once) is
    set aside for the run."""
    state: dict[str, Any] = {"requested": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame) -> None:
        if state["requested"]:
            raise KeyboardInterrupt
        state["requested"] = signal.Signals(signum)

    caught = [signal.SIGINT] + ([signal.SIGTERM] if sigterm else [])
    old = {s: signal.signal(s, handler) for s in caught}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)
