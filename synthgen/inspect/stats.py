"""What a dataset holds, as numbers: per-instance and per-image tables, a bias audit, and the
distances between two datasets' distributions.

Sizes and positions are relative to the image: ``size`` = sqrt(box area / image area), ``cx``,
``cy`` the box centre as fractions of the width and height, ``aspect`` = log2(width / height).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..datasets.model import DiskDataset
from ..errors import SynthgenError, unicode_text


@dataclass
class Table:
    """A dataset's instances and images as parallel arrays (one row per instance / image)."""

    name: str
    categories: list[str]
    cls: np.ndarray  # (N,) int class index into categories
    size: np.ndarray
    aspect: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    visibility: np.ndarray  # NaN where the dataset has none
    truncation: np.ndarray
    image: np.ndarray  # (N,) index of the image of each instance
    per_image: np.ndarray  # (I,) instances per image
    splits: Counter
    backgrounds: list[Any]  # (I,) background of each image (synthgen's manifest), or None
    assets: list[Any]  # (N,) source asset of each instance (cutout, mesh), or None
    blends: list[Any]  # (N,) blend mode of each instance, or None
    images: int = 0

    @property
    def has_manifest(self) -> bool:
        return any(b is not None for b in self.backgrounds)


def collect(ds: DiskDataset, name: str, progress: Callable[[int], None] | None = None) -> Table:
    cats = list(ds.categories)
    rows: dict[str, list] = {k: [] for k in ("cls", "size", "aspect", "cx", "cy", "vis", "trunc", "image")}
    per_image, backgrounds, assets, blends = [], [], [], []
    splits: Counter = Counter()
    for i, item in enumerate(ds.items()):
        splits[item.split] += 1
        W, H = item.width or 0, item.height or 0
        if not (W and H):
            from ..sources import image_size

            try:
                W, H = image_size(item.path)
            except (OSError, SynthgenError):  # unreadable, or over the pixel limit
                W = H = 0
        labels = item.meta.get("labels", []) if item.meta else []
        backgrounds.append(item.meta.get("background") if item.meta else None)
        n = 0
        for k, o in enumerate(item.objects):
            if o.category not in cats:
                cats.append(o.category)
            x0, y0, x1, y1 = o.bbox
            w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
            rows["cls"].append(cats.index(o.category))
            rows["size"].append(np.sqrt(w * h / (W * H)) if W and H else np.nan)
            rows["aspect"].append(np.log2(w / h))
            rows["cx"].append((x0 + x1) / 2 / W if W else np.nan)
            rows["cy"].append((y0 + y1) / 2 / H if H else np.nan)
            rows["vis"].append(np.nan if o.visibility is None else o.visibility)
            rows["trunc"].append(np.nan if o.truncation is None else o.truncation)
            rows["image"].append(i)
            lab = labels[k] if k < len(labels) else {}
            assets.append(lab.get("asset"))
            blends.append(lab.get("blend"))
            n += 1
        per_image.append(n)
        if progress:
            progress(i + 1)
    arr = {k: np.asarray(v, float if k not in ("cls", "image") else int) for k, v in rows.items()}
    # names are shown, in charts and in a UTF-8 page: a file name's non-UTF-8 bytes as \xff
    cats, backgrounds, assets = ([unicode_text(v) if isinstance(v, str) else v for v in seq] for seq in (cats, backgrounds, assets))
    return Table(name, cats, arr["cls"], arr["size"], arr["aspect"], arr["cx"], arr["cy"], arr["vis"], arr["trunc"],
                 arr["image"], np.asarray(per_image, int), splits, backgrounds, assets, blends, len(per_image))


# -- the bias audit ---------------------------------------------------------------------------------
@dataclass
class Finding:
    title: str
    score: float
    """The strength, 0 (none) to 1 (complete); what it is is in ``measure``."""
    measure: str
    warnings: list[str] = field(default_factory=list)
    table: dict[str, Any] | None = None
    """A contingency table: {"rows": [...], "cols": [...], "counts": [[...]]}."""


