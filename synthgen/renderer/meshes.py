"""Meshes and images named by a renderer spec: listed and loaded once per process.

Meshes are turned z-up when loaded (``up_axis``: glTF is y-up by definition, other formats are
taken as z-up unless the class says otherwise), normalised to metres (``size``: longest extent;
``scale``: metres per unit) and centred so that their bounding-box centre is the model origin;
poses in labels refer to that frame (the BOP models written beside the data are in the same
frame, in millimetres).

Textures named by an OBJ's MTL are found even when written as Windows paths (``.\\tex.jpg``), with
options before the file name, or in another letter case; one that cannot be found or read is a
warning naming the files, not a silently grey mesh (nor a crash when it is first drawn).

Objects are drawn opaque: pyrender blends any material with alpha below 1 (a texture's alpha
channel, a glTF base colour, RGBA vertex colours) with what lies behind it, while the labels'
segmentation pass draws every object whole, so a see-through part would be labelled as the
object where the pixels show something else. Alpha is set to 1 when a mesh is loaded, with a
warning naming the mesh.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..compositor.assets import fit_background
from ..errors import SpecError, SynthgenWarning
from ..sources import Problems, expand_paths, open_image, read_image, shown
from ..spec.renderer import RendererSpec

IMAGE_CACHE = 64  # decoded textures and photos kept per process
MESH_EXTS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
TEXTURE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp", ".gif")
GL_TEXTURE_LIMIT = 16384  # pixels a side: the least GL_MAX_TEXTURE_SIZE of OpenGL 4.1, the context pyrender makes
MATERIAL_IMAGES = ("image", "baseColorTexture", "metallicRoughnessTexture", "normalTexture", "emissiveTexture",
                   "occlusionTexture")  # trimesh's SimpleMaterial and PBRMaterial


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


def _readable(p: Path) -> bool:
    """A regular file (or nothing there, for trimesh to say so): a named pipe or device would
    block the read for ever."""
    try:
        return not p.exists() or p.is_file()
    except OSError:  # a name too long, say
        return True


# the options an MTL texture statement may give before its file name, and how many values each
# takes (-o, -s and -t take one to three numbers): "map_Kd -s 2 2 1 -bm 0.5 my texture.png"
_MTL_OPTIONS = {"blendu": 1, "blendv": 1, "cc": 1, "clamp": 1, "texres": 1, "bm": 1, "boost": 1, "imfchan": 1,
                "type": 1, "mm": 2, "o": 3, "s": 3, "t": 3}


def _without_mtl_options(statement: str) -> str:
    """The file name of an MTL texture statement's value, its options taken off (a file name
    may hold spaces: trimesh passes the whole rest of the line)."""
    import re

    words = list(re.finditer(r"\S+", statement))
    i = 0
    while i < len(words) and words[i].group().startswith("-") and words[i].group()[1:].lower() in _MTL_OPTIONS:
        key, i = words[i].group()[1:].lower(), i + 1
        takes = _MTL_OPTIONS[key]
        if key in ("o", "s", "t"):  # up to three numbers
            taken = 0
            while taken < takes and i < len(words) and _is_number(words[i].group()):
                i, taken = i + 1, taken + 1
        else:
            i += takes
    return statement[words[i].start():].strip() if i < len(words) else statement


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _case_insensitive(parent: Path, rel: str) -> str | None:
    """``rel`` ("Tex/Duck.PNG") under ``parent``, each part matched in any letter case, as
    Windows, where many meshes are made, matches them; None where a part has no match."""
    here, found = parent, []
    for part in (p for p in rel.split("/") if p not in ("", ".")):
        if part == "..":
            here, found = here.parent, found + [".."]
            continue
        try:
            names = {entry.name.lower(): entry.name for entry in os.scandir(here)}
        except OSError:
            return None
        hit = names.get(part.lower())
        if hit is None:
            return None
        here, found = here / hit, found + [hit]
    return "/".join(found) or None


def _resolver(path: Path):
    """trimesh's file resolver, more forgiving about how an MTL names its textures, and keeping
    the names it could not find."""
    from urllib.parse import unquote

    from trimesh.resolvers import FilePathResolver

    class Resolver(FilePathResolver):
        missing: list[str] = []
        textures: list[tuple[str, bytes]] = []  # image files found: (the name as written, their bytes)

        def get(self, name: str):
            data = self._find(name)
            if name.strip().lower().endswith(TEXTURE_EXTS):
                self.textures.append((_without_mtl_options(name.strip()), data))
            return data

        def _find(self, name: str):
            raw = name.strip()
            bare = _without_mtl_options(raw)
            cands = [raw, bare, bare.strip("\"'"), raw.replace("\\", "/"), raw.split()[-1] if raw.split() else raw]
            if "%" in raw:  # a glTF's URIs are percent-encoded: "my%20tex.png" is "my tex.png"
                cands.insert(0, unquote(raw))
            cands += [c.replace("\\", "/").lstrip("./").lstrip("/") for c in cands]
            cands += [c.rsplit("/", 1)[-1] for c in list(cands)]
            for c in dict.fromkeys(cands):
                if not _readable(Path(self.parent) / c):
                    continue
                try:
                    return super().get(c)
                except Exception:  # noqa: BLE001 - trimesh raises several types for a missing file
                    pass
            for c in dict.fromkeys(c.replace("\\", "/") for c in cands):  # in another letter case, as Windows finds it
                hit = _case_insensitive(Path(self.parent), c)
                if hit is not None and _readable(Path(self.parent) / hit):
                    return super().get(hit)
            self.missing.append(bare)
            raise FileNotFoundError(raw)

    r = Resolver(str(path), allow_anywhere=True)  # MTLs name ../textures/... too; reading is harmless
    r.missing, r.textures = [], []
    return r


def _unreadable(textures: list[tuple[str, bytes]]) -> dict[str, str]:
    """The textures of ``textures`` that Pillow cannot decode, and why (trimesh drops a texture
    that is not an image without a word, and opens a truncated one lazily: it would fail when
    first drawn)."""
    import io

    from PIL import Image

    bad = {}
    for name, data in textures:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with open_image(io.BytesIO(data)) as im:
                    im.load()
        except Image.DecompressionBombError:
            bad[name] = "is too large to decode"
        except Exception as e:  # noqa: BLE001 - Pillow raises several types for bad files
            bad[name] = "is not an image" if "cannot identify" in str(e) else "is truncated or corrupt"
    return bad


def _meshes_of(loaded) -> list:
    """The meshes of a loaded file: a Trimesh, or every mesh of a Scene."""
    return list(loaded.geometry.values()) if hasattr(loaded, "geometry") else [loaded]


def _materials(loaded) -> list:
    """The materials of a loaded file's textured meshes."""
    return [m.visual.material for m in _meshes_of(loaded) if getattr(getattr(m, "visual", None), "kind", None) == "texture"
            and getattr(m.visual, "material", None) is not None]


