from __future__ import annotations

import numpy as np
import pytest

from synthgen import Generator, SpecError, load_spec
from synthgen.spec import parse_distribution, spec_from_dict, spec_from_text

from .conftest import base_spec, write_spec

SPEC = """\
seed: 7
backgrounds: {paths: [bg]}
classes:
  cereal: {source: cereal}
  mug:
    source: mug
    scale_range: [0.5, 0.2]
placement: {scale_range: [0.2, 0.5], rotaton_range: [-30, 30]}
"""


def test_error_names_file_line_column_and_key_path():
    with pytest.raises(SpecError) as e:
        spec_from_text(SPEC, name="demo.yaml")
    msg = str(e.value)
    assert "demo.yaml:7:18 classes.mug.scale_range: a range has low 0.5 > high 0.2" in msg
    assert "demo.yaml:8:38 placement.rotaton_range: unknown key 'rotaton_range'; did you mean 'rotation_range'?" in msg


def test_missing_key_and_wrong_type():
    with pytest.raises(SpecError) as e:
        spec_from_text("classes: {a: {source: x}}\noutput: {quality: high}\n", name="s.yaml")
    msg = str(e.value)
    assert "s.yaml backgrounds: required key is missing" in msg or "s.yaml:1:1 backgrounds: required key is missing" in msg
    assert "s.yaml:2:19 output.quality:" in msg


def test_invalid_yaml_has_position():
    with pytest.raises(SpecError, match=r"bad\.yaml:2:\d+: invalid YAML"):
        spec_from_text("a: [1, 2\nb: {", name="bad.yaml")


@pytest.mark.parametrize(
    "value,bounds,expect",
    [
        (0.3, (0, 1), ("fixed", (0.3,))),
        ([0.2, 0.5], (0, 1), ("uniform", (0.2, 0.5))),
        ({"uniform": [1, 2]}, (None, None), ("uniform", (1.0, 2.0))),
        ({"normal": {"mean": 0, "std": 2}}, (None, None), ("normal", (0.0, 2.0))),
        ({"choice": [1, 2, 3], "weights": [1, 0, 0]}, (None, None), ("choice", (1.0, 2.0, 3.0))),
        ({"int_uniform": [1, 4]}, (None, None), ("int_uniform", (1, 4))),
    ],
)
def test_distribution_forms(value, bounds, expect):
    d = parse_distribution(value, bounds)
    assert (d.kind, d.params) == expect


@pytest.mark.parametrize(
    "value,match",
    [
        ([1, 2, 3], "takes \\[low, high\\]"),
        ({"uniform": [2, 1]}, "low 2.0 > high 1.0"),
        ({"normal": {"mean": 0}}, "normal takes"),
        ({"gauss": 1}, "unknown distribution"),
        ({"choice": [0.1, 0.2], "weights": [1]}, "as long as choice"),
        (1.5, "outside the allowed range"),
        ("x", "not a value"),
    ],
)
def test_distribution_errors(value, match):
    with pytest.raises(ValueError, match=match):
        parse_distribution(value, (0, 1))


def test_draws_respect_bounds_and_weights():
    rng = np.random.default_rng(0)
    normal = parse_distribution({"normal": {"mean": 0.9, "std": 1.0}}, (0, 1))
    draws = [normal.sample(rng) for _ in range(500)]
    assert min(draws) >= 0 and max(draws) <= 1 and draws.count(1.0) > 50  # clipped, not rejected
    ints = parse_distribution({"int_uniform": [1, 3]}, integer=True)
    assert {ints.sample(rng) for _ in range(200)} == {1, 2, 3}
    choice = parse_distribution({"choice": [10, 20], "weights": [0, 1]})
    assert {choice.sample(rng) for _ in range(50)} == {20}


def test_set_overrides_any_key_with_yaml_values(spec_file):
    spec = load_spec(spec_file, overrides=["placement.scale_range={normal: {mean: 0.3, std: 0.1}}",
                                           "classes.ring.flip=1", "output.size=[64, 32]"])
    assert spec.placement.scale_range.kind == "normal"
    assert spec.placement_for("ring").flip == 1.0 and spec.placement_for("pair").flip == 0.5
    assert spec.output.size == (64, 32)


def test_set_errors_name_the_override(spec_file):
    with pytest.raises(SpecError, match=r"--set placement.flip=3 placement.flip"):
        load_spec(spec_file, overrides=["placement.flip=3"])
    with pytest.raises(SpecError, match="expected key.path=value"):
        load_spec(spec_file, overrides=["placement.flip"])
    # one line, the value cut short: PyYAML's message quoted the whole value over several lines,
    # and a whole number Python cannot read (over 4,300 digits) was 'unexpected ValueError'
    for value, says in (("{" + "9" * 5000 + ": 1}", "value is not valid YAML: expected ',' or '}', but got ':' (at character 5002)"),
                        ("9" * 5000, "a number in the value is too long for any value of a spec"),
                        ("[" * 100_000, "value is not valid YAML: nested too deeply")):
        with pytest.raises(SpecError) as e:
            load_spec(spec_file, overrides=[f"seed={value}"])
        assert str(e.value).endswith(says) and "\n" not in str(e.value) and len(str(e.value)) < 200, str(e.value)


