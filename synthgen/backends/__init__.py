"""Backends turn a planned scene into a Render. One per process, created lazily.

Each kind of spec has a library (assets, listed eagerly), a planner and a backend.
"""

from .base import Render
from .compositor import CompositorBackend


def kind_parts(kind: str):
    """(library class, plan function, backend class) for a spec ``kind``."""
    if kind == "renderer":
        from ..meshes import MeshLibrary
        from ..plan3d import plan_render_scene
        from .renderer import RendererBackend

        return MeshLibrary, plan_render_scene, RendererBackend
    from ..assets import AssetLibrary
    from ..plan import plan_scene

    return AssetLibrary, plan_scene, CompositorBackend


__all__ = ["CompositorBackend", "Render", "kind_parts"]
