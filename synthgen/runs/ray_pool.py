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
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator

from ..errors import SynthgenError, SynthgenWarning
from .files import OutputFolder
from .pool import CHUNK, WINDOW, Task, TaskResult, WorkerDied, limit_threads, produce

MAX_REPLACEMENTS = 8  # actors replaced per run before it gives up (something kills every actor)


class _Producer:
    """The body of a Ray actor: one Generator, used only from the actor's rendering thread."""

    def __init__(self, gen, root: str):
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="synthgen-render")
        self._thread.submit(self._setup, gen, root).result()

    def _setup(self, gen, root: str) -> None:
        from ..writers import make_writers

        warnings.simplefilter("ignore", SynthgenWarning)  # the driver warned already, when it checked
        limit_threads(1)  # an actor holds one CPU of Ray's
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
        """Batches go to the actor with the least in flight and are collected as they finish
        (a slow actor does not hold up the others); results are handed on in task order."""
        ray = self.ray
        it = iter(tasks)
        chunk = CHUNK if total is None else max(1, min(CHUNK, total // (2 * self.workers)))
        cap = WINDOW * self.workers  # batches in flight or waiting to be handed on, at most
        flying: dict[Any, list] = {}  # object ref -> [sequence number, batch, actor slot, generation]
        done: dict[int, tuple[list[Task], list[TaskResult]]] = {}
        busy = [0] * self.workers
        seq = [0, 0]  # next to submit, next to hand on
        exhausted = False

        def send(n: int, batch: list[Task]) -> None:
            slot = busy.index(min(busy))
            busy[slot] += 1
            flying[self.actors[slot].produce.remote(batch)] = [n, batch, slot, self.generation[slot]]

        while True:
            while not exhausted and len(flying) + len(done) < cap:
                batch = list(islice(it, chunk))
                if not batch:
                    exhausted = True
                    break
                send(seq[0], batch)
                seq[0] += 1
            while seq[1] in done:
                batch, results = done.pop(seq[1])
                seq[1] += 1
                yield from zip(batch, results)
            if not flying:
                if exhausted and not done:
                    return
                continue
            ready, _ = ray.wait(list(flying), num_returns=1)
            for ref in ready:
                n, batch, slot, gen_no = flying.pop(ref)
                busy[slot] -= 1
                try:
                    done[n] = (batch, ray.get(ref))
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                    self._replace(slot, gen_no, e)
                    send(n, batch)  # redone by whoever is least busy, the new actor most likely
                except ray.exceptions.RayTaskError as e:  # the work itself failed: the same error as in-process
                    raise e.as_instanceof_cause() from None

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