def test_paths_are_relative_to_the_spec_file(assets, tmp_path, monkeypatch):
    raw = base_spec(assets)
    raw["backgrounds"]["paths"] = ["../assets_link/bg"]
    raw["classes"] = {"ring": {"source": "../assets_link/ring"}}
    (tmp_path / "assets_link").symlink_to(assets)
    (tmp_path / "specs").mkdir()
    path = write_spec(tmp_path / "specs" / "s.yaml", raw)
    monkeypatch.chdir("/")
    gen = Generator.from_yaml(path)
    assert gen.library.backgrounds[0].startswith("../assets_link/bg/")
    assert gen[0].image.shape == (96, 128, 3)


@pytest.mark.parametrize("folder", ["proj [v2]", "a*b?c"])
def test_a_pattern_beside_a_spec_in_a_folder_whose_name_looks_like_a_pattern(assets, tmp_path, folder):
    """The spec's folder was part of the glob: beside a spec in "proj [v2]/", "bg/*.png" matched
    nothing ([v2] read as a character class)."""
    import shutil

    from synthgen import Generator

    home = tmp_path / folder
    shutil.copytree(assets, home)
    raw = base_spec(home)
    raw["backgrounds"]["paths"] = ["bg/*.png"]
    raw["classes"] = {"ring": {"source": "ring/*.png"}}
    g = Generator(load_spec(write_spec(home / "spec.yaml", raw)))
    want = sorted(p.name for p in (home / "bg").glob("*.png"))
    assert want and sorted(b.rsplit("/", 1)[-1] for b in g.library.backgrounds) == want


def test_missing_asset_names_key_and_path(assets, tmp_path):
    raw = base_spec(assets)
    raw["classes"]["ring"]["source"] = str(tmp_path / "nope")
    with pytest.raises(SpecError, match=r"classes.ring.source.0: .*nope.* does not exist"):
        Generator(spec_from_dict(raw))


def test_rgb_cutout_without_mask_is_refused(assets):
    raw = base_spec(assets)
    raw["classes"]["bar"] = {"source": str(assets / "bar" / "bar.jpg")}
    with pytest.raises(SpecError, match="bar.jpg has no alpha channel"):
        Generator(spec_from_dict(raw))


def test_missing_mask_file_is_named(assets, tmp_path):
    raw = base_spec(assets)
    raw["classes"]["bar"]["mask"] = "{stem}_mask.png"
    with pytest.raises(SpecError, match=r"no mask .*bar_mask.png for image .*bar.jpg"):
        Generator(spec_from_dict(raw))


def test_resolved_spec_round_trips(spec_file):
    spec = load_spec(spec_file)
    again = spec_from_dict(spec.to_json(), base_dir=spec.base_dir)
    assert again == spec


def test_class_order_follows_the_spec(assets):
    raw = base_spec(assets)
    raw["classes"] = {"zeta": raw["classes"]["ring"], "alpha": raw["classes"]["pair"]}
    assert spec_from_dict(raw).categories == ["zeta", "alpha"]


def test_background_fit_modes():
    from synthgen.compositor.assets import crop_fitted, fit_background

    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = 255  # left half white
    resized = fit_background(img, "resize", (64, 64))
    assert resized.shape == (64, 64, 3) and resized[:, :28].min() == 255 and resized[:, 36:].max() == 0
    padded = fit_background(img, "pad", (64, 64))  # 64x32 image, centred, black bars above and below
    assert padded.shape == (64, 64, 3) and padded[:16].max() == 0 and padded[48:].max() == 0
    assert padded[20:44, :28].min() == 255
    cover = fit_background(img, "random_crop", (64, 64))  # scaled to cover: 128x64, then cropped
    assert cover.shape == (64, 128, 3)
    assert crop_fitted(cover, (0.0, 0.0), (64, 64)).min() == 255 and crop_fitted(cover, (1.0, 0.0), (64, 64)).max() == 0


def test_webp_cutouts_keep_their_alpha(assets, tmp_path):
    import cv2

    (tmp_path / "webp").mkdir()
    bgra = cv2.imread(str(assets / "ring" / "ring.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(tmp_path / "webp" / "ring.webp"), bgra, [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless
    raw = base_spec(assets)
    raw["classes"] = {"ring": {"source": str(tmp_path / "webp")}}
    gen = Generator(spec_from_dict(raw))
    cut = gen.library.cutout(gen.library.cutouts["ring"][0])
    assert cut.rgba.shape[2] == 4 and 0 < (cut.rgba[..., 3] > 0).mean() < 1  # a ring: soft alpha, a hole