def _material_images(loaded) -> list[tuple[Any, str, Any]]:
    """(material, attribute, Pillow image) of every image a loaded file's materials hold."""
    from PIL import Image

    return [(mat, attr, img) for mat in _materials(loaded) for attr in MATERIAL_IMAGES
            if isinstance(img := getattr(mat, attr, None), Image.Image)]


def _drop_unreadable_images(loaded) -> bool:
    """Material images that cannot be decoded are dropped (the mesh draws untextured); whether
    there was one."""
    dropped = False
    for mat, attr, img in _material_images(loaded):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img.load()
        except Exception:  # noqa: BLE001
            setattr(mat, attr, None)
            dropped = True
    return dropped


def _gltf_header(path: Path) -> dict | None:
    """The JSON of a glTF file or of a GLB's first chunk; None where there is none to read."""
    import json
    import struct

    try:
        if path.suffix.lower() == ".gltf":
            return json.loads(path.read_text(encoding="utf-8"))
        with open(path, "rb") as f:
            head = f.read(20)
            if len(head) < 20 or head[:4] != b"glTF" or head[16:20] != b"JSON":
                return None
            return json.loads(f.read(struct.unpack("<I", head[12:16])[0]))
    except (OSError, ValueError):
        return None


def _lost_gltf_textures(path: Path, loaded) -> str:
    """What the base colour textures are that a glTF's materials name and that trimesh could
    not decode (it skips a KTX2/Basis texture, or an embedded image Pillow cannot read, without
    a word), as "image/ktx2"; "" where none was lost."""
    if path.suffix.lower() not in (".glb", ".gltf"):
        return ""
    header = _gltf_header(path)
    if not isinstance(header, dict) or any(getattr(m, "baseColorTexture", None) is not None for m in _materials(loaded)):
        return ""
    try:
        kinds = []
        for mat in header.get("materials", []):
            ref = mat.get("pbrMetallicRoughness", {}).get("baseColorTexture")
            if ref is None:
                continue
            tex = header["textures"][ref["index"]]
            source = tex.get("source", next((e.get("source") for e in tex.get("extensions", {}).values()
                                             if isinstance(e, dict) and "source" in e), None))
            image = header["images"][source] if source is not None else {}
            kinds.append(image.get("mimeType") or str(image.get("uri", "an image"))[:60])
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return ", ".join(dict.fromkeys(kinds))


