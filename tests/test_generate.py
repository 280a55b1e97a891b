from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from synthgen import Generator, SynthgenError
from synthgen.compositor.planning import Scene
from synthgen.spec import spec_from_dict

from .conftest import base_spec, write_spec


def _tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file of the dataset (not the run's own bookkeeping in .synthgen/)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".synthgen" not in p.relative_to(root).parts}


def _coco_counts(out: Path, gen: Generator) -> Counter:
    counts: Counter = Counter()
    for split in gen.spec.output.split:
        data = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        counts.update(names[a["category_id"]] for a in data["annotations"])
    return counts


def test_sample_i_is_pure_in_seed_and_index(spec_file):
    a = Generator.from_yaml(spec_file)
    b = Generator.from_yaml(spec_file)
    later = [b[i] for i in (9, 3, 0)]  # another order, another instance
    for s in later:
        ref = a[s.index]
        np.testing.assert_array_equal(ref.image, s.image)
        assert [x.bbox for x in ref.annotations] == [x.bbox for x in s.annotations]
        assert ref.scene.to_json() == s.scene.to_json()
    other_seed = Generator.from_yaml(spec_file, seed=99)
    assert not np.array_equal(other_seed[0].image, a[0].image)


def test_a_sample_index_is_a_whole_number(spec_file):
    """gen[1.5] was sample 1 carrying the index 1.5 (its COCO id when written); a numpy integer,
    as a sampler gives, is an index like any other."""
    g = Generator.from_yaml(spec_file)
    for bad in (1.5, "1", True, None):
        with pytest.raises(TypeError, match="a sample index is a whole number"):
            g[bad]
    with pytest.raises(IndexError, match="sample index must be >= 0, got -1"):
        g.plan(-1)
    s = g[np.int64(2)]
    assert s.index == 2 and type(s.index) is int and np.array_equal(s.image, g[2].image)


def test_scene_replays_from_its_json(spec_file):
    gen = Generator.from_yaml(spec_file)
    s = gen[4]
    scene = Scene.from_json(json.loads(json.dumps(s.scene.to_json())))
    np.testing.assert_array_equal(gen.backend.render(scene).image, s.image)


def test_python_api_arrays(spec_file):
    gen = Generator.from_yaml(spec_file)
    s = next(gen[i] for i in range(50) if len(gen[i].annotations) >= 2)
    n = len(s.annotations)
    assert s.image.dtype == np.uint8 and s.image.shape == (96, 128, 3)
    assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
    assert s.labels.shape == (n,) and s.masks.shape == (n, 96, 128) and s.masks.dtype == bool
    a = s.annotations[0]
    assert {"category", "bbox", "mask", "visibility", "truncation"} <= set(vars(a))


def test_masks_are_the_annotations_masks_in_order_without_a_copy(spec_file):
    s = next(s for s in map(Generator.from_yaml(spec_file).__getitem__, range(50)) if len(s.annotations) >= 3)
    stacked = np.stack([a.mask for a in s.annotations])
    assert not s.masks.flags.owndata and np.shares_memory(s.masks, s.annotations[0].mask)  # no copy per call
    s.masks[0, 0, 0] = not s.masks[0, 0, 0]  # the annotations' masks themselves
    assert s.annotations[0].mask[0, 0] == s.masks[0, 0, 0] != stacked[0, 0, 0]
    s.masks[0, 0, 0] = stacked[0, 0, 0]
    np.testing.assert_array_equal(s.masks, stacked)
    s.annotations.reverse()  # a user reorders (or filters) the labels: masks follow, as a copy
    np.testing.assert_array_equal(s.masks, stacked[::-1])
    del s.annotations[1]
    order = list(range(len(stacked)))[::-1]
    del order[1]
    np.testing.assert_array_equal(s.masks, stacked[order])


@pytest.mark.parametrize("per_class", [1, 7, 25])
def test_per_class_gives_exactly_n_labelled_instances(spec_file, tmp_path, per_class):
    gen = Generator.from_yaml(spec_file)
    summary = gen.generate(tmp_path / "out", per_class=per_class)
    assert summary["instances_per_class"] == {"ring": per_class, "pair": per_class, "bar": per_class}
    assert _coco_counts(tmp_path / "out", gen) == Counter({"ring": per_class, "pair": per_class, "bar": per_class})
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == summary["images"]
    assert sum(len(json.loads(line)["labels"]) for line in lines) == 3 * per_class


def test_per_class_under_heavy_occlusion_still_exact(assets, tmp_path):
    raw = base_spec(assets)
    raw["objects_per_image"] = [4, 6]
    raw["placement"].update(scale_range=[0.6, 0.9], min_visibility=0.6)
    gen = Generator(spec_from_dict(raw))
    summary = gen.generate(tmp_path / "out", per_class=10)
    assert summary["instances_per_class"] == {"ring": 10, "pair": 10, "bar": 10}


def test_impossible_filter_fails_clearly(assets, tmp_path):
    raw = base_spec(assets)
    raw["placement"].update(scale_range=[0.05, 0.06], min_area=5000)
    with pytest.raises(SynthgenError, match="min_area 5000 is more than the 33 pixels .* no object could be labelled"):
        Generator(spec_from_dict(raw))  # refused before anything runs
    # possible on paper (an object may cover up to 33 px), never in practice: the scheduler stops
    raw["placement"].update(min_area=33)
    gen = Generator(spec_from_dict(raw))
    with pytest.raises(SynthgenError, match="could not get enough visible instances"):
        gen.generate(tmp_path / "out", per_class=2)


def test_n_images_and_splits(spec_file, tmp_path):
    gen = Generator.from_yaml(spec_file)
    summary = gen.generate(tmp_path / "out", n=40)
    assert summary["images"] == 40 == sum(summary["images_per_split"].values())
    assert summary["images_per_split"]["val"] > 0 and summary["images_per_split"]["train"] > summary["images_per_split"]["val"]
    assert len(list((tmp_path / "out" / "images").rglob("*.jpg"))) == 40
    ds = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert ds["seed"] == 1 and ds["spec"]["classes"]["ring"]["source"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [{"n": 30}, {"per_class": 12}])
def test_one_and_two_workers_write_identical_bytes(spec_file, tmp_path, mode):
    gen = Generator.from_yaml(spec_file)
    gen.generate(tmp_path / "w1", workers=1, **mode)
    gen.generate(tmp_path / "w2", workers=2, **mode)
    d1, d2 = _tree_digest(tmp_path / "w1"), _tree_digest(tmp_path / "w2")
    # data.yaml holds the absolute dataset path, which differs by folder name only
    d1.pop("data.yaml"), d2.pop("data.yaml")
    assert d1 == d2 and len(d1) > 30


def test_refuses_a_non_empty_out_and_overwrite_replaces_only_recorded_files(spec_file, tmp_path):
    gen = Generator.from_yaml(spec_file)
    out = tmp_path / "out"
    gen.generate(out, n=5)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SynthgenError, match="not empty; pass --overwrite"):
        gen.generate(out, n=3)
    before = _tree_digest(out)
    # a file of the user's inside an output folder: --overwrite refuses and deletes nothing
    theirs = out / "images" / "train" / "999999.jpg"
    theirs.write_bytes(b"not synthgen's")
    with pytest.raises(SynthgenError, match="no synthgen run recorded writing .*999999.jpg.*nothing was deleted"):
        gen.generate(out, n=3, overwrite=True)
    assert theirs.read_bytes() == b"not synthgen's" and {**before, "images/train/999999.jpg": _tree_digest(out)["images/train/999999.jpg"]} == _tree_digest(out)
    theirs.unlink()
    gen.generate(out, n=3, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert len(list((out / "images").rglob("*.jpg"))) == 3


def test_bad_spec_writes_nothing(assets, tmp_path):
    raw = base_spec(assets)
    raw["classes"]["ring"]["source"] = str(tmp_path / "missing")
    path = write_spec(tmp_path / "s.yaml", raw)
    with pytest.raises(SynthgenError):
        Generator.from_yaml(path).generate(tmp_path / "out", n=2)
    assert not (tmp_path / "out").exists()


def test_real_bigbird_cutouts_with_inverted_masks(shared, tmp_path):
    bb = shared / "cutpaste-bigbird"
    raw = {
        "seed": 5,
        "output": {"size": [640, 480], "split": {"train": 0.8, "val": 0.2}},
        "backgrounds": {"paths": [str(bb / "backgrounds"), str(shared / "backgrounds" / "*.jpg")]},
        "classes": {
            name: {"source": str(bb / "objects" / name), "mask": "{stem}.pbm", "mask_inverted": True}
            for name in ("honey_bunches", "mahatma_rice")
        },
        "placement": {"scale_range": [0.2, 0.5], "rotation_range": [-30, 30], "max_truncation": 0.25},
    }
    gen = Generator(spec_from_dict(raw))
    out = tmp_path / "bb"
    summary = gen.generate(out, per_class=15)
    assert summary["instances_per_class"] == {"honey_bunches": 15, "mahatma_rice": 15}
    cut = gen.library.cutout(gen.library.cutouts["honey_bunches"][0])
    # the object fills a small part of the 1280x1024 photo: cropped to the (inverted) mask
    assert cut.size[0] < 700 and cut.size[1] < 700
    assert (cut.rgba[..., 3] > 0).mean() > 0.5
    for split in ("train", "val"):
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        for ann in coco.dataset["annotations"]:
            assert coco.annToMask(ann).sum() == ann["area"]
