"""Backends: the protocol each backend folder provides, the Render every backend returns (plain
arrays, no labels: labels come from ``labels.annotate``), and the registry of spec kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np


@dataclass
class Render:
    """The final pixels of one sample and who owns each of them.

    image : (H, W, 3) uint8 RGB, after every paste.
    instance_map : (H, W) int32; 0 = background, k + 1 = scene.objects[k] (the top-most object
        whose alpha >= ALPHA_ON at that pixel).
    own_area : (K,) int64, pixels of each object drawn alone on an unbounded canvas.
    inframe_area : (K,) int64, those of ``own_area`` that fall inside the frame.
    regions : (K, 4) int64 x0, y0, x1, y1 of a window clipped to the frame that holds all of
        each object's visible pixels (x1 <= x0 when it is wholly outside). Lets annotation look
        at a small window instead of the whole map.
    extras : backend-specific outputs (the renderer's depth, K, poses, amodal boxes and masks).
    """

    image: np.ndarray
    instance_map: np.ndarray
    own_area: np.ndarray
    inframe_area: np.ndarray
    regions: np.ndarray
    extras: dict = field(default_factory=dict)


class Backend(Protocol):
    """Draws a planned scene; draws no random numbers. One per process, made lazily."""

    kind: str

    def render(self, scene: Any, blend: str | None = None) -> Render: ...


@dataclass(frozen=True)
class BackendKind:
    """What a spec ``kind`` brings: its asset library (listed eagerly, decoded lazily), its
    planner (every random choice of sample i, as plain data) and its backend."""

    name: str
    library: Callable[[Any], Any]
    """spec -> library"""
    plan: Callable[..., Any]
    """(spec, library, seed, index, categories) -> planned scene"""
    backend: Callable[[Any], Backend]
    """library -> backend"""


def backend_kind(kind: str) -> BackendKind:
    """The parts of spec ``kind`` ("compositor" or "renderer"); the renderer's are imported only
    when asked for (pyrender and OpenGL load with them)."""
    if kind == "renderer":
        from .renderer.backend import RendererBackend
        from .renderer.meshes import MeshLibrary
        from .renderer.planning import plan_render_scene

        return BackendKind("renderer", MeshLibrary, plan_render_scene, RendererBackend)
    from .compositor.assets import AssetLibrary
    from .compositor.backend import CompositorBackend
    from .compositor.planning import plan_scene

    return BackendKind("compositor", AssetLibrary, plan_scene, CompositorBackend)
