"""Inside the training loop: PyTorch datasets that generate samples on the fly (``pip install
synthgen[torch]``).

- ``SynthDataset(spec, length)``: map-style; item ``i`` of epoch ``e`` is sample
  ``e * length + i``, made when it is asked for (no disk). ``set_epoch(e)`` gives every epoch
  new samples: a dataset written with ``synthgen generate SPEC --n length*E`` (same spec and
  seed) holds exactly the samples of epochs 0 to E-1, image id = sample index.
- ``SynthIterableDataset(spec)``: an endless (or bounded) stream, split across DataLoader workers
  and ``torch.distributed`` ranks with no duplicates and no gaps.
- ``MixedDataset(real, synthetic, real_fraction)``: real COCO images mixed in at a fixed share.
- ``DataLoader``: torch's, with the detection ``collate`` and, for the renderer, spawned workers
  (a worker forked from a process that holds an OpenGL context hangs).

Items follow torchvision's detection convention: ``(image, target)``, image uint8 CHW (a
``tv_tensors.Image`` when torchvision is installed; float32 in [0, 1] with
``float_images=True``), target ``boxes`` (N, 4) float32 XYXY pixels (``tv_tensors.BoundingBoxes``
with the canvas size when torchvision is installed), ``labels`` int64 **1-based** (0 is the
background class of torchvision's detectors: label = class id in spec order + 1), ``masks``
uint8 (N, H, W), ``image_id`` (the sample index, as COCO files write it), ``area`` float32
(visible pixels), ``iscrowd`` int64 zeros, and from the renderer when asked: ``keypoints``
(N, 9, 3: x, y, visibility), ``depth`` (H, W) float32 metres, ``camera_K`` (3, 3), ``poses``
(N, 4, 4) model-to-camera, OpenCV axes. An image with no object gets tensors of shape (0, 4),
(0,), (0, H, W): never a missing key.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import multiprocessing.context
import os
from itertools import chain
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .errors import SynthgenError
from .generator import Generator
from .sample import Sample

ENDLESS_EPOCH = 1 << 40  # sample-index stride between epochs of an endless stream


@functools.cache
def _tv():
    """torchvision's tv_tensors, or None when torchvision is not installed (looked for once: a
    failed import is not cached by Python, and looking again cost 0.2 ms an item)."""
    try:
        from torchvision import tv_tensors

        return tv_tensors
    except Exception:  # noqa: BLE001 - absent, or a torchvision built for another torch
        return None


def _generator(spec_or_generator: Any, seed: int | None) -> Generator:
    if isinstance(spec_or_generator, Generator):
        return spec_or_generator if seed is None else Generator(spec_or_generator.spec, seed=seed)
    if hasattr(spec_or_generator, "categories") and hasattr(spec_or_generator, "kind"):  # a Spec
        return Generator(spec_or_generator, seed=seed)
    return Generator.from_yaml(spec_or_generator, seed=seed)


class _Targets:
    """What a dataset turns a Sample into; shared by the map-style and the iterable dataset."""

    def __init__(self, gen: Generator, transforms: Callable | None, float_images: bool, masks: bool,
                 keypoints: bool, depth: bool, camera_K: bool, poses: bool):
        self.gen = gen
        self.transforms = transforms
        self.float_images = float_images
        self.with_masks = masks
        self.extras = {"keypoints": keypoints, "depth": depth, "camera_K": camera_K, "poses": poses}
        if gen.spec.kind != "renderer" and any(self.extras.values()):
            raise SynthgenError("keypoints, depth, camera_K and poses come from the renderer (kind: renderer)")
        self._albu = _is_albumentations(transforms)

    @property
    def classes(self) -> list[str]:
        """Class names; ``labels`` index ``["background", *classes]``."""
        return self.gen.spec.categories

    def item(self, index: int) -> tuple[Any, dict[str, Any]]:
        sample = self.gen.sample(index)
        image, target = to_torch(sample, self.with_masks or self.transforms is not None, **self.extras)
        if self.transforms is not None:
            image, target = (_apply_albumentations if self._albu else _apply_torchvision)(self.transforms, image, target)
            if not self.with_masks:
                target.pop("masks")
        if self.float_images:
            image = image.float().div_(255.0)
            tv = _tv()
            if tv is not None:
                image = tv.Image(image)
        return image, target


def to_torch(sample: Sample, masks: bool = True, keypoints: bool = False, depth: bool = False,
             camera_K: bool = False, poses: bool = False) -> tuple[Any, dict[str, Any]]:
    """A Sample as ``(image, target)`` in torchvision's detection convention (see the module)."""
    tv = _tv()
    H, W = sample.image.shape[:2]
    # CHW as a view of the HWC pixels (channels-last memory): the same values without a
    # transposing copy; torch and torchvision take strided tensors as they come
    image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1)
    boxes = torch.from_numpy(sample.boxes.reshape(-1, 4))
    anns = sample.annotations
    target: dict[str, Any] = {
        "boxes": tv.BoundingBoxes(boxes, format="XYXY", canvas_size=(H, W)) if tv is not None else boxes,
        "labels": torch.from_numpy(sample.labels + 1),
        "image_id": sample.index,
        "area": torch.tensor([float(a.area) for a in anns], dtype=torch.float32),
        "iscrowd": torch.zeros(len(anns), dtype=torch.int64),
    }
    if masks:
        m = torch.from_numpy(sample.masks.view(np.uint8))
        target["masks"] = tv.Mask(m) if tv is not None else m
    if keypoints:
        kp = np.stack([a.keypoints for a in anns]).astype(np.float32) if anns else np.zeros((0, 9, 3), np.float32)
        target["keypoints"] = torch.from_numpy(kp)
    if depth:
        target["depth"] = torch.from_numpy(sample.depth)
    if camera_K:
        target["camera_K"] = torch.from_numpy(sample.camera_K.astype(np.float32))
    if poses:
        ps = np.stack([a.pose for a in anns]).astype(np.float32) if anns else np.zeros((0, 4, 4), np.float32)
        target["poses"] = torch.from_numpy(ps)
    return (tv.Image(image) if tv is not None else image), target


