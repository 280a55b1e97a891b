"""``synthgen report``: one self-contained HTML file about a dataset (synthgen's output, or any
COCO, YOLO or Pascal VOC dataset), and, with ``--real``, against a real one.

Everything is inside the file: charts as inline SVG (matplotlib), thumbnails as embedded JPEGs,
a few lines of JavaScript to filter the gallery by class and enlarge an image. No network, no
server, no scripts from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from ..datasets import open_dataset
from ..datasets.model import DiskDataset
from ..errors import SynthgenError, counted, unicode_text
from .draw import draw_item, palette
from .output import HTML_MARK, check_output, write_output
from .stats import Finding, Gap, Table, audit, collect, compare

GALLERY = 48  # images in the gallery, spread evenly over the dataset
THUMB, FULL = 240, 720  # longer side of a thumbnail and of an enlarged image, pixels


def build_report(path: str | Path, out: str | Path, real: str | Path | None = None, format: str | None = None,
                 images: str | Path | None = None, real_format: str | None = None, real_images: str | Path | None = None,
                 gallery: int = GALLERY, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Write the report to ``out``; returns its summary (counts, warnings, gaps). ``out`` must be
    a .html name, and an existing file there one that synthgen wrote (checked first)."""
    out = check_output(out, "html")
    ds = open_dataset(path, format, images)
    total = _count(ds)
    tick = (lambda n: progress("reading", n, total)) if progress else None
    syn = collect(ds, str(path), tick)
    findings = audit(syn)
    rt: Table | None = None
    gaps: list[Gap] = []
    if real is not None:
        rds = open_dataset(real, real_format, real_images)
        rt = collect(rds, str(real), (lambda n: progress("reading the real dataset", n, _count(rds))) if progress else None)
        if not len(rt.cls):  # every gap would be the whole scale, and numpy warned dividing by nothing
            raise SynthgenError(f"--real {real}: the dataset holds {counted(rt.images, 'image')} and no labelled object: "
                                "nothing to compare with")
        gaps = compare(syn, rt)
    thumbs = _gallery(ds, syn, gallery, (lambda n: progress("drawing the gallery", n, gallery)) if progress else None)
    charts = _charts(syn, rt)
    warnings = [w for f in findings for w in f.warnings]
    if rt is not None:
        warnings += [f"{g.what} differs most from the real data ({g.measure} {g.distance:.3f})" for g in gaps[:3] if g.scale >= 0.25]
    page = _page(ds, syn, rt, findings, gaps, warnings, charts, thumbs)
    write_output(out, unicode_text(page).encode("utf-8"))
    return {"images": syn.images, "instances": int(len(syn.cls)), "classes": syn.categories, "warnings": warnings,
            "gaps": [{"what": g.what, "distance": g.distance, "measure": g.measure} for g in gaps]}


def _count(ds: DiskDataset) -> int:
    from ..datasets.readers import CocoDataset, VocDataset, YoloDataset

    if isinstance(ds, CocoDataset):
        return sum(len(ds._load(s).get("images", [])) for s in ds.splits)
    if isinstance(ds, YoloDataset):
        return sum(len(ds.images_of(s)) for s in ds.splits)
    if isinstance(ds, VocDataset):
        return sum(len(ds.stems(s)) for s in ds.splits)
    return len(ds)


# -- gallery ------------------------------------------------------------------------------------
def _jpeg(rgb: np.ndarray, side: int) -> str:
    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    if f < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _gallery(ds: DiskDataset, t: Table, k: int, tick: Callable[[int], None] | None) -> list[dict[str, Any]]:
    if not t.images or k <= 0:
        return []
    chosen = set(np.linspace(0, t.images - 1, min(k, t.images)).round().astype(int).tolist())
    out = []
    for i, item in enumerate(ds.items()):
        if i not in chosen:
            continue
        try:
            pic = draw_item(item, t.categories)
        except Exception as e:  # noqa: BLE001 - one unreadable image must not sink the report
            out.append({"error": f"{item.path}: {e}", "classes": []})
            continue
        out.append({"thumb": _jpeg(pic, THUMB), "full": _jpeg(pic, FULL), "name": item.path.name, "split": item.split,
                    "classes": sorted({unicode_text(o.category) for o in item.objects}), "n": len(item.objects)})
        if tick:
            tick(len(out))
    return out