def _plain_images(loaded) -> None:
    """Every material image as 8-bit RGB, or RGBA where it has alpha: pyrender takes a 4-band
    image as RGBA, so a CMYK texture (a JPEG from print software) was drawn with its black
    channel as alpha, see-through, while the labels took the object whole; a 2-band LA or a
    1-bit texture stopped the run ('Cannot reformat 2-channel texture', 'Invalid type'), and a
    16-bit or float one drew dark. Converted as every image synthgen reads (``read_image``)."""
    from PIL import Image

    from ..sources import pixels_as

    for mat, attr, img in _material_images(loaded):
        if img.mode in ("RGB", "RGBA"):
            continue
        alpha = "A" in img.getbands() or "transparency" in img.info
        setattr(mat, attr, Image.fromarray(pixels_as(img, "RGBA" if alpha else "RGB")))


def _make_opaque(loaded) -> list[str]:
    """Alpha set to 1 everywhere pyrender would blend the mesh with what lies behind it (see
    the module); what was see-through, for the warning."""
    from PIL import Image

    found = []
    for m in _meshes_of(loaded):
        visual = getattr(m, "visual", None)
        kind = getattr(visual, "kind", None)
        if kind in ("vertex", "face"):
            attr = "vertex_colors" if kind == "vertex" else "face_colors"
            colours = np.array(getattr(visual, attr))
            if colours.ndim == 2 and colours.shape[1] == 4 and (colours[:, 3] < 255).any():
                colours[:, 3] = 255
                setattr(visual, attr, colours)
                found.append(f"{kind} colours")
    for mat in _materials(loaded):
        attr = "baseColorTexture" if hasattr(mat, "baseColorTexture") else "image"  # PBRMaterial, SimpleMaterial
        img = getattr(mat, attr, None)
        if isinstance(img, Image.Image) and ("A" in img.getbands() or "transparency" in img.info):
            rgba = img.convert("RGBA")
            if rgba.getextrema()[3][0] < 255:
                setattr(mat, attr, rgba.convert("RGB"))  # the colour channels as they are
                found.append("texture alpha")
        for attr in ("diffuse", "baseColorFactor"):
            colour = getattr(mat, attr, None)
            if colour is not None and len(colour) == 4 and float(colour[3]) < (255 if np.asarray(colour).dtype == np.uint8 else 1.0):
                colour = np.array(colour)
                colour[3] = 255 if colour.dtype == np.uint8 else 1.0
                setattr(mat, attr, colour)
                found.append("base colour alpha")
        if getattr(mat, "alphaMode", None) not in (None, "OPAQUE"):
            mat.alphaMode = "OPAQUE"
    return list(dict.fromkeys(found))


def _scaled_to_gl_limit(w: int, h: int) -> tuple[int, int]:
    s = GL_TEXTURE_LIMIT / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _fit_textures(mesh) -> list[tuple[int, int, int, int]]:
    """Material images larger than OpenGL takes (glTexImage2D fails: 'invalid value') scaled
    down to its limit, area-averaged; (w, h, new w, new h) of each."""
    from PIL import Image

    scaled = []
    for mat, attr, img in _material_images(mesh):
        if max(img.size) > GL_TEXTURE_LIMIT:
            size = _scaled_to_gl_limit(*img.size)
            setattr(mat, attr, img.resize(size, Image.Resampling.BOX))
            scaled.append((*img.size, *size))
    return scaled


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
        resolver = _resolver(path)
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
    unreadable = _unreadable(resolver.textures)
    for texture, why in unreadable.items():
        warn_once(f"{name}: texture {texture!r} ({named_in}) {why}; the mesh renders untextured")
    if _drop_unreadable_images(loaded) and not unreadable:
        warn_once(f"{name}: a texture in its material cannot be decoded; the mesh renders untextured")
    elif not unreadable and not resolver.missing and (lost := _lost_gltf_textures(path, loaded)):
        warn_once(f"{name}: its base colour texture ({lost}) cannot be decoded; the mesh renders untextured")
    _plain_images(loaded)
    see_through = _make_opaque(loaded)
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
    for w, h, nw, nh in _fit_textures(loaded):  # after a scene's textures are packed into one
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

                size = _scaled_to_gl_limit(arr.shape[1], arr.shape[0])
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
