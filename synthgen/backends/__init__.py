"""Backends turn a planned Scene into a Render. One per process, created lazily."""

from .base import Render
from .compositor import CompositorBackend

BACKENDS = {"compositor": CompositorBackend}

__all__ = ["BACKENDS", "CompositorBackend", "Render"]
