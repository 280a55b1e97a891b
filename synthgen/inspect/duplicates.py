"""Near-duplicate images across a dataset's splits (leakage): two perceptual hashes of each
image find candidates through an exact-match index on hash quarters, and a small standardised
thumbnail confirms them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np


def _grey(path: str | Path, side: int) -> np.ndarray | None:
    """The image as a side x side grey array (JPEGs decoded at a fraction of their size)."""
    from PIL import Image

    from ..sources import open_image

    try:
        with open_image(path) as im:
            im.draft("L", (side * 4, side * 4))
            return np.asarray(im.convert("L").resize((side, side), Image.Resampling.BOX), np.float32)
    except (OSError, ValueError):
        return None


def _bits(b: np.ndarray) -> int:
    return int(np.packbits(b.reshape(-1)).view(">u8")[0])


def dhash(path: str | Path) -> int | None:
    """A 64-bit difference hash (9 x 8 grey, each pixel against its right neighbour)."""
    g = _grey(path, 32)
    if g is None:
        return None
    return _dhash(g)


def _dhash(g: np.ndarray) -> int:
    import cv2

    small = cv2.resize(g, (9, 8), interpolation=cv2.INTER_AREA)
    return _bits(small[:, 1:] > small[:, :-1])


def _phash(g: np.ndarray) -> int:
    """A 64-bit perceptual hash: the 8 x 8 lowest frequencies of the 32 x 32 DCT against their median."""
    import cv2

    d = cv2.dct(g)[:8, :8].reshape(-1)
    return _bits(d > np.median(d[1:]))


def image_hashes(path: str | Path) -> tuple[int, int] | None:
    """(dHash, pHash) of an image, or None when it cannot be read. Each survives some changes
    the other does not (a flat texture's contrast, a brightness shift), so candidates come
    from either."""
    g = _grey(path, 32)
    if g is None:
        return None
    return _dhash(g), _phash(g)


def near_duplicates(a: list[tuple[int, str]], b: list[tuple[int, str]], max_bits: int = 3) -> Iterator[tuple[str, str, int]]:
    """Pairs (file in a, file in b, differing bits) at most ``max_bits`` apart. Any two hashes
    that close agree exactly on one of their four 16-bit quarters (pigeonhole), so only pairs
    sharing a quarter are compared."""
    near = _Near([h for h, _ in b], max_bits)
    for h, fa in a:
        for j, d in near(h):
            yield fa, b[j][1], d


class _Near:
    """Hashes of one side in buckets by 16-bit quarter; calling it with a hash gives (index,
    differing bits) of those at most ``max_bits`` apart, in index order."""

    def __init__(self, hashes: list[int], max_bits: int = 3):
        self.hashes, self.max_bits = hashes, max_bits
        self.buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
        for j, h in enumerate(hashes):
            for q in range(4):
                self.buckets[(q, (h >> (16 * q)) & 0xFFFF)].append(j)

    def __call__(self, h: int) -> Iterator[tuple[int, int]]:
        cands = {j for q in range(4) for j in self.buckets.get((q, (h >> (16 * q)) & 0xFFFF), ())}
        for j in sorted(cands):
            d = (h ^ self.hashes[j]).bit_count()
            if d <= self.max_bits:
                yield j, d


THUMB = 32  # side of the grey thumbnails a hash match is confirmed on
CHANGED = 0.5  # a thumbnail pixel differs when its standardised values are this far apart
MOST_CHANGED = 0.01  # near-duplicates: at most this share of thumbnail pixels differ
PER_IMAGE = 32  # hash matches confirmed per image at most, nearest first
CACHE = 8192  # thumbnails kept (1 KiB each: int8, 1/32 steps)


def thumbnail(path: str | Path) -> np.ndarray | None:
    """The image as a THUMB x THUMB grey thumbnail, standardised (zero mean, unit spread), so
    re-encoding, resizing, blurring a little and changes of brightness or contrast leave it
    nearly the same."""
    g = _grey(path, THUMB)
    if g is None:
        return None
    return (g - g.mean()) / max(float(g.std()), 1.0)


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """The share of thumbnail pixels that differ between two standardised thumbnails."""
    return float((np.abs(a.astype(np.float32) - b.astype(np.float32)) > CHANGED).mean())


class _Thumbs:
    """Thumbnails, the most recently used CACHE of them kept (int8, 1/32 steps)."""

    def __init__(self):
        from collections import OrderedDict

        self.cache: OrderedDict[str, np.ndarray | None] = OrderedDict()

    def __call__(self, f: str) -> np.ndarray | None:
        if f in self.cache:
            self.cache.move_to_end(f)
            t = self.cache[f]
        else:
            t = thumbnail(f)
            t = self.cache[f] = None if t is None else np.clip(np.round(t * 32), -127, 127).astype(np.int8)
            if len(self.cache) > CACHE:
                self.cache.popitem(last=False)
        return None if t is None else t.astype(np.float32) / 32


def leaks(hashes: dict[str, list[tuple[int, int, str]]]) -> Iterator[tuple[str, str, str, str, float]]:
    """Images of different splits that look the same, as (file, its split, the other file, its
    split, share of the thumbnail that differs), from each image's (dHash, pHash, file) by split.
    Two 64-bit hashes find candidates cheaply (either at most 3 bits apart); a candidate is a
    near-duplicate when at most 1% of its 32 x 32 standardised thumbnail differs from the
    other's. The hashes alone are too coarse: synthetic images on one background photo, with
    small objects pasted in different places, often hash alike, and they are different images."""
    thumb = _Thumbs()
    splits = sorted(hashes)
    for i, sa in enumerate(splits):
        for sb in splits[i + 1:]:
            yield from _leaks_between(hashes[sa], hashes[sb], sa, sb, thumb)


def _leaks_between(a: list[tuple[int, int, str]], b: list[tuple[int, int, str]], sa: str, sb: str,
                   thumb: _Thumbs) -> Iterator[tuple[str, str, str, str, float]]:
    """One image of split a at a time: its candidates in b by either hash, the nearest
    PER_IMAGE of them confirmed; memory grows with the images, not with the pairs."""
    near = [_Near([h[k] for h in b]) for k in (0, 1)]
    for ha in sorted(a, key=lambda h: h[2]):
        found: dict[str, int] = {}
        for k in (0, 1):
            for j, d in near[k](ha[k]):
                found[b[j][2]] = min(d, found.get(b[j][2], 64))
        ta = thumb(ha[2]) if found else None
        if ta is None:
            continue
        for fb, _ in sorted(found.items(), key=lambda kv: (kv[1], kv[0]))[:PER_IMAGE]:
            tb = thumb(fb)
            share = None if tb is None else changed_share(ta, tb)
            if share is not None and share <= MOST_CHANGED:
                yield ha[2], sa, fb, sb, share
