"""Datasets on disk that were made wrong, by hand or by another tool: every record of a COCO,
YOLO or VOC dataset malformed in the ways files in the wild are (a box of strings, an
annotation that is a number, a label file that is a folder, an XML entity bomb, JSON nested
100,000 deep). ``show`` and ``report`` stop with one line naming the file and the record, exit 2,
and write nothing; ``validate`` names each as a problem (exit 1), or, where the dataset cannot
be read at all, says why in one line (exit 2). Before, most of these were an ``unexpected
TypeError`` (exit 1), and the deep JSON took more than 24 GiB and was killed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.datasets import open_dataset
from synthgen.datasets.jsonstream import check_nesting
from synthgen.datasets.model import decode_segmentation
from synthgen.errors import SynthgenError
from synthgen.spec import spec_from_dict

from .conftest import ROOT, base_spec

runner = CliRunner()
VOC = "voc/VOCdevkit/VOC2012"


@pytest.fixture(scope="module")
def clean(assets, tmp_path_factory) -> Path:
    raw = base_spec(assets)
    raw["objects_per_image"] = [1, 3]
    raw["output"].update(formats=["coco", "yolo", "voc"], split={"train": 1.0})
    out = tmp_path_factory.mktemp("clean") / "ds"
    Generator(spec_from_dict(raw)).generate(out, n=4)
    return out


def _coco(edit):
    def apply(ds: Path) -> None:
        f = ds / "annotations" / "instances_train.json"
        data = json.loads(f.read_text())
        replaced = edit(data)  # an edit edits in place, or returns a whole new top level (a list)
        f.write_text(json.dumps(replaced if isinstance(replaced, list) else data))
    return "coco", apply, "instances_train.json"


def _first_label(ds: Path) -> Path:
    return sorted((ds / "labels" / "train").glob("*.txt"))[0]


def _first_xml(ds: Path) -> Path:
    return sorted((ds / VOC / "Annotations").glob("*.xml"))[0]


def _label(write):
    return "yolo", lambda ds: write(_first_label(ds)), "labels/train/"


def _xml(text):
    return "voc", lambda ds: _first_xml(ds).write_text(text(_first_xml(ds).read_text())), "Annotations/"


def _set(record: str, key: str, value):
    def edit(d):
        d[record][0][key] = value
    return edit


def _folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


BOMB = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi"))
        + ']><annotation><filename>&i;</filename></annotation>')

# name: ((format, edit, the file the line names), validate's kind or None when it cannot read the
# dataset at all, what the one line says)
CASES = {
    "annotation that is a number": (_coco(lambda d: d["annotations"].__setitem__(0, 5)), "annotation-invalid",
                                    "annotations[0]: an annotation is a mapping, not 5"),
    "bbox of strings": (_coco(_set("annotations", "bbox", ["a", "b", "c", "d"])), "box-invalid",
                        "bbox ['a', 'b', 'c', 'd'] is not [x, y, w, h]"),
    "bbox null": (_coco(_set("annotations", "bbox", None)), "box-invalid", "bbox None is not [x, y, w, h]"),
    "bbox of booleans": (_coco(_set("annotations", "bbox", [True, False, True, True])), "box-invalid",
                         "bbox [True, False, True, True] is not [x, y, w, h]"),
    "bbox of two numbers": (_coco(_set("annotations", "bbox", [1, 2])), "box-invalid", "bbox [1, 2] is not"),
    "area a word": (_coco(_set("annotations", "area", "big")), "area-invalid", "area 'big' is not a finite number"),
    "iscrowd a word": (_coco(_set("annotations", "iscrowd", "yes")), "iscrowd-invalid", "iscrowd 'yes' is not 0 or 1"),
    "segmentation a word": (_coco(_set("annotations", "segmentation", "zzz")), "mask-unreadable",
                            "segmentation 'zzz' is neither polygons nor an RLE"),
    "polygon of words": (_coco(_set("annotations", "segmentation", [["a", "b", "c", "d", "e", "f"]])), "mask-unreadable",
                         "is not a list of polygons"),
    "keypoints not triples": (_coco(_set("annotations", "keypoints", [1, 2])), "keypoints-invalid",
                              "keypoints [1, 2] are not x, y, v triples"),
    "image_id a list": (_coco(_set("annotations", "image_id", [0])), "annotation-orphaned", "image_id [0] is not an image id"),
    "category id a word": (_coco(_set("categories", "id", "x")), "category-id-invalid",
                           "id 'x': a category id must be an integer"),
    "category without a name": (_coco(lambda d: d["categories"][0].pop("name")), "category-name-invalid",
                                "name None: a category needs a name"),
    "image that is a word": (_coco(lambda d: d["images"].__setitem__(0, "x")), "image-invalid",
                             "images[0]: an image is a mapping, not 'x'"),
    "image id a mapping": (_coco(_set("images", "id", {"a": 1})), "image-id-invalid",
                           "an image id must be an integer or a string"),
    "image without a file name": (_coco(lambda d: d["images"][0].pop("file_name")), "image-file-name-missing",
                                  "file_name None: an image needs a file name"),
    "image width a word": (_coco(_set("images", "width", "640")), "image-size-missing",
                           "width/height '640'x96 are not positive integers"),
    "annotations a mapping": (_coco(lambda d: d.update(annotations={"a": 1})), "coco-invalid",
                              "annotations is {'a': 1}, not a list"),
    "top level a list": (_coco(lambda d: [1, 2]), "coco-invalid", "the top level is not a mapping"),
    "label line of words": (_label(lambda p: p.write_text("hello world\n")), "yolo-columns", "line 1: 'hello world'"),
    "label coordinate nan": (_label(lambda p: p.write_text("0 nan 0.5 0.1 0.1\n")), "yolo-columns",
                             "a coordinate is not a finite number"),
    "label file not UTF-8": (_label(lambda p: p.write_bytes(b"0 0.5 \xff\xfe 0.1 0.1\n")), "label-unreadable",
                             "not UTF-8 text (byte 0xff at offset 6)"),
    "label file a folder": (_label(_folder), "label-unreadable", "is a folder, not a label file"),
    "data.yaml a list": (("yolo", lambda ds: (ds / "data.yaml").write_text("- 1\n- 2\n"), "data.yaml"), None,
                         "not a YOLO data.yaml (the top level is [1, 2], not a mapping)"),
    "names a number": (("yolo", lambda ds: (ds / "data.yaml").write_text("train: images/train\nnames: 5\n"), "data.yaml"),
                       None, "names: 5 is neither a list of class names nor a mapping"),
    "xml cut short": (_xml(lambda t: t[: len(t) // 2]), "xml-invalid", "not well-formed XML"),
    "xml entity bomb": (_xml(lambda t: BOMB), "xml-invalid", "not well-formed XML"),
    "bndbox of words": (_xml(lambda t: t.replace("<xmin>", "<xmin>abc", 1)), "box-invalid",
                        "object 0: no numeric <bndbox>"),
    "labelmap not UTF-8": (("voc", lambda ds: (ds / VOC / "labelmap.txt").write_bytes(b"\xf3\x28\n"), "labelmap.txt"), None,
                           "not a VOC label map: not UTF-8 text"),
}


@pytest.fixture
def broken(clean, tmp_path, request) -> tuple[Path, str, str, str | None, str]:
    (fmt, edit, file), kind, says = CASES[request.param]
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    edit(ds)
    return ds, fmt, file, kind, says


def _one_error(r, file: str, says: str) -> None:
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and file in errors[0] and says in errors[0], r.output
    assert "unexpected" not in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("broken", sorted(CASES), indirect=True)
def test_show_and_report_stop_at_a_malformed_record_with_one_line(broken, tmp_path):
    ds, fmt, file, kind, says = broken
    out = tmp_path / "out"
    for cmd in (["show", str(ds), "--format", fmt, "--out", str(out / "s.png")],
                ["report", str(ds), "--format", fmt, "--out", str(out / "r.html")]):
        r = runner.invoke(app, cmd)
        _one_error(r, file, says)
    assert not out.exists()


@pytest.mark.parametrize("broken", sorted(CASES), indirect=True)
def test_validate_names_each_malformed_record(broken):
    ds, fmt, file, kind, says = broken
    r = runner.invoke(app, ["validate", str(ds), "--format", fmt, "--no-duplicates"])
    if kind is None:  # the dataset cannot be read at all
        _one_error(r, file, says)
        return
    assert r.exit_code == 1, r.output
    hits = [line for line in r.output.splitlines() if f": {kind}: " in line]
    assert hits and file in hits[0], r.output
    assert "unexpected" not in r.output and "Traceback" not in r.output, r.output


def test_json_nested_100000_deep_is_refused_in_bounded_memory(clean, tmp_path):
    """ijson keeps a path string per level: memory grows with the square of the depth (this
    200 KB file took more than 24 GiB). Refused before ijson reads it, under a 3 GiB limit."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    (ds / "annotations" / "instances_train.json").write_text('{"categories": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from synthgen.cli import main; sys.argv = ['synthgen'] + sys.argv[1:]; main()")
    for cmd in ("validate", "report"):
        r = subprocess.run([sys.executable, "-c", code, cmd, str(ds), "--format", "coco", "--out" if cmd == "report" else
                            "--no-duplicates", *([str(tmp_path / "r.html")] if cmd == "report" else [])],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 2, (cmd, r.returncode, r.stderr[-2000:])
        assert r.stderr.count("error:") == 1, r.stderr
        # validate streams it (ijson); report loads it whole (json, whose C parser stops at
        # Python's recursion limit)
        said = "JSON nested more than 100 levels deep" if cmd == "validate" else "not a readable COCO file (nested too deeply)"
        assert f"instances_train.json: {said}" in r.stderr, r.stderr
    assert not (tmp_path / "r.html").exists()


def _depth(v) -> int:
    return 1 + max(map(_depth, v.values() if isinstance(v, dict) else v), default=0) if isinstance(v, (dict, list)) else 0


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 16])
def test_nesting_counts_brackets_outside_strings_only(tmp_path, chunk):
    """Brackets in strings (an RLE's counts hold [ and ]), escaped quotes and backslashes, split
    anywhere between reads: the depth found is the parser's."""
    doc = {"a": [[1, {"b": "[[[[\\\"[[{{"}], "x\\\\"], "c": {"d": [[[["]]]]\\\\\\\"]]"]]]]}, "e": '"[' * 5}
    f = tmp_path / "n.json"
    f.write_text(json.dumps(doc))
    depth = _depth(doc)
    assert depth == 6
    check_nesting(f, limit=depth, chunk=chunk)
    with pytest.raises(SynthgenError, match="nested more than 5 levels"):
        check_nesting(f, limit=depth - 1, chunk=chunk)


