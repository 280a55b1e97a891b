"""Meshes and images named by a renderer spec: listed and loaded once per process.

Meshes are normalised to metres when loaded (``size``: longest extent; ``scale``: metres per
unit) and centred so that their bounding-box centre is the model origin; poses in labels refer
to that frame (the BOP models written beside the data are in the same frame, in millimetres).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..sources import expand_paths
from ..spec.renderer import RendererSpec

MESH_EXTS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


def load_mesh(path: Path, size: float | None, scale: float | None):
    """A single trimesh.Trimesh in metres, centred on its bounding box (textures kept)."""
    import trimesh

    if path.suffix.lower() not in MESH_EXTS:
        raise SpecError(f"{path}: not a mesh file ({', '.join(MESH_EXTS)})")
    try:
        loaded = trimesh.load(str(path), force=None)
    except Exception as e:  # noqa: BLE001 - trimesh raises many types for bad files
        raise SpecError(f"{path}: cannot load mesh: {e}") from None
    if isinstance(loaded, trimesh.Scene):  # GLB/glTF load as a scene: bake it into one mesh
        if not loaded.geometry:
            raise SpecError(f"{path}: the file holds no geometry")
        loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise SpecError(f"{path}: not a triangle mesh")
    mesh = loaded.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    factor = scale if scale is not None else size / float(np.max(mesh.extents))
    mesh.apply_scale(factor)
    return mesh


class MeshLibrary:
    """The meshes, textures and background images of a renderer spec."""

    def __init__(self, spec: RendererSpec):
        self.spec = spec
        self.base = Path(spec.base_dir)
        self.mesh_files: dict[str, Path] = {}
        for name, c in spec.classes.items():
            p = self.base / c.mesh
            if not p.is_file():
                raise SpecError(f"classes.{name}.mesh: {c.mesh!r} does not exist (looked for {p})")
            self.mesh_files[name] = p
        self.textures = [t for i, p in enumerate(spec.materials.textures) for t in expand_paths(self.base, p, f"materials.textures.{i}")]
        self.backgrounds = [t for i, p in enumerate(spec.background.paths) for t in expand_paths(self.base, p, f"background.paths.{i}")]
        self.ground_textures = [t for i, p in enumerate(spec.background.textures) for t in expand_paths(self.base, p, f"background.textures.{i}")]
        self._meshes: dict[str, object] = {}

    def input_files(self) -> list[Path]:
        """Every file this spec reads (a mesh's whole folder: MTL and textures lie beside it)."""
        files = [p.parent for p in self.mesh_files.values()]
        return files + [self.base / t for t in self.textures + self.backgrounds + self.ground_textures]

    def mesh(self, category: str):
        """The normalised trimesh of ``category`` (cached)."""
        m = self._meshes.get(category)
        if m is None:
            c = self.spec.classes[category]
            m = self._meshes[category] = load_mesh(self.mesh_files[category], c.size if c.scale is None else None, c.scale)
        return m

    def has_uv(self, category: str) -> bool:
        uv = getattr(self.mesh(category).visual, "uv", None)
        return uv is not None and len(uv) > 0
