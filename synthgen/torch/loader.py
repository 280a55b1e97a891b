"""Batches: the detection ``collate``, and synthgen's DataLoader, whose workers hand batches over
in shared-memory segments they reuse (``segments``), and which spawns workers for the renderer."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import get_worker_info
from torch.utils.data.dataloader import _DatasetKind, _MultiProcessingDataLoaderIter

from .segments import _fresh_storage, _in_one_storage, _OneSegment, _SegmentPool, _split


# -- batching -------------------------------------------------------------------------------------
def collate(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Detection batches as torchvision's detectors take them: a list of images and a list of
    targets (images may differ in size).

    In a DataLoader worker, every tensor of the batch (images and targets) becomes a view of one
    shared-memory storage: a batch travels to the main process as one segment, not one per
    tensor (each costs the main process a round trip to the worker for its file descriptor)."""
    images, targets = _split(batch)
    if get_worker_info() is None:
        return images, targets
    images, targets, storage = _in_one_storage(images, targets, _fresh_storage)
    return _OneSegment(images, targets, storage) if storage is not None else (images, targets)


_WORKER_POOL: _SegmentPool | None = None  # in a worker of synthgen's DataLoader: its collate's pool


def fetch(get: Callable[[int], Any], indices: Sequence[int]) -> list[Any]:
    """A dataset's ``__getitems__``: ``[get(i) for i in indices]``, written into shared memory item
    by item in a worker of synthgen's DataLoader (see ``_SegmentPool.fetch``)."""
    if _WORKER_POOL is not None:
        return _WORKER_POOL.fetch(get, indices)
    return [get(i) for i in indices]


