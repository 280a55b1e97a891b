"""Albumentations hooks, by name and parameters from the spec, seeded per sample.

Per object (before pasting): any transform; the object's alpha goes through it as a mask (with
linear interpolation, so soft edges stay soft), so geometric transforms move the labels too.
Per image (after the last paste): pixel-level transforms only (``ImageOnlyTransform``): a
transform that moves pixels would move them away from the labels.

The seed of every call is drawn while planning and stored in the scene; albumentations'
own random state is reset from it before each call, so a sample is reproducible.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import cv2
import numpy as np

from .errors import SpecError


def _albumentations():
    # No update check over the network on import (a run must not reach out).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A


def build(steps: list, key: str, pixel_only: bool):
    """A Compose for spec ``steps`` (AugmentStep models); SpecError names ``key.i``."""
    if not steps:
        return None
    A = _albumentations()
    transforms = []
    for i, step in enumerate(steps):
        name = step.name
        params: dict[str, Any] = dict(step.model_extra or {})
        cls = getattr(A, name, None)
        if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
            names = [n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), A.BasicTransform)]
            close = difflib.get_close_matches(name, names, n=1)
            raise SpecError(f"{key}.{i}.name: {name!r} is not an albumentations transform" + (f"; did you mean {close[0]!r}?" if close else ""))
        if pixel_only and not issubclass(cls, A.ImageOnlyTransform):
            raise SpecError(f"{key}.{i}.name: {name} moves pixels; per-image augmentation takes pixel-level transforms only "
                            "(put geometric ones under augment.object)")
        try:
            transforms.append(cls(**params))
        except Exception as e:  # noqa: BLE001 - albumentations raises several types for bad params
            raise SpecError(f"{key}.{i}: {name}({', '.join(f'{k}={v!r}' for k, v in params.items())}) is invalid: {e}") from None
    return A.Compose(transforms, mask_interpolation=cv2.INTER_LINEAR, seed=0)


class Augmenter:
    """The spec's object and image pipelines, built once per process."""

    def __init__(self, spec):
        self.object = build(spec.augment.object, "augment.object", pixel_only=False)
        self.image = build(spec.augment.image, "augment.image", pixel_only=True)

    def apply_object(self, rgba: np.ndarray, seed: int) -> np.ndarray:
        """(h, w, 4) uint8 premultiplied RGBA -> the same, augmented (alpha moved along)."""
        a = rgba[..., 3:4].astype(np.float32)
        rgb = np.where(a > 0, rgba[..., :3] * (255.0 / np.maximum(a, 1)), 0).clip(0, 255).astype(np.uint8)
        self.object.set_random_seed(int(seed))
        out = self.object(image=rgb, mask=rgba[..., 3])
        alpha = out["mask"].astype(np.float32)
        rgb = out["image"].astype(np.float32) * (alpha[..., None] / 255.0)
        return np.dstack([(rgb + 0.5).astype(np.uint8), alpha.astype(np.uint8)])

    def apply_image(self, image: np.ndarray, seed: int) -> np.ndarray:
        self.image.set_random_seed(int(seed))
        return self.image(image=image)["image"]
