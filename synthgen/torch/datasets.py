"""The datasets: synthetic samples made on access (map-style and streamed), a real COCO dataset
in the same form, and the two mixed at a fixed share."""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import sys
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..errors import SynthgenError
from ..generator import Generator, whole
from .items import _generator, _Targets, _tv
from .loader import fetch

ENDLESS_EPOCH = 1 << 40  # sample-index stride between epochs of an endless stream


# -- the datasets -------------------------------------------------------------------------------
def _length(length: Any, endless: str = "") -> int:
    """A dataset's length: a whole number from 1 to 2**63 - 1 (what ``len()`` can return), a
    numpy or torch integer too."""
    value = whole(length) or 0
    if not 1 <= value <= sys.maxsize:
        raise SynthgenError(f"length must be a whole number >= 1{endless}, at most 2**63 - 1, got {length!r}")
    return value


def _item(i: Any, length: int, what: str) -> int:
    """Item ``i`` of a dataset of ``length`` items, from 0 (a negative one counts from the end,
    as in a list); past the end an IndexError, which also ends a plain ``for`` over the dataset."""
    value = whole(i)
    if value is None:
        raise TypeError(f"an item of a {what} is a whole number, not {i!r}")
    if not -length <= value < length:
        raise IndexError(f"item {value} of a dataset of length {length}")
    return value % length


def _epoch_number(epoch: Any) -> int:
    """An epoch: a whole number >= 0, a numpy or torch integer too (-1 reached sample indices
    below 0, a string a ValueError)."""
    value = whole(epoch)
    if value is None or value < 0:
        raise SynthgenError(f"epoch must be a whole number >= 0, got {epoch!r}")
    if value >= 2**63:  # it is shared with workers as a 64-bit integer: a larger one wrapped round
        raise SynthgenError(f"epoch must be below 2**63, got {epoch!r}")
    return value


class _SharedEpoch:
    """The epoch in shared memory: ``set_epoch`` in the main process reaches DataLoader workers,
    persistent ones included (each holds its own copy of the dataset), fork or spawn alike."""

    def _init_epoch(self, epoch: int) -> None:
        self._epoch = multiprocessing.RawValue("q", _epoch_number(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Every epoch sees new samples (see the class)."""
        self._epoch.value = _epoch_number(epoch)

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
        self.length = _length(length)
        self._init_epoch(epoch)
        self._t = _Targets(_generator(spec_or_generator, seed), transforms, float_images, masks, keypoints, depth, camera_K, poses)

    def index_of(self, i: int) -> int:
        """The sample index of item ``i`` in the current epoch."""
        return self.epoch * self.length + _item(i, self.length, "SynthDataset")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        return self._t.item(self.index_of(i))

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, dict[str, Any]]]:
        """Items ``indices``, as torch's DataLoader asks for a batch; in a worker of synthgen's
        DataLoader each goes into the batch's shared memory as soon as it is made."""
        return fetch(self.__getitem__, indices)


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
        self.length = None if length is None else _length(length, " or None (endless)")
        self._init_epoch(epoch)
        if rank is not None or world_size is not None:
            r, w = rank if rank is not None else 0, world_size if world_size is not None else 1
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (r, w)) or not 0 <= r < w:
                raise SynthgenError(f"rank and world_size must be whole numbers with 0 <= rank < world_size, got {rank!r} "
                                    f"and {world_size!r}")
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
        from ..datasets.coco import CocoFile

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
        from ..sources import read_image

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
        if isinstance(real_fraction, bool) or not isinstance(real_fraction, (int, float, np.floating, np.integer)) \
                or not 0 <= real_fraction <= 1:
            raise SynthgenError(f"real_fraction must be a number in [0, 1], got {real_fraction!r}")
        if not isinstance(synthetic, SynthDataset):
            raise SynthgenError(f"synthetic must be a SynthDataset, not {type(synthetic).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise SynthgenError(f"seed must be a whole number >= 0, got {seed!r}")
        self.real = real if isinstance(real, CocoDataset) else CocoDataset(real)
        self.synthetic = synthetic
        self.fraction = float(real_fraction)
        self.length = _length(length) if length is not None else len(synthetic)
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
        i = _item(i, self.length, "MixedDataset")  # past the end it went on for ever: `for x in mixed` never ended
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

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, dict[str, Any]]]:
        """As ``SynthDataset.__getitems__``."""
        return fetch(self.__getitem__, indices)
