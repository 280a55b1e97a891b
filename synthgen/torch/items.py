"""A Sample as a torch item ``(image, target)`` in torchvision's detection convention (see the
package), with a torchvision v2 or albumentations transform applied to image and labels alike."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .. import arena
from ..errors import SynthgenError
from ..generator import Generator
from ..rng import TRANSFORMS
from ..sample import Sample


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
    if not isinstance(spec_or_generator, (str, os.PathLike)):
        raise SynthgenError(f"a synthetic dataset is made from a spec file's path, a Spec or a Generator, not "
                            f"{type(spec_or_generator).__name__} {spec_or_generator!r:.60}")
    return Generator.from_yaml(spec_or_generator, seed=seed)


class _Targets:
    """What a dataset turns a Sample into; shared by the map-style and the iterable dataset."""

    def __init__(self, gen: Generator, transforms: Callable | None, float_images: bool, masks: bool,
                 keypoints: bool, depth: bool, camera_K: bool, poses: bool):
        if transforms is not None and not callable(transforms):
            raise SynthgenError(f"transforms must be a torchvision v2 transform or an albumentations Compose (called "
                                f"on each item), not {type(transforms).__name__} {transforms!r:.60}")
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
            with _draws_of(index, self.gen.seed, self.transforms if self._albu else None):
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
    anns = sample.annotations
    # made where the arena in use says (a DataLoader worker's batch segment), as image and masks are
    boxes, labels, area = arena.empty((len(anns), 4), np.float32), arena.empty((len(anns),), np.int64), arena.empty((len(anns),), np.float32)
    boxes[:], labels[:], area[:] = sample.boxes, sample.labels + 1, [a.area for a in anns]
    boxes_t = torch.from_numpy(boxes)
    target: dict[str, Any] = {
        "boxes": tv.BoundingBoxes(boxes_t, format="XYXY", canvas_size=(H, W)) if tv is not None else boxes_t,
        "labels": torch.from_numpy(labels),
        "image_id": sample.index,
        "area": torch.from_numpy(area),
        "iscrowd": torch.from_numpy(arena.zeros((len(anns),), np.int64)),
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
@contextlib.contextmanager
def _draws_of(index: int, seed: int, albumentations: Any = None) -> Iterator[None]:
    """A transform's random draws for sample ``index`` come from (seed, index) alone, so item i
    is the same whichever worker makes it, in any order, with any number of workers: torch's
    default generator (torchvision's v2 transforms draw from it), Python's ``random`` and numpy's
    global state (a plain function's draws) are seeded for the call and put back as they were
    afterwards; an albumentations Compose gets generators of its own for the call."""
    s = [int(x) for x in np.random.SeedSequence(int(seed), spawn_key=(int(index), TRANSFORMS)).generate_state(3)]
    gen = torch.default_generator
    saved = gen.get_state(), random.getstate(), np.random.get_state()
    gen.manual_seed(s[0])
    random.seed(s[1])
    np.random.seed(s[2])
    if albumentations is not None and hasattr(albumentations, "set_random_state"):
        albumentations.set_random_state(np.random.default_rng(s[2]), random.Random(s[1]))
    try:
        yield
    finally:
        gen.set_state(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])


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
