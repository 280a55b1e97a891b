"""Meshes and images named by a renderer spec: listed and loaded once per process.

Meshes are turned z-up when loaded (``up_axis``: glTF is y-up by definition, other formats are
taken as z-up unless the class says otherwise), normalised to metres (``size``: longest extent;
``scale``: metres per unit) and centred so that their bounding-box centre is the model origin;
poses in labels refer to that frame (the BOP models written beside the data are in the same
frame, in millimetres).

A mesh file's materials and textures are found, checked and made drawable in ``materials``.
"""

from __future__ import annotations

import stat
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..compositor.assets import fit_background
from ..errors import SpecError, SynthgenWarning
from ..sources import Problems, expand_paths, read_image, shown
from ..spec.renderer import RendererSpec
from .materials import (GL_TEXTURE_LIMIT, drop_unreadable_images, fit_textures, lost_gltf_textures, make_opaque, plain_images,
                        scaled_to_gl_limit, texture_resolver, unreadable_textures)

IMAGE_CACHE = 64  # decoded textures and photos kept per process
MESH_EXTS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


# Rotations that turn a mesh's up axis into +z.
UP_ROTATIONS = {
    "z": np.eye(3),
    "-z": np.diag([1.0, -1.0, -1.0]),
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "-y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "x": np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    "-x": np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
}


def default_up_axis(path: Path) -> str:
    """glTF is y-up by definition; other formats carry no convention: z-up, as synthgen's world."""
    return "y" if path.suffix.lower() in (".glb", ".gltf") else "z"


_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, SynthgenWarning, stacklevel=3)


class _TrimeshLog:
    """What trimesh logs at warning level while a file loads, kept (``lines``) instead of
    printed into the run's output. ``replay()`` logs the lines again, as trimesh would have,
    where synthgen does not turn them into its own message."""

    def __enter__(self) -> "_TrimeshLog":
        import logging

        self.records: list[logging.LogRecord] = []
        outer = self

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.records.append(record)

        self.log = logging.getLogger("trimesh")
        self.keep, self.propagate = Keep(logging.WARNING), self.log.propagate
        self.log.addHandler(self.keep)
        self.log.propagate = False
        return self

    def __exit__(self, *exc) -> None:
        self.log.removeHandler(self.keep)
        self.log.propagate = self.propagate

    @property
    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def replay(self) -> None:
        for record in self.records:
            self.log.handle(record)