# -- transforms ---------------------------------------------------------------------------------
def _is_albumentations(t: Any) -> bool:
    if t is None:
        return False
    try:
        import albumentations as A
    except Exception:  # noqa: BLE001
        return False
    return isinstance(t, A.BaseCompose)


def _boxes_from_masks(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight xyxy boxes of (N, H, W) masks, and which masks still hold a pixel."""
    keep = masks.flatten(1).any(dim=1).bool() if len(masks) else torch.zeros(0, dtype=torch.bool)
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    for i in torch.nonzero(keep).flatten().tolist():
        rows = torch.nonzero(masks[i].any(dim=1)).flatten()
        cols = torch.nonzero(masks[i].any(dim=0)).flatten()
        boxes[i] = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)
    return boxes, keep


def _finish(image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """After a transform: boxes, areas and which objects remain, from the transformed masks (the
    labels of the final pixels, as everywhere in synthgen)."""
    tv = _tv()
    masks = target["masks"]
    H, W = masks.shape[-2:]
    boxes, keep = _boxes_from_masks(masks.as_subclass(torch.Tensor) if tv is not None else masks)
    for k in ("labels", "iscrowd", "keypoints", "poses"):
        if k in target:
            target[k] = target[k][keep]
    m = masks[keep]
    target["masks"] = tv.Mask(m) if tv is not None else m
    target["area"] = m.flatten(1).sum(1).float() if len(m) else torch.zeros(0)
    b = boxes[keep]
    target["boxes"] = tv.BoundingBoxes(b, format="XYXY", canvas_size=(H, W)) if tv is not None else b
    return image, target


def _apply_torchvision(t: Callable, image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    tv = _tv()
    kp = target.pop("keypoints", None)
    if kp is not None and tv is not None and hasattr(tv, "KeyPoints"):
        H, W = image.shape[-2:]
        target["keypoints"] = tv.KeyPoints(kp[..., :2].reshape(-1, 2), canvas_size=(H, W))
        vis = kp[..., 2:]
    image, target = t(image, target)
    if kp is not None:
        if "keypoints" in target:  # moved by the transform with the image
            xy = target["keypoints"].as_subclass(torch.Tensor).reshape(-1, 9, 2)
            target["keypoints"] = torch.cat([xy, vis], dim=-1)
        else:
            target["keypoints"] = kp
    return _finish(image, target)


def _apply_albumentations(t: Any, image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An albumentations Compose: the image, the masks, the boxes (pascal_voc) and keypoints
    (xy, when its keypoint_params are set) go through it together."""
    img = image.as_subclass(torch.Tensor).permute(1, 2, 0).numpy()
    masks = list(target["masks"].as_subclass(torch.Tensor).numpy()) if len(target["masks"]) else []
    H, W = img.shape[:2]
    boxes = target["boxes"].as_subclass(torch.Tensor).numpy().clip([0, 0, 0, 0], [W, H, W, H])
    args: dict[str, Any] = {"image": img, "masks": masks}
    if t.processors.get("bboxes") is not None:
        args["bboxes"] = boxes
        for f in t.processors["bboxes"].params.label_fields or []:
            args[f] = list(range(len(boxes)))
    kp = target.get("keypoints")
    if kp is not None and t.processors.get("keypoints") is not None:
        args["keypoints"] = kp[..., :2].reshape(-1, 2).numpy()
    out = t(**args)
    image = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1).contiguous()
    H2, W2 = image.shape[-2:]
    tv = _tv()
    m = torch.from_numpy(np.stack(out["masks"]).astype(np.uint8)) if len(out["masks"]) else torch.zeros((0, H2, W2), dtype=torch.uint8)
    target["masks"] = tv.Mask(m) if tv is not None else m
    if "keypoints" in args:
        xy = torch.from_numpy(np.asarray(out["keypoints"], np.float32).reshape(-1, 9, 2))
        target["keypoints"] = torch.cat([xy, kp[..., 2:]], dim=-1)
    return _finish(tv.Image(image) if tv is not None else image, target)