def cramers_v(counts: np.ndarray) -> float:
    """Cramér's V of a contingency table: 0 when rows and columns are independent, 1 when one
    determines the other."""
    counts = np.asarray(counts, float)
    counts = counts[counts.sum(1) > 0][:, counts.sum(0) > 0]
    n = counts.sum()
    if n == 0 or min(counts.shape) < 2:
        return 0.0
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / n
    chi2 = float(((counts - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (n * (min(counts.shape) - 1))))


def eta_squared(values: np.ndarray, groups: np.ndarray) -> float:
    """The share of the variance of ``values`` that the groups explain (0: none, 1: all)."""
    ok = np.isfinite(values)
    v, g = values[ok], groups[ok]
    if len(v) < 3 or len(np.unique(g)) < 2 or v.var() == 0:
        return 0.0
    between = sum(len(v[g == k]) * (v[g == k].mean() - v.mean()) ** 2 for k in np.unique(g))
    return float(between / (len(v) * v.var()))


def audit(t: Table) -> list[Finding]:
    """Correlations a model could learn instead of the objects: class with background, class
    with source asset, class with size and with position."""
    out: list[Finding] = []
    present = sorted(set(t.cls.tolist()))
    names = [t.categories[c] for c in present]
    if t.has_manifest:
        bgs = sorted({b for b in t.backgrounds if b is not None}, key=str)
        counts = np.zeros((len(present), len(bgs)), int)
        for c, i in zip(t.cls, t.image):
            b = t.backgrounds[i]
            if b is not None:
                counts[present.index(c), bgs.index(b)] += 1
        f = Finding("class x background", cramers_v(counts), "Cramér's V", table={"rows": names, "cols": [_short(b) for b in bgs], "counts": counts.tolist()})
        for r, n in zip(counts, names):
            k = int((r > 0).sum())
            if len(bgs) >= 3 and k <= len(bgs) // 2:
                f.warnings.append(f"{n} appears on {k} of {len(bgs)} backgrounds: a model may learn the backgrounds")
        if f.score > 0.3:
            f.warnings.append(f"class and background are strongly associated (Cramér's V {f.score:.2f})")
        out.append(f)
        assets = sorted({a for a in t.assets if a is not None}, key=str)
        if assets:
            counts = np.zeros((len(present), len(assets)), int)
            for a, c in zip(t.assets, t.cls):
                if a is not None:
                    counts[present.index(c), assets.index(a)] += 1
            f = Finding("class x source asset", 0.0, "concentration (1 - evenness of a class's assets)",
                        table={"rows": names, "cols": [_short(a) for a in assets], "counts": counts.tolist()})
            worst = 0.0
            for r, n in zip(counts, names):
                used = r[r > 0]
                if used.sum() == 0:
                    continue
                if len(used) == 1:
                    worst = 1.0
                    if used.sum() >= 10:
                        f.warnings.append(f"{n}: all {int(used.sum())} instances come from one source asset "
                                          f"({_short(assets[int(np.argmax(r))])}): the model sees one object")
                    continue
                p = used / used.sum()
                worst = max(worst, float(1 + (p * np.log(p)).sum() / np.log(len(p))))
                if used.max() >= 100 * used.min():
                    f.warnings.append(f"{n}: {_short(assets[int(np.argmax(r))])} is used {int(used.max())} times, another "
                                      f"asset only {int(used.min())}: the class is mostly one object")
            f.score = worst
            total = counts.sum(0)
            if total.min() > 0 and total.max() >= 100 * total.min():
                f.warnings.append(f"{_short(assets[int(np.argmax(total))])} is used {int(total.max())} times, "
                                  f"{_short(assets[int(np.argmin(total))])} only {int(total.min())}")
            out.append(f)
    if len(present) >= 2:
        f = Finding("class x size", eta_squared(np.log(np.clip(t.size, 1e-6, None)), t.cls), "eta squared of log size")
        med = {n: float(np.nanmedian(t.size[t.cls == c])) for c, n in zip(present, names)}
        big, small = max(med, key=med.get), min(med, key=med.get)
        if med[small] > 0 and med[big] / med[small] >= 2:
            f.warnings.append(f"{big} is {med[big] / med[small]:.1f}x larger than {small} (median size): size alone tells them apart")
        out.append(f)
        for axis, vals, words in (("x", t.cx, ("left", "right")), ("y", t.cy, ("top", "bottom"))):
            f = Finding(f"class x position {axis}", eta_squared(vals, t.cls), "eta squared")
            if f.score > 0.1:
                means = {n: float(np.nanmean(vals[t.cls == c])) for c, n in zip(present, names)}
                lo, hi = min(means, key=means.get), max(means, key=means.get)
                f.warnings.append(f"{lo} sits towards the {words[0]} (mean {axis} {means[lo]:.2f}), {hi} towards the "
                                  f"{words[1]} ({means[hi]:.2f}): position tells them apart")
            out.append(f)
    return out


def _short(v: Any) -> str:
    s = str(v)
    return s.rsplit("/", 1)[-1] if "/" in s else s


# -- against a real dataset ----------------------------------------------------------------------------
@dataclass
class Gap:
    what: str
    distance: float
    measure: str
    scale: float
    """The distance in units a reader can rank: Wasserstein / the real data's spread, or TV."""


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.asarray(p, float), np.asarray(q, float)
    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def compare(syn: Table, real: Table) -> list[Gap]:
    """Distances between the synthetic and the real distributions, largest first."""
    from scipy.stats import wasserstein_distance

    gaps: list[Gap] = []
    names = sorted(set(syn.categories) | set(real.categories))

    def freq(t: Table) -> np.ndarray:
        c = Counter(t.categories[k] for k in t.cls)
        return np.array([c[n] for n in names], float)

    tv = total_variation(freq(syn), freq(real))
    gaps.append(Gap("class balance", tv, "total variation", tv))
    top = int(max(syn.per_image.max(initial=0), real.per_image.max(initial=0))) + 1
    tv = total_variation(np.bincount(syn.per_image, minlength=top), np.bincount(real.per_image, minlength=top))
    gaps.append(Gap("instances per image", tv, "total variation", tv))
    for what, a, b in (("box size", syn.size, real.size), ("box aspect (log2 w/h)", syn.aspect, real.aspect),
                       ("box centre x", syn.cx, real.cx), ("box centre y", syn.cy, real.cy)):
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) and len(b):
            d = float(wasserstein_distance(a, b))
            spread = float(np.std(b)) or 1.0
            gaps.append(Gap(what, d, "Wasserstein", d / spread))
    for name in names:  # size and aspect per class, where both have the class
        if name in syn.categories and name in real.categories:
            for what, a, b in (("box size", syn.size, real.size), ("box aspect", syn.aspect, real.aspect)):
                a = a[syn.cls == syn.categories.index(name)]
                b = b[real.cls == real.categories.index(name)]
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]
                if len(a) >= 2 and len(b) >= 2:
                    d = float(wasserstein_distance(a, b))
                    gaps.append(Gap(f"{what} of {name}", d, "Wasserstein", d / (float(np.std(b)) or 1.0)))
    return sorted(gaps, key=lambda g: -g.scale)
