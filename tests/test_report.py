"""synthgen report: the bias audit finds correlations made on purpose in a fixture, --real ranks
where two datasets differ, every format reads, and the page works in a real browser (headless
Chromium through Selenium: no console errors, every gallery image loads, the class filter and the
enlarged view work, the screenshot is not blank)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.datasets import open_dataset
from synthgen.inspect.report import build_report
from synthgen.inspect.stats import audit, collect, compare, cramers_v, eta_squared
from synthgen.spec import spec_from_dict

from .conftest import base_spec

runner = CliRunner()


# -- datasets made here -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(assets, tmp_path_factory) -> Path:
    """synthgen output: one object per image on six backgrounds."""
    root = tmp_path_factory.mktemp("made")
    bgs = root / "bgs"
    bgs.mkdir()
    rng = np.random.default_rng(3)
    for k in range(6):
        img = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2 + k)
        cv2.imwrite(str(bgs / f"bg{k}.png"), img)
    raw = base_spec(assets)
    raw["backgrounds"] = {"paths": [str(bgs)]}
    raw["objects_per_image"] = 1
    raw["output"].update(formats=["coco", "yolo", "voc"], split={"train": 0.8, "val": 0.2})
    Generator(spec_from_dict(raw)).generate(root / "ds", n=90)
    return root / "ds"


def _subset(src: Path, dst: Path, keep) -> Path:
    """A subset of synthgen's COCO output (annotations and manifest), images kept where keep(manifest line)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("yolo", "voc", "labels", "data.yaml"))
    lines = [json.loads(ln) for ln in (src / "manifest.jsonl").read_text().splitlines()]
    kept = [m for m in lines if keep(m)]
    (dst / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in kept))
    files = {m["file"] for m in kept}
    for f in (dst / "annotations").glob("instances_*.json"):
        split = f.stem.removeprefix("instances_")
        coco = json.loads(f.read_text())
        coco["images"] = [im for im in coco["images"] if f"images/{split}/{im['file_name']}" in files]
        ids = {im["id"] for im in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        f.write_text(json.dumps(coco))
    return dst


def _coco(path: Path, boxes: dict[str, list[tuple[float, float, float, float]]], size=(200, 100), per_image: int = 1) -> Path:
    """A plain COCO dataset (no synthgen manifest) with the given xywh boxes per class, images drawn."""
    (path / "images" / "train").mkdir(parents=True)
    (path / "annotations").mkdir()
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(boxes)]
    flat = [(k + 1, b) for k, n in enumerate(boxes) for b in boxes[n]]
    images, anns = [], []
    for j in range(0, len(flat), per_image):
        img = np.full((size[1], size[0], 3), 90 + 20 * (j % 5), np.uint8)
        name = f"{j:05d}.png"
        cv2.imwrite(str(path / "images" / "train" / name), img)
        images.append({"id": j + 1, "file_name": name, "width": size[0], "height": size[1]})
        for c, (x, y, w, h) in flat[j:j + per_image]:
            anns.append({"id": len(anns) + 1, "image_id": j + 1, "category_id": c, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    (path / "annotations" / "instances_train.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


# -- the statistics ------------------------------------------------------------------------------
def test_cramers_v_and_eta_squared_known_values():
    assert cramers_v(np.array([[10, 0], [0, 10]])) == pytest.approx(1.0)
    assert cramers_v(np.array([[5, 5], [5, 5]])) == pytest.approx(0.0)
    assert cramers_v(np.array([[9, 1], [1, 9]])) == pytest.approx(0.8)  # phi of a 2x2 table
    g = np.array([0, 0, 0, 1, 1, 1])
    assert eta_squared(np.array([1.0, 1, 1, 5, 5, 5]), g) == pytest.approx(1.0)
    assert eta_squared(np.array([1.0, 5, 3, 1, 5, 3]), g) == pytest.approx(0.0)


def test_a_class_on_few_backgrounds_is_named(made, tmp_path):
    def keep(m):  # ring only ever on bg0 or bg1; the other classes anywhere
        cls = {o["category"] for o in m["scene"]["objects"]}
        return "ring" not in cls or m["scene"]["background"]["asset"].endswith(("bg0.png", "bg1.png"))

    biased = _subset(made, tmp_path / "biased", keep)
    t = collect(open_dataset(biased), "biased")
    found = {f.title: f for f in audit(t)}
    bg = found["class x background"]
    assert any(w.startswith("ring appears on 2 of 6 backgrounds") for w in bg.warnings), bg.warnings
    assert not any(w.startswith(("pair appears", "bar appears")) for w in bg.warnings)
    # the same audit on the whole run: no class on few backgrounds, a weak association
    whole = {f.title: f for f in audit(collect(open_dataset(made), "made"))}
    assert whole["class x background"].warnings == []
    assert bg.score > whole["class x background"].score
    # the table counts what the manifest says
    table = bg.table
    ring = table["counts"][table["rows"].index("ring")]
    assert sum(ring) == sum(1 for o in t.cls if t.categories[o] == "ring")
    assert {c for c, n in zip(table["cols"], ring) if n} <= {"bg0.png", "bg1.png"}
    # and the report says it, and the CLI prints it
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(biased), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning: ring appears on 2 of 6 backgrounds" in r.output
    assert "ring appears on 2 of 6 backgrounds" in out.read_text()


def test_source_assets_one_per_class_and_overused(made):
    t = collect(open_dataset(made), "made")
    f = {f.title: f for f in audit(t)}["class x source asset"]
    # every class of the fixture has one cutout: the model sees one object per class
    assert f.score == 1.0
    for name in ("ring", "pair", "bar"):
        assert any(w.startswith(f"{name}: all ") and "come from one source asset" in w for w in f.warnings), f.warnings
    assert sorted(f.table["rows"]) == ["bar", "pair", "ring"]
    assert sum(map(sum, f.table["counts"])) == len(t.cls)


def test_size_and_position_correlations_on_a_plain_coco(tmp_path):
    rng = np.random.default_rng(0)
    cat = [(float(rng.uniform(0, 20)), float(rng.uniform(0, 40)), 60.0, 45.0) for _ in range(30)]  # big, on the left
    dog = [(float(rng.uniform(140, 170)), float(rng.uniform(0, 80)), 20.0, 15.0) for _ in range(30)]  # small, on the right
    ds = _coco(tmp_path / "pets", {"cat": cat, "dog": dog})
    found = {f.title: f for f in audit(collect(open_dataset(ds), "pets"))}
    size = found["class x size"]
    assert any(w.startswith("cat is 3.0x larger than dog") for w in size.warnings), size.warnings
    assert size.score > 0.9
    x = found["class x position x"]
    assert any(w.startswith("cat sits towards the left") and "dog towards the right" in w for w in x.warnings), x.warnings
    assert "class x background" not in found  # no manifest, no background audit


def test_against_a_real_dataset_ranks_the_largest_gap_first(tmp_path):
    rng = np.random.default_rng(1)

    def boxes(side):
        return [(float(rng.uniform(0, 100)), float(rng.uniform(0, 40)), side, side) for _ in range(40)]

    syn = _coco(tmp_path / "syn", {"cat": boxes(50.0), "dog": boxes(50.0)})
    real = _coco(tmp_path / "real", {"cat": boxes(12.0), "dog": boxes(12.0)})
    s, r = (collect(open_dataset(p), p.name) for p in (syn, real))
    gaps = compare(s, r)
    assert gaps[0].what.startswith("box size")
    assert {g.what: g.distance for g in gaps}["class balance"] == pytest.approx(0.0)
    expect = np.sqrt(50 * 50 / (200 * 100)) - np.sqrt(12 * 12 / (200 * 100))  # every box one size: the shift
    assert {g.what: g.distance for g in gaps}["box size"] == pytest.approx(expect, rel=1e-6)
    # against itself, nothing differs
    assert all(g.distance == pytest.approx(0.0, abs=1e-12) for g in compare(s, s))
    out = tmp_path / "cmp.html"
    summary = build_report(syn, out, real=real)
    assert summary["gaps"][0]["what"].startswith("box size")
    assert any(w.startswith("box size") and "differs most from the real data" in w for w in summary["warnings"])
    assert "Against the real dataset" in out.read_text()


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_every_format_reports_the_same_counts(made, tmp_path, fmt):
    out = tmp_path / f"{fmt}.html"
    s = build_report(made, out, format=fmt, gallery=4)
    assert s["images"] == 90 and s["instances"] == 90
    assert sorted(s["classes"]) == ["bar", "pair", "ring"]
    page = out.read_text()
    assert page.count("<figure class='thumb'") == 4


def test_self_contained_no_network(made, tmp_path):
    out = tmp_path / "r.html"
    build_report(made, out, gallery=6)
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report fetches something from the network"
    assert "@import" not in page and "url(http" not in page
    assert page.count("data:image/jpeg;base64,") == 12  # thumbnail and enlarged image of each


def test_an_empty_real_dataset_is_one_line_not_a_comparison(made, tmp_path):
    """--real naming a COCO file of no image (or no labelled object): every gap was the whole
    scale ('class balance differs most from the real data (total variation 1.000)') and numpy
    printed a RuntimeWarning. Now one line, and no page. show of it says it holds no image."""
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "ring"}]}))
    out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "synthgen.cli", "report", str(made), "--real", str(empty), "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: --real {empty}: the dataset holds 0 images and no labelled object: nothing to compare with"], p.stderr
    assert not out.exists()
    r = runner.invoke(app, ["show", str(empty), "--out", str(tmp_path / "s.png")])
    assert r.exit_code == 2 and "the dataset holds no image: nothing to show" in r.output, r.output
    r = runner.invoke(app, ["show", str(made), "--index", "100000", "--out", str(tmp_path / "s.png")])
    assert r.exit_code == 2 and "--index 100000: no image with that id, and the dataset has 90 images" in r.output, r.output


