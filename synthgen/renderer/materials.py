"""A loaded mesh file's materials and textures: found (an MTL's own ways of naming them),
checked (what cannot be decoded is named, not drawn grey in silence) and made drawable.

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
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..sources import open_image

TEXTURE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp", ".gif")
GL_TEXTURE_LIMIT = 16384  # pixels a side: the least GL_MAX_TEXTURE_SIZE of OpenGL 4.1, the context pyrender makes
MATERIAL_IMAGES = ("image", "baseColorTexture", "metallicRoughnessTexture", "normalTexture", "emissiveTexture",
                   "occlusionTexture")  # trimesh's SimpleMaterial and PBRMaterial


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


def texture_resolver(path: Path):
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


def unreadable_textures(textures: list[tuple[str, bytes]]) -> dict[str, str]:
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


def drop_unreadable_images(loaded) -> bool:
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


def lost_gltf_textures(path: Path, loaded) -> str:
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


def plain_images(loaded) -> None:
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


def make_opaque(loaded) -> list[str]:
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


def scaled_to_gl_limit(w: int, h: int) -> tuple[int, int]:
    s = GL_TEXTURE_LIMIT / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def fit_textures(mesh) -> list[tuple[int, int, int, int]]:
    """Material images larger than OpenGL takes (glTexImage2D fails: 'invalid value') scaled
    down to its limit, area-averaged; (w, h, new w, new h) of each."""
    from PIL import Image

    scaled = []
    for mat, attr, img in _material_images(mesh):
        if max(img.size) > GL_TEXTURE_LIMIT:
            size = scaled_to_gl_limit(*img.size)
            setattr(mat, attr, img.resize(size, Image.Resampling.BOX))
            scaled.append((*img.size, *size))
    return scaled
