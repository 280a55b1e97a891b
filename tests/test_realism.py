"""Blending, harmonisation, shadows, augmentation, distractors, negatives, targets, ground and
region placement, blend variants and object banks: each keeps the labels exact."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthgen import Generator, SpecError
from synthgen.labels import annotate
from synthgen.compositor.assets import defringe
from synthgen.compositor.blend import paste, reach
from synthgen.compositor.planning import BackgroundPlan, ObjectPlan, Scene
from synthgen.spec import spec_from_dict

from .conftest import base_spec
from .test_labels_contract import check_sample

MODES = ["none", "gaussian", "poisson", "pyramid", "motion"]
PARAMS = {"sigma": 1.5, "mixed": False, "levels": 4, "length": 9.0, "angle": 30.0}


def _gen(assets, **over) -> Generator:
    raw = base_spec(assets)
    raw["output"]["size"] = [160, 120]
    for k, v in over.items():
        raw[k] = v
    return Generator(spec_from_dict(raw))


def _one_object_scene(gen: Generator, category="ring", size=60.0, center=(80, 60), blend="none") -> Scene:
    obj = ObjectPlan(category, gen.library.cutouts[category][0].image, size, 0.0, False, center, blend=blend, blend_params=dict(PARAMS))
    return Scene(0, 0, (160, 120), "train", BackgroundPlan(gen.library.backgrounds[0], "random_crop", (0.3, 0.3)), [obj])


@pytest.mark.parametrize("mode", MODES)
def test_blend_modes_change_colours_never_labels(assets, mode):
    gen = _gen(assets, blend={"modes": {m: 1 for m in MODES}})
    for i in range(6):
        base = gen.sample(i, variant="none")
        other = gen.sample(i, variant=mode)
        assert [a.bbox for a in other.annotations] == [a.bbox for a in base.annotations]
        for a, b in zip(base.annotations, other.annotations):
            np.testing.assert_array_equal(a.mask, b.mask)
        check_sample(gen, other)


@pytest.mark.parametrize("mode", MODES)
def test_blending_stays_within_its_reach(assets, mode):
    gen = _gen(assets)
    scene = _one_object_scene(gen, blend=mode)
    bg = gen.backend.background(scene)
    img = gen.backend.render(scene).image
    changed = np.abs(img.astype(int) - bg).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    # the patch (soft alpha included) grown by the mode's reach bounds every changed pixel
    x0, y0, x1, y1 = gen.backend.render(scene).regions[0]
    r = reach(mode, PARAMS)
    assert xs.min() >= x0 - r and xs.max() < x1 + r and ys.min() >= y0 - r and ys.max() < y1 + r
    if mode in ("gaussian", "motion", "pyramid"):  # and the soft modes do reach past the patch
        assert xs.min() < x0 or ys.min() < y0 or xs.max() >= x1 or ys.max() >= y1


def test_poisson_keeps_the_object_in_place(assets):
    """Poisson changes no pixel outside the object's alpha, and its texture lines up with the
    hard paste at zero shift, not at one pixel off."""
    gen = _gen(assets)
    hard_scene = _one_object_scene(gen, "pair", 90, (80, 60), "none")
    pois_scene = _one_object_scene(gen, "pair", 90, (80, 60), "poisson")
    hard = gen.backend.render(hard_scene)
    pois = gen.backend.render(pois_scene)
    bg = gen.backend.background(hard_scene).astype(int)
    outside = hard.instance_map == 0
    # outside the object, Poisson leaves the background exactly (the hard paste adds only soft alpha)
    assert (np.abs(pois.image.astype(int) - bg)[outside & (np.abs(hard.image.astype(int) - bg).sum(-1) == 0)] == 0).all()
    assert annotate(gen.spec, hard_scene, hard)[0].bbox == annotate(gen.spec, pois_scene, pois)[0].bbox
    # a noise-textured object: the cloned texture must line up with the source at zero shift
    rng = np.random.default_rng(0)
    bg_img = cv2.GaussianBlur(rng.integers(0, 255, (90, 90, 3), dtype=np.uint8), (0, 0), 4)
    alpha = np.zeros((50, 50), np.uint8)
    alpha[5:45, 5:45] = 255
    tex = rng.integers(0, 255, (50, 50, 3), dtype=np.uint8)
    patch = np.dstack([(tex * (alpha[..., None] / 255.0)).astype(np.uint8), alpha])
    out = bg_img.copy()
    paste(out, patch, 20, 20, "poisson", PARAMS)
    assert (out[:25] == bg_img[:25]).all() and (out[:, :25] == bg_img[:, :25]).all()  # untouched outside
    src = tex[8:42, 8:42, 1].astype(float)
    for dx in (-1, 0, 1):
        got = out[28:62, 28 + dx : 62 + dx, 1].astype(float)
        c = np.corrcoef(np.diff(src, axis=1).ravel(), np.diff(got, axis=1).ravel())[0, 1]
        if dx == 0:
            assert c > 0.9
        else:
            assert c < 0.3


@pytest.mark.parametrize("mixed", [False, True])
def test_poisson_solver_agrees_with_opencv_seamless_clone(mixed):
    from synthgen.compositor.blend import poisson_solve

    rng = np.random.default_rng(1)
    dst = cv2.GaussianBlur(rng.integers(0, 255, (120, 140, 3), dtype=np.uint8), (0, 0), 5)
    src = np.clip(cv2.GaussianBlur(rng.integers(0, 255, (120, 140, 3), dtype=np.uint8), (0, 0), 1).astype(int) + 60, 0, 255).astype(np.uint8)
    mask = np.zeros((120, 140), np.uint8)
    cv2.ellipse(mask, (70, 60), (50, 35), 20, 0, 360, 255, -1)
    x, y, w, h = cv2.boundingRect(mask)
    ocv = cv2.seamlessClone(src, dst, mask.copy(), (x + w // 2, y + h // 2), cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE)
    ours = poisson_solve(src.astype(np.float32), dst.astype(np.float32), mask > 0, mixed)
    inside = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    diff = np.abs(ours - ocv.astype(np.float32))[inside]
    assert diff.mean() < 6 and np.abs(src.astype(np.float32) - ocv)[inside].mean() > 30  # close to OpenCV, far from a hard paste
    # and it solves the discrete Poisson equation exactly inside the mask
    lap = lambda f: f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]  # noqa: E731
    if not mixed:
        assert np.abs(lap(ours) - lap(src.astype(np.float32)))[inside[1:-1, 1:-1]].max() < 0.01


@pytest.mark.parametrize("mode", ["gaussian", "pyramid", "motion"])
def test_soft_modes_leave_no_halo(mode):
    """An object the colour of the background must vanish into it: no dark or light rim."""
    image = np.full((80, 80, 3), 180, np.uint8)
    alpha = np.zeros((40, 40), np.uint8)
    cv2.circle(alpha, (20, 20), 15, 255, -1)
    patch = np.dstack([(np.full((40, 40, 3), 180) * (alpha[..., None] / 255.0) + 0.5).astype(np.uint8), alpha])
    paste(image, patch, 20, 20, mode, PARAMS)
    assert np.abs(image.astype(int) - 180).max() <= 1


def test_defringe_replaces_the_old_background_at_the_edge():
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[5:25, 5:25] = (200, 30, 30, 255)
    rgba[5:25, 5] = rgba[5:25, 24] = rgba[5, 5:25] = rgba[24, 5:25] = (255, 255, 255, 255)  # white rim
    out = defringe(rgba, 1)
    assert (out[5:25, 5:25, :3] == (200, 30, 30)).all()
    assert (out[..., 3] == rgba[..., 3]).all()


def test_shadows_and_harmonisation_move_colours_not_labels(assets):
    plain = _gen(assets)
    fancy = _gen(assets, shadow={"p": 1.0, "opacity": [0.5, 0.6], "offset": [8, 10]}, harmonize={"strength": 1.0},
                 photometric={"brightness": [0.1, 0.1], "contrast": [1.2, 1.2]})
    differs = 0
    for i in range(5):
        a, b = plain[i], fancy[i]
        assert a.scene.objects[0].center == b.scene.objects[0].center if a.scene.objects else True
        assert [x.bbox for x in a.annotations] == [x.bbox for x in b.annotations]
        differs += int(np.abs(a.image.astype(int) - b.image).sum() > 0)
        # the shadow darkens pixels that no object owns
        shaded = (b.image.astype(int).sum(-1) < a.image.astype(int).sum(-1) - 10) & (b.annotations[0].mask == 0 if b.annotations else True)
        if a.annotations:
            assert shaded.any()
    assert differs == 5


def test_harmonisation_pulls_object_colour_to_the_surroundings():
    from synthgen.compositor.backend import harmonize

    patch = np.zeros((20, 20, 4), np.uint8)
    patch[...] = (250, 20, 20, 255)
    patch[0:2] = (240, 30, 30, 255)
    around = np.tile(np.array([[20, 40, 220]], np.uint8), (200, 1))
    around[::2] = (30, 50, 200)
    out = harmonize(patch, around, 1.0)
    assert out[..., 2].mean() > 150 and out[..., 0].mean() < 100
    half = harmonize(patch, around, 0.5)
    assert out[..., 0].mean() < half[..., 0].mean() < 250


def test_object_augmentation_moves_alpha_and_is_seeded(assets):
    aug = {"object": [{"name": "Perspective", "scale": [0.08, 0.12], "p": 1.0}, {"name": "ColorJitter", "p": 1.0}],
           "image": [{"name": "GaussNoise", "std_range": [0.05, 0.1], "p": 1.0}]}
    gen = _gen(assets, augment=aug)
    plain = _gen(assets)
    moved = 0
    for i in range(6):
        s1, s2 = gen[i], gen[i]
        np.testing.assert_array_equal(s1.image, s2.image)  # same seed, same pixels
        check_sample(gen, s1)
        if s1.annotations and plain[i].annotations:
            moved += int(s1.annotations[0].bbox != plain[i].annotations[0].bbox)
    assert moved > 0


def test_bad_augmentations_are_named(assets):
    with pytest.raises(SpecError, match=r"augment.image.0.name: Perspective moves pixels"):
        _gen(assets, augment={"image": [{"name": "Perspective"}]})
    with pytest.raises(SpecError, match=r"augment.object.0.name: 'GausNoise' is not an albumentations transform; did you mean 'GaussNoise'"):
        _gen(assets, augment={"object": [{"name": "GausNoise"}]})
    with pytest.raises(SpecError, match=r"augment.object.1: GaussianBlur\(blur_limit='big'\) is invalid"):
        _gen(assets, augment={"object": [{"name": "ColorJitter"}, {"name": "GaussianBlur", "blur_limit": "big"}]})


def test_distractors_are_pasted_and_never_labelled(assets):
    gen = _gen(assets, distractors={"source": str(assets / "pair"), "count": [2, 3], "procedural": [1, 2],
                                    "textures": [str(assets / "bg")], "scale_range": [0.2, 0.4]})
    seen_procedural = occluding = 0
    for i in range(8):
        s = gen[i]
        kinds = [o.category for o in s.scene.objects]
        assert kinds.count(None) >= 3
        assert all(a.category is not None for a in s.annotations)
        seen_procedural += sum(o.shape is not None for o in s.scene.objects)
        labelled = {a.object_index for a in s.annotations}
        r = gen.backend.render(s.scene)
        for a in s.annotations:
            above = [k for k in range(a.object_index + 1, len(s.scene.objects)) if s.scene.objects[k].category is None]
            # pixels of this object's patch now owned by a distractor pasted over it
            occluding += int(any((r.instance_map == k + 1).any() and a.visibility < 1 for k in above))
        check_sample(gen, s)
        assert labelled <= set(range(len(s.scene.objects)))
    assert seen_procedural > 0 and occluding > 0


def test_negative_ratio_in_both_modes(assets, tmp_path):
    gen = _gen(assets, negative_ratio=0.4)
    empty = sum(not gen[i].annotations and not any(o.category for o in gen[i].scene.objects) for i in range(60))
    assert 12 <= empty <= 40
    summary = gen.generate(tmp_path / "pc", per_class=6)
    assert summary["instances_per_class"] == {"ring": 6, "pair": 6, "bar": 6}
    lines = [json.loads(x) for x in (tmp_path / "pc" / "manifest.jsonl").read_text().splitlines()]
    negatives = [m for m in lines if m["scene"]["request"] == []]
    assert negatives and all(not m["labels"] for m in negatives)
    m = negatives[0]
    assert (tmp_path / "pc" / "labels" / m["split"] / f"{m['index']:06d}.txt").read_text() == ""


def test_visibility_targets_are_aimed_at_and_reported(assets, tmp_path):
    place = {"scale_range": [0.4, 0.6], "min_visibility": 0.2, "max_truncation": 0.0, "rotation_range": 0}
    free = _gen(assets, placement=dict(place), objects_per_image=[3, 4])
    aimed = _gen(assets, placement={**place, "visibility_range": [0.3, 0.7]}, objects_per_image=[3, 4])
    s_free = free.generate(tmp_path / "free", per_class=20)
    s_aimed = aimed.generate(tmp_path / "aimed", per_class=20)
    assert s_aimed["instances_per_class"] == {"ring": 20, "pair": 20, "bar": 20}
    assert "targets" in s_aimed and set(s_aimed["targets"]) == {"ring", "pair", "bar"}

    def share(out: Path) -> float:
        vis = [lab["visibility"] for line in (out / "manifest.jsonl").read_text().splitlines() for lab in json.loads(line)["labels"]]
        return sum(0.3 <= v <= 0.7 for v in vis) / len(vis)

    assert share(tmp_path / "aimed") > share(tmp_path / "free") + 0.1
    assert s_free["targets"] == {}


def test_truncation_targets(assets):
    gen = _gen(assets, placement={"scale_range": [0.3, 0.4], "truncation_range": [0.2, 0.4], "min_visibility": 0.1})
    truncs = [a.truncation for i in range(15) for a in gen[i].annotations]
    assert sum(0.1 <= t <= 0.5 for t in truncs) / len(truncs) > 0.6


def test_ground_placement_puts_farther_objects_higher_and_smaller(assets):
    gen = _gen(assets, placement={"mode": "ground", "horizon": 0.4, "far_scale": 0.3, "scale_range": 0.5,
                                  "rotation_range": 0, "min_visibility": 0.0, "max_truncation": 0.5}, objects_per_image=[3, 4])
    from synthgen.compositor.planning import object_cutout, rotated_extent

    bottoms, sizes = [], []
    for i in range(15):
        s = gen[i]
        feet = [o.center[1] + rotated_extent(object_cutout(gen.library, o).size, o.size_px, o.angle)[1] / 2 for o in s.scene.objects]
        assert feet == sorted(feet)  # drawn far to near: nearer objects cover farther ones
        assert all(f >= 0.4 * 120 - 1e-6 for f in feet)  # standing on the ground, below the horizon
        bottoms += feet
        sizes += [o.size_px for o in s.scene.objects]
    assert np.corrcoef(bottoms, sizes)[0, 1] > 0.95  # farther up, smaller
    assert min(sizes) >= 0.3 * 0.5 * 120 - 1e-6 and max(sizes) <= 0.5 * 120 + 1e-6


def test_placement_regions_keep_objects_inside(assets, tmp_path):
    bg_dir = tmp_path / "bgs"
    bg_dir.mkdir()
    img = cv2.imread(str(assets / "bg" / "bg2.png"))
    img = cv2.resize(img, (160, 120))
    cv2.imwrite(str(bg_dir / "table.png"), img)
    region = np.zeros((120, 160), np.uint8)
    region[60:115, 20:140] = 255  # a table top
    cv2.imwrite(str(bg_dir / "table_region.png"), region)
    raw = base_spec(assets)
    raw["output"]["size"] = [160, 120]
    raw["backgrounds"] = {"paths": [str(bg_dir)], "regions": "{stem}_region.png", "fit": "resize"}
    raw["placement"] = {"scale_range": [0.15, 0.25], "max_truncation": 0.1, "min_visibility": 0.0}
    gen = Generator(spec_from_dict(raw))
    assert gen.library.backgrounds == [str(bg_dir / "table.png")]  # the region file is not a background
    inside = total = 0
    for i in range(12):
        r = gen.backend.render(gen.plan(i))
        fg = r.instance_map > 0
        inside += int((fg & (region > 0)).sum())
        total += int(fg.sum())
    assert inside / total > 0.85


def test_blend_variants_write_the_same_scene_once_per_mode(assets, tmp_path):
    gen = _gen(assets, write_blend_variants=["none", "gaussian", "poisson"])
    summary = gen.generate(tmp_path / "v", per_class=4)
    assert summary["distinct_instances_per_class"] == {"ring": 4, "pair": 4, "bar": 4}
    assert summary["instances_per_class"] == {"ring": 12, "pair": 12, "bar": 12}
    assert summary["images"] == 3 * summary["scenes"]
    names = sorted(p.name for p in (tmp_path / "v" / "images").rglob("*.jpg"))
    assert names[:3] == ["000000-gaussian.jpg", "000000-none.jpg", "000000-poisson.jpg"]
    lines = [json.loads(x) for x in (tmp_path / "v" / "manifest.jsonl").read_text().splitlines()]
    by_index: dict[int, list] = {}
    for m in lines:
        by_index.setdefault(m["index"], []).append(m)
    for group in by_index.values():
        assert [m["variant"] for m in group] == ["none", "gaussian", "poisson"]
        assert all(m["labels"] == group[0]["labels"] and m["scene"] == group[0]["scene"] for m in group)
    # COCO image ids stay integers: 10 x index + the variant's position in write_blend_variants
    coco = json.loads((tmp_path / "v" / "annotations" / "instances_train.json").read_text())
    for im in coco["images"]:
        index, mode = Path(im["file_name"]).stem.split("-")
        assert im["id"] == 10 * int(index) + ["none", "gaussian", "poisson"].index(mode)
    assert len({im["id"] for im in coco["images"]}) == len(coco["images"])


def test_extract_bank_from_real_coco_and_use_it(shared, tmp_path):
    # a COCO dataset of real photos: BigBIRD objects on real backgrounds, written by synthgen
    bb = shared / "cutpaste-bigbird"
    raw = {
        "seed": 3, "output": {"size": [640, 480], "formats": ["coco"], "split": {"train": 1.0}},
        "backgrounds": {"paths": [str(bb / "backgrounds")]},
        "classes": {n: {"source": str(bb / "objects" / n), "mask": "{stem}.pbm", "mask_inverted": True}
                    for n in ("honey_bunches", "mahatma_rice")},
        "placement": {"scale_range": [0.3, 0.5], "max_truncation": 0.3},
    }
    Generator(spec_from_dict(raw)).generate(tmp_path / "real", n=6)
    from typer.testing import CliRunner

    from synthgen.cli import app

    r = CliRunner().invoke(app, ["extract", str(tmp_path / "real" / "annotations" / "instances_train.json"),
                                 str(tmp_path / "real" / "images" / "train"), "--out", str(tmp_path / "bank"), "--min-area", "500"])
    assert r.exit_code == 0, r.output
    index = json.loads((tmp_path / "bank" / "index.json").read_text())
    coco = json.loads((tmp_path / "real" / "annotations" / "instances_train.json").read_text())
    assert len(index["cutouts"]) + sum(index["skipped"].values()) == len(coco["annotations"])
    for c in index["cutouts"]:
        rgba = cv2.imread(str(tmp_path / "bank" / c["file"]), cv2.IMREAD_UNCHANGED)
        assert rgba.shape[2] == 4 and int((rgba[..., 3] > 0).sum()) == c["area"]
    # the bank is a class source
    spec = dict(raw, classes={name: {"source": str(tmp_path / "bank" / folder)} for name, folder in index["folders"].items()})
    out = Generator(spec_from_dict(spec)).generate(tmp_path / "again", per_class=3)
    assert set(out["instances_per_class"].values()) == {3}


def test_light_and_contrast_jitter_is_the_documented_formula():
    from synthgen.compositor.backend import adjust_colour

    patch = np.zeros((4, 4, 4), np.uint8)
    patch[..., :3] = 100
    patch[..., 3] = 255
    patch[0, 0] = (50, 50, 50, 128)  # half transparent, premultiplied: straight colour 100 too
    out = adjust_colour(patch, brightness=0.1, contrast=1.5)
    # straight rgb' = (rgb - 128) * c + 128 + 255 b = (100 - 128) * 1.5 + 128 + 25.5 = 111.5
    assert np.abs(out[1:, 1:, :3].astype(int) - 111.5).max() <= 0.5
    assert abs(int(out[0, 0, 0]) - 111.5 * 128 / 255) <= 1
    np.testing.assert_array_equal(out[..., 3], patch[..., 3])  # alpha, and so labels, untouched