def test_bad_input_one_line_exit_2(tmp_path):
    r = runner.invoke(app, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


# -- in a real browser ---------------------------------------------------------------------------
def _chrome():
    import shutil as sh

    browser = sh.which("chromium") or sh.which("chromium-browser") or sh.which("google-chrome")
    driver = sh.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver; .ci/run does it)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium not installed (pip install -e '.[dev]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def test_report_in_a_real_browser(made, tmp_path):
    out = tmp_path / "report.html"
    build_report(made, out, gallery=12)
    drv = _chrome()
    try:
        drv.get(out.as_uri())
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        imgs = drv.execute_script(
            "return Array.from(document.querySelectorAll('.thumb img')).map(i => [i.complete, i.naturalWidth]);")
        assert len(imgs) == 12 and all(ok and w > 0 for ok, w in imgs), imgs
        assert drv.execute_script("return document.querySelectorAll('.chart svg').length") >= 6
        # filter by class: only thumbs holding it stay visible
        drv.execute_script("document.querySelector(\".filter button[data-class='ring']\").click()")
        shown = drv.execute_script(
            "return Array.from(document.querySelectorAll('.thumb')).filter(t => t.style.display !== 'none')"
            ".map(t => t.getAttribute('data-classes'));")
        assert shown and all("ring" in json.loads(s) for s in shown)
        assert len(shown) < 12
        # click to enlarge: the big image loads, larger than the thumbnail
        drv.execute_script("document.querySelectorAll('.thumb')[0].click()")
        big = drv.execute_script("var b = document.getElementById('big'); return [getComputedStyle(document.getElementById('modal')).display, b.complete, b.naturalWidth];")
        assert big[0] == "flex" and big[1] and big[2] > 0
        drv.execute_script("document.getElementById('modal').click()")
        png = drv.get_screenshot_as_png()
        assert drv.get_log("browser") == []
    finally:
        drv.quit()
    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert shot is not None and shot.shape[0] > 500
    assert shot.std() > 20, "the screenshot is blank"
    assert len(np.unique(shot.reshape(-1, 3)[::97], axis=0)) > 200  # pictures and charts, not a flat page


def test_the_class_filter_tells_names_with_spaces_apart(made, tmp_path):
    """COCO's own classes include "bear" and "teddy bear": the filter matched names as words of
    a space-joined list, so "bear" also showed the teddy bears."""
    ds = tmp_path / "ds"
    shutil.copytree(made, ds)
    names = ["bear", "teddy bear", "it's \"quoted\" & <b>"]
    classes_of: dict[str, set[str]] = {}  # image file name -> the class names it holds
    for f in (ds / "annotations").glob("*.json"):
        data = json.loads(f.read_text())
        by_id = {}
        for c, name in zip(sorted(data["categories"], key=lambda c: c["id"]), names):
            c["name"] = by_id[c["id"]] = name
        files = {im["id"]: im["file_name"] for im in data["images"]}
        for a in data["annotations"]:
            classes_of.setdefault(files[a["image_id"]], set()).add(by_id[a["category_id"]])
        f.write_text(json.dumps(data))
    out = tmp_path / "report.html"
    build_report(ds, out, gallery=30)
    drv = _chrome()
    try:
        drv.get(out.as_uri())
        seen = {}
        for name in names:
            drv.execute_script("Array.from(document.querySelectorAll('.filter button'))"
                               ".find(b => b.getAttribute('data-class') === arguments[0]).click()", name)
            seen[name] = drv.execute_script(
                "return Array.from(document.querySelectorAll('.thumb')).filter(t => t.style.display !== 'none')"
                ".map(t => t.querySelector('img').getAttribute('alt'));")
        assert drv.get_log("browser") == []
    finally:
        drv.quit()
    for name, shown in seen.items():
        assert shown and all(name in classes_of[f] for f in shown), (name, [(f, classes_of[f]) for f in shown])


def test_the_same_dataset_gives_the_same_page(made, tmp_path):
    """matplotlib named the SVGs' elements with random ids and dated them: two reports of one
    dataset differed in about 1,500 places, so a report could not be diffed or cached."""
    for name in ("a.html", "b.html"):
        build_report(made, tmp_path / name, gallery=6)
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
