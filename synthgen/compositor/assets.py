"""Assets named by a spec: listed eagerly (cheap, so bad paths fail before anything is written),
decoded lazily and once per process (cutouts cropped to their mask, alpha kept soft).

Asset keys in plans are paths relative to the spec's folder, so a plan reads the same on
any machine.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SpecError
from ..sources import TURNED, Problems, exif_orientation, expand_paths, has_alpha, image_size, read_image, shown, turned_as
from ..spec import Spec

ALPHA_ON = 128  # alpha >= this (of 255) makes a pixel part of an object: the one ownership rule
FOOTPRINT_SIDE = 48  # side of the downsampled mask used to estimate truncation while planning


@dataclass(frozen=True)
class Cutout:
    """A decoded object cutout, cropped to its mask.

    rgba : (h, w, 4) uint8, RGB premultiplied by alpha (so resampling never pulls in the
        colour of the photo's old background).
    footprint : (k, 2) float32 (x, y) of the mask's pixels on a coarse grid, in cutout pixels,
        for cheap truncation estimates during planning.
    """

    rgba: np.ndarray
    footprint: np.ndarray
    small: np.ndarray
    """(hs, ws) uint8 0/1 mask, longer side at most FOOTPRINT_SIDE, for the placement solver."""
    levels: list = field(default_factory=list, compare=False, repr=False)
    """rgba halved again and again (area averaging), made when first asked for: an object is
    drawn from the smallest level at least its drawn size, so one bilinear warp does the rest."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgba.shape[1], self.rgba.shape[0]

    def level(self, scale: float) -> tuple[np.ndarray, int]:
        """The pyramid level to draw from at ``scale`` (drawn size / cutout size), and its
        number k (level k is 2**k times smaller): the smallest level not smaller than the
        drawn size."""
        if not self.levels:
            self.levels.append(self.rgba)
        k = 0
        while scale * (1 << (k + 1)) <= 1.0 and min(self.levels[k].shape[:2]) >= 4:
            if len(self.levels) == k + 1:
                prev = self.levels[k]
                self.levels.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA))
            k += 1
        return self.levels[k], k


@dataclass(frozen=True)
class CutoutRef:
    """Where a cutout comes from: an RGBA image, or an image with a separate mask."""

    image: str
    mask: str | None = None
    inverted: bool = False
    defringe: int = 0
    key: str = ""
    """The spec key that named it (classes.NAME or distractors), for error messages."""


DISTRACTOR = None  # the "category" of distractor cutouts in AssetLibrary.ref / plans


