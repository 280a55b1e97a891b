"""Samples made by Ray actors (``--backend ray``), for clusters; the optional extra ``synthgen[ray]``.

Each actor owns one Generator (assets, backend) and the writers' encoders, like a local worker
process, and does all of its work in one thread of its own: the backend is created in that
thread, and an EGL context (the renderer's) belongs to the thread that made it, while Ray runs
an actor's calls in threads of its choosing. An actor writes its samples' own files straight
into ``--out`` (on a cluster, a folder every node sees: a shared filesystem) and hands back the
lines for whole-dataset files; the driver journals them in task order, exactly as with local
workers, so the output is the same bytes and ``--resume`` works the same.

A dead actor (its node lost, the process killed, out of memory) is replaced and the batches it
had not finished are given to the new one: redone, not lost (their files are rewritten with the
same bytes). Plain actors, not Ray Data's actor pools, which deadlock on small machines.
"""

from __future__ import annotations

import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator

from ..errors import SynthgenError, SynthgenWarning
from .files import OutputFolder
from .pool import CHUNK, WINDOW, Task, TaskResult, WorkerDied, produce

MAX_REPLACEMENTS = 8  # actors replaced per run before it gives up (something kills every actor)


class _Producer:
    """The body of a Ray actor: one Generator, used only from the actor's rendering thread."""

    def __init__(self, gen, root: str):
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="synthgen-render")
        self._thread.submit(self._setup, gen, root).result()

    def _setup(self, gen, root: str) -> None:
        from ..writers import make_writers

        warnings.simplefilter("ignore", SynthgenWarning)  # the driver warned already, when it checked
        self.gen, self.writers, self.folder = gen, make_writers(gen.spec), OutputFolder(root)

    def produce(self, batch: list[Task]) -> list[TaskResult]:
        return self._thread.submit(lambda: [produce(self.gen, self.writers, self.folder, t) for t in batch]).result()

    def thread(self) -> tuple[int, str]:
        """(process id, the rendering thread's id), for tests."""
        import os

        return os.getpid(), self._thread.submit(threading.get_ident).result()


class RayPool:
    """Tasks made by ``workers`` Ray actors, results in task order."""

    def __init__(self, gen, folder: OutputFolder, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise SynthgenError("--backend ray needs Ray: pip install 'synthgen[ray]'") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(num_cpus=workers, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SynthgenError(f"--backend ray: could not start or reach Ray{f' at {address}' if address else ''}: {e}") from None
            self.started = True
        self.gen, self.root, self.workers = gen, str(folder.root), workers
        self.remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Producer)
        self.actors = [self._new_actor() for _ in range(workers)]
        self.generation = [0] * workers
        self.replaced = 0

    def _new_actor(self):
        return self.remote.remote(self.gen, self.root)

    def map(self, tasks: Iterable[Task], total: int | None = None) -> Iterator[tuple[Task, TaskResult]]:
        ray = self.ray
        it = iter(tasks)
        chunk = CHUNK if total is None else max(1, min(CHUNK, total // (2 * self.workers)))
        window: deque = deque()  # [batch, actor slot, generation, object ref]
        turn = [0]

        def submit(batch: list[Task] | None = None, slot: int | None = None) -> bool:
            if batch is None:
                batch = list(islice(it, chunk))
                if not batch:
                    return False
            if slot is None:
                slot = turn[0] % self.workers
                turn[0] += 1
            window.append([batch, slot, self.generation[slot], self.actors[slot].produce.remote(batch)])
            return True

        for _ in range(WINDOW * self.workers):
            if not submit():
                break
        while window:
            entry = window[0]
            batch, slot, gen_no, ref = entry
            try:
                results = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                self._replace(slot, gen_no, e)
                entry[2], entry[3] = self.generation[slot], self.actors[slot].produce.remote(batch)  # redone, in place
                continue
            except ray.exceptions.RayTaskError as e:  # the work itself failed: the same error as in-process
                raise e.as_instanceof_cause() from None
            window.popleft()
            submit()
            yield from zip(batch, results)

    def _replace(self, slot: int, gen_no: int, error: Exception) -> None:
        if self.generation[slot] != gen_no:
            return  # replaced already, when an earlier batch of the same actor failed
        self.replaced += 1
        if self.replaced > MAX_REPLACEMENTS:
            raise WorkerDied(f"Ray actors keep dying ({self.replaced} replaced; the last: {error}); what was finished "
                             "is kept: run again with --resume")
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self.actors[slot] = self._new_actor()
        self.generation[slot] += 1

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self.started:
            self.ray.shutdown()
