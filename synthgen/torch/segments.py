"""How a batch crosses from a DataLoader worker to the training process in shared memory: a
worker's items drawn in (or copied into) one segment (``synthgen.arena``), a pool of segments
each worker writes into again once the training process holds nothing of them, and the wire
format: a batch pickled as its segment (or, once the training process keeps that segment's
descriptor, its slot alone) plus where each tensor lies in it."""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import os
import weakref
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from .. import arena
from .items import _tv


def _split(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    return tuple(list(x) for x in zip(*batch)) if batch else ([], [])  # type: ignore[return-value]


def _fresh_storage(nbytes: int) -> Any:
    """A new shared-memory storage, or None where this torch cannot make one (then the batch is
    sent as it is, and torch shares each tensor itself)."""
    try:
        return torch.UntypedStorage._new_shared(max(1, nbytes))
    except (AttributeError, RuntimeError):
        return None


_ALIGN = 64  # bytes: every tensor of a batch starts at a multiple of this in its storage


def _source(t: Any) -> tuple[Any, bool]:
    """What of tensor ``t`` is copied into a batch storage, and whether it is an HWC image viewed
    as CHW (then copied in its own memory order, and viewed the same way again)."""
    plain = t.as_subclass(torch.Tensor)
    hwc = plain.dim() == 3 and not plain.is_contiguous() and plain.permute(1, 2, 0).is_contiguous()
    return (plain.permute(1, 2, 0) if hwc else plain.contiguous()), hwc  # contiguous: its strides are the copy's


def _nbytes(src: Any) -> int:
    """Bytes ``src`` takes in a batch storage."""
    return -(-src.numel() * src.element_size() // _ALIGN) * _ALIGN


def _copy_into(storage: Any, offset: int, t: Any, src: Any, hwc: bool) -> Any:
    """``t`` (torchvision subclass and metadata kept) as a view of ``storage`` at ``offset``,
    holding a copy of ``src``."""
    dst = torch.empty(0, dtype=src.dtype).set_(storage, offset // src.element_size(), src.shape, src.stride())
    dst.copy_(src)
    return _like(dst.permute(2, 0, 1) if hwc else dst, t)


def _like(v: Any, t: Any) -> Any:
    """Plain tensor ``v`` as the torchvision subclass ``t`` is (its metadata kept), if it is one."""
    tv = _tv()
    return tv.wrap(v, like=t) if tv is not None and isinstance(t, tv.TVTensor) else v


def _offset_in(t: Any, base: int, start: int, end: int) -> int | None:
    """The byte offset from address ``base`` of non-empty CPU tensor ``t`` if all of it lies in
    bytes ``start`` to ``end`` there (torch's strides are never negative); else None."""
    lo = t.data_ptr() - base
    if not start <= lo < end or not t.is_cpu or not t.numel():
        return None
    span = t.nbytes if t.is_contiguous() else (sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1) * t.element_size()
    return lo if lo + span <= end else None


class _Drawn:
    """The arena of one item (``synthgen.arena``): hands out the segment's bytes from ``start``
    on, and says which of the item's tensors lie in what it handed out."""

    def __init__(self, whole: Any, base: int, start: int):
        self.whole, self.base, self.start, self.end = whole, base, start, start  # base: whole's address

    def __call__(self, shape: tuple[int, ...], dtype: Any) -> Any:
        nbytes = int(math.prod(shape)) * dtype.itemsize
        if self.end + nbytes > len(self.whole):
            return None  # made as usual, and copied
        a = np.ndarray(shape, dtype, self.whole, self.end)  # a view of the segment's bytes from self.end on
        self.end += -(-nbytes // _ALIGN) * _ALIGN
        return a

    def place(self, t: Any) -> int | None:
        """The byte offset of tensor ``t`` in the segment if all of it lies in what was handed out
        (an empty one is copied: nothing, and then a view of the segment)."""
        return _offset_in(t, self.base, self.start, self.end)


def _in_one_storage(images: list[Any], targets: list[dict[str, Any]], storage_for: Callable[[int], Any]
                    ) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The same batch (shapes, dtypes, torchvision subclasses and their metadata) with every
    tensor a view of one storage from ``storage_for(nbytes)``: one copy of each tensor, instead of
    a copy and a copy into shared memory when the batch is sent. Also that storage (None: the
    batch as it was)."""
    targets = [dict(t) for t in targets]
    keys = [k for k in (targets[0] if targets else ()) if all(isinstance(t.get(k), torch.Tensor) for t in targets)]
    places: list[tuple[Any, Any]] = [(images, i) for i, im in enumerate(images) if isinstance(im, torch.Tensor)]
    places += [(t, k) for t in targets for k in keys]
    if not places:
        return images, targets, None
    layout, total = [], 0
    for box, key in places:
        src, hwc = _source(box[key])
        layout.append((box, key, src, hwc, total))
        total += _nbytes(src)
    storage = storage_for(total)
    if storage is None:
        return images, targets, None
    for box, key, src, hwc, offset in layout:
        box[key] = _copy_into(storage, offset, box[key], src, hwc)
    return images, targets, storage


POOL_SLOTS = 4  # shared-memory segments each worker of synthgen's DataLoader keeps for reuse


class _SegmentPool:
    """The ``collate_fn`` of synthgen's DataLoader when it has workers: ``collate``, with each
    worker keeping a few shared-memory segments and writing batches into them again once the main
    process has let go of them, instead of a new segment per batch (the kernel zeroes every page
    of a new one and frees it again afterwards: at 640x480 that costs about as much as making the
    sample).

    Safety: ``held[slot]`` is 1 from the moment a worker sends a batch in a segment until the main
    process has no tensor left on that segment's memory (views and slices included: torch's own
    weak reference to the storage says when), and only then 0; a worker writes only into a segment
    whose flag is 0. A batch the main process never receives (the loop left early) keeps its
    segment's flag up: that worker then makes new segments, as plain ``collate`` does. Each start
    of workers gets flags of its own (``renew``), so nothing a previous set of workers sent is
    ever written over."""

    def __init__(self, per_worker: int = POOL_SLOTS):
        self.per_worker = per_worker
        self.token = ""
        self.held: Any = None
        self.mapped: Any = None
        self._segments: dict[int, Any] = {}
        self._generations: dict[int, int] = {}  # worker side: slot -> generation of its segment
        self._pid = 0
        self.expect = 0  # worker side, for ``fetch``: bytes of the largest batch so far

    def renew(self, workers: int) -> None:
        """In the main process, before a set of workers starts."""
        import secrets

        self.token = secrets.token_hex(8)
        self.held = multiprocessing.RawArray("b", workers * self.per_worker)
        self.mapped = multiprocessing.RawArray("q", workers * self.per_worker)
        self._releases = _Releases(self.held, self.mapped)  # the main process's side, kept until the next renew
        _RECEIVED[self.token] = self._releases

    def __getstate__(self) -> dict[str, Any]:
        # the flags are shared memory, for workers being started; a plain copy (pickle, deepcopy)
        # gets none and collates as ``collate`` does until its loader starts workers
        starting = multiprocessing.context.get_spawning_popen() is not None
        return {"per_worker": self.per_worker, "token": self.token, "held": self.held if starting else None,
                "mapped": self.mapped if starting else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["per_worker"])  # type: ignore[misc]
        self.token, self.held, self.mapped = state["token"], state["held"], state["mapped"]

    def __call__(self, batch: Sequence[tuple[Any, dict[str, Any]]]) -> Any:
        images, targets = _split(batch)
        if isinstance(batch, _Written) and batch.token == self.token and self.token:  # in a segment already
            return self._pooled(images, targets, batch.storage, batch.slot)
        info = get_worker_info()
        if info is None or self.held is None:
            return images, targets
        slot = -1

        def storage_for(nbytes: int) -> Any:
            nonlocal slot
            storage, slot = self._take(info.id, nbytes)
            return storage

        images, targets, storage = _in_one_storage(images, targets, storage_for)
        # sent as a pooled batch even outside the pool (slot -1): receiving any batch is when the
        # main process lets go of the segments it no longer holds
        return self._pooled(images, targets, storage, slot)

    def _pooled(self, images: list[Any], targets: list[dict[str, Any]], storage: Any, slot: int) -> "_PooledBatch":
        """The batch to send, and how: by slot alone where the main process keeps the segment's
        descriptor (generation 0: a segment outside the pool, or shared by file name, as torch
        does under the ``file_system`` strategy; the main process keeps none of those)."""
        gen = self._generations.get(slot, 0) if slot >= 0 and storage is not None else 0
        if gen and torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
            gen = 0
        mapped = bool(gen) and self.mapped is not None and self.mapped[slot] == gen
        return _PooledBatch(images, targets, storage, self.token, slot, gen, mapped)

    def fetch(self, get: Callable[[int], Any], indices: Sequence[int]) -> list[Any]:
        """Worker side, a dataset's ``__getitems__``: the batch's items, made in one of this
        worker's segments where they use ``synthgen.arena`` (a synthetic item's image, masks,
        boxes, labels, areas), and what else they hold copied in as soon as each is made (while
        it is still in the CPU's caches). The segment is sized by the batches before; a batch
        that outgrows it, and the first one, are left to ``__call__``."""
        info = get_worker_info()
        if info is None or self.held is None or not self.expect:
            items = [get(i) for i in indices]
            if info is not None and self.held is not None:  # the size to expect from now on
                self.expect = sum(_nbytes(t) for image, target in items
                                  for t in (image, *target.values()) if isinstance(t, torch.Tensor))
            return items
        storage, slot = self._take(info.id, self.expect)
        if storage is None:
            return [get(i) for i in indices]
        try:
            return self._write(get, indices, storage, slot)
        except BaseException:
            if slot >= 0:  # nothing was sent from it
                self.held[slot] = 0
            raise

    def _write(self, get: Callable[[int], Any], indices: Sequence[int], storage: Any, slot: int) -> list[Any]:
        room, offset, items = storage.nbytes(), 0, []
        whole = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()  # the segment's bytes
        base = whole.ctypes.data
        for n, i in enumerate(indices):
            drawn = _Drawn(whole, base, offset)
            with arena.using(drawn):  # what the item makes through synthgen.arena is made in the segment
                image, target = get(i)
            tensors = [(k, t, drawn.place(t)) for k, t in (("", image), *target.items()) if isinstance(t, torch.Tensor)]
            copies = [(k, t, *_source(t)) for k, t, at in tensors if at is None]
            need = sum(_nbytes(src) for _, _, src, _ in copies)
            if drawn.end + need > room:  # outgrown: the segment goes, and __call__ copies the batch
                self._segments.pop(slot, None)
                if slot >= 0:
                    self.held[slot] = 0
                self.expect = max(self.expect, drawn.end + need)
                return [*items, (image, target), *(get(j) for j in indices[n + 1:])]
            target, offset = dict(target), drawn.end
            for k, t, src, hwc in copies:  # what was drawn in the segment stays as it is
                v = _copy_into(storage, offset, t, src, hwc)
                offset += _nbytes(src)
                if k == "":
                    image = v
                else:
                    target[k] = v
            items.append((image, target))
        return _Written(items, storage, self.token, slot)

    def _take(self, worker: int, nbytes: int) -> tuple[Any, int]:
        """A segment of at least ``nbytes`` that the main process holds nothing of, and its slot
        (-1: a new segment outside the pool)."""
        if self._pid != os.getpid():  # a forked worker: the segments are its own
            self._segments, self._generations, self._pid = {}, {}, os.getpid()
        for slot in range(worker * self.per_worker, min(len(self.held), (worker + 1) * self.per_worker)):
            if self.held[slot]:
                continue
            seg = self._segments.get(slot)
            if seg is None or seg.nbytes() < nbytes:
                seg = _fresh_storage(-(-nbytes * 5 // 4 // (1 << 20)) << 20)  # room for more objects next time
                if seg is None:
                    return None, -1
                self._segments[slot] = seg
                self._generations[slot] = self._generations.get(slot, 0) + 1
            self.held[slot] = 1
            return seg, slot
        return _fresh_storage(nbytes), -1


class _Written(list):
    """A batch's items, every tensor already in one segment (slot -1: one outside the pool)."""

    def __init__(self, items: list[Any], storage: Any, token: str, slot: int):
        super().__init__(items)
        self.storage, self.token, self.slot = storage, token, slot


class _Releases:
    """Main process: the pooled segments it holds batches in, released when no tensor is left on
    them; and a duplicate of each pooled segment's file descriptor, to map later batches from."""

    def __init__(self, held: Any, mapped: Any = None):
        self.held, self.mapped = held, mapped
        self.holding: list[tuple[Any, int]] = []
        self.received = 0  # batches received in pooled segments
        self.descriptors: dict[int, tuple[int, int]] = {}  # slot -> (generation, file descriptor)
        weakref.finalize(self, _close_all, self.descriptors)

    def keep(self, storage: Any, slot: int, gen: int) -> None:
        """The first batch of segment generation ``gen`` in ``slot`` came in ``storage`` (shared
        by file descriptor): keep a duplicate of that descriptor, and tell the worker."""
        if self.mapped is None or slot < 0 or storage is None:
            return
        fd, _ = storage._share_fd_cpu_()  # the descriptor its mapping keeps (nothing is copied)
        old = self.descriptors.pop(slot, None)
        if old is not None:
            os.close(old[1])
        self.descriptors[slot] = (gen, os.dup(fd))
        self.mapped[slot] = gen

    def remap(self, slot: int, gen: int, nbytes: int) -> Any:
        """A new storage over segment generation ``gen`` in ``slot``, from the kept descriptor."""
        gen_fd = self.descriptors.get(slot)
        if gen_fd is None or gen_fd[0] != gen:  # cannot happen: workers send by slot only what mapped says is kept
            raise RuntimeError(f"synthgen: a batch came by slot {slot} (generation {gen}) but this process keeps "
                               f"{gen_fd[0] if gen_fd else 'no'} segment there")
        return torch.UntypedStorage._new_shared_fd_cpu(gen_fd[1], nbytes)

    def hold(self, storage: Any, slot: int) -> None:
        """A batch came in ``storage`` (pooled segment ``slot``, or -1: none): first, every
        segment no tensor is left on goes back to its worker."""
        from torch.multiprocessing.reductions import StorageWeakRef

        still = []
        for ref, s in self.holding:
            if ref.expired():
                self.held[s] = 0
            else:
                still.append((ref, s))
        self.holding = still
        if slot >= 0 and storage is not None:
            self.holding.append((StorageWeakRef(storage), slot))
            self.received += 1


def _close_all(descriptors: dict[int, tuple[int, int]]) -> None:
    for _, fd in descriptors.values():
        try:
            os.close(fd)
        except OSError:
            pass
    descriptors.clear()


_RECEIVED: Any = weakref.WeakValueDictionary()  # token -> _Releases, in the main process


class _OneSegment(tuple):
    """(images, targets) with every tensor a view of ``storage``: pickled as that one storage and
    where each tensor lies in it, not tensor by tensor (torch pickles and rebuilds each tensor on
    its own, a few tens of microseconds each in the worker and again in the main process, 48 for
    a batch of 8 detection targets). Received by the main process as a plain tuple."""

    storage: Any

    def __new__(cls, images: list[Any], targets: list[dict[str, Any]], storage: Any) -> Any:
        obj = super().__new__(cls, (images, targets))
        obj.storage = storage
        return obj

    def _packed(self, whole: bool = True) -> tuple[Any, list[Any], list[dict[str, Any]], list[tuple[Any, ...]]]:
        """The segment (as one uint8 tensor; None: ``whole`` False), the batch with every tensor
        that lies in the segment left out (None in its place), and where each of those lies:
        plain tuples (``_unpacked`` says what is in them), which pickle several times faster
        than objects of a class of their own."""
        images, targets = list(self[0]), [dict(t) for t in self[1]]
        if self.storage is None:
            return None, images, targets, []
        ptr, nbytes = self.storage.data_ptr(), self.storage.nbytes()
        layout: list[tuple[Any, ...]] = []

        def at(x: Any, where: tuple[Any, ...]) -> Any:  # None where tensor x lies in the segment, or x itself
            if not isinstance(x, torch.Tensor):
                return x
            lo, size = _offset_in(x, ptr, 0, nbytes), x.element_size()
            if lo is not None and lo % size == 0:
                offset = lo // size  # in the segment's memory: a view of it, or made there (synthgen.arena)
            elif x.is_cpu and x.untyped_storage().data_ptr() == ptr:
                offset = x.storage_offset()  # a view of the segment without elements
            else:
                return x
            layout.append((where, offset, x.dtype, tuple(x.shape), x.stride(), type(x), x.__dict__ or None))
            return None

        for i, im in enumerate(images):
            images[i] = at(im, (i,))
        for i, t in enumerate(targets):
            for k, v in t.items():
                t[k] = at(v, (i, k))
        return (torch.empty(0, dtype=torch.uint8).set_(self.storage) if whole else None), images, targets, layout

    def __reduce__(self) -> Any:
        return _unpacked, self._packed()


def _unpacked(whole: Any, images: list[Any], targets: list[dict[str, Any]], layout: list[tuple[Any, ...]]
              ) -> tuple[list[Any], list[dict[str, Any]]]:
    """The batch again, in the receiving process, every tensor of ``layout`` a view of the one
    segment ``whole``: layout entries are (where: (item,) for its image, (item, key) for an entry of
    its target; offset in elements, dtype, shape, stride, class, the instance's own attributes (a
    torchvision tensor's format, canvas size))."""
    storage = whole.untyped_storage() if whole is not None else None
    bases: dict[Any, Any] = {}  # dtype -> an empty tensor of that dtype on the storage, to view it from
    for where, offset, dtype, shape, stride, cls, attrs in layout:
        base = bases.get(dtype)
        if base is None:
            base = bases[dtype] = torch.empty(0, dtype=dtype).set_(storage, 0, (0,), (1,))
        v = base.as_strided(shape, stride, offset)  # checked against the storage's size, as set_ is
        if cls is not torch.Tensor:
            v = v.as_subclass(cls)
            if attrs:
                v.__dict__.update(attrs)  # as torch restores a pickled subclass's attributes
        if len(where) == 1:
            images[where[0]] = v
        else:
            targets[where[0]][where[1]] = v
    return images, targets


class _PooledBatch(_OneSegment):
    """A batch in one of a worker's pooled segments (``slot``; -1: a new one outside the pool),
    of generation ``gen``; ``mapped``: the main process keeps that segment's descriptor, so the
    batch is sent as its slot alone."""

    token: str
    slot: int
    gen: int
    mapped: bool

    def __new__(cls, images: list[Any], targets: list[dict[str, Any]], storage: Any, token: str, slot: int,
                gen: int = 0, mapped: bool = False) -> "_PooledBatch":
        obj = super().__new__(cls, images, targets, storage)
        obj.token, obj.slot, obj.gen, obj.mapped = token, slot, gen, mapped
        return obj

    def __reduce__(self) -> Any:
        whole, images, targets, layout = self._packed(whole=not self.mapped)
        if self.mapped:
            return _remapped, (self.storage.nbytes(), images, targets, layout, self.token, self.slot, self.gen)
        return _received, (whole, images, targets, layout, self.token, self.slot, self.gen)


def _received(whole: Any, images: list[Any], targets: list[dict[str, Any]], layout: list[tuple[Any, ...]],
              token: str, slot: int, gen: int = 0) -> tuple[list[Any], list[dict[str, Any]]]:
    """Unpickling a pooled batch in the main process: note which segment it lives in (and keep
    its descriptor, generation ``gen`` > 0)."""
    releases = _RECEIVED.get(token)
    if releases is not None:
        storage = whole.untyped_storage() if whole is not None else None
        releases.hold(storage, slot)
        if gen:
            releases.keep(storage, slot, gen)
    return _unpacked(whole, images, targets, layout)


def _remapped(nbytes: int, images: list[Any], targets: list[dict[str, Any]], layout: list[tuple[Any, ...]],
              token: str, slot: int, gen: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """Unpickling a batch sent by slot: the segment mapped again from the kept descriptor."""
    releases = _RECEIVED.get(token)
    if releases is None:  # cannot happen: the loader's iterator keeps its _Releases while it receives
        raise RuntimeError(f"synthgen: a batch came by slot {slot} for workers this process no longer knows")
    storage = releases.remap(slot, gen, nbytes)
    releases.hold(storage, slot)
    return _unpacked(torch.empty(0, dtype=torch.uint8).set_(storage), images, targets, layout)