class AssetLibrary:
    """Backgrounds and cutouts of one spec. Build one per process; decoding is cached.

    Listing happens here and never raises: every problem found (a missing path, an image without
    alpha or mask) is kept in ``problems``, one line each naming the spec key and the file.
    ``verify()`` decodes every asset in full and returns the problems it finds; what it decoded
    stays cached, so checking does not double the start-up cost.
    """

    def __init__(self, spec: Spec, background_cache: int = 64):
        self.spec = spec
        self.base = Path(spec.base_dir)
        found = Problems()
        files: list[str] = []
        for i, p in enumerate(spec.backgrounds.paths):
            files += found.run("", expand_paths, self.base, p, f"backgrounds.paths.{i}") or []
        self.regions: dict[str, str] = {}
        pattern = spec.backgrounds.regions
        if pattern:
            region_files = {os.path.normpath(_sibling(f, pattern)) for f in files}
            files = [f for f in files if os.path.normpath(f) not in region_files]
            for f in files:
                r = _sibling(f, pattern)
                if (self.base / r).is_file():
                    self.regions[f] = r
            if not files and not found.lines:
                found.add("backgrounds.paths", "only region masks found, no background images")
        self.backgrounds = files
        self.cutouts: dict[str, list[CutoutRef]] = {}
        for name, cls in spec.classes.items():
            self.cutouts[name] = self._list_source(f"classes.{name}", cls, found)
        d = spec.distractors
        self.distractors: list[CutoutRef] = self._list_source("distractors", d, found) if d is not None and d.source else []
        self.textures: list[str] = []
        if d is not None:
            for i, p in enumerate(d.textures):
                self.textures += found.run("", expand_paths, self.base, p, f"distractors.textures.{i}") or []
        self.problems = found.lines
        self._refs = {(name, r.image): r for name, refs in self.cutouts.items() for r in refs}
        self._refs.update({(DISTRACTOR, r.image): r for r in self.distractors})
        self._cutout_cache: dict[str, Cutout] = {}
        self._bg_cache: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
        self._bg_cache_size = background_cache

    def _list_source(self, key: str, src, found: Problems) -> list[CutoutRef]:
        files: list[str] = []
        for i, p in enumerate(src.source):
            files += found.run("", expand_paths, self.base, p, f"{key}.source.{i}") or []
        if src.mask is None:
            refs = []
            for f in files:
                if not _alpha_of(self.base / f):
                    found.add(f"{key}.source", f"{shown(self.base / f)} has no alpha channel; give RGBA cutouts "
                                               f'or a mask pattern (mask: "{{stem}}.png")')
                else:
                    refs.append(CutoutRef(f, None, False, src.defringe, key))
            return refs
        masks = {os.path.normpath(_sibling(f, src.mask)) for f in files}
        refs = []
        for f in files:
            if os.path.normpath(f) in masks:
                continue  # this file is some image's mask
            m = os.path.normpath(_sibling(f, src.mask))
            if not (self.base / m).is_file():
                found.add(f"{key}.mask", f"no mask {shown(self.base / m)} for image {shown(self.base / f)} (pattern {src.mask!r})")
                continue
            refs.append(CutoutRef(f, m, src.mask_inverted, src.defringe, key))
        if files and not refs and not any(line.startswith(f"{key}.mask") for line in found.lines):
            found.add(f"{key}.source", "only mask files found, no images to cut out")
        return refs

    def input_files(self) -> list[Path]:
        """Every file this spec reads (for --overwrite's guard)."""
        rels = list(self.backgrounds) + list(self.regions.values()) + list(self.textures)
        for refs in [*self.cutouts.values(), self.distractors]:
            for r in refs:
                rels += [r.image] + ([r.mask] if r.mask else [])
        return [self.base / r for r in rels]

    def verify(self) -> list[str]:
        """Decode every background, region mask, cutout (with its mask) and texture in full;
        the problems found, one line each naming the spec key and the file."""
        found = Problems()
        W, H = self.spec.output.size
        fit = self.spec.backgrounds.fit
        for key in self.backgrounds:
            if found.run("backgrounds.paths", self.background, key, fit, (W, H)) is not None and key in self.regions:
                found.run("backgrounds.regions", self.region, key, fit, (W, H))
        for refs in [*self.cutouts.values(), self.distractors]:
            for ref in refs:
                found.run(ref.key, self.cutout, ref)
        for t in self.textures:
            found.run("distractors.textures", self.texture, t)
        return found.lines

    # -- cutouts ---------------------------------------------------------------------------
    def ref(self, category: str | None, image: str) -> CutoutRef:
        """The cutout of ``category`` (None: a distractor) whose image path (as in a plan) is ``image``."""
        try:
            return self._refs[(category, image)]
        except KeyError:
            raise SpecError(f"{image} is not a cutout of class {category!r}") from None

    def cutout(self, ref: CutoutRef) -> Cutout:
        """The decoded cutout (cached per process)."""
        cached = self._cutout_cache.get(ref.image)
        if cached is None:
            cached = self._cutout_cache[ref.image] = self._load_cutout(ref)
        return cached

    def texture(self, key: str) -> np.ndarray:
        """A texture image for procedural distractors, (h, w, 3) uint8 RGB (cached)."""
        arr = self._bg_cache.get((key, "texture", ""))
        if arr is None:
            arr = read_image(self.base / key, "RGB")
            self._remember((key, "texture", ""), arr)
        return arr

    def _load_cutout(self, ref: CutoutRef) -> Cutout:
        path = self.base / ref.image
        if ref.mask is None:
            rgba = read_image(path, "RGBA")
        else:
            rgb = read_image(path, "RGB")
            mask = read_image(self.base / ref.mask, "L")
            if mask.max() == 1:  # a 0/1 label image, as many segmentation datasets store masks
                mask = mask * np.uint8(255)
            if mask.shape[:2] != rgb.shape[:2]:
                mask = mask_of_turned_photo(mask, self.base / ref.mask, path, rgb.shape[1::-1])
            alpha = 255 - mask if ref.inverted else mask
            rgba = np.dstack([rgb, alpha])
        solid = rgba[..., 3] >= ALPHA_ON
        if not solid.any():
            top = int(rgba[..., 3].max())
            if ref.mask:
                raise SpecError(f"{shown(self.base / ref.mask)}: the object mask is empty (is mask_inverted right?)" if not top else
                                f"{shown(self.base / ref.mask)}: no pixel of the mask reaches {ALPHA_ON} (its highest is {top} of 255): "
                                f"the object is where the mask is {ALPHA_ON} or more (save the object as 255, or as 1 in a 0/1 mask)")
            raise SpecError(f"{shown(path)}: the cutout's alpha is empty (nothing to paste)" if not top else
                            f"{shown(path)}: no pixel of the cutout's alpha reaches {ALPHA_ON} (its highest is {top} of 255): "
                            f"the object is where alpha is {ALPHA_ON} or more, so nothing of it would be labelled")
        ys, xs = np.nonzero(rgba[..., 3])
        rgba = np.ascontiguousarray(rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
        if ref.defringe:
            rgba = defringe(rgba, ref.defringe)
        a = rgba[..., 3:4].astype(np.uint16)
        rgba[..., :3] = ((rgba[..., :3] * a + 127) // 255).astype(np.uint8)
        return make_cutout(rgba)

    # -- backgrounds ------------------------------------------------------------------------
    def background(self, key: str, fit: str, size: tuple[int, int]) -> np.ndarray:
        """The background fitted for ``fit`` (before any random crop), (h, w, 3) uint8 RGB.

        random_crop returns the image scaled to just cover ``size``; the caller crops.
        """
        ck = (key, fit, "image")
        arr = self._bg_cache.get(ck)
        if arr is not None:
            self._bg_cache.move_to_end(ck)
            return arr
        arr = fit_background(read_image(self.base / key, "RGB"), fit, size)
        self._remember(ck, arr)
        return arr

    def region(self, key: str, fit: str, size: tuple[int, int]) -> np.ndarray | None:
        """The placement region of background ``key``, fitted like it: (h, w) bool, or None."""
        rkey = self.regions.get(key)
        if rkey is None:
            return None
        ck = (key, fit, "region")
        arr = self._bg_cache.get(ck)
        if arr is None:
            mask = read_image(self.base / rkey, "L")
            src_w, src_h = image_size(self.base / key)  # the header is enough for the size
            if mask.shape[:2] != (src_h, src_w):
                mask = mask_of_turned_photo(mask, self.base / rkey, self.base / key, (src_w, src_h), "region", "background")
            arr = fit_background(np.dstack([mask] * 3), fit, size)[..., 0] >= 128
            if not arr.any():
                raise SpecError(f"{shown(self.base / rkey)}: the placement region is empty")
            self._remember(ck, arr)
        return arr

    def _remember(self, key: tuple, arr: np.ndarray) -> None:
        arr.setflags(write=False)
        self._bg_cache[key] = arr
        if len(self._bg_cache) > self._bg_cache_size:
            self._bg_cache.popitem(last=False)


def mask_of_turned_photo(mask: np.ndarray, mask_path: Path, photo: Path, shown_size: tuple[int, int],
                         kind: str = "mask", photo_kind: str = "image") -> np.ndarray:
    """A mask (or region) whose size is not its photo's ``shown_size`` (w, h): where the photo's
    EXIF orientation turns it (a phone's portrait shot, stored landscape) and the mask is the
    size of its pixels as stored, it was made from them as stored (Pillow without
    exif_transpose, rembg), so it is turned the same way. Any other size is an error naming both."""
    w, h = shown_size
    orientation = exif_orientation(photo)
    if orientation in TURNED and mask.shape[:2] == (w, h):
        return turned_as(mask, orientation)
    turned = f" (as its EXIF orientation {orientation} turns it; {h}x{w} as stored)" if orientation in TURNED else ""
    raise SpecError(f"{shown(mask_path)}: {kind} is {mask.shape[1]}x{mask.shape[0]}, {photo_kind} {shown(photo)} is {w}x{h}{turned}")


def _sibling(f: str, pattern: str) -> str:
    """The file beside ``f`` named by a ``{stem}`` pattern (only {stem} is replaced)."""
    return os.path.join(os.path.dirname(f), pattern.replace("{stem}", Path(f).stem))


def _alpha_of(path: Path) -> bool:
    try:
        return has_alpha(path)
    except (OSError, SpecError):  # unreadable, not an image or too large: verify() reports exactly why
        return True


def defringe(rgba: np.ndarray, px: int) -> np.ndarray:
    """Replace the colour of the outer ``px`` pixels of the object (and any soft edge) by the
    colour of the nearest interior pixel, so the photo's old background does not show as a
    halo. Alpha is kept. (h, w, 4) uint8 straight (not premultiplied) RGBA in and out."""
    alpha = rgba[..., 3]
    interior = cv2.erode((alpha == 255).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=px).astype(bool)
    if not interior.any():
        return rgba
    band = (alpha > 0) & ~interior
    if not band.any():
        return rgba
    _, labels = cv2.distanceTransformWithLabels((~interior).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    # label k is the k-th interior pixel in raster order
    coords = np.argwhere(interior)
    src = coords[labels[band] - 1]
    out = rgba.copy()
    out[band, :3] = rgba[src[:, 0], src[:, 1], :3]
    return out


def crop_fitted(fitted: np.ndarray, crop: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """The ``size`` = (width, height) window of a fitted background at ``crop`` = fractions
    (0..1) of its free width and height (a view, not a copy)."""
    W, H = size
    ox = int(round(crop[0] * (fitted.shape[1] - W)))
    oy = int(round(crop[1] * (fitted.shape[0] - H)))
    return fitted[oy : oy + H, ox : ox + W]


def fit_background(img: np.ndarray, fit: str, size: tuple[int, int]) -> np.ndarray:
    """Fit an RGB image to ``size`` = (width, height); random_crop only scales to cover."""
    W, H = size
    h, w = img.shape[:2]
    if fit == "resize":
        return _resize(img, W, H)
    if fit == "pad":
        s = min(W / w, H / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        out = np.zeros((H, W, 3), np.uint8)
        x0, y0 = (W - nw) // 2, (H - nh) // 2
        out[y0 : y0 + nh, x0 : x0 + nw] = _resize(img, nw, nh)
        return out
    s = max(W / w, H / h)
    if abs(s - 1.0) < 1e-9:
        return img
    return _resize(img, max(W, round(w * s)), max(H, round(h * s)))


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    shrink = w < img.shape[1] and h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def make_cutout(rgba: np.ndarray) -> Cutout:
    """A Cutout from premultiplied, cropped RGBA."""
    solid = rgba[..., 3] >= ALPHA_ON
    h, w = solid.shape
    f = min(1.0, FOOTPRINT_SIDE / max(h, w))
    small = cv2.resize(solid.astype(np.uint8), (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_NEAREST)
    return Cutout(rgba=rgba, footprint=_footprint(solid), small=small)


def _footprint(mask: np.ndarray) -> np.ndarray:
    """Pixel centres of ``mask`` on a grid of at most FOOTPRINT_SIDE cells a side."""
    h, w = mask.shape
    step = max(1, int(np.ceil(max(h, w) / FOOTPRINT_SIDE)))
    ys, xs = np.nonzero(mask[step // 2 :: step, step // 2 :: step])
    return np.stack([xs * step + step // 2 + 0.5, ys * step + step // 2 + 0.5], axis=1).astype(np.float32)