# -- charts -------------------------------------------------------------------------------------
def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})  # no date: the same data, the same page
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def _colour(i: int) -> str:
    r, g, b = palette(i)
    return f"#{r:02x}{g:02x}{b:02x}"


def _charts(t: Table, real: Table | None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a fixed salt: the SVGs' element ids are hashes, not random (uuid4), so a report is reproducible
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "synthgen"})
    charts: dict[str, str] = {}
    present = sorted(set(t.cls.tolist()))

    def fig(w: float = 5.2, h: float = 2.6):
        return plt.subplots(figsize=(w, h))

    # class balance
    f, ax = fig(5.2, 0.35 * max(3, len(t.categories)) + 0.6)
    names = t.categories
    n_syn = np.bincount(t.cls, minlength=len(names))
    y = np.arange(len(names))
    if real is None:
        ax.barh(y, n_syn, color=[_colour(i) for i in range(len(names))])
        ax.set_xlabel("labelled instances")
        if not n_syn.sum():  # nothing labelled: no negative counts on the axis
            ax.set_xlim(0, 1)
    else:
        rc = np.array([int((real.cls == real.categories.index(n)).sum()) if n in real.categories else 0 for n in names])
        ax.barh(y - 0.2, n_syn / max(1, n_syn.sum()), 0.4, label="this dataset", color="#4c72b0")
        ax.barh(y + 0.2, rc / max(1, rc.sum()), 0.4, label="real", color="#dd8452")
        ax.set_xlabel("share of instances")
        ax.legend(frameon=False, ncol=2, loc="lower right", bbox_to_anchor=(1, 1), fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    charts["classes"] = _svg(f)

    # instances per image (none to show for a dataset of no image)
    if len(t.per_image):
        charts["per_image"] = _per_image_chart(fig(), t, real)

    # size, aspect, visibility, truncation: per class, with the real data's total
    for key, label, vals, rvals, rng in (
        ("size", "box size (sqrt of box area / image area)", t.size, real.size if real is not None else None, (0, 1)),
        ("aspect", "box aspect, log2(width / height)", t.aspect, real.aspect if real is not None else None, (-3, 3)),
        ("visibility", "visibility (visible / own pixels)", t.visibility, None, (0, 1)),
        ("truncation", "truncation (share outside the frame)", t.truncation, None, (0, 1)),
    ):
        if not np.isfinite(vals).any():
            continue
        f, ax = fig()
        bins = np.linspace(*rng, 31)
        for c in present:
            v = vals[(t.cls == c) & np.isfinite(vals)]
            if len(v):
                ax.hist(np.clip(v, *rng), bins=bins, density=True, histtype="step", lw=1.6, color=_colour(c), label=t.categories[c])
        if rvals is not None:
            rv = rvals[np.isfinite(rvals)]
            if len(rv):
                ax.hist(np.clip(rv, *rng), bins=bins, density=True, histtype="stepfilled", alpha=0.25, color="#dd8452", label="real (all)")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(frameon=False, fontsize=7, ncol=2)
        charts[key] = _svg(f)

    # positions: where box centres fall, per class (nothing to show when no box is labelled)
    shown = present[:8]
    if shown or (real is not None and len(real.cx)):
        charts["positions"] = _positions_chart(plt, t, real, shown)

    # what synthgen used: backgrounds, source assets, blend modes
    if t.has_manifest:
        from collections import Counter

        for key, label, seq in (("backgrounds", "images per background", t.backgrounds), ("assets", "instances per source asset", t.assets),
                                ("blends", "instances per blend mode", t.blends)):
            use = Counter(str(v).rsplit("/", 1)[-1] for v in seq if v is not None)
            if not use:
                continue
            items = use.most_common(30)
            f, ax = fig(5.2, 0.28 * len(items) + 0.6)
            ax.barh(np.arange(len(items)), [v for _, v in items], color="#55a868")
            ax.set_yticks(np.arange(len(items)), [k for k, _ in items], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(label)
            charts[key] = _svg(f)
    return charts


def _per_image_chart(fig_ax, t: Table, real: Table | None) -> str:
    f, ax = fig_ax
    top = int(max(t.per_image.max(initial=0), real.per_image.max(initial=0) if real is not None else 0)) + 1
    bins = np.arange(top + 1) - 0.5
    ax.hist(t.per_image, bins=bins, density=True, alpha=0.8, label="this dataset", color="#4c72b0")
    if real is not None:
        ax.hist(real.per_image, bins=bins, density=True, histtype="step", lw=2, label="real", color="#dd8452")
        ax.legend(frameon=False)
    ax.set_xlabel("labelled instances in an image")
    ax.set_ylabel("share of images")
    return _svg(f)


def _positions_chart(plt, t: Table, real: Table | None, shown: list[int]) -> str:
    cols = min(4, max(1, len(shown) + (real is not None)))
    rows = int(np.ceil((len(shown) + (real is not None)) / cols))
    f, axes = plt.subplots(rows, cols, figsize=(1.55 * cols + 0.4, 1.3 * rows + 0.3), squeeze=False)
    panels = [(t.categories[c], t.cx[t.cls == c], t.cy[t.cls == c]) for c in shown]
    if real is not None:
        panels.append(("real (all)", real.cx, real.cy))
    for ax, (name, x, yv) in zip(axes.ravel(), panels):
        ok = np.isfinite(x) & np.isfinite(yv)
        hist, _, _ = np.histogram2d(yv[ok], x[ok], bins=12, range=[[0, 1], [0, 1]])
        ax.imshow(hist, cmap="magma", extent=(0, 1, 1, 0), aspect="auto")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    return _svg(f)


# -- the page -----------------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:21px}
header p{margin:0;color:#c9d1e0}main{padding:18px 28px;max-width:1400px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 16px;box-shadow:0 1px 2px #0001}
h2{font-size:16px;margin:0 0 10px}.stats{display:flex;gap:26px;flex-wrap:wrap}.stat b{display:block;font-size:22px}
.warn{background:#fff6e5;border-left:4px solid #f0a020}.warn li{margin:3px 0}.ok{color:#2d7d46}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px}.chart svg{width:100%;height:auto}
.chart h3{font-size:14px;margin:6px 0}.scroll{overflow-x:auto;max-width:100%}
.filter button{border:1px solid #ccd;background:#fff;border-radius:14px;padding:3px 11px;margin:0 5px 8px 0;cursor:pointer}
.filter button.on{background:#1d2330;color:#fff}.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px}
.thumb{margin:0;cursor:zoom-in;background:#eef0f4;border-radius:4px;overflow:hidden}.thumb img{width:100%;display:block}
.thumb figcaption{font-size:11px;padding:2px 6px;color:#556}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #dde;padding:3px 7px;text-align:right}th{background:#f0f2f6}td:first-child,th:first-child,.text{text-align:left}
#modal{position:fixed;inset:0;background:#000c;display:none;align-items:center;justify-content:center;cursor:zoom-out}
#modal img{max-width:94vw;max-height:94vh}.gap{font-variant-numeric:tabular-nums}
"""

JS = """
(function () {
  var buttons = document.querySelectorAll('.filter button');
  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      buttons.forEach(function (x) { x.classList.remove('on'); });
      b.classList.add('on');
      var want = b.getAttribute('data-class');
      document.querySelectorAll('.thumb').forEach(function (t) {
        // a JSON list: class names hold spaces ("teddy bear" is not "bear")
        var has = want === '*' || JSON.parse(t.getAttribute('data-classes')).indexOf(want) >= 0;
        t.style.display = has ? '' : 'none';
      });
    });
  });
  var modal = document.getElementById('modal'), big = document.getElementById('big');
  document.querySelectorAll('.thumb').forEach(function (t) {
    t.addEventListener('click', function () { big.src = t.getAttribute('data-full'); modal.style.display = 'flex'; });
  });
  modal.addEventListener('click', function () { modal.style.display = 'none'; big.removeAttribute('src'); });
})();
"""


def _e(s: Any) -> str:
    return html.escape(str(s))


def _table(tab: dict[str, Any], most: int = 40) -> str:
    """A contingency table; beyond ``most`` columns the least used ones are summed into one."""
    cols = list(tab["cols"])
    counts = np.asarray(tab["counts"], int).reshape(len(tab["rows"]), len(cols))  # no row: no class labelled
    if len(cols) > most:
        order = np.argsort(-counts.sum(0), kind="stable")
        keep, rest = order[: most - 1], order[most - 1:]
        counts = np.concatenate([counts[:, keep], counts[:, rest].sum(1, keepdims=True)], 1)
        cols = [cols[k] for k in keep] + [f"{len(rest)} others"]
    head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"
    body = "".join("<tr><td>" + _e(r) + "</td>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                   for r, row in zip(tab["rows"], counts.tolist()))
    return f"<table>{head}{body}</table>"


def _page(ds: DiskDataset, t: Table, real: Table | None, findings: list[Finding], gaps: list[Gap], warnings: list[str],
          charts: dict[str, str], thumbs: list[dict[str, Any]]) -> str:
    n_inst = int(len(t.cls))
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
             f"{HTML_MARK}<title>synthgen report: {_e(t.name)}</title><style>{CSS}</style></head><body>",
             f"<header><h1>{_e(t.name)}</h1><p>{_e(ds.format.upper())} dataset, made into a report by synthgen"
             + (f"; compared with the real dataset {_e(real.name)}" if real is not None else "") + "</p></header><main>"]
    splits = ", ".join(f"{_e(s)}: {n}" for s, n in t.splits.items())
    parts.append("<section><div class='stats'>"
                 f"<div class='stat'><b>{t.images}</b>images</div><div class='stat'><b>{n_inst}</b>labelled instances</div>"
                 f"<div class='stat'><b>{len(t.categories)}</b>classes</div>"
                 f"<div class='stat'><b>{(n_inst / max(t.images, 1)):.2f}</b>instances per image</div>"
                 f"<div class='stat'><b>{int((t.per_image == 0).sum())}</b>images without objects</div>"
                 f"<div class='stat'><b>{splits or '-'}</b>splits</div></div></section>")
    if warnings:
        parts.append("<section class='warn'><h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></section>")
    else:
        parts.append("<section><h2>Warnings</h2><p class='ok'>None: no strong correlation found.</p></section>")
    # gallery
    parts.append("<section><h2>Gallery</h2><div class='filter'><button class='on' data-class='*'>all</button>"
                 + "".join(f"<button data-class='{_e(c)}'>{_e(c)}</button>" for c in t.categories) + "</div><div class='gallery'>")
    for th in thumbs:
        if "error" in th:
            parts.append(f"<figure class='thumb' data-classes='[]'><figcaption>{_e(th['error'])}</figcaption></figure>")
            continue
        parts.append(f"<figure class='thumb' data-classes='{_e(json.dumps(th['classes']))}' data-full='{th['full']}'>"
                     f"<img src='{th['thumb']}' alt='{_e(th['name'])}'><figcaption>{_e(th['split'])}/{_e(th['name'])}: "
                     f"{counted(th['n'], 'object')}</figcaption></figure>")
    parts.append("</div></section>")
    # distributions
    titles = {"classes": "Class balance", "per_image": "Instances per image", "size": "Box sizes", "aspect": "Box aspects",
              "positions": "Where boxes are (centres, per class)", "visibility": "Visibility", "truncation": "Truncation",
              "backgrounds": "Backgrounds used", "assets": "Source assets used (cutouts, meshes)", "blends": "Blend modes"}
    parts.append("<section><h2>Distributions</h2><div class='charts'>")
    for key, title in titles.items():
        if key in charts:
            parts.append(f"<div class='chart'><h3>{title}</h3>{charts[key]}</div>")
    parts.append("</div></section>")
    # bias audit
    parts.append("<section><h2>Bias audit</h2><p>Correlations a model could learn instead of the objects. Scores run from 0 "
                 "(none) to 1 (complete).</p><table><tr><th>what</th><th>score</th><th class='text'>measure</th></tr>"
                 + "".join(f"<tr><td>{_e(f.title)}</td><td>{f.score:.3f}</td><td class='text'>{_e(f.measure)}</td></tr>" for f in findings)
                 + "</table>")
    for f in findings:
        if f.table:
            parts.append(f"<h3>{_e(f.title)}: instances</h3><div class='scroll'>{_table(f.table)}</div>")
    parts.append("</section>")
    if real is not None:
        parts.append("<section><h2>Against the real dataset</h2><p>Where this dataset differs most from what the model will "
                     "meet, largest first (Wasserstein distances also in units of the real data's spread).</p>"
                     "<table><tr><th>distribution</th><th>distance</th><th class='text'>measure</th><th>in real spreads</th></tr>"
                     + "".join(f"<tr><td>{_e(g.what)}</td><td class='gap'>{g.distance:.4f}</td><td class='text'>{_e(g.measure)}</td>"
                               f"<td class='gap'>{g.scale:.2f}</td></tr>" for g in gaps) + "</table></section>")
    parts.append(f"</main><div id='modal'><img id='big' alt='enlarged'></div><script>{JS}</script></body></html>")
    return "".join(parts)
