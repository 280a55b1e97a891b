"""synthgen validate: every kind of problem, made in a fixture and found and named; synthgen's own
output validates clean for every writer and both backends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.inspect.duplicates import dhash, near_duplicates
from synthgen.inspect.validate import validate
from synthgen.spec import spec_from_dict

from .conftest import ROOT, base_spec, needs_gl

runner = CliRunner()


@pytest.fixture(scope="module")
def clean(assets, tmp_path_factory) -> Path:
    raw = base_spec(assets)
    raw["objects_per_image"] = [1, 4]
    raw["output"].update(formats=["coco", "yolo", "voc"], split={"train": 0.6, "val": 0.4})
    out = tmp_path_factory.mktemp("clean") / "ds"
    Generator(spec_from_dict(raw)).generate(out, n=16)
    return out


@pytest.fixture
def ds(clean, tmp_path) -> Path:
    shutil.copytree(clean, tmp_path / "ds", copy_function=shutil.copy2)
    return tmp_path / "ds"


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_synthgens_output_validates_clean(clean, fmt):
    r = validate(clean, fmt)
    assert r.problems == [] and r.images == 16 and r.annotations > 16


@pytest.mark.parametrize("output", [{"coco_segmentation": "polygon", "yolo_task": "segment"}, {"image_format": "png"}])
def test_every_writer_validates_clean(assets, tmp_path, output):
    raw = base_spec(assets)
    raw["output"].update(formats=["coco", "yolo", "voc"], **output)
    raw["write_blend_variants"] = ["none", "gaussian"]
    Generator(spec_from_dict(raw)).generate(tmp_path / "o", n=8)
    for fmt in ("coco", "yolo", "voc"):
        r = validate(tmp_path / "o", fmt)
        assert r.problems == [], (fmt, [p.line() for p in r.problems])


@needs_gl()
def test_renderer_output_validates_clean(shared, tmp_path):
    from .test_renderer import _spec

    raw = _spec(shared, output={"size": [160, 120], "formats": ["coco", "yolo", "voc", "bop"], "split": {"train": 1.0}})
    Generator(spec_from_dict(raw)).generate(tmp_path / "r", n=4)
    for fmt in ("coco", "yolo", "voc"):
        assert validate(tmp_path / "r", fmt).problems == []


def _coco(ds: Path, split: str = "train") -> tuple[Path, dict]:
    f = ds / "annotations" / f"instances_{split}.json"
    return f, json.loads(f.read_text())


def _found(ds: Path, fmt: str, kind: str, file_part: str, id_part: str = "") -> None:
    r = validate(ds, fmt)
    hits = [p for p in r.problems if p.kind == kind]
    assert hits, (kind, [p.line() for p in r.problems])
    assert any(file_part in p.file and id_part in p.id for p in hits), [p.line() for p in hits]
    res = runner.invoke(app, ["validate", str(ds), "--format", fmt])
    assert res.exit_code == 1 and kind in res.output and "Traceback" not in res.output


def _edit_coco(ds: Path, fn) -> tuple[Path, dict]:
    f, data = _coco(ds)
    fn(data)
    f.write_text(json.dumps(data))
    return f, data


COCO_CASES = {
    "box-outside-image": lambda d: d["annotations"][0].update(bbox=[100.0, 80.0, 60.0, 40.0]),
    "box-not-positive": lambda d: d["annotations"][0].update(bbox=[10.0, 10.0, 0.0, 5.0]),
    "mask-disagrees-with-area": lambda d: d["annotations"][0].update(area=d["annotations"][0]["area"] + 50),
    "mask-disagrees-with-box": lambda d: d["annotations"][0].update(
        bbox=[d["annotations"][0]["bbox"][0] + 5] + d["annotations"][0]["bbox"][1:]),
    "polygon-degenerate": lambda d: d["annotations"][0].update(segmentation=[[1.0, 1.0, 5.0, 5.0]]),
    "mask-size-differs": lambda d: d["annotations"][0]["segmentation"].update(size=[10, 10]),
    "annotation-id-duplicated": lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]),
    "image-id-duplicated": lambda d: d["images"].append(dict(d["images"][0])),
    "annotation-orphaned": lambda d: d["annotations"][0].update(image_id=999999),
    "category-id-unknown": lambda d: d["annotations"][0].update(category_id=42),
    "image-size-differs": lambda d: d["images"][0].update(width=d["images"][0]["width"] + 1),
    "image-size-missing": lambda d: d["images"][0].pop("height"),
    "category-id-duplicated": lambda d: d["categories"].append(dict(d["categories"][0])),
    "no-categories": lambda d: d.update(categories=[]),
}


@pytest.mark.parametrize("kind", sorted(COCO_CASES))
def test_broken_coco_is_found(ds, kind):
    f, data = _edit_coco(ds, COCO_CASES[kind])
    _found(ds, "coco", kind, "instances_train.json")


def test_coco_missing_and_unreadable_images(ds):
    f, data = _coco(ds)
    folder = ds / "images" / "train"
    (folder / data["images"][0]["file_name"]).unlink()
    (folder / data["images"][1]["file_name"]).write_bytes(b"not an image")
    r = validate(ds, "coco")
    kinds = {p.kind for p in r.problems}
    assert {"image-missing", "image-unreadable"} <= kinds, [p.line() for p in r.problems]


def test_empty_mask_is_found(ds):
    def empty(d):
        a = d["annotations"][0]
        from pycocotools import mask as mask_utils

        h, w = a["segmentation"]["size"]
        rle = mask_utils.encode(np.zeros((h, w), np.uint8, order="F"))
        a["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode()}
    _edit_coco(ds, empty)
    _found(ds, "coco", "mask-empty", "instances_train.json")


def test_near_duplicates_across_splits_are_leaks(ds):
    f, data = _coco(ds, "val")
    val_img = ds / "images" / "val" / data["images"][0]["file_name"]
    train_img = sorted((ds / "images" / "train").glob("*.jpg"))[0]
    img = cv2.imread(str(train_img))
    cv2.imwrite(str(val_img), cv2.GaussianBlur(img, (3, 3), 0), [cv2.IMWRITE_JPEG_QUALITY, 60])  # re-encoded, not identical
    r = validate(ds, "coco")
    leaks = [p for p in r.problems if p.kind == "near-duplicate-across-splits"]
    assert len(leaks) == 1 and train_img.name in leaks[0].message + leaks[0].file, [p.line() for p in r.problems]
    assert not [p for p in validate(ds, "coco", duplicates=False).problems if p.kind == "near-duplicate-across-splits"]


def test_one_background_with_small_objects_is_not_a_leak_but_a_brightened_copy_is(shared, tmp_path):
    """Synthetic images on one background photo hash alike (the 64-bit hash barely sees small
    objects); the thumbnail check tells them apart, and still finds a real copy."""
    raw = {"seed": 3, "output": {"size": [320, 240], "formats": ["coco"], "split": {"train": 0.5, "val": 0.5}},
           "backgrounds": {"paths": [str(ROOT / "assets" / "backgrounds" / "skimage-brick.jpg")], "fit": "resize"},
           "classes": {"cereal": {"source": str(ROOT / "assets" / "objects" / "cereal")}},
           "objects_per_image": 1, "placement": {"scale_range": [0.15, 0.25], "min_area": 16}}
    out = tmp_path / "one-bg"
    Generator(spec_from_dict(raw)).generate(out, n=40)
    files = {s: sorted((out / "images" / s).glob("*.jpg")) for s in ("train", "val")}
    hashes = {s: [(dhash(f), str(f)) for f in fs] for s, fs in files.items()}
    assert len(list(near_duplicates(hashes["train"], hashes["val"]))) >= 5  # the hash alone would call these leaks
    assert validate(out, "coco").problems == []
    copy = files["val"][0]
    img = cv2.imread(str(files["train"][3]))
    img = cv2.resize(cv2.convertScaleAbs(img, alpha=1.1, beta=12), (300, 225), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(copy), cv2.resize(img, (320, 240)), [cv2.IMWRITE_JPEG_QUALITY, 50])
    leaks = [p for p in validate(out, "coco").problems if p.kind == "near-duplicate-across-splits"]
    assert len(leaks) == 1, [p.line() for p in leaks]
    assert leaks[0].file == str(files["train"][3]) and f"looks like {copy} of split val" in leaks[0].message


def test_near_duplicate_search_finds_what_brute_force_finds():
    rng = np.random.default_rng(0)
    a = [(int(h), f"a{i}") for i, h in enumerate(rng.integers(0, 2**63, 300, dtype=np.int64))]
    b = [(h ^ (1 << int(rng.integers(64))) ^ (1 << int(rng.integers(64))), f"b{i}") for i, (h, _) in enumerate(a[:40])]
    b += [(int(h), f"c{i}") for i, h in enumerate(rng.integers(0, 2**63, 300, dtype=np.int64))]
    fast = {(x, y) for x, y, _ in near_duplicates(a, b)}
    brute = {(fa, fb) for ha, fa in a for hb, fb in b if bin(ha ^ hb).count("1") <= 3}
    assert fast == brute and len(brute) >= 40


YOLO_CASES = {
    "yolo-columns": "0 0.5 0.5 0.2\n",
    "yolo-outside-0-1": "0 0.5 0.5 1.4 0.2\n",
    "category-id-unknown": "7 0.5 0.5 0.2 0.2\n",
    "yolo-mixed": "0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.3 0.1 0.2 0.4\n",
    "polygon-degenerate": "0 0.1 0.1 0.2 0.2 0.3 0.3\n",
    "box-not-positive": "0 0.5 0.5 0.0 0.2\n",
}


def test_a_moved_yolo_dataset_is_read_where_it_is_and_its_stale_path_named(ds, clean):
    r = validate(ds, "yolo")
    assert [p.kind for p in r.problems] == ["yolo-path-elsewhere"] and str(clean) in r.problems[0].message
    assert r.images == 16


def test_a_roboflow_yolo_export_is_read_as_ultralytics_reads_it(clean, tmp_path):
    """Roboflow writes ``train: ../train/images`` in a data.yaml that lies beside ``train/``;
    ultralytics reads a ``../x`` that is not there as ``x``. It read as a dataset of no image."""
    rf = tmp_path / "rf"
    for split, theirs in (("train", "train"), ("val", "valid")):
        shutil.copytree(clean / "images" / split, rf / theirs / "images", ignore=shutil.ignore_patterns("*.jsonl"))
        shutil.copytree(clean / "labels" / split, rf / theirs / "labels")
    names = yaml.safe_load((clean / "data.yaml").read_text())["names"]
    (rf / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images", "test": "../test/images",
                                                  "nc": len(names), "names": [names[k] for k in sorted(names)],
                                                  "roboflow": {"workspace": "w", "version": 1}}))
    r = validate(rf, "yolo")
    assert r.images == 16 and r.annotations == validate(clean, "yolo").annotations
    assert [(p.kind, p.id) for p in r.problems] == [("split-missing", "test")], [p.line() for p in r.problems]
    assert "rf/test/images, which does not exist" in r.problems[0].message
    res = runner.invoke(app, ["report", str(rf), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0 and "16 images" in res.output, res.output


def _yolo_found(ds: Path, kind: str, file_part: str) -> None:
    r = validate(ds, "yolo")
    hits = [p for p in r.problems if p.kind == kind and file_part in p.file]
    assert hits, (kind, [p.line() for p in r.problems])


@pytest.mark.parametrize("kind", sorted(YOLO_CASES))
def test_broken_yolo_is_found(ds, kind):
    lbl = sorted((ds / "labels" / "train").glob("*.txt"))[0]
    lbl.write_text(YOLO_CASES[kind])
    _yolo_found(ds, kind, lbl.name)


def test_yolo_classes_written_as_floats_read_as_ultralytics_reads_them(ds):
    """ultralytics reads every column of a label line as a float and takes a class with no
    fraction ("1.0", as some converters write it); each such line was a yolo-columns problem
    and stopped show and report. A class with a fraction is still one."""
    from synthgen.datasets import open_dataset

    before = [(it.path.name, [(o.category, o.bbox) for o in it.objects]) for it in open_dataset(ds, "yolo").items()]
    for lbl in (ds / "labels").rglob("*.txt"):
        lines = lbl.read_text().splitlines()
        lbl.write_text("".join(f"{float(ln.split()[0]):.1f} {ln.split(' ', 1)[1]}\n" for ln in lines if ln.strip()))
    r = validate(ds, "yolo")
    assert [p.kind for p in r.problems] == ["yolo-path-elsewhere"], [p.line() for p in r.problems]
    after = [(it.path.name, [(o.category, o.bbox) for o in it.objects]) for it in open_dataset(ds, "yolo").items()]
    assert after == before and sum(len(a) for _, a in after) > 0
    lbl = sorted((ds / "labels" / "train").glob("*.txt"))[0]
    lbl.write_text("0.5 0.5 0.5 0.2 0.2\n")
    hits = [p for p in validate(ds, "yolo").problems if p.kind == "yolo-columns"]
    assert len(hits) == 1 and "class '0.5' is not a whole number" in hits[0].message


def test_yolo_label_without_an_image(ds):
    (ds / "labels" / "train" / "999999.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    _yolo_found(ds, "label-orphaned", "999999.txt")


VOC = Path("voc/VOCdevkit/VOC2012")


def _edit_voc(ds: Path, fn) -> Path:
    xml = sorted((ds / VOC / "Annotations").glob("*.xml"))[0]
    fn(xml)
    return xml


@pytest.mark.parametrize("kind,edit", [
    ("box-outside-image", lambda t: t.replace("<xmax>", "<xmax>9", 1)),
    ("box-inverted", lambda t: t.replace("<xmin>", "<xmin>9", 1)),
    ("category-unknown", lambda t: t.replace("<name>", "<name>zebra", 1)),
    ("image-size-missing", lambda t: t.replace("<width>", "<w>").replace("</width>", "</w>")),
    ("xml-invalid", lambda t: t[: len(t) // 2]),
    ("image-size-differs", lambda t: t.replace("<width>128</width>", "<width>130</width>")),
])
def test_broken_voc_is_found(ds, kind, edit):
    xml = _edit_voc(ds, lambda x: x.write_text(edit(x.read_text())))
    if kind == "box-outside-image" and "<object>" not in xml.read_text():
        pytest.skip("the first image has no object")
    _found(ds, "voc", kind, xml.name)


def test_voc_listed_annotation_missing(ds):
    (ds / VOC / "ImageSets" / "Main" / "train.txt").open("a").write("424242\n")
    _found(ds, "voc", "annotation-missing", "train.txt", "424242")


def test_validate_json_and_bad_paths(clean, tmp_path):
    r = runner.invoke(app, ["validate", str(clean), "--json"])
    data = json.loads(r.output)
    assert r.exit_code == 0 and data["problems"] == [] and data["format"] == "coco"
    r = runner.invoke(app, ["validate", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["validate", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no COCO" in r.output


def test_a_hundred_thousand_annotations_stream(tmp_path):
    """A COCO file of 100,000 annotations (RLE masks) validates, streamed: problems are found at
    the far end of the file. (Its memory is measured in benchmarks/report.py.)"""
    from pycocotools import mask as mask_utils

    img = np.zeros((48, 64, 3), np.uint8)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img)
    m = np.zeros((48, 64), np.uint8, order="F")
    m[10:20, 10:30] = 1
    rle = mask_utils.encode(m)
    seg = json.dumps({"size": [48, 64], "counts": rle["counts"].decode()})
    with (tmp_path / "big.json").open("w") as f:
        f.write('{"categories": [{"id": 1, "name": "x"}], "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],'
                ' "annotations": [')
        for i in range(100_000):
            bbox = "[10, 10, 20, 10]" if i != 99_999 else "[10, 10, 20, 14]"
            f.write(f'{"," if i else ""}{{"id": {i + 1}, "image_id": 1, "category_id": 1, "bbox": {bbox}, "area": 200, '
                    f'"iscrowd": 0, "segmentation": {seg}}}')
        f.write("]}")
    r = validate(tmp_path / "big.json", images=tmp_path / "images", duplicates=False)
    assert r.annotations == 100_000
    assert [(p.kind, p.id) for p in r.problems] == [("mask-disagrees-with-box", "annotation 100000")]


def test_dhash_is_stable_and_tells_images_apart(clean):
    imgs = sorted((clean / "images").rglob("*.jpg"))
    hs = [dhash(p) for p in imgs]
    assert all(h is not None for h in hs) and len(set(hs)) == len(hs)


def test_a_large_coco_file_validates_streaming(tmp_path):
    """100,000 annotations (a 10 MB file) validated with the Python heap below the file's size
    (what remains is the ids seen, for duplicates: about 100 bytes an annotation); loading the
    file whole (json.loads) takes several times its size. An opening of the file that loads it
    (the reader layer's constructor once did, for the category names) fails this."""
    import tracemalloc

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 60, 3), np.uint8))
    n_img, per = 1000, 100
    with open(tmp_path / "big.json", "w") as f:
        f.write('{"categories": [{"id": 1, "name": "thing"}], "images": [')
        f.write(",".join(json.dumps({"id": i, "file_name": "a.png", "width": 60, "height": 40}) for i in range(n_img)))
        f.write('], "annotations": [')
        f.write(",".join(json.dumps({"id": i, "image_id": i // per, "category_id": 1, "bbox": [1.0, 2.0, 10.0, 8.0],
                                     "area": 80.0, "iscrowd": 0}) for i in range(n_img * per)))
        f.write("]}")
    size = (tmp_path / "big.json").stat().st_size
    assert size > 10e6
    tracemalloc.start()
    try:
        report = validate(tmp_path / "big.json", duplicates=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.images, report.annotations, report.problems) == (n_img, n_img * per, [])
    assert peak < size, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