def test_an_rle_whose_runs_stop_short_is_refused_not_drawn_from_memory():
    """pycocotools decodes what such an RLE leaves uncovered from uninitialised memory: masks
    that differ from run to run. The runs' area disagrees with the mask: refused, named."""
    for counts in ("", "0", "zzzz"):
        with pytest.raises(SynthgenError, match=r"f.json: annotation 3: the segmentation cannot be decoded .*runs do not cover"):
            decode_segmentation({"size": [48, 64], "counts": counts}, 48, 64, "f.json: annotation 3")
    with pytest.raises(SynthgenError, match="f.json: annotation 3: the segmentation is 8x6, its image 64x48"):
        decode_segmentation({"size": [6, 8], "counts": [48]}, 48, 64, "f.json: annotation 3")
    m = np.zeros((48, 64), np.uint8, order="F")
    m[10:20, 5:9] = 1
    from pycocotools import mask as mask_utils

    assert np.array_equal(decode_segmentation(mask_utils.encode(m), 48, 64), m.astype(bool))


def test_report_of_a_dataset_with_no_labelled_object(clean, tmp_path):
    """Images and no annotation (negatives only): the report has no box to chart, and wrote
    itself; it stopped with matplotlib's 'Number of rows must be a positive integer, not 0'."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    f = ds / "annotations" / "instances_train.json"
    data = json.loads(f.read_text())
    data["annotations"] = []
    f.write_text(json.dumps(data))
    r = runner.invoke(app, ["report", str(ds), "--format", "coco", "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    assert "<b>4</b>images" in page.replace(" ", "") or ">4<" in page


def test_a_yolo_dataset_without_path_named_by_a_relative_folder_is_not_elsewhere(clean, tmp_path, monkeypatch):
    """No ``path`` in data.yaml means its folder (ultralytics); given as a relative folder, it
    was joined to itself (``ds/ds``) and reported as a stale path."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    data = (ds / "data.yaml").read_text().splitlines()
    (ds / "data.yaml").write_text("\n".join(line for line in data if not line.startswith("path:")) + "\n")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["validate", "ds", "--format", "yolo", "--no-duplicates"])
    assert "yolo-path-elsewhere" not in r.output and r.exit_code == 0, r.output


