"""WebDataset output: tar shards read by the webdataset library and by Hugging Face datasets,
holding exactly the COCO labels and image files of the run; written atomically, resumed to the
same bytes, merged from shards to the same bytes."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.runs.merge import merge
from synthgen.spec import spec_from_dict

from .conftest import base_spec, needs_gl, write_spec
from .test_runs import _killed_at, digest

runner = CliRunner()


@pytest.fixture
def spec(assets) -> dict:
    raw = base_spec(assets)
    raw["output"].update(size=[96, 72], formats=["coco", "webdataset"], shard_size=7, split={"train": 0.7, "val": 0.3})
    raw["objects_per_image"] = [1, 3]
    return raw


@pytest.fixture
def made(spec, tmp_path) -> Path:
    Generator(spec_from_dict(spec)).generate(tmp_path / "out", n=30)
    return tmp_path / "out"


def _tars(out: Path, split: str) -> list[Path]:
    return sorted((out / "webdataset" / split).glob("*.tar"))


def test_tars_hold_the_runs_images_and_coco_labels(made):
    for split in ("train", "val"):
        coco = json.loads((made / "annotations" / f"instances_{split}.json").read_text())
        images = {im["id"]: im for im in coco["images"]}
        anns: dict[int, list] = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        tars = _tars(made, split)
        assert [t.name for t in tars] == [f"{split}-{k:06d}.tar" for k in range(-(-len(images) // 7))]
        seen = []
        for t in tars:
            with tarfile.open(t) as tar:
                members = tar.getmembers()
                keys = [m.name.split(".", 1)[0] for m in members]
                # a sample's members are adjacent, keys have no dots, headers carry nothing of the machine
                assert all(keys[i] == keys[i - 1] or keys[i] not in keys[:i] for i in range(1, len(keys)))
                assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members)
                by_key: dict[str, dict[str, bytes]] = {}
                for m in members:
                    key, ext = m.name.split(".", 1)
                    by_key.setdefault(key, {})[ext] = tar.extractfile(m).read()
            assert len(by_key) <= 7
            for key, files in by_key.items():
                assert set(files) == {"jpg", "json"}  # three classes: no .cls
                lab = json.loads(files["json"])
                im = images[lab["image_id"]]
                assert lab["file_name"] == im["file_name"] == f"{key}.jpg"
                assert files["jpg"] == (made / "images" / split / im["file_name"]).read_bytes()
                mine = lab["annotations"]
                theirs = anns.get(lab["image_id"], [])
                assert [(a["bbox"], a["area"], a["category_id"]) for a in mine] == [(a["bbox"], a["area"], a["category_id"]) for a in theirs]
                for a in mine:
                    assert int(mask_utils.area(a["segmentation"])) == a["area"]
                seen.append(lab["image_id"])
        assert sorted(seen) == sorted(images)


def test_the_webdataset_library_reads_them(made):
    import webdataset as wds

    urls = [str(p) for p in _tars(made, "train")]
    ds = wds.WebDataset(urls, shardshuffle=False).decode("rgb").to_tuple("__key__", "jpg", "json")
    got = list(ds)
    coco = json.loads((made / "annotations" / "instances_train.json").read_text())
    assert len(got) == len(coco["images"])
    key, img, lab = got[0]
    assert img.shape == (72, 96, 3) and img.dtype.name == "float32"
    assert lab["image_id"] == int(key) and lab["annotations"][0]["category"] in ("ring", "pair", "bar")


def test_hugging_face_reads_them(made):
    from datasets import load_dataset

    files = {s: [str(p) for p in _tars(made, s)] for s in ("train", "val")}
    d = load_dataset("webdataset", data_files=files)
    for s in ("train", "val"):
        coco = json.loads((made / "annotations" / f"instances_{s}.json").read_text())
        assert d[s].num_rows == len(coco["images"])
    row = d["train"][0]
    assert row["jpg"].size == (96, 72) and row["json"]["width"] == 96


def test_single_class_gets_cls(spec, tmp_path):
    spec["classes"] = {"ring": spec["classes"]["ring"]}
    spec["negative_ratio"] = 0.3
    Generator(spec_from_dict(spec)).generate(tmp_path / "o", n=20)
    values = []
    for t in _tars(tmp_path / "o", "train") + _tars(tmp_path / "o", "val"):
        with tarfile.open(t) as tar:
            names = tar.getnames()
            exts = {}
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                exts.setdefault(key, set()).add(ext)
                if ext == "cls":
                    values.append((int(tar.extractfile(m).read()), key))
            assert all(e == {"jpg", "json", "cls"} for e in exts.values()), names
    assert {v for v, _ in values} == {0, -1}  # -1: a negative image, no labelled object


def test_same_bytes_again_and_merged_from_shards(spec, made, tmp_path):
    Generator(spec_from_dict(spec)).generate(tmp_path / "again", n=30, workers=2)
    for k in range(3):
        Generator(spec_from_dict(spec)).generate(tmp_path / f"s{k}", n=30, shard=f"{k}/3")
    merge([tmp_path / f"s{k}" for k in range(3)], tmp_path / "merged")
    ref = {k: v for k, v in digest(made).items() if k.startswith("webdataset/")}
    assert len(ref) == 5  # 21 train images in 3 tars of 7, 9 val in 2
    for other in ("again", "merged"):
        assert {k: v for k, v in digest(tmp_path / other).items() if k.startswith("webdataset/")} == ref


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_tars(assets, tmp_path):
    raw = base_spec(assets)
    raw["output"].update(size=[320, 240], formats=["webdataset"], shard_size=10)
    f = write_spec(tmp_path / "spec.yaml", raw)
    args = ["generate", str(f), "--n", "150"]
    _killed_at(args + ["--out", str(tmp_path / "a")], tmp_path / "a", 45)
    full = _tars(tmp_path / "a", "train")
    assert full, "no tar was installed before the kill"
    for t in full:  # every tar on disk is whole
        with tarfile.open(t) as tar:
            assert len({n.split(".")[0] for n in tar.getnames()}) == 10
    full[-1].unlink()  # as if the run died between journaling a tar's last image and installing it
    r = runner.invoke(app, args + ["--out", str(tmp_path / "a"), "--resume"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, args + ["--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    per_split = json.loads((tmp_path / "b" / "dataset.json").read_text())["images_per_split"]
    assert da == db and sum(k.startswith("webdataset/") for k in da) == sum(-(-n // 10) for n in per_split.values())


@needs_gl()
def test_renderer_depth_member(shared, tmp_path):
    from .test_renderer import _spec

    raw = _spec(shared)
    raw["output"].update(formats=["webdataset"], size=[96, 72], depth=True)
    Generator(spec_from_dict(raw)).generate(tmp_path / "r", n=3)
    with tarfile.open(_tars(tmp_path / "r", "train")[0]) as tar:
        names = tar.getnames()
        depth = tar.extractfile("000000.depth.png").read()
        lab = json.loads(tar.extractfile("000000.json").read())
    assert "000000.depth.png" in names
    assert depth == (tmp_path / "r" / "depth" / "train" / "000000.png").read_bytes()
    assert "camera_K" in lab and "pose" in lab["annotations"][0]
