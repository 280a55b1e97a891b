"""Where a sample's large arrays are made: the final image and the (N, H, W) masks.

By default they are new numpy arrays. Inside ``using(arena)`` they come from ``arena(shape,
dtype)`` when it has room (it returns None when not): synthgen's DataLoader workers pass the
shared-memory segment the batch travels in, so a sample is drawn where the training process
will read it, instead of being drawn and then copied there. Where an array lives never changes
its values.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import numpy as np

_ARENA: ContextVar[Callable[[tuple[int, ...], np.dtype], np.ndarray | None] | None] = ContextVar("synthgen_arena", default=None)


@contextmanager
def using(arena: Callable[[tuple[int, ...], np.dtype], np.ndarray | None]) -> Iterator[None]:
    """Arrays made by ``empty`` and ``zeros`` in this context (this thread) come from ``arena``."""
    token = _ARENA.set(arena)
    try:
        yield
    finally:
        _ARENA.reset(token)


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array, from the arena in use if it has room."""
    arena = _ARENA.get()
    a = arena(shape, np.dtype(dtype)) if arena is not None else None
    return np.empty(shape, dtype) if a is None else a


def zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An array of zeros, from the arena in use if it has room."""
    arena = _ARENA.get()
    a = arena(shape, np.dtype(dtype)) if arena is not None else None
    if a is None:
        return np.zeros(shape, dtype)
    a.fill(0)
    return a
