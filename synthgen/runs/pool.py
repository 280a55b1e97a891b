"""Where samples are made: in this process, or in spawned worker processes.

Workers are spawned, never forked (a forked child of a process holding a GL context hangs),
each with its own Generator (assets, backend) and encoders, built once by the initializer; the
Generator pickles as its spec. Each worker writes its samples' own files and hands back the
lines for whole-dataset files. Results come back in task order, through a bounded window of
chunks in flight, so memory does not grow with the number of tasks.

A worker that dies (killed, out of memory, or failing while it starts) ends the run at once
with a clear error: the executor marks every pending chunk failed as soon as a worker process
is gone, instead of waiting for ever on work that will never come back.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from multiprocessing.connection import wait
from typing import Any, Iterable, Iterator, NamedTuple

from ..errors import SynthgenError, SynthgenWarning
from ..writers import make_writers
from ..writers.images import ImageWriter
from .files import OutputFolder

Task = tuple[int, "list[str] | None"]
"""(sample index, the classes the per-class scheduler asked for, or None)"""
Labels = list[tuple[str, float, float]]
"""(class, visibility, truncation) of each labelled object"""


class TaskResult(NamedTuple):
    images: list[tuple[str, Labels, list[tuple[str, str]]]]
    """per image written for the task (one, or one per blend variant): split, labels, part lines"""
    notes: dict[str, int]
    """counts for the run's report (objects requested and placed per class, ...)"""

CHUNK = 16  # tasks per hand-off to a worker, at most
WINDOW = 4  # chunks in flight per worker


class WorkerDied(SynthgenError):
    """A worker process ended without finishing its work."""


def produce(gen, writers: list, folder: OutputFolder, task: Task) -> TaskResult:
    """Make a task's samples, write their own files (the image last), return the rest."""
    index, cats = task
    out = []
    samples = gen.samples(index, cats)
    for sample in samples:
        files, images, parts, links = [], [], [], []
        for w in writers:
            enc = w.encode(sample)
            (images if isinstance(w, ImageWriter) else files).extend(enc.files)
            parts.extend(enc.parts)
            links.extend(enc.links)
        folder.write_files(files + images)
        folder.link_files(links)
        labels = [(a.category, float(a.visibility), float(a.truncation)) for a in sample.annotations]
        out.append((sample.split, labels, parts))
    return TaskResult(out, samples[0].scene.notes())


class InProcess:
    """Tasks made one after another in this process."""

    def __init__(self, gen, folder: OutputFolder):
        self.gen, self.folder = gen, folder
        self.writers = make_writers(gen.spec)

    def map(self, tasks: Iterable[Task], total: int | None = None) -> Iterator[tuple[Task, TaskResult]]:
        for task in tasks:
            yield task, produce(self.gen, self.writers, self.folder, task)

    def close(self) -> None:
        pass