# -- the datasets -------------------------------------------------------------------------------
class _SharedEpoch:
    """The epoch in shared memory: ``set_epoch`` in the main process reaches DataLoader workers,
    persistent ones included (each holds its own copy of the dataset), fork or spawn alike."""

    def _init_epoch(self, epoch: int) -> None:
        self._epoch = multiprocessing.RawValue("q", int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Every epoch sees new samples (see the class)."""
        self._epoch.value = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:  # a plain pickle, not a worker start
            state["_epoch"] = self.epoch
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_epoch"], int):
            state["_epoch"] = multiprocessing.RawValue("q", state["_epoch"])
        self.__dict__.update(state)


class _Synthetic(_SharedEpoch):
    """What both synthetic datasets share: their generator and classes (through ``_t``)."""

    _t: _Targets

    @property
    def generator(self) -> Generator:
        return self._t.gen

    @property
    def classes(self) -> list[str]:
        return self._t.classes


class SynthDataset(_Synthetic, Dataset):
    """Map-style: item ``i`` is sample ``epoch * length + i``, generated when asked for."""

    def __init__(self, spec_or_generator: Any, length: int, seed: int | None = None, epoch: int = 0,
                 transforms: Callable | None = None, float_images: bool = False, masks: bool = True,
                 keypoints: bool = False, depth: bool = False, camera_K: bool = False, poses: bool = False):
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise SynthgenError(f"length must be a whole number >= 1, got {length!r}")
        self.length = length
        self._init_epoch(epoch)
        self._t = _Targets(_generator(spec_or_generator, seed), transforms, float_images, masks, keypoints, depth, camera_K, poses)

    def index_of(self, i: int) -> int:
        """The sample index of item ``i`` in the current epoch."""
        if not -self.length <= i < self.length:
            raise IndexError(f"item {i} of a dataset of length {self.length}")
        return self.epoch * self.length + (i % self.length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        return self._t.item(self.index_of(i))


class SynthIterableDataset(_Synthetic, IterableDataset):
    """A stream of samples, endless (``length=None``) or ``length`` per epoch, split across
    DataLoader workers and distributed ranks: the stream's k-th share is every G-th index from
    k, with G = workers x ranks and k = rank x workers + worker, so no index is made twice and
    none is skipped; deterministic for a given worker and rank count. Epoch e starts at sample
    e x length (endless: e x 2**40)."""

    def __init__(self, spec_or_generator: Any, length: int | None = None, seed: int | None = None, epoch: int = 0,
                 transforms: Callable | None = None, rank: int | None = None, world_size: int | None = None,
                 float_images: bool = False, masks: bool = True, keypoints: bool = False, depth: bool = False,
                 camera_K: bool = False, poses: bool = False):
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise SynthgenError(f"length must be a whole number >= 1 or None (endless), got {length!r}")
        self.length = length
        self._init_epoch(epoch)
        self.rank, self.world_size = rank, world_size
        self._t = _Targets(_generator(spec_or_generator, seed), transforms, float_images, masks, keypoints, depth, camera_K, poses)

    def _ranks(self) -> tuple[int, int]:
        if self.rank is not None:
            return int(self.rank), int(self.world_size or 1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def indices(self) -> Iterator[int]:
        """The sample indices this process's share of the stream makes, in order."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self._ranks()
        k, G = rank * workers + worker, world * workers
        base = self.epoch * (self.length if self.length is not None else ENDLESS_EPOCH)
        i = k
        while self.length is None or i < self.length:
            yield base + i
            i += G

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        for index in self.indices():
            yield self._t.item(index)

    def __len__(self) -> int:
        """Items this rank yields in an epoch (all its workers together)."""
        if self.length is None:
            raise TypeError("an endless SynthIterableDataset has no length")
        rank, world = self._ranks()
        return len(range(rank, self.length, world)) if world > 1 else self.length


class CocoDataset(Dataset):
    """A real COCO dataset (read with pycocotools) as ``(image, target)`` in the same form as
    SynthDataset's; ``labels`` index ``["background", *categories]``."""

    def __init__(self, ann_file: Any, image_dir: Any = None, masks: bool = True):
        from .datasets.coco import CocoFile

        if hasattr(ann_file, "coco") and hasattr(ann_file, "root"):  # a torchvision CocoDetection
            self.file = CocoFile(None, ann_file.root, coco=ann_file.coco)
        else:
            if image_dir is None:
                raise SynthgenError("CocoDataset needs the COCO file and the folder its file_name entries are relative to")
            self.file = CocoFile(ann_file, image_dir)
        self.categories = self.file.categories
        self.masks = masks

    def __len__(self) -> int:
        return len(self.file)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        from .sources import read_image

        rec = self.file[i]
        img = read_image(rec.path, "RGB")
        H, W = img.shape[:2]
        objs = [o for o in rec.objects if not o.iscrowd]
        tv = _tv()
        image = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        boxes = torch.tensor([o.bbox for o in objs], dtype=torch.float32).reshape(-1, 4)
        target: dict[str, Any] = {
            "boxes": tv.BoundingBoxes(boxes, format="XYXY", canvas_size=(H, W)) if tv is not None else boxes,
            "labels": torch.tensor([self.categories.index(o.category) + 1 for o in objs], dtype=torch.int64),
            "image_id": rec.image_id,
            "area": torch.tensor([o.area for o in objs], dtype=torch.float32),
            "iscrowd": torch.zeros(len(objs), dtype=torch.int64),
        }
        if self.masks:
            m = np.stack([o.mask(H, W) for o in objs]).astype(np.uint8) if objs else np.zeros((0, H, W), np.uint8)
            target["masks"] = tv.Mask(torch.from_numpy(m)) if tv is not None else torch.from_numpy(m)
        return (tv.Image(image) if tv is not None else image), target


class MixedDataset(_SharedEpoch, Dataset):
    """Real and synthetic samples at a fixed share: the "pretrain broad, fine-tune on your own
    data" recipe in one dataset.

    Item i is real when floor((i + 1) f) > floor(i f), f = real_fraction, so real items are
    spread evenly: every run of B consecutive items holds round(B f) of them, give or take one.
    Batch it in order (``shuffle=False``): synthetic samples are random already, and the real
    images are taken in a new order every epoch (seeded). Real labels are mapped onto the
    synthetic classes by name; a real category that is not one of them is an error.
    """

    def __init__(self, real: Any, synthetic: SynthDataset, real_fraction: float, length: int | None = None, seed: int = 0):
        if not 0 <= real_fraction <= 1:
            raise SynthgenError(f"real_fraction must be in [0, 1], got {real_fraction!r}")
        self.real = real if isinstance(real, CocoDataset) else CocoDataset(real)
        self.synthetic = synthetic
        self.fraction = float(real_fraction)
        self.length = int(length) if length is not None else len(synthetic)
        self.seed = int(seed)
        self._init_epoch(0)
        classes = list(synthetic.classes)
        unknown = [c for c in self.real.categories if c not in classes]
        if unknown:
            raise SynthgenError(f"real categories {unknown} are not classes of the synthetic spec ({', '.join(classes)}); "
                                "name them alike so labels mean the same thing")
        self._remap = torch.tensor([0] + [classes.index(c) + 1 for c in self.real.categories], dtype=torch.int64)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.synthetic.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def is_real(self, i: int) -> bool:
        return math.floor((i + 1) * self.fraction) > math.floor(i * self.fraction)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        n_real = math.floor(i * self.fraction)  # real items before this one
        if self.is_real(i):
            order = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,))).permutation(len(self.real))
            image, target = self.real[int(order[n_real % len(self.real)])]
            target["labels"] = self._remap[target["labels"]]
            target["real"] = True
            return image, target
        image, target = self.synthetic[(i - n_real) % len(self.synthetic)]
        target["real"] = False
        return image, target


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
    return _in_one_storage(images, targets, _fresh_storage)


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