class _WorkerStart:
    """``worker_init_fn`` of synthgen's DataLoader: notes the worker's segment pool (for datasets'
    ``__getitems__``); in workers it does not fork, sets library threads (OpenCV's pool, Mesa's
    rasteriser) to this worker's share of the cores, as torch does with its own (one thread per
    worker): with a pool on every core in every worker, workers only fight over the cores. Then
    the user's own ``worker_init_fn``. Threads are left alone in forked workers: OpenCV hangs
    when its thread count is changed in a child forked after the parent used its pool."""

    def __init__(self, pool: _SegmentPool | None, share_cores: bool, then: Callable[[int], Any] | None):
        self.pool, self.share_cores, self.then = pool, share_cores, then

    def __call__(self, worker_id: int) -> None:
        global _WORKER_POOL
        from ..runs.pool import limit_threads

        info = get_worker_info()
        if self.share_cores:
            limit_threads(max(1, (os.cpu_count() or 1) // (info.num_workers if info is not None else 1)))
        _WORKER_POOL = self.pool
        if self.then is not None:
            self.then(worker_id)


def _start_method(context: Any) -> str:
    if context is None:
        return multiprocessing.get_start_method()
    return context if isinstance(context, str) else context.get_start_method()


def _uses_gl(dataset: Any) -> bool:
    """Whether the dataset (or the synthetic half of a MixedDataset) renders with OpenGL."""
    gen = getattr(dataset, "generator", None) or getattr(getattr(dataset, "synthetic", None), "generator", None)
    return gen is not None and gen.spec.kind == "renderer"


def _pure_items(dataset: Any) -> bool:
    """Whether item i of ``dataset`` is the same whichever worker makes it: synthgen's map-style
    datasets (a transform's draws are seeded by the sample index too)."""
    from .datasets import CocoDataset, MixedDataset, SynthDataset

    return isinstance(dataset, (SynthDataset, MixedDataset, CocoDataset))


class _BalancedIter(_MultiProcessingDataLoaderIter):
    """torch's iterator over worker batches, still yielding them in order, that sends each new
    batch to the worker with the fewest batches still to make (ties: torch's turn order) instead
    of to the next worker in turn. In turn, a worker on a slower core (the training process on
    it, another virtual machine's load on its host core, a batch of larger objects) holds up the
    order, and the other worker waits idle with its share made.

    torch sends one batch for each batch the loop takes, so a worker whose batches came before
    the one the loop waits for has nothing left to make until that one comes. Here, batches
    that came early wait in this process and their worker is sent more, as long as it has fewer
    than ``prefetch_factor`` in the making (as torch allows each worker) and the batches sent and
    not yet taken by the loop stay within twice torch's ``prefetch_factor x num_workers``."""

    _resetting = False  # in torch's _reset, where nothing may be sent beyond what it sends itself

    def _try_put_index(self) -> None:
        self._send_next()

    def _send_next(self) -> bool:
        """Send the next batch to the worker with the fewest in the making, if one has room and
        the window allows; whether one was sent."""
        if self._send_idx - self._rcvd_idx >= 2 * self._prefetch_factor * self._num_workers:
            return False
        making = [0] * self._num_workers
        for info in self._task_info.values():
            if len(info) == 1:  # sent, not yet back
                making[info[0]] += 1
        room = [w for w in range(self._num_workers) if self._workers_status[w] and making[w] < self._prefetch_factor]
        if not room:
            return False
        try:
            index = self._next_index()
        except StopIteration:
            return False
        first = next(self._worker_queue_idx_cycle)
        worker = min(room, key=lambda w: (making[w], (w - first) % self._num_workers))
        _put_now(self._index_queues[worker], (self._send_idx, index))
        self._task_info[self._send_idx] = (worker,)
        if hasattr(self, "_workers_num_tasks"):  # torch 2.6 on
            self._workers_num_tasks[worker] += 1
        self._tasks_outstanding += 1
        self._send_idx += 1
        return True

    def _reset(self, loader: Any, first_iter: bool = False) -> None:
        # torch waits here for each persistent worker to confirm a new epoch, and drops whatever
        # else comes meanwhile (batches of the epoch left early): nothing may be sent until then
        self._resetting = True
        try:
            super()._reset(loader, first_iter)
        finally:
            self._resetting = False

    def _get_data(self) -> Any:
        # about to wait for a batch: workers whose batches came early have room for more
        while not self._resetting and self._send_next():
            pass
        return super()._get_data()


def _put_now(queue: Any, obj: Any) -> None:
    """``queue.put(obj)`` for a worker's index queue, written to its pipe by this thread rather
    than handed to the queue's feeder thread: that thread needs this process's interpreter lock,
    which the training loop holds between batches, so a worker could wait a training step for
    its next batch. An index is a few bytes; the pipe never fills with them. Where the feeder
    thread still holds something (torch's own puts) or the queue is not the multiprocessing one
    this knows, it is ``put`` as usual, so nothing overtakes what was put before."""
    try:
        sem, wlock, writer, buffer, closed = queue._sem, queue._wlock, queue._writer, queue._buffer, queue._closed
    except AttributeError:
        return queue.put(obj)
    if buffer or closed or not sem.acquire(False):
        return queue.put(obj)
    data = ForkingPickler.dumps(obj)
    if wlock is None:
        writer.send_bytes(data)
    else:
        with wlock:
            writer.send_bytes(data)


_BALANCING = all(hasattr(_MultiProcessingDataLoaderIter, name) for name in ("_try_put_index", "_next_index", "_get_data", "_reset"))


class DataLoader(torch.utils.data.DataLoader):
    """torch's DataLoader with synthgen's ``collate`` by default, and spawned workers when the
    dataset renders (a worker forked from a process that holds an OpenGL context hangs; spawned
    workers re-import your script, so start training under ``if __name__ == "__main__":``).

    ``balance``: send each batch to the worker with the fewest batches still to make, rather than
    to each worker in turn; batches still come in order. It needs items that are the same
    whichever worker makes them, so by default (None) it is on for synthgen's map-style datasets
    and off otherwise: an iterable dataset's batches depend on the worker, and a dataset of your
    own may draw from its worker's random state. Never for an iterable dataset."""

    def __init__(self, dataset: Any, *args: Any, balance: bool | None = None, **kwargs: Any):
        self.balance = _pure_items(dataset) if balance is None else bool(balance)
        if kwargs.get("collate_fn") is None:
            kwargs["collate_fn"] = _SegmentPool() if kwargs.get("num_workers", 0) > 0 else collate
        if kwargs.get("num_workers", 0) > 0 and _uses_gl(dataset) and kwargs.get("multiprocessing_context") is None:
            kwargs["multiprocessing_context"] = "spawn"
        if kwargs.get("num_workers", 0) > 0:
            pool = kwargs["collate_fn"] if isinstance(kwargs["collate_fn"], _SegmentPool) else None
            share_cores = _start_method(kwargs.get("multiprocessing_context")) != "fork"
            kwargs["worker_init_fn"] = _WorkerStart(pool, share_cores, kwargs.get("worker_init_fn"))
        super().__init__(dataset, *args, **kwargs)

    def _balanced(self) -> bool:
        return (self.balance and self.num_workers > 1 and _BALANCING and self._dataset_kind == _DatasetKind.Map
                and getattr(self, "in_order", True))

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return super()._get_iterator()
        pooled = isinstance(self.collate_fn, _SegmentPool)
        if pooled:  # flags of their own for this set of workers
            self.collate_fn.renew(self.num_workers)
        if self._balanced():
            self.check_worker_number_rationality()
            it = _BalancedIter(self)
        else:
            it = super()._get_iterator()
        if pooled:
            it._synthgen_releases = self.collate_fn._releases  # while it receives, its segments' descriptors stay
        return it