def load_mesh(path: Path, size: float | None, scale: float | None, up_axis: str | None = None):
    """A single trimesh.Trimesh, z-up, in metres, centred on its bounding box (textures kept)."""
    import trimesh

    name = shown(path)
    if path.suffix.lower() not in MESH_EXTS:
        raise SpecError(f"{name}: not a mesh file ({', '.join(MESH_EXTS)})")
    if path.is_dir():
        raise SpecError(f"{name}: is a folder, not a mesh file")
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a pipe would block trimesh's read for ever
            raise SpecError(f"{name}: is not a file (a device, pipe or socket), not a mesh file")
        if st.st_size == 0:
            raise SpecError(f"{name}: is empty (0 bytes)")
        # unprocessed first: processing would silently drop non-finite vertices (and the faces
        # using them); checked below, then processed as trimesh.load would have
        resolver = texture_resolver(path)
        from PIL import Image

        with warnings.catch_warnings(), _TrimeshLog() as said:  # Pillow's, on a big texture: drawn as any other
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            loaded = trimesh.load(str(path), force=None, process=False, resolver=resolver)
        if any("draco" in line.lower() and "didn't decode" in line for line in said.lines):
            # trimesh decodes Draco with DracoPy and leaves zeros where it could not
            raise SpecError(f"{name}: its Draco-compressed geometry (KHR_draco_mesh_compression) cannot be decoded")
        said.replay()
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - trimesh raises many types for bad files
        raise SpecError(f"{name}: cannot load mesh: {type(e).__name__}: {e}") from None
    named_in = "named in its material file" if path.suffix.lower() == ".obj" else "named in the file"
    unreadable = unreadable_textures(resolver.textures)
    for texture, why in unreadable.items():
        warn_once(f"{name}: texture {texture!r} ({named_in}) {why}; the mesh renders untextured")
    if drop_unreadable_images(loaded) and not unreadable:
        warn_once(f"{name}: a texture in its material cannot be decoded; the mesh renders untextured")
    elif not unreadable and not resolver.missing and (lost := lost_gltf_textures(path, loaded)):
        warn_once(f"{name}: its base colour texture ({lost}) cannot be decoded; the mesh renders untextured")
    plain_images(loaded)
    see_through = make_opaque(loaded)
    if see_through:
        warn_once(f"{name}: its material is partly transparent ({', '.join(see_through)}); synthgen draws objects "
                  "opaque, so that every pixel labelled as the object shows it")
    if isinstance(loaded, trimesh.Scene):  # GLB/glTF load as a scene: bake it into one mesh
        if not loaded.geometry:
            raise SpecError(f"{name}: the file holds no geometry")
        loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
    if not isinstance(loaded, trimesh.Trimesh):
        raise SpecError(f"{name}: not a triangle mesh")
    if len(loaded.faces) == 0:
        raise SpecError(f"{name}: the mesh has no faces (a point cloud?)")
    if not np.isfinite(loaded.vertices).all():
        raise SpecError(f"{name}: the mesh has vertices that are not finite numbers (NaN or inf)")
    if float(np.max(loaded.extents)) <= 0:
        raise SpecError(f"{name}: the mesh has no extent (all vertices at one point)")
    if not float(loaded.area) > 0:
        raise SpecError(f"{name}: the mesh has no surface (every face has zero area: its points lie on a line)")
    for name_ in dict.fromkeys(resolver.missing):
        if name_.lower().endswith(".mtl"):
            warn_once(f"{name}: its material file {name_!r} (named in the mesh) was not found beside it; "
                      "the mesh renders untextured")
        else:
            warn_once(f"{name}: texture {name_!r} ({named_in}) was not found beside it; the mesh renders untextured")
    for w, h, nw, nh in fit_textures(loaded):  # after a scene's textures are packed into one
        warn_once(f"{name}: a texture of {w}x{h} is larger than OpenGL's {GL_TEXTURE_LIMIT} pixels a side; "
                  f"drawn scaled to {nw}x{nh}")
    loaded.process()
    mesh = loaded.copy()
    rot = UP_ROTATIONS[up_axis or default_up_axis(path)]
    if rot is not UP_ROTATIONS["z"]:
        T = np.eye(4)
        T[:3, :3] = rot
        mesh.apply_transform(T)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    factor = scale if scale is not None else size / float(np.max(mesh.extents))
    mesh.apply_scale(factor)
    return mesh


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """The vertices of the convex hull of ``points`` (n, 3): where every extent, footprint and
    diameter of a mesh is reached. Flat or straight meshes have no solid hull: their distinct
    points, then (qhull refuses them; trimesh's hull of a flat mesh divided by its zero volume)."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.asarray(points, np.float64)
    try:
        return pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        return np.unique(pts, axis=0)


def _corner_colours(mesh, face_colours: np.ndarray):
    """``mesh`` with each face's corners split, each keeping the mesh's (smooth) normal there and
    taking its face's colour: pyrender draws a smooth mesh with vertex colours only (face colours
    raised "Cannot use face colors with a smooth mesh"), and trimesh's split for smooth shading
    averaged face colours over shared vertices, blurring one colour into the next."""
    import trimesh

    corners = mesh.faces.reshape(-1)
    out = trimesh.Trimesh(mesh.vertices[corners], np.arange(len(corners)).reshape(-1, 3),
                          vertex_normals=mesh.vertex_normals[corners], process=False)
    out.visual = trimesh.visual.ColorVisuals(out, vertex_colors=np.repeat(face_colours, 3, axis=0))
    return out


class MeshLibrary:
    """The meshes, textures and background images of a renderer spec."""

    def __init__(self, spec: RendererSpec):
        self.spec = spec
        self.base = Path(spec.base_dir)
        found = Problems()
        self.mesh_files: dict[str, Path] = {}
        self._unfound: set[str] = set()  # classes whose mesh file is already a problem: not loaded again
        for name, c in spec.classes.items():
            p = self.base / c.mesh
            if not (p.is_file() or p.is_dir()):
                self._unfound.add(name)
                found.add(f"classes.{name}.mesh", f"{c.mesh!r} is not a file (a device, pipe or socket: {shown(p)})"
                          if p.exists() else f"{c.mesh!r} does not exist (looked for {shown(p)})")
            self.mesh_files[name] = p

        def listed(paths: list[str], key: str) -> list[str]:
            return [t for i, p in enumerate(paths) for t in found.run("", expand_paths, self.base, p, f"{key}.{i}") or []]

        self.textures = listed(spec.materials.textures, "materials.textures")
        self.backgrounds = listed(spec.background.paths, "background.paths")
        self.ground_textures = listed(spec.background.textures, "background.textures")
        self.problems = found.lines
        self._meshes: dict[str, object] = {}
        self._images: OrderedDict[tuple[str, tuple[int, int] | None], np.ndarray] = OrderedDict()

    def image(self, key: str, fitted: tuple[int, int] | None = None) -> np.ndarray:
        """A texture, or with ``fitted`` = (W, H) a background photo scaled to cover that size
        (before its random crop): (h, w, 3) uint8 RGB, decoded once and kept in a bounded cache."""
        ck = (key, fitted)
        arr = self._images.get(ck)
        if arr is None:
            arr = read_image(self.base / key, "RGB")
            if fitted is not None:
                arr = fit_background(arr, "random_crop", fitted)
            elif max(arr.shape[:2]) > GL_TEXTURE_LIMIT:  # a texture OpenGL would refuse
                import cv2

                size = scaled_to_gl_limit(arr.shape[1], arr.shape[0])
                warn_once(f"{shown(self.base / key)}: a texture of {arr.shape[1]}x{arr.shape[0]} is larger than OpenGL's "
                          f"{GL_TEXTURE_LIMIT} pixels a side; drawn scaled to {size[0]}x{size[1]}")
                arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
            arr.setflags(write=False)
            self._images[ck] = arr
            if len(self._images) > IMAGE_CACHE:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(ck)
        return arr

    def verify(self) -> list[str]:
        """Load every mesh and decode every texture and background photo in full; the problems
        found, one line each naming the spec key and the file. Loaded meshes stay cached."""
        found = Problems()
        for name in self.spec.classes:
            if name not in self._unfound:  # one line for a missing mesh, not a second from loading it
                found.run(f"classes.{name}.mesh", self.mesh, name)
        for key, files in (("materials.textures", self.textures), ("background.textures", self.ground_textures),
                           ("background.paths", self.backgrounds)):
            fitted = self.spec.output.size if key == "background.paths" else None
            for f in files:
                found.run(key, self.image, f, fitted)
        return found.lines

    def input_files(self) -> list[Path]:
        """Every file this spec reads (a mesh's whole folder: MTL and textures lie beside it)."""
        files = [p.parent for p in self.mesh_files.values()]
        return files + [self.base / t for t in self.textures + self.backgrounds + self.ground_textures]

    def mesh(self, category: str):
        """The normalised trimesh of ``category`` (cached)."""
        m = self._meshes.get(category)
        if m is None:
            c = self.spec.classes[category]
            m = self._meshes[category] = load_mesh(self.mesh_files[category], c.size if c.scale is None else None, c.scale, c.up_axis)
        return m

    def render_mesh(self, category: str):
        """The mesh as drawn: the same triangles, with vertices split along sharp edges when the
        class's ``shading`` is auto, so that smooth shading keeps creases (trimesh's
        ``smooth_shade``, at 30 degrees)."""
        import trimesh

        key = f"render:{category}"
        m = self._meshes.get(key)
        if m is None:
            mesh = self.mesh(category)
            shading = self.spec.classes[category].shading
            m = trimesh.graph.smooth_shade(mesh, angle=np.radians(30)) if shading == "auto" else mesh
            visual = mesh.visual
            if (m is not mesh and getattr(visual, "kind", None) == "texture" and getattr(visual, "uv", None) is None
                    and getattr(m.visual, "kind", None) != "texture"):
                # a material without texture coordinates (a glTF base colour): trimesh's split
                # would give the copy default grey vertex colours instead; the same material
                m.visual = trimesh.visual.TextureVisuals(material=visual.material)
            if getattr(visual, "kind", None) == "face" and shading != "flat":
                colours = np.asarray(visual.face_colors)
                parts = m.metadata.get("original_components") if m is not mesh else None
                if parts is not None:  # the split mesh's faces are its parts' faces, in turn
                    colours = colours[np.concatenate([np.asarray(c) for c in parts])]
                m = _corner_colours(m, colours)
            self._meshes[key] = m
        return m

    def hull(self, category: str) -> np.ndarray:
        """The vertices of the normalised mesh's convex hull (cached): its extents in any pose."""
        key = f"hull:{category}"
        if key not in self._meshes:
            self._meshes[key] = hull_vertices(self.mesh(category).vertices)
        return self._meshes[key]

    def is_open(self, category: str) -> bool:
        """Whether the mesh has holes (a scan, a bowl, a plane): not closed once vertices are
        merged by position (seams of texture coordinates split vertices without opening it).
        Only an open mesh can show the back of a face."""
        import trimesh

        key = f"open:{category}"
        if key not in self._meshes:
            m = self.mesh(category)
            g = trimesh.Trimesh(m.vertices.copy(), m.faces.copy(), process=False)
            g.merge_vertices(merge_tex=True, merge_norm=True)
            self._meshes[key] = not g.is_watertight
        return bool(self._meshes[key])

    def has_uv(self, category: str) -> bool:
        uv = getattr(self.mesh(category).visual, "uv", None)
        return uv is not None and len(uv) > 0