class WorkerPool:
    """Tasks made by ``workers`` spawned processes, results in task order."""

    def __init__(self, gen, folder: OutputFolder, workers: int):
        self.workers = workers
        self.received = False
        self.procs: list = []  # our own handles: the executor forgets a process once it is dead
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.ex = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                      initializer=_init_worker, initargs=(gen, str(folder.root), threads))

    def map(self, tasks: Iterable[Task], total: int | None = None) -> Iterator[tuple[Task, TaskResult]]:
        it = iter(tasks)
        # small batches when there is little to share out (a short per-class round), so every
        # worker gets some
        chunk = CHUNK if total is None else max(1, min(CHUNK, total // (2 * self.workers)))
        window: deque = deque()

        def submit() -> bool:
            batch = list(islice(it, chunk))
            if batch:
                window.append((batch, self.ex.submit(_produce_batch, batch)))
                if len(self.procs) < self.workers:
                    self.procs = list({id(p): p for p in [*self.procs, *getattr(self.ex, "_processes", {}).values()]}.values())
            return bool(batch)

        for _ in range(WINDOW * self.workers):
            if not submit():
                break
        while window:
            batch, fut = window.popleft()
            try:
                results = fut.result()
            except BrokenProcessPool:
                raise WorkerDied(self._death()) from None
            self.received = True
            submit()
            yield from zip(batch, results)

    def _death(self) -> str:
        for p in self.procs:
            if p.exitcode is None:
                p.join(timeout=0.5)  # let a dying process report how it ended
        dead = [p for p in self.procs if p.exitcode not in (None, 0)]
        how = "exited"
        if dead:
            code = dead[0].exitcode
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                how = f"was killed by {name}" + (" (out of memory?)" if code == -signal.SIGKILL else "")
            else:
                how = f"exited with code {code}"
        msg = f"a worker process {how} before finishing its samples; what was finished is kept: run again with --resume"
        if not self.received:
            msg += ("; workers are spawned and import the __main__ script again: if this run was started "
                    "from a Python script, call it under `if __name__ == \"__main__\":`")
        return msg

    def close(self) -> None:
        procs = list({id(p): p for p in [*self.procs, *getattr(self.ex, "_processes", {}).values()]}.values())
        for p in procs:
            if p.is_alive():
                p.kill()
        self.ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)


BACKENDS = ("local", "ray")


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_workers(workers: int) -> int:
    """Worker processes for ``workers`` asked of this machine: at most one per CPU (two on a
    machine of one), with a warning where fewer than asked. Each is a process of its own with
    its own decoded assets (about 200 MB for the demo); beyond the CPUs they add memory, not
    speed, and --workers 1000 would spawn processes until the machine ran out of memory."""
    most = max(2, available_cpus())
    if workers > most:
        warnings.warn(f"--workers {workers}: this machine gives synthgen {available_cpus()} CPUs; running {most} worker "
                      "processes (more would add memory, not speed)", SynthgenWarning, stacklevel=2)
        return most
    return workers


def make_executor(gen, folder: OutputFolder, workers: int, backend: str = "local", address: str | None = None):
    """local: this process (one worker) or spawned processes, at most one per CPU; ray: Ray
    actors (over a cluster: not capped by this machine's CPUs)."""
    if backend == "ray":
        from .ray_pool import RayPool

        return RayPool(gen, folder, workers, address)
    workers = local_workers(workers)
    return InProcess(gen, folder) if workers <= 1 else WorkerPool(gen, folder, workers)


# -- worker processes ----------------------------------------------------------------------
_worker: dict[str, Any] = {}


def limit_threads(threads: int) -> None:
    """Library threads for a process that shares the machine with other workers: OpenCV's pool
    and Mesa's software rasteriser (read when the GL context is made, later). With a worker per
    core, threads inside each only fight over the cores (measured: one in-process worker keeps
    a quarter of a second core busy for a 3% gain)."""
    import cv2

    cv2.setNumThreads(threads)
    os.environ.setdefault("LP_NUM_THREADS", str(threads))


def _init_worker(gen, root: str, threads: int = 1) -> None:
    # Ctrl-C and SIGTERM (sent to the whole group by a terminal, timeout, SLURM) are the main
    # process's to handle: it stops handing out work, keeps what is finished and ends the
    # workers (SIGKILL: what a worker was writing is not journaled, so --resume makes it again).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    limit_threads(threads)
    warnings.simplefilter("ignore", SynthgenWarning)  # the main process warned already, when it checked
    _exit_with_parent()
    _worker["gen"] = gen
    _worker["writers"] = make_writers(gen.spec)
    _worker["folder"] = OutputFolder(root)


def _exit_with_parent() -> None:
    """A worker whose main process is gone (killed) has no one to hand results to: leave."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="synthgen-parent-watch").start()


def _produce_batch(batch: list[Task]) -> list[TaskResult]:
    return [produce(_worker["gen"], _worker["writers"], _worker["folder"], t) for t in batch]