def test_extract_checks_every_mask_before_the_first_cutout(clean, tmp_path):
    """A segmentation that does not decode, in the last annotation: nothing is written (the
    first cutouts were, and the run stopped half-way)."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    f = ds / "annotations" / "instances_train.json"
    data = json.loads(f.read_text())
    data["annotations"][-1]["segmentation"] = {"size": [96, 128], "counts": "zzzz"}
    f.write_text(json.dumps(data))
    out = tmp_path / "bank"
    r = runner.invoke(app, ["extract", str(f), str(ds / "images" / "train"), "--out", str(out), "--min-area", "1"])
    assert r.exit_code == 2 and f"annotation {data['annotations'][-1]['id']} has an unreadable segmentation" in r.output, r.output
    assert "runs do not cover" in r.output and not out.exists(), r.output


def test_extract_that_cannot_write_is_one_line(clean, tmp_path):
    """--out under a file, and a cutout's name taken by a folder (as a full disk or a read-only
    folder fails a write): one line naming the file, not 'unexpected OSError'."""
    f, images = clean / "annotations" / "instances_train.json", clean / "images" / "train"
    (tmp_path / "a file").write_text("x")
    r = runner.invoke(app, ["extract", str(f), str(images), "--out", str(tmp_path / "a file" / "bank"), "--min-area", "1"])
    assert r.exit_code == 2 and r.output.startswith("error: --out ") and "cannot create the folder" in r.output, r.output
    out = tmp_path / "bank"
    r = runner.invoke(app, ["extract", str(f), str(images), "--out", str(out), "--min-area", "1"])
    assert r.exit_code == 0, r.output
    first = json.loads((out / "index.json").read_text())["cutouts"][0]["file"]
    (out / first).unlink()
    (out / first).mkdir()
    r = runner.invoke(app, ["extract", str(f), str(images), "--out", str(out), "--min-area", "1", "--overwrite"])
    lines = r.output.splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and f"{out / first}: cannot write: " in lines[0] and "--overwrite" in lines[0], r.output
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "a temporary file was left"


def test_manifest_lines_synthgen_did_not_write_are_skipped(clean, tmp_path):
    """manifest.jsonl only adds to the labels: a line that is a list, or has the wrong shapes,
    is skipped instead of stopping ``show`` and ``report``."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    with (ds / "manifest.jsonl").open("a") as fh:
        fh.write('[1, 2]\n{"scene": 5}\n{"scene": {"objects": 3}, "labels": [{"object": "x"}]}\nnot json\n')
    r = runner.invoke(app, ["report", str(ds), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["show", str(ds), "--out", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output


def test_the_cases_leave_the_clean_dataset_readable(clean, tmp_path):
    """The fixture itself is clean in every format, so each case above fails for its edit."""
    for fmt in ("coco", "yolo", "voc"):
        r = runner.invoke(app, ["validate", str(clean), "--format", fmt, "--no-duplicates"])
        assert r.exit_code == 0, (fmt, r.output)
        r = runner.invoke(app, ["show", str(clean), "--format", fmt, "--out", str(tmp_path / f"{fmt}.png")])
        assert r.exit_code == 0, (fmt, r.output)
    assert os.path.exists(tmp_path / "coco.png")


def test_an_images_folder_that_is_not_there_is_one_line(clean, tmp_path):
    """--images naming no folder: one line, instead of every image reported missing (validate)
    or the first one (show)."""
    for cmd in (["validate", str(clean), "--images", str(tmp_path / "nope")],
                ["show", str(clean), "--images", str(clean / "data.yaml"), "--out", str(tmp_path / "s.png")]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert "--images" in r.output and ("does not exist" in r.output or "is not a folder" in r.output), r.output


def test_numbers_no_float_holds(clean, tmp_path):
    """Python's JSON reader gives a 400-digit integer as an int no float holds: math.isfinite()
    raised OverflowError on it. ijson (validate) refuses it while parsing."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    f = ds / "annotations" / "instances_train.json"
    data = json.loads(f.read_text())
    data["annotations"][0]["bbox"][0] = 10**400
    data["images"][0]["width"] = 2**31
    f.write_text(json.dumps(data))
    r = runner.invoke(app, ["show", str(ds), "--format", "coco", "--out", str(tmp_path / "s.png")])
    _one_error(r, "instances_train.json", "width/height 2147483648x96 are not positive integers (below 2**31)")
    data["images"][0]["width"] = 128
    f.write_text(json.dumps(data))
    r = runner.invoke(app, ["report", str(ds), "--format", "coco", "--out", str(tmp_path / "r.html")])
    _one_error(r, "instances_train.json", "bbox [1000000000")
    r = runner.invoke(app, ["validate", str(ds), "--format", "coco"])
    _one_error(r, "instances_train.json", "integer overflow")


def test_cocos_own_annotations_folder_reads_only_the_instances_files(clean, tmp_path):
    """COCO 2017's annotations/ also holds captions_*, person_keypoints_* and panoptic files:
    captions have no bbox or category, and stopped show and report (each file was a split)."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    images = json.loads((ds / "annotations" / "instances_train.json").read_text())["images"]
    (ds / "annotations" / "captions_train.json").write_text(json.dumps(
        {"info": {}, "images": images, "annotations": [{"id": 1, "image_id": images[0]["id"], "caption": "a cup"}]}))
    for cmd in (["report", str(ds), "--format", "coco", "--out", str(tmp_path / "r.html")],
                ["show", str(ds), "--format", "coco", "--out", str(tmp_path / "s.png")],
                ["validate", str(ds), "--format", "coco", "--no-duplicates"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0 and "captions" not in r.output, r.output


def test_a_named_pipe_among_the_images_is_named_not_read(clean, tmp_path):
    """Reading a named pipe blocks until something writes to it: ``report`` of a YOLO dataset
    holding one as an image hung for ever (its header was read for the image's size). A device
    or pipe is refused from its stat, wherever synthgen reads an image or a dataset's text."""
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    victim = sorted((ds / "images" / "train").glob("*.jpg"))[0]
    victim.unlink()
    os.mkfifo(victim)
    label = sorted((ds / "labels" / "train").glob("*.txt"))[1]
    label.unlink()
    os.mkfifo(label)
    cli = [sys.executable, "-m", "synthgen.cli"]
    r = subprocess.run(cli + ["report", str(ds), "--format", "yolo", "--out", str(tmp_path / "r.html")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"{label}: is not a file (a device, pipe or socket), not a label file" in r.stderr, r.stderr
    label.unlink()
    r = subprocess.run(cli + ["report", str(ds), "--format", "yolo", "--out", str(tmp_path / "r.html")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cli + ["validate", str(ds), "--format", "yolo", "--no-duplicates"], capture_output=True, text=True, timeout=120)
    assert f"{victim}: image: image-unreadable: {victim} is not a file" in r.stdout, r.stdout
    assert "label-orphaned" not in r.stdout, r.stdout  # its labels are not orphans: the image is the problem


def test_a_pipe_or_device_as_a_background_is_named(tmp_path):
    from .conftest import make_assets, write_spec

    assets = make_assets(tmp_path / "assets")
    os.mkfifo(assets / "bg" / "pipe.jpg")
    raw = base_spec(assets)
    raw["backgrounds"]["paths"] = [str(assets / "bg"), "/dev/zero"]
    spec = write_spec(tmp_path / "spec.yaml", raw)
    r = runner.invoke(app, ["check", str(spec)])
    assert r.exit_code == 2, r.output
    assert "pipe.jpg: is not a file (a device, pipe or socket), not an image" in r.output, r.output
    assert "'/dev/zero' is not a file or a folder (a device, pipe or socket" in r.output, r.output


def test_show_depth_of_a_depth_map_that_is_not_one(clean, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    first = sorted((ds / "images" / "train").glob("*.jpg"))[0]
    (ds / "depth" / "train").mkdir(parents=True)
    (ds / "depth" / "train" / f"{first.stem}.png").write_bytes(b"not a png")
    r = runner.invoke(app, ["show", str(ds), "--format", "coco", "--depth", "-i", str(int(first.stem)), "--out", str(tmp_path / "s.png")])
    _one_error(r, f"{first.stem}.png", "is not a depth map")


@pytest.mark.parametrize("fmt, name", [("coco", "annotations/instances_train.json"), ("yolo", "data.yaml"),
                                       ("voc", "first xml")])
def test_a_named_pipe_as_a_datasets_own_file_is_named_not_read(clean, tmp_path, fmt, name):
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    f = _first_xml(ds) if name == "first xml" else ds / name
    f.unlink()
    os.mkfifo(f)
    cli = [sys.executable, "-m", "synthgen.cli"]
    for cmd in (["show", str(ds), "--format", fmt, "--out", str(tmp_path / "s.png")],
                ["report", str(ds), "--format", fmt, "--out", str(tmp_path / "r.html")],
                ["validate", str(ds), "--format", fmt, "--no-duplicates"]):
        r = subprocess.run(cli + cmd, capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        # named as a pipe; or, where a reader looks only for regular files, not found there
        named = f"{f.name}: is not a file (a device, pipe or socket)" in out or "no YOLO dataset found there" in out or \
            (cmd[0] == "validate" and f"{f.name} does not exist" in out)
        assert r.returncode in (1, 2) and named, (cmd[0], r.returncode, out)
        assert "Traceback" not in out and "unexpected" not in out, out


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 16])
def test_surrogate_escapes_are_found_wherever_reads_split_them(tmp_path, chunk):
    """``check_nesting`` also says whether a file holds a lone low surrogate escape (``\\udce9``,
    read then with ijson's Python backend); a whole pair ijson's C backend reads, and an escaped
    backslash before "udce9" is no escape."""
    f = tmp_path / "s.json"
    for text, found in (('{"a": "caf\\udce9"}', True), ('{"a": "\\ud83d\\ude00 \\uD83D\\uDE00"}', False),
                        ('{"a": "x\\\\udce9"}', False), ('{"a": "\\\\\\uDCE9"}', True), ('{"a": "plain \\u00e9"}', False),
                        ('{"a": "\\ud83d\\ude00\\udce9"}', True), ('{"a": "\\ud83dx\\ude00"}', True),
                        ('{"a": "x\\ud83d"}', True), ('{"a": "\\ud83d\\ud83d\\ude00"}', True), ('{"\\ud83d": 1}', True)):
        f.write_text(text)
        assert check_nesting(f, chunk=chunk) is found, (text, chunk)


def _bytes_name(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _show(ds: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    # in a process of its own: OpenCV ended the whole process (SIGSEGV) on such a name
    return subprocess.run([sys.executable, "-c", "from synthgen.cli import main; main()", "show", str(ds), *flags,
                           "-o", str(out)], capture_output=True, text=True, timeout=300)


def test_names_in_bytes_that_are_not_utf8(clean, tmp_path):
    """A COCO file written by Python's json.dump from files named in Latin-1 holds lone
    surrogates (``"caf\\udce9.jpg"``): json and pycocotools read it, and so must synthgen (ijson's
    C backend could not: "not UTF-8 text"). A YOLO dataset's files may be so named too. show,
    report and validate read both; names are shown with the byte as ``\\xe9``."""
    from pycocotools.coco import COCO

    coco = tmp_path / "coco"
    shutil.copytree(clean, coco)
    f = coco / "annotations" / "instances_train.json"
    data = json.loads(f.read_text())
    first = data["images"][0]
    (coco / "images" / "train" / first["file_name"]).rename(_bytes_name(coco / "images" / "train", b"caf\xe9.jpg"))
    first["file_name"] = os.fsdecode(b"caf\xe9.jpg")
    data["categories"][0]["name"] = os.fsdecode(b"caf\xe9")
    f.write_text(json.dumps(data))  # as json.dump writes them: "\udce9"
    assert "\\udce9" in f.read_text()
    assert len(COCO(str(f)).getImgIds()) == len(data["images"])

    yolo = tmp_path / "yolo"
    shutil.copytree(clean, yolo)
    (yolo / "data.yaml").write_text((yolo / "data.yaml").read_text().replace(str(clean), str(yolo)))
    for sub, ext in (("images", ".jpg"), ("labels", ".txt")):
        folder = yolo / sub / "train"
        sorted(folder.glob(f"*{ext}"))[0].rename(_bytes_name(folder, b"x\xff" + ext.encode()))

    for ds, fmt in ((f, "coco"), (yolo / "data.yaml", "yolo")):
        r = runner.invoke(app, ["validate", str(ds), "--no-duplicates"])
        assert r.exit_code == 0 and "4 images" in r.output, r.output
        page = tmp_path / f"{fmt}.html"
        r = runner.invoke(app, ["report", str(ds), "--out", str(page)])
        assert r.exit_code == 0, r.output
        text = page.read_text(encoding="utf-8")
        assert "\\udc" not in text and "\\ud" not in text.lower().replace("\\ud8", ""), fmt
        assert ("caf\\xe9" if fmt == "coco" else "x\\xff.jpg") in text
        p = _show(ds, tmp_path / f"{fmt}.png", "--index", "0")
        assert p.returncode == 0, (fmt, p.returncode, p.stderr)
    r = runner.invoke(app, ["show", str(f), "--index", "0", "-o", str(tmp_path / "again.png")])
    assert r.exit_code == 0, r.output

    # half of a pair alone: ijson's C backend read it as "?", so a class had two names
    data["categories"][0]["name"] = "x\ud83d"
    f.write_text(json.dumps(data))
    ds = open_dataset(f)
    assert ds.categories[0] == "x\ud83d" and {o.category for item in ds.items() for o in item.objects} <= set(ds.categories)
    r = runner.invoke(app, ["report", str(f), "--out", str(tmp_path / "high.html")])
    assert r.exit_code == 0 and f"{len(data['categories'])} classes" in r.output and "x\\ud83d" in (tmp_path / "high.html").read_text(), r.output
    p = _show(f, tmp_path / "high.png", "--index", "0")
    assert p.returncode == 0, p.stderr
