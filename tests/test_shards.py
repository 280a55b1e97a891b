"""Shards and merge: the N shards of a run, merged, are byte for byte the run made unsharded
(--n and --per-class, every writer, both backends); a killed shard resumes; merge refuses shards
that do not belong together and leaves the shards as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.errors import SynthgenError
from synthgen.runs.merge import merge
from synthgen.runs.scheduler import BLOCK, block_count
from synthgen.spec import spec_from_dict

from .conftest import base_spec, needs_gl, write_spec
from .test_runs import _killed_at, digest

runner = CliRunner()


def _same_dataset(a: Path, b: Path) -> None:
    da, db = digest(a), digest(b)
    assert (da.pop("data.yaml", None) is None) == (db.pop("data.yaml", None) is None)  # its absolute path differs
    assert sorted(da) == sorted(db)
    assert da == db


def _everything(root: Path) -> dict[str, str]:
    """Every file, .synthgen/ included (to show a merge leaves the shards untouched)."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def spec(assets) -> dict:
    raw = base_spec(assets)
    raw["output"].update(size=[64, 48], formats=["coco", "yolo", "voc"], split={"train": 0.6, "val": 0.3, "test": 0.1})
    raw["objects_per_image"] = [1, 3]
    return raw


def test_n_shards_merge_to_the_unsharded_run(spec, tmp_path):
    gen = Generator(spec_from_dict(spec))
    whole = gen.generate(tmp_path / "whole", n=40, workers=2)
    for k in range(3):
        Generator(spec_from_dict(spec)).generate(tmp_path / f"s{k}", n=40, shard=f"{k}/3")
    before = {k: _everything(tmp_path / f"s{k}") for k in range(3)}
    merged = merge([tmp_path / "s2", tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")  # any order
    _same_dataset(tmp_path / "merged", tmp_path / "whole")
    assert merged == whole
    assert {k: _everything(tmp_path / f"s{k}") for k in range(3)} == before  # the shards untouched
    # each shard is a dataset of its own: images [13k, ...) of the 40, COCO ids = sample indices
    ids = []
    for k in range(3):
        for f in sorted((tmp_path / f"s{k}" / "annotations").glob("*.json")):
            ids += [im["id"] for im in json.loads(f.read_text())["images"]]
    assert sorted(ids) == list(range(40))
    s1 = json.loads((tmp_path / "s1" / "dataset.json").read_text())
    assert s1["request"] == {"n": 40, "shard": "1/3"} and s1["images"] == 40 * 2 // 3 - 40 // 3
    # the merged run is complete, like the unsharded one: --resume says so
    r = runner.invoke(app, ["generate", "x.yaml", "--n", "40", "--out", str(tmp_path / "merged"), "--resume"])
    assert r.exit_code == 2


def test_per_class_shards_take_whole_blocks(spec, tmp_path):
    per_class = 2 * BLOCK + 30  # three blocks
    assert block_count(per_class) == 3
    whole = Generator(spec_from_dict(spec)).generate(tmp_path / "whole", per_class=per_class, workers=2)
    assert whole["distinct_instances_per_class"] == {c: per_class for c in spec["classes"]}
    for k in range(2):
        s = Generator(spec_from_dict(spec)).generate(tmp_path / f"s{k}", per_class=per_class, shard=(k, 2))
        # shard 0 takes block 0, shard 1 blocks 1 and 2: 76 and 77 + 77 instances per class
        assert set(s["distinct_instances_per_class"].values()) == {76 if k == 0 else 154}
    merged = merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    _same_dataset(tmp_path / "merged", tmp_path / "whole")
    assert merged == whole
    with pytest.raises(SynthgenError, match="made of 3 block"):
        Generator(spec_from_dict(spec)).generate(tmp_path / "x", per_class=per_class, shard="0/4")


def test_blend_variants_and_polygons_merge_too(spec, tmp_path):
    spec["write_blend_variants"] = ["none", "gaussian"]
    spec["output"].update(coco_segmentation="polygon", yolo_task="segment", image_format="png")
    spec["placement"]["amodal_masks"] = True
    Generator(spec_from_dict(spec)).generate(tmp_path / "whole", n=12)
    for k in range(4):
        Generator(spec_from_dict(spec)).generate(tmp_path / f"s{k}", n=12, shard=f"{k}/4")
    merge([tmp_path / f"s{k}" for k in range(4)], tmp_path / "merged")
    _same_dataset(tmp_path / "merged", tmp_path / "whole")


@needs_gl()
def test_renderer_shards_with_bop(shared, tmp_path):
    from .test_renderer import _spec

    raw = _spec(shared)
    raw["output"].update(formats=["coco", "bop"], size=[96, 72])
    Generator(spec_from_dict(raw)).generate(tmp_path / "whole", n=6)
    for k in range(2):
        Generator(spec_from_dict(raw)).generate(tmp_path / f"s{k}", n=6, shard=f"{k}/2")
    merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    _same_dataset(tmp_path / "merged", tmp_path / "whole")


@pytest.mark.slow
def test_a_killed_shard_resumes_and_still_merges(assets, tmp_path):
    raw = base_spec(assets)
    raw["output"].update(size=[320, 240], formats=["coco", "yolo"])
    f = write_spec(tmp_path / "spec.yaml", raw)
    args = ["generate", str(f), "--n", "200", "--workers", "2"]
    _killed_at(args + ["--shard", "1/2", "--out", str(tmp_path / "s1")], tmp_path / "s1", 10)
    r = runner.invoke(app, args + ["--shard", "1/2", "--out", str(tmp_path / "s1"), "--resume"])
    assert r.exit_code == 0, r.output
    for out, extra in (("s0", ["--shard", "0/2"]), ("whole", [])):
        r = runner.invoke(app, args + extra + ["--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "merged")])
    assert r.exit_code == 0 and "merged 2 shards" in r.output, r.output
    _same_dataset(tmp_path / "merged", tmp_path / "whole")


def test_merge_refuses_what_does_not_belong_together(spec, tmp_path):
    def make(name, n=20, shard="0/2", seed=None, finish=True):
        raw = dict(spec, seed=seed if seed is not None else spec["seed"])
        Generator(spec_from_dict(raw)).generate(tmp_path / name, n=n, shard=shard)
        if not finish:  # as a killed shard leaves itself
            run = tmp_path / name / ".synthgen" / "run.json"
            rec = json.loads(run.read_text())
            rec["state"] = "running"
            run.write_text(json.dumps(rec))

    make("a0")
    make("a1", shard="1/2")
    make("b1", shard="1/2", seed=99)
    make("c1", n=30, shard="1/2")
    make("d1", shard="1/3")
    make("e1", shard="1/2", finish=False)
    Generator(spec_from_dict(spec)).generate(tmp_path / "whole", n=20)

    def refused(args: list[str], words: str) -> None:
        r = runner.invoke(app, ["merge", *[str(tmp_path / a) for a in args], "--out", str(tmp_path / "m")])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
        assert not (tmp_path / "m").exists()

    refused(["a0"], "shard(s) 1/2 missing")
    refused(["a0", "a0"], "given twice")
    refused(["a0", "b1"], "a shard of another run")
    refused(["a0", "b1"], "seed")
    refused(["a0", "c1"], "a shard of another run")
    refused(["a0", "d1"], "one of 2 shards")
    refused(["a0", "e1"], "not finished")
    refused(["a0", "whole"], "a whole run, not a shard")
    refused(["a0", "nothing"], "not a synthgen shard")
    r = runner.invoke(app, ["merge", str(tmp_path / "a0"), str(tmp_path / "a1"), "--out", str(tmp_path / "a0" / "in")])
    assert r.exit_code == 2 and "inside the shard" in r.output
    assert r.output.startswith("error: ") and len(r.output.splitlines()) == 1, r.output  # no empty line of a bar above it
    # a file of a shard that went missing is named, not papered over
    victim = next((tmp_path / "a1" / "labels").rglob("*.txt"))
    victim.unlink()
    r = runner.invoke(app, ["merge", str(tmp_path / "a0"), str(tmp_path / "a1"), "--out", str(tmp_path / "m2")])
    assert r.exit_code == 2 and victim.name in r.output and "gone" in r.output, r.output


@pytest.mark.parametrize("damage, words", [
    (lambda s: (s / ".synthgen" / "parts" / "coco__train.annotations").unlink(), "coco/train.annotations lines is missing"),
    (lambda s: (s / ".synthgen" / "parts" / "manifest").write_bytes(b"x" * 10), "manifest lines holds 10 bytes, its journal says"),
    (lambda s: (s / ".synthgen" / "journal.jsonl").write_bytes(b"{garbage\n"), "journal.jsonl: line 1 is not a journal record"),
    (lambda s: (s / ".synthgen" / "journal.jsonl").write_text('{"i": 0, "v": 5, "n": {}, "o": {}}\n'), "line 1 is not a journal"),
    (lambda s: (s / ".synthgen" / "assembled.txt").write_bytes(bytes(range(256))), None),
    (lambda s: _edit_run(s, lambda r: r.update(identity=[1])), "unreadable run record (no identity"),
    (lambda s: _edit_run(s, lambda r: r["identity"]["request"].update(shard="x/y")), "shard 'x/y' is not K/N"),
])
def test_merge_of_a_damaged_shard_is_one_line_and_writes_nothing(spec, tmp_path, damage, words):
    """A shard whose bookkeeping was damaged: a lost part merged silently into a dataset whose
    first shard's images had no labels; a damaged journal or run record stopped merge with an
    'unexpected' error. A damaged list of assembled files is read as well as it can be."""
    for k in range(2):
        Generator(spec_from_dict(spec)).generate(tmp_path / f"s{k}", n=20, shard=f"{k}/2")
    Generator(spec_from_dict(spec)).generate(tmp_path / "whole", n=20)
    damage(tmp_path / "s0")
    r = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")])
    if words is None:
        assert r.exit_code == 0, r.output
        _same_dataset(tmp_path / "m", tmp_path / "whole")
        return
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output and "unexpected" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "m").exists()


def _edit_run(shard: Path, edit) -> None:
    run = shard / ".synthgen" / "run.json"
    rec = json.loads(run.read_text())
    edit(rec)
    run.write_text(json.dumps(rec))


@pytest.mark.parametrize("bad, words", [("3", "give K/N"), ("a/b", "give K/N"), ("2/2", "K must be 0 to N-1"),
                                        ("-1/2", "K must be 0 to N-1"), ("0/0", "K must be 0 to N-1"), ("0/50", "more shards than")])
def test_bad_shard_flags_one_line(spec, tmp_path, bad, words):
    f = write_spec(tmp_path / "spec.yaml", spec)
    r = runner.invoke(app, ["generate", str(f), "--n", "20", "--shard", bad, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and words in r.output and "--shard" in r.output, r.output
    assert not (tmp_path / "o").exists()