def _in_one_storage(images: list[Any], targets: list[dict[str, Any]], storage_for: Callable[[int], Any]
                    ) -> tuple[list[Any], list[dict[str, Any]]]:
    """The same batch (shapes, dtypes, torchvision subclasses and their metadata) with every
    tensor a view of one storage from ``storage_for(nbytes)``: one copy of each tensor, instead of
    a copy and a copy into shared memory when the batch is sent."""
    targets = [dict(t) for t in targets]
    keys = [k for k in (targets[0] if targets else ()) if all(isinstance(t.get(k), torch.Tensor) for t in targets)]
    places: list[tuple[Any, Any]] = [(images, i) for i, im in enumerate(images) if isinstance(im, torch.Tensor)]
    places += [(t, k) for t in targets for k in keys]
    if not places:
        return images, targets
    layout, total = [], 0
    for box, key in places:
        t = box[key]
        plain = t.as_subclass(torch.Tensor)
        # an HWC image viewed as CHW is copied in its own memory order, and viewed the same way again
        hwc = plain.dim() == 3 and not plain.is_contiguous() and plain.permute(1, 2, 0).is_contiguous()
        src = plain.permute(1, 2, 0) if hwc else plain.contiguous()  # contiguous: its strides are the copy's
        layout.append((box, key, t, src, hwc, total))
        total += -(-src.numel() * src.element_size() // _ALIGN) * _ALIGN
    storage = storage_for(total)
    if storage is None:
        return images, targets
    tv = _tv()
    for box, key, t, src, hwc, offset in layout:
        dst = torch.empty(0, dtype=src.dtype).set_(storage, offset // src.element_size(), src.shape, src.stride())
        dst.copy_(src)
        v = dst.permute(2, 0, 1) if hwc else dst
        box[key] = tv.wrap(v, like=t) if tv is not None and isinstance(t, tv.TVTensor) else v
    return images, targets


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
        self._segments: dict[int, Any] = {}
        self._pid = 0

    def renew(self, workers: int) -> None:
        """In the main process, before a set of workers starts."""
        import secrets

        self.token = secrets.token_hex(8)
        self.held = multiprocessing.RawArray("b", workers * self.per_worker)
        self._releases = _Releases(self.held)  # the main process's side, kept as long as the loader is
        _RECEIVED[self.token] = self._releases

    def __getstate__(self) -> dict[str, Any]:
        # the flags are shared memory, for workers being started; a plain copy (pickle, deepcopy)
        # gets none and collates as ``collate`` does until its loader starts workers
        starting = multiprocessing.context.get_spawning_popen() is not None
        return {"per_worker": self.per_worker, "token": self.token, "held": self.held if starting else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["per_worker"])  # type: ignore[misc]
        self.token, self.held = state["token"], state["held"]

    def __call__(self, batch: Sequence[tuple[Any, dict[str, Any]]]) -> Any:
        images, targets = _split(batch)
        info = get_worker_info()
        if info is None or self.held is None:
            return images, targets
        taken: list[int] = []

        def storage_for(nbytes: int) -> Any:
            storage, slot = self._take(info.id, nbytes)
            taken.append(slot)
            return storage

        images, targets = _in_one_storage(images, targets, storage_for)
        if taken and taken[0] >= 0:
            return _PooledBatch(images, targets, self.token, taken[0])
        return images, targets

    def _take(self, worker: int, nbytes: int) -> tuple[Any, int]:
        """A segment of at least ``nbytes`` that the main process holds nothing of, and its slot
        (-1: a new segment outside the pool)."""
        if self._pid != os.getpid():  # a forked worker: the segments are its own
            self._segments, self._pid = {}, os.getpid()
        for slot in range(worker * self.per_worker, min(len(self.held), (worker + 1) * self.per_worker)):
            if self.held[slot]:
                continue
            seg = self._segments.get(slot)
            if seg is None or seg.nbytes() < nbytes:
                seg = _fresh_storage(-(-nbytes * 5 // 4 // (1 << 20)) << 20)  # room for more objects next time
                if seg is None:
                    return None, -1
                self._segments[slot] = seg
            self.held[slot] = 1
            return seg, slot
        return _fresh_storage(nbytes), -1


class _Releases:
    """Main process: the pooled segments it holds batches in, released when no tensor is left on them."""

    def __init__(self, held: Any):
        self.held = held
        self.holding: list[tuple[Any, int]] = []
        self.received = 0  # batches received in pooled segments

    def hold(self, storage: Any, slot: int) -> None:
        from torch.multiprocessing.reductions import StorageWeakRef

        still = []
        for ref, s in self.holding:
            if ref.expired():
                self.held[s] = 0
            else:
                still.append((ref, s))
        self.holding = [*still, (StorageWeakRef(storage), slot)]
        self.received += 1


_RECEIVED: Any = __import__("weakref").WeakValueDictionary()  # token -> _Releases, in the main process


class _PooledBatch(tuple):
    """(images, targets) in a pooled segment; received by the main process as a plain tuple."""

    token: str
    slot: int

    def __new__(cls, images: list[Any], targets: list[dict[str, Any]], token: str, slot: int) -> "_PooledBatch":
        obj = super().__new__(cls, (images, targets))
        obj.token, obj.slot = token, slot
        return obj

    def __reduce__(self) -> Any:
        return _received, (self[0], self[1], self.token, self.slot)


def _received(images: list[Any], targets: list[dict[str, Any]], token: str, slot: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """Unpickling a pooled batch in the main process: note which segment it lives in."""
    releases = _RECEIVED.get(token)
    first = next((x for x in chain(images, *(t.values() for t in targets)) if isinstance(x, torch.Tensor)), None)
    if releases is not None and first is not None:
        releases.hold(first.untyped_storage(), slot)
    return images, targets


class _ShareCores:
    """``worker_init_fn`` of synthgen's DataLoader for workers it does not fork: library threads
    (OpenCV's pool, Mesa's rasteriser) for this worker's share of the cores, as torch does with
    its own (one thread per worker); with a pool on every core in every worker, workers only
    fight over the cores. Then the user's own ``worker_init_fn``. Not in forked workers: OpenCV
    hangs when its thread count is changed in a child forked after the parent used its pool."""

    def __init__(self, then: Callable[[int], Any] | None):
        self.then = then

    def __call__(self, worker_id: int) -> None:
        from .runs.pool import limit_threads

        info = get_worker_info()
        limit_threads(max(1, (os.cpu_count() or 1) // (info.num_workers if info is not None else 1)))
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


class DataLoader(torch.utils.data.DataLoader):
    """torch's DataLoader with synthgen's ``collate`` by default, and spawned workers when the
    dataset renders (a worker forked from a process that holds an OpenGL context hangs; spawned
    workers re-import your script, so start training under ``if __name__ == "__main__":``)."""

    def __init__(self, dataset: Any, *args: Any, **kwargs: Any):
        if kwargs.get("collate_fn") is None:
            kwargs["collate_fn"] = _SegmentPool() if kwargs.get("num_workers", 0) > 0 else collate
        if kwargs.get("num_workers", 0) > 0 and _uses_gl(dataset) and kwargs.get("multiprocessing_context") is None:
            kwargs["multiprocessing_context"] = "spawn"
        if kwargs.get("num_workers", 0) > 0 and _start_method(kwargs.get("multiprocessing_context")) != "fork":
            kwargs["worker_init_fn"] = _ShareCores(kwargs.get("worker_init_fn"))
        super().__init__(dataset, *args, **kwargs)

    def _get_iterator(self) -> Any:
        if self.num_workers > 0 and isinstance(self.collate_fn, _SegmentPool):
            self.collate_fn.renew(self.num_workers)  # flags of their own for this set of workers
        return super()._get_iterator()
