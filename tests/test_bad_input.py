"""A corpus of bad inputs, made here: every one gives exit 2, one ``error:`` line per problem
naming the file, key or flag, no traceback, and not a single file in --out.

Each case builds its inputs in a fresh folder from the good fixture spec and returns the CLI
arguments. The CLI runs in-process (typer's CliRunner), so an escaping exception would show.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from synthgen.cli import app

from .conftest import base_spec, make_assets, write_spec

runner = CliRunner()


def _spec(tmp: Path, **changes) -> dict:
    raw = base_spec(make_assets(tmp / "assets"))
    for key, value in changes.items():
        cur = raw
        *parents, last = key.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[last] = value
    return raw


def _gen(tmp: Path, raw: dict | str, *flags: str) -> list[str]:
    spec = tmp / "spec.yaml"
    if isinstance(raw, str):
        spec.write_text(raw)
    else:
        write_spec(spec, raw)
    return ["generate", str(spec), "--n", "3", "--out", str(tmp / "out"), *flags]


def _bad_background(tmp: Path, name: str, data: bytes) -> list[str]:
    raw = _spec(tmp)
    (tmp / "assets" / "bg" / name).write_bytes(data)
    return _gen(tmp, raw)


def _jpeg(h=60, w=80) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _renderer(tmp: Path, obj_text: str | bytes | None, **extra) -> list[str]:
    mesh = tmp / "m.obj"
    if obj_text is not None:
        mesh.write_bytes(obj_text if isinstance(obj_text, bytes) else obj_text.encode())
    raw = {"kind": "renderer", "output": {"size": [64, 48]}, "classes": {"thing": {"mesh": str(mesh), "size": 0.1}}, **extra}
    return _gen(tmp, raw)


CUBE = "".join(f"v {x} {y} {z}\n" for x in (0, 1) for y in (0, 1) for z in (0, 1)) + "f 1 2 4\nf 1 4 3\nf 5 6 8\nf 5 8 7\n"


def _case(fn):
    CASES[fn.__name__.removeprefix("case_").replace("_", " ")] = fn
    return fn


CASES: dict = {}


# -- the spec file ---------------------------------------------------------------------------
@_case
def case_spec_not_utf8(tmp):
    (tmp / "spec.yaml").write_bytes(b"seed: 1\nclasses: {caf\xe9: 1}\n")  # Latin-1
    return ["generate", str(tmp / "spec.yaml"), "--n", "3", "--out", str(tmp / "out")]


@_case
def case_python_tag(tmp):
    return _gen(tmp, "seed: !!python/object/apply:os.system [echo hi]\n")


@_case
def case_self_referencing_alias(tmp):
    return _gen(tmp, "seed: 1\nbackgrounds: &b {paths: [*b]}\nclasses: {a: {source: x}}\n")


@_case
def case_deep_nesting(tmp):
    return _gen(tmp, "classes: " + "[" * 5000 + "]" * 5000 + "\n")


@_case
def case_alias_bomb(tmp):
    return _gen(tmp, "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)))


@_case
def case_nan_scale(tmp):
    return _gen(tmp, _spec(tmp, **{"placement.scale_range": [float("nan"), 0.5]}))


@_case
def case_inf_min_visibility(tmp):
    return _gen(tmp, _spec(tmp, **{"placement.min_visibility": float("inf")}))


@_case
def case_nan_seed(tmp):
    return _gen(tmp, _spec(tmp, seed=float("nan")))


@_case
def case_inf_output_size(tmp):
    return _gen(tmp, _spec(tmp, **{"output.size": [float("inf"), 64]}))


@_case
def case_negative_seed_in_spec(tmp):
    return _gen(tmp, _spec(tmp, seed=-1))


@_case
def case_non_numeric_choice(tmp):
    return _gen(tmp, _spec(tmp, **{"placement.rotation_range": {"choice": ["a", "b"]}}))


@_case
def case_infinite_weight(tmp):
    return _gen(tmp, _spec(tmp, **{"classes.ring.weight": float("inf")}))


@_case
def case_infinite_choice_weights(tmp):
    return _gen(tmp, _spec(tmp, **{"objects_per_image": {"choice": [1, 2], "weights": [1, float("inf")]}}))


@_case
def case_kind_is_a_list(tmp):
    return _gen(tmp, _spec(tmp, kind=[1]))


@_case
def case_distribution_with_mixed_key_types(tmp):
    return _gen(tmp, "seed: 1\nbackgrounds: {paths: bg}\nclasses: {a: {source: x}}\nobjects_per_image: {1: 2, uniform: [1, 2]}\n")


@_case
def case_renderer_size_null(tmp):
    mesh = tmp / "m.obj"
    mesh.write_text(CUBE)
    return _gen(tmp, {"kind": "renderer", "classes": {"thing": {"mesh": str(mesh), "size": None}}})


@_case
def case_class_name_with_control_character(tmp):
    return _gen(tmp, 'seed: 1\nbackgrounds: {paths: bg}\nclasses: {"bad\\x07name": {source: x}}\n')


@_case
def case_duplicate_key(tmp):
    return _gen(tmp, "seed: 1\nseed: 2\nbackgrounds: {paths: bg}\nclasses: {a: {source: x}}\n")


@_case
def case_empty_spec(tmp):
    return _gen(tmp, "")


@_case
def case_spec_is_a_folder(tmp):
    (tmp / "folder.yaml").mkdir()
    return ["generate", str(tmp / "folder.yaml"), "--n", "3", "--out", str(tmp / "out")]


@_case
def case_spec_missing(tmp):
    return ["generate", str(tmp / "nope.yaml"), "--n", "3", "--out", str(tmp / "out")]


@_case
def case_unknown_key(tmp):
    return _gen(tmp, _spec(tmp, **{"placement.min_visibilty": 0.3}))


@_case
def case_mask_pattern_with_other_placeholder(tmp):
    return _gen(tmp, _spec(tmp, **{"classes.bar.mask": "{stem}{0}.pbm"}))


# -- assets ----------------------------------------------------------------------------------
@_case
def case_truncated_jpeg_background(tmp):
    data = _jpeg(200, 300)
    return _bad_background(tmp, "cut.jpg", data[: len(data) // 2])


@_case
def case_truncated_png_background(tmp):
    data = _png(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    return _bad_background(tmp, "cut.png", data[: len(data) // 2])


@_case
def case_zero_byte_background(tmp):
    return _bad_background(tmp, "empty.png", b"")


@_case
def case_text_file_named_png(tmp):
    return _bad_background(tmp, "notes.png", b"this is not an image\n")


@_case
def case_folder_named_png(tmp):
    raw = _spec(tmp)
    (tmp / "assets" / "bg" / "x.png").mkdir()
    return _gen(tmp, raw)


@_case
def case_symlink_loop(tmp):
    raw = _spec(tmp)
    loop = tmp / "assets" / "bg" / "loop.png"
    os.symlink(loop, loop)
    return _gen(tmp, raw)


@_case
def case_mask_of_the_wrong_size(tmp):
    raw = _spec(tmp)
    cv2.imwrite(str(tmp / "assets" / "bar" / "bar.pbm"), np.zeros((10, 10), np.uint8))
    return _gen(tmp, raw)


@_case
def case_mask_with_no_object(tmp):
    raw = _spec(tmp)
    cv2.imwrite(str(tmp / "assets" / "bar" / "bar.pbm"), np.full((50, 100), 255, np.uint8))  # inverted: all background
    return _gen(tmp, raw)


@_case
def case_cutout_with_empty_alpha(tmp):
    raw = _spec(tmp)
    cv2.imwrite(str(tmp / "assets" / "ring" / "ghost.png"), np.zeros((20, 20, 4), np.uint8))
    return _gen(tmp, raw)


@_case
def case_cutout_alpha_too_faint(tmp):
    raw = _spec(tmp)
    cv2.imwrite(str(tmp / "assets" / "ring" / "ghost.png"), np.dstack([np.full((20, 20, 3), 200, np.uint8), np.full((20, 20), 100, np.uint8)]))
    return _gen(tmp, raw)


@_case
def case_mask_of_class_indices(tmp):
    raw = _spec(tmp)
    m = np.zeros((50, 100), np.uint8)
    m[20:30, 20:80] = 2  # a label image: class 2, never 128 or more
    cv2.imwrite(str(tmp / "assets" / "bar" / "bar.png"), m)
    raw["classes"]["bar"].update(mask="{stem}.png", mask_inverted=False)
    return _gen(tmp, raw)


@_case
def case_truncated_cutout(tmp):
    raw = _spec(tmp)
    data = (tmp / "assets" / "ring" / "ring.png").read_bytes()
    (tmp / "assets" / "ring" / "ring.png").write_bytes(data[: len(data) // 2])
    return _gen(tmp, raw)


@_case
def case_cutout_named_in_bytes_that_are_not_utf8(tmp):
    raw = _spec(tmp)
    ring = tmp / "assets" / "ring"
    (Path(os.fsdecode(os.fsencode(ring) + b"/caf\xe9.png"))).write_bytes((ring / "ring.png").read_bytes())  # Latin-1
    return _gen(tmp, raw)


@_case
def case_background_named_in_bytes_that_are_not_utf8(tmp):
    return _bad_background(tmp, os.fsdecode(b"x\xff.jpg"), _jpeg())


@_case
def case_mask_not_an_image(tmp):
    raw = _spec(tmp)
    (tmp / "assets" / "bar" / "bar.pbm").write_text("P1 oops")
    return _gen(tmp, raw)


@_case
def case_missing_mask(tmp):
    raw = _spec(tmp)
    (tmp / "assets" / "bar" / "bar.pbm").unlink()
    return _gen(tmp, raw)


@_case
def case_rgb_cutout_without_mask(tmp):
    raw = _spec(tmp)
    cv2.imwrite(str(tmp / "assets" / "ring" / "flat.png"), np.full((20, 20, 3), 90, np.uint8))
    return _gen(tmp, raw)


@_case
def case_region_of_the_wrong_size(tmp):
    raw = _spec(tmp, **{"backgrounds.regions": "{stem}_region.png"})
    cv2.imwrite(str(tmp / "assets" / "bg" / "bg0_region.png"), np.full((7, 7), 255, np.uint8))
    return _gen(tmp, raw)


@_case
def case_empty_region(tmp):
    raw = _spec(tmp, **{"backgrounds.regions": "{stem}_region.png"})
    cv2.imwrite(str(tmp / "assets" / "bg" / "bg0_region.png"), np.zeros((120, 160), np.uint8))
    return _gen(tmp, raw)


@_case
def case_truncated_distractor_texture(tmp):
    raw = _spec(tmp)
    tex = tmp / "tex"
    tex.mkdir()
    data = _jpeg(100, 100)
    (tex / "t.jpg").write_bytes(data[:300])
    raw["distractors"] = {"procedural": 1, "textures": [str(tex)]}
    return _gen(tmp, raw)


@_case
def case_background_path_missing(tmp):
    return _gen(tmp, _spec(tmp, **{"backgrounds.paths": [str(tmp / "nowhere")]}))


@_case
def case_mesh_with_no_faces(tmp):
    return _renderer(tmp, "v 0 0 0\nv 1 0 0\nv 0 1 0\n")


@_case
def case_mesh_with_nan_vertices(tmp):
    return _renderer(tmp, CUBE.replace("v 0 0 0", "v nan 0 0"))


@_case
def case_mesh_of_garbage(tmp):
    return _renderer(tmp, bytes(range(256)) * 20)


@_case
def case_mesh_missing(tmp):
    return _renderer(tmp, None)


@_case
def case_mesh_zero_bytes(tmp):
    return _renderer(tmp, b"")


@_case
def case_renderer_background_truncated(tmp):
    photos = tmp / "photos"
    photos.mkdir()
    data = _jpeg(100, 120)
    (photos / "p.jpg").write_bytes(data[: len(data) // 3])
    return _renderer(tmp, CUBE, background={"modes": {"image": 1}, "paths": [str(photos)]})


@_case
def case_renderer_texture_empty(tmp):
    tex = tmp / "tex"
    tex.mkdir()
    (tex / "t.png").write_bytes(b"")
    return _renderer(tmp, CUBE, materials={"modes": {"texture": 1}, "textures": [str(tex)]})


# -- flags and --out -------------------------------------------------------------------------
@_case
def case_negative_seed_flag(tmp):
    return _gen(tmp, _spec(tmp), "--seed", "-1")


@_case
def case_negative_n(tmp):
    args = _gen(tmp, _spec(tmp))
    args[args.index("--n") + 1] = "-5"
    return args


@_case
def case_per_class_zero(tmp):
    args = _gen(tmp, _spec(tmp))
    i = args.index("--n")
    args[i:i + 2] = ["--per-class", "0"]
    return args


@_case
def case_workers_zero(tmp):
    return _gen(tmp, _spec(tmp), "--workers", "0")


@_case
def case_unknown_format(tmp):
    return _gen(tmp, _spec(tmp), "--formats", "coco,tfrecord")


@_case
def case_bop_for_the_compositor(tmp):
    return _gen(tmp, _spec(tmp), "--formats", "coco,bop")


@_case
def case_set_into_a_number(tmp):
    return _gen(tmp, _spec(tmp), "--set", "placement.flip.x=1")


@_case
def case_both_counts(tmp):
    return _gen(tmp, _spec(tmp), "--per-class", "3")


@_case
def case_overwrite_and_resume(tmp):
    return _gen(tmp, _spec(tmp), "--overwrite", "--resume")


@_case
def case_output_too_small_for_any_object(tmp):
    return _gen(tmp, _spec(tmp, **{"output.size": [8, 8], "placement.min_area": 40}))  # at most (0.7 * 8)^2 = 31 px


@_case
def case_out_empty(tmp):
    args = _gen(tmp, _spec(tmp))
    args[args.index("--out") + 1] = ""
    return args


@_case
def case_out_dangling_symlink(tmp):
    args = _gen(tmp, _spec(tmp))
    os.symlink(tmp / "gone", tmp / "out")
    return args


@_case
def case_out_is_a_file(tmp):
    args = _gen(tmp, _spec(tmp))
    (tmp / "out").write_text("a file")
    return args


@_case
def case_out_name_too_long(tmp):
    args = _gen(tmp, _spec(tmp))
    args[args.index("--out") + 1] = str(tmp / ("x" * 300))
    return args


@_case
def case_show_negative_index(tmp):
    write_spec(tmp / "spec.yaml", _spec(tmp))
    return ["show", str(tmp / "spec.yaml"), "-i", "-1", "--out", str(tmp / "out" / "s.png")]


@_case
def case_check_of_a_broken_asset(tmp):
    args = case_truncated_jpeg_background(tmp)
    return ["check", args[1]]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.is_dir() and not root.is_symlink() else set()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clear_line_and_writes_nothing(name, tmp_path):
    args = CASES[name](tmp_path)
    out = tmp_path / "out"
    before = _files(out)
    r = runner.invoke(app, args)
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 2, (name, r.exit_code, r.output)
    assert errors, (name, r.output)
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), (name, r.output)
    assert _files(out) == before, (name, _files(out) - before)


def test_a_file_named_with_control_characters_is_still_one_line(tmp_path):
    """A line break, tab or escape in a file's name is shown escaped, so each problem stays one
    line (a newline used to split one problem into two ``error:`` lines)."""
    raw = _spec(tmp_path)
    data = _jpeg(200, 300)
    for name in ("new\nline.jpg", "tab\tand\x1bescape.jpg"):
        (tmp_path / "assets" / "bg" / name).write_bytes(data[: len(data) // 2])
    r = runner.invoke(app, _gen(tmp_path, raw))
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.strip()]
    assert len(errors) == 2 and all(line.startswith("error: backgrounds.paths: ") for line in errors), r.output
    assert "new\\nline.jpg: cannot be decoded" in errors[0] and "tab\\tand\\x1bescape.jpg: cannot be decoded" in errors[1], r.output


def test_a_file_named_in_bytes_that_are_not_utf8_is_named_and_refused(tmp_path):
    """Python holds such a name with lone surrogates, which the manifest's JSON would carry and
    strict JSON readers refuse; the error shows the bytes as they are (``\\xe9``)."""
    raw = _spec(tmp_path)
    for name in (b"caf\xe9.png", b"na\xefve.png"):
        (Path(os.fsdecode(os.fsencode(tmp_path / "assets" / "ring") + b"/" + name))).write_bytes(
            (tmp_path / "assets" / "ring" / "ring.png").read_bytes())
    for cmd in ("generate", "check"):
        args = _gen(tmp_path, raw)
        r = runner.invoke(app, args if cmd == "generate" else ["check", args[1]])
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1, r.output
        assert lines[0].startswith("error: classes.ring.source.0: ") and "caf\\xe9.png (and 1 more): the file name is not UTF-8" in lines[0], r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["caf\\udce9", "a\\uffff", "\\ud83d"])
def test_a_class_name_that_is_no_character_is_refused(tmp_path, name):
    """YAML reads "\\udce9" (a lone surrogate) and "\\uffff" into a name that UTF-8 and XML 1.0
    have no place for: the COCO file got the escape, the VOC XML could not be written."""
    raw = _spec(tmp_path)
    raw["classes"] = {"NAME": raw["classes"]["ring"]}
    args = _gen(tmp_path, raw)
    spec = Path(args[1])
    spec.write_text(spec.read_text().replace("NAME", f'"{name}"'))
    r = runner.invoke(app, args + ["--set", "output.formats=[coco,yolo,voc]"])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "is not a character" in lines[0], r.output
    assert "spec.yaml:" in lines[0] if "\\ud" in name else "classes: class name" in lines[0], r.output
    assert not (tmp_path / "out").exists()
    from synthgen.errors import SpecError
    from synthgen.spec import spec_from_dict

    raw["classes"] = {name.encode().decode("unicode_escape"): raw["classes"]["NAME"]}  # from Python, not YAML
    with pytest.raises(SpecError, match="is not a character"):
        spec_from_dict(raw)


def test_corpus_is_large():
    assert len(CASES) >= 40


def test_every_problem_is_reported_in_one_run(tmp_path):
    raw = _spec(tmp_path)
    bg = tmp_path / "assets" / "bg"
    (bg / "empty.png").write_bytes(b"")
    (bg / "text.jpg").write_text("hello")
    data = (tmp_path / "assets" / "ring" / "ring.png").read_bytes()
    (tmp_path / "assets" / "ring" / "ring.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "assets" / "bar" / "bar.pbm").unlink()
    raw["classes"]["pair"]["source"] = str(tmp_path / "missing")
    for cmd in ("generate", "check"):
        args = _gen(tmp_path, raw)
        if cmd == "check":
            args = ["check", args[1]]
        r = runner.invoke(app, args)
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert r.exit_code == 2, r.output
        joined = "\n".join(errors)
        for needle in ("empty.png: is empty", "text.jpg: is not an image", "ring.png: cannot be decoded",
                       "classes.bar.mask: no mask", "classes.pair.source.0"):
            assert needle in joined, (cmd, needle, joined)
        assert len(errors) == 5, joined
    assert not (tmp_path / "out").exists()


def test_check_says_ok_for_a_good_spec(spec_file):
    r = runner.invoke(app, ["check", str(spec_file)])
    assert r.exit_code == 0 and r.output.startswith("ok:"), r.output


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("synthgen ")


def test_flags_show_no_type_placeholders():
    r = runner.invoke(app, ["generate", "--help"])
    assert r.exit_code == 0 and "<bool>" not in r.output and "--overwrite" in r.output and "--resume" in r.output


# -- images that are fine must keep working ----------------------------------------------------
def test_avif_jpeg2000_and_mpo_are_read_and_heic_is_named(tmp_path):
    """AVIF (phones, the web), JPEG 2000 and MPO (cameras) are read where this Pillow decodes
    them, as ultralytics reads them; a folder's HEIC files, which synthgen cannot read, are named
    in a warning (they were passed over without a word), and a folder of only those is an error."""
    import json

    from PIL import Image, features

    from synthgen.sources import IMAGE_EXTS

    raw = _spec(tmp_path)
    bg = tmp_path / "assets" / "bg"
    for old in bg.iterdir():
        old.unlink()
    rgb = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    made = {"photo.mpo": "MPO"}
    if features.check("avif"):
        made["web.avif"] = "AVIF"
    if features.check("jpg_2000"):
        made["scan.jp2"] = "JPEG2000"
    for name, fmt in made.items():
        Image.fromarray(rgb).save(bg / name, fmt)
        assert Path(name).suffix in IMAGE_EXTS
    for name in ("IMG_0001.HEIC", "IMG_0002.heic"):
        (bg / name).write_bytes(b"\0\0\0\x18ftypheic" + bytes(100))
    args = _gen(tmp_path, raw, "--set", "output.formats=[coco]", "--n", "12")
    from synthgen.errors import SynthgenWarning

    with pytest.warns(SynthgenWarning, match="holds 2 .heic files that synthgen does not read") as seen:
        r = runner.invoke(app, args)
    assert r.exit_code == 0 and len([w for w in seen if "heic" in str(w.message)]) == 1, r.output
    p = subprocess.run([sys.executable, "-m", "synthgen.cli", "check", args[1]], capture_output=True, text=True)
    warned = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert p.returncode == 0 and len(warned) == 1 and "bg holds 2 .heic files that synthgen does not read" in warned[0], p.stderr
    used = {json.loads(line)["scene"]["background"]["asset"].rsplit("/", 1)[-1] for line in (tmp_path / "out" / "manifest.jsonl").open()}
    assert used == set(made), used
    for name in made:
        (bg / name).unlink()
    r = runner.invoke(app, _gen(tmp_path, raw, "--out", str(tmp_path / "out2")))
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "matches no image files" in lines[0] and "only 2 .heic files" in lines[0], r.output


def test_unusual_but_valid_images_are_read_right(tmp_path):
    from PIL import Image

    from synthgen.sources import read_image

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)
    # 16-bit grey PNG
    g16 = (np.arange(30, dtype=np.uint16)[None].repeat(20, 0) * 2000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png", "L")[0, -1] == round(29 * 2000 / 257)
    # palette with transparency
    pal = Image.fromarray(rgb).convert("P")
    pal.info["transparency"] = pal.getpixel((25, 5))
    pal.save(tmp_path / "pal.png", transparency=pal.getpixel((25, 5)))
    a = read_image(tmp_path / "pal.png", "RGBA")
    assert a[5, 25, 3] == 0 and a[5, 5, 3] == 255 and tuple(a[5, 5, :3]) == (255, 0, 0)
    # LA
    Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 0]]), "LA").save(tmp_path / "la.png")
    a = read_image(tmp_path / "la.png", "RGBA")
    assert a[0, 0, 3] == 255 and a[0, 20, 3] == 0
    # CMYK JPEG
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    c = read_image(tmp_path / "cmyk.jpg", "RGB")
    assert c.shape == (20, 30, 3) and c[10, 2, 0] > 200 and c[10, 2, 1] < 60
    # EXIF orientation 6 (rotate 90 clockwise to display): 20x30 stored, 30x20 shown
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    r = read_image(tmp_path / "rot.jpg", "RGB")
    assert r.shape == (30, 20, 3) and r[2, 10, 0] > 200 and r[-3, 10, 0] < 60  # the red band is now on top
    # all of them as real assets in a run
    raw = base_spec(make_assets(tmp_path / "assets"))
    bg = tmp_path / "assets" / "bg"
    for f in ("cmyk.jpg", "rot.jpg"):
        (bg / f).write_bytes((tmp_path / f).read_bytes())
    cut = tmp_path / "cuts"
    cut.mkdir()
    for f in ("pal.png", "la.png"):
        (cut / f).write_bytes((tmp_path / f).read_bytes())
    raw["classes"]["ring"]["source"] = [str(tmp_path / "assets" / "ring"), str(cut)]
    spec = write_spec(tmp_path / "spec.yaml", raw)
    r = runner.invoke(app, ["generate", str(spec), "--n", "6", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output


def test_images_taken_out_in_strips_are_the_same_pixels(tmp_path, monkeypatch):
    """read_image takes a big image's pixels out strip by strip (to hold it about twice, not five
    times): strips of one row give exactly what Pillow's whole-image conversion gives, for every
    kind of file and mode, orientation applied, as writable arrays of their own."""
    from PIL import Image, ImageOps

    from synthgen import sources

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    files = {}
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, rgb[..., 0]])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([rgb[..., 1], rgb[..., 2]]), "LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png", transparency=3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=90)
    Image.fromarray(rgb).save(tmp_path / "rgb.webp", lossless=True)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.tif")
    for f in sorted(tmp_path.iterdir()):
        for mode in ("RGB", "RGBA", "L"):
            with Image.open(f) as im:
                want = np.array(ImageOps.exif_transpose(im).convert(mode))
            files[f.name, mode] = want
    monkeypatch.setattr(sources, "_STRIP_BYTES", 1)  # one row at a time
    for (name, mode), want in files.items():
        got = sources.read_image(tmp_path / name, mode)
        assert got.dtype == np.uint8 and got.flags.writeable and got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, want, err_msg=f"{name} as {mode}")
    monkeypatch.setattr(sources, "_STRIP_BYTES", 1 << 20)  # whole (these are small)
    for (name, mode), want in files.items():
        np.testing.assert_array_equal(sources.read_image(tmp_path / name, mode), want, err_msg=f"{name} as {mode}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_big_photo_is_held_about_twice_while_read(tmp_path):
    """Peak memory while reading a 12-megapixel JPEG, in a process of its own: about 2.5 times
    its pixels (Pillow's decoded image and the array), where it was 6 times before strips."""
    import subprocess
    import sys

    y, x = np.mgrid[0:3000, 0:4000]
    cv2.imwrite(str(tmp_path / "big.jpg"), np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8))
    # VmHWM: this process's own peak (ru_maxrss would start from the forking parent's)
    code = ("import sys\n"
            "from synthgen.sources import read_image\n"
            "def peak():\n"
            "    line = next(x for x in open('/proc/self/status') if x.startswith('VmHWM:'))\n"
            "    return int(line.split()[1]) * 1024\n"
            "before = peak()\n"
            "a = read_image(sys.argv[1])\n"
            "print((peak() - before) / a.nbytes)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.jpg")], capture_output=True, text=True, check=True)
    assert 1.0 < float(out.stdout) < 4.0, out.stdout


def test_pixel_limit_is_one_clear_line_and_under_it_no_pillow_warning(tmp_path, monkeypatch):
    """Pillow warns of a "decompression bomb" past MAX_IMAGE_PIXELS and refuses twice that (179
    megapixels unless a program sets it). synthgen reads the user's own photos: up to the limit
    silently, past it one line naming the file and its size, from the header alone; where a
    program turned Pillow's limit off, synthgen's own (268 megapixels) holds."""
    import warnings

    from PIL import Image

    from synthgen import SpecError, sources

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "mid.png")  # 1,200 pixels
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(tmp_path / "big.png")  # 3,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns past 1,000, refuses past 2,000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert sources.read_image(tmp_path / "mid.png").shape == (30, 40, 3)
        assert sources.image_size(tmp_path / "mid.png") == (40, 30)
        assert not sources.has_alpha(tmp_path / "mid.png")
    for read in (sources.read_image, sources.image_size, sources.has_alpha):
        with pytest.raises(SpecError, match=r"big\.png: is too large \(0\.003 megapixels; images of at most 0\.002 megapixels"):
            read(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setattr(sources, "MAX_PIXELS", 2000)
    with pytest.raises(SpecError, match=r"big\.png: 60x50 is too large"):
        sources.read_image(tmp_path / "big.png")
    # in a run: the one background over the limit is one line, exit 2, nothing written; the
    # others (up to 66,000 pixels, past Pillow's warning at 40,000) are read without a word
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    raw = _spec(tmp_path / "run")
    cv2.imwrite(str(tmp_path / "run" / "assets" / "bg" / "huge.png"), np.zeros((300, 400, 3), np.uint8))  # 120,000
    r = runner.invoke(app, _gen(tmp_path / "run", raw))
    assert r.exit_code == 2, r.output
    assert [line for line in r.output.splitlines() if line.strip()] == [
        f"error: backgrounds.paths: {sources.shown(tmp_path / 'run' / 'assets' / 'bg' / 'huge.png')}: is too large "
        "(0.12 megapixels; images of at most 0.08 megapixels are read: scale it down)"], r.output
    assert not (tmp_path / "run" / "out").exists()
    (tmp_path / "run" / "assets" / "bg" / "huge.png").unlink()
    r = runner.invoke(app, _gen(tmp_path / "run", raw))
    assert r.exit_code == 0 and "Warning" not in r.output, r.output
    # a dataset on disk whose images are over the limit: validate says so per image, no traceback
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    r = runner.invoke(app, ["validate", str(tmp_path / "run" / "out")])
    assert "Traceback" not in r.output and "is too large" in r.output, r.output


def test_truncated_bmp_and_webp_are_refused(tmp_path):
    from synthgen import SpecError
    from synthgen.sources import read_image

    img = np.random.default_rng(3).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    for ext in (".bmp", ".webp", ".tif"):
        data = cv2.imencode(ext, img)[1].tobytes()
        f = tmp_path / f"x{ext}"
        f.write_bytes(data[: len(data) // 2])
        with pytest.raises(SpecError, match="x" + ext):
            read_image(f)


def test_yaml_spec_for_the_good_cases_is_valid(tmp_path):
    """The corpus's builder makes a valid spec when nothing is broken (so each case fails for its
    own reason)."""
    args = _gen(tmp_path, _spec(tmp_path))
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(Path(args[1]).read_text())["seed"] == 1


# -- synthgen extract ----------------------------------------------------------------------------
def test_extract_never_writes_outside_out_and_keeps_classes_apart(tmp_path):
    """Ids such as "../../x" and classes "a/b" and "a_b" from a hostile COCO file."""
    import json

    from pycocotools import mask as mask_utils

    images = tmp_path / "imgs"
    images.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    cv2.imwrite(str(images / "p.png"), img)
    m = np.zeros((60, 80), np.uint8, order="F")
    m[20:40, 20:50] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    anns = [{"id": aid, "image_id": "../../x", "category_id": cid, "segmentation": rle, "area": 600,
             "bbox": [20, 20, 30, 20], "iscrowd": 0} for aid, cid in (("../y", 1), ("/etc/z", 2), (7, 3))]
    coco = {"images": [{"id": "../../x", "file_name": "p.png", "width": 80, "height": 60}], "annotations": anns,
            "categories": [{"id": 1, "name": "a/b"}, {"id": 2, "name": "a_b"}, {"id": 3, "name": ".."}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    out = tmp_path / "deep" / "bank"
    r = runner.invoke(app, ["extract", str(tmp_path / "c.json"), str(images), "--out", str(out), "--min-area", "10"])
    assert r.exit_code == 0, r.output
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(w.startswith("deep/bank/") or w in ("c.json", "imgs/p.png") for w in written), written
    index = json.loads((out / "index.json").read_text())
    assert len(index["cutouts"]) == 3 and len({c["file"] for c in index["cutouts"]}) == 3
    assert len(set(index["folders"].values())) == 3, index["folders"]  # a/b and a_b stay apart
    for c in index["cutouts"]:
        assert (out / c["file"]).resolve().parent.parent == out.resolve()


def test_extract_of_a_broken_coco_is_one_line(tmp_path):
    (tmp_path / "c.json").write_text('{"images": [{"id": 1, "file_name": "gone.png", "width": 5, "height": 5}], '
                                     '"annotations": [], "categories": []}')
    r = runner.invoke(app, ["extract", str(tmp_path / "c.json"), str(tmp_path), "--out", str(tmp_path / "bank")])
    assert r.exit_code == 2 and "gone.png: image named in" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "bank").exists()
    (tmp_path / "c.json").write_text("[1, 2")
    r = runner.invoke(app, ["extract", str(tmp_path / "c.json"), str(tmp_path), "--out", str(tmp_path / "bank")])
    assert r.exit_code == 2 and "not a readable COCO" in r.output, r.output


def test_a_faint_alpha_or_mask_says_how_faint_not_empty(tmp_path):
    """A cutout whose alpha never reaches 128, or a mask of small class indices, was called empty
    ("the cutout's alpha is empty"), though it holds an object; the line says how high it goes."""
    for case, expect in ((case_cutout_alpha_too_faint, r"ghost.png: no pixel of the cutout's alpha reaches 128 \(its highest is 100 of 255\)"),
                         (case_mask_of_class_indices, r"bar.png: no pixel of the mask reaches 128 \(its highest is 2 of 255\)")):
        folder = tmp_path / case.__name__
        folder.mkdir()
        r = runner.invoke(app, case(folder))
        assert r.exit_code == 2 and re.search(expect, r.output), r.output


def test_a_mask_of_zeros_and_ones_is_read_as_a_mask(tmp_path):
    """Many segmentation datasets store masks as 0/1 label images: read as 0/255, the same
    samples as the 0/255 mask (they were refused as 'the object mask is empty')."""
    from synthgen import Generator
    from synthgen.spec import spec_from_dict

    assets = make_assets(tmp_path / "assets")
    obj = np.zeros((50, 100), np.uint8)
    obj[20:30, 20:80] = 1
    samples = {}
    for scale in (255, 1):
        cv2.imwrite(str(assets / "bar" / "bar.png"), obj * np.uint8(scale))
        raw = base_spec(assets)
        raw["classes"]["bar"].update(mask="{stem}.png", mask_inverted=False)
        g = Generator(spec_from_dict(raw))
        samples[scale] = [g[i] for i in range(6)]
    assert any(a.category == "bar" for s in samples[1] for a in s.annotations)
    for a, b in zip(samples[255], samples[1]):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_a_mask_made_from_a_turned_photo_as_stored_is_turned_with_it(tmp_path, orientation):
    """A phone's portrait photo is stored landscape with an EXIF orientation that turns it;
    masks made from its pixels as stored (Pillow without exif_transpose, rembg) are the stored
    size. Refused before as 'mask is 50x100, image is 100x50'; now turned as the photo is: the
    same samples as the photo and mask turned beforehand and saved without EXIF."""
    from PIL import Image, ImageOps

    from synthgen import Generator
    from synthgen.spec import spec_from_dict

    assets = make_assets(tmp_path / "assets")
    rgb = np.zeros((50, 100, 3), np.uint8)
    rgb[5:20, 10:90] = (250, 40, 20)  # a bar in the upper part as stored: turning moves it
    mask = np.zeros((50, 100), np.uint8)
    mask[5:20, 10:90] = 255
    samples = {}
    for turned in (False, True):
        for f in (assets / "bar").iterdir():
            f.unlink()
        if turned:  # the photo with its EXIF orientation, the mask as its pixels are stored
            exif = Image.Exif()
            exif[0x0112] = orientation
            Image.fromarray(rgb).save(assets / "bar" / "bar.png", exif=exif)
            Image.fromarray(mask).save(assets / "bar" / "bar_mask.png")
        else:  # the reference: both turned beforehand, saved without EXIF
            ImageOps.exif_transpose(_with_exif(Image.fromarray(rgb), orientation)).save(assets / "bar" / "bar.png")
            ImageOps.exif_transpose(_with_exif(Image.fromarray(mask), orientation)).save(assets / "bar" / "bar_mask.png")
        raw = base_spec(assets)
        raw["classes"]["bar"].update(mask="{stem}_mask.png", mask_inverted=False)
        g = Generator(spec_from_dict(raw))
        samples[turned] = [g[i] for i in range(6)]
    assert any(a.category == "bar" for s in samples[True] for a in s.annotations)
    for a, b in zip(samples[False], samples[True]):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)


def _with_exif(im, orientation: int):
    im.getexif()[0x0112] = orientation
    return im


def test_a_placement_region_of_a_turned_background_as_stored_is_turned_with_it(tmp_path):
    """The same for a background's placement region: the same samples as both turned beforehand."""
    from PIL import Image, ImageOps

    from synthgen import Generator
    from synthgen.spec import spec_from_dict

    assets = make_assets(tmp_path / "assets")
    photo = np.random.default_rng(2).integers(0, 255, (120, 200, 3), np.uint8)
    region = np.zeros((120, 200), np.uint8)
    region[10:60, 20:90] = 255  # a corner as stored: turning moves it
    samples = {}
    for turned in (False, True):
        bg = tmp_path / f"bg{int(turned)}"
        bg.mkdir()
        if turned:
            exif = Image.Exif()
            exif[0x0112] = 6
            Image.fromarray(photo).save(bg / "desk.png", exif=exif)
            Image.fromarray(region).save(bg / "desk_region.png")
        else:
            ImageOps.exif_transpose(_with_exif(Image.fromarray(photo), 6)).save(bg / "desk.png")
            ImageOps.exif_transpose(_with_exif(Image.fromarray(region), 6)).save(bg / "desk_region.png")
        raw = base_spec(assets)
        raw["backgrounds"] = {"paths": [str(bg)], "regions": "{stem}_region.png", "fit": "resize"}
        g = Generator(spec_from_dict(raw))
        samples[turned] = [g[i] for i in range(4)]
    assert any(s.annotations for s in samples[True])
    for a, b in zip(samples[False], samples[True]):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)


def test_a_mask_of_another_size_than_a_turned_photo_names_the_orientation(tmp_path):
    from PIL import Image

    assets = make_assets(tmp_path / "assets")
    for f in (assets / "bar").iterdir():
        f.unlink()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((50, 100, 3), 200, np.uint8)).save(assets / "bar" / "bar.png", exif=exif)
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(assets / "bar" / "bar_mask.png")
    raw = base_spec(assets)
    raw["classes"]["bar"].update(mask="{stem}_mask.png", mask_inverted=False)
    r = runner.invoke(app, ["check", str(write_spec(tmp_path / "spec.yaml", raw))])
    assert r.exit_code == 2, r.output
    assert "bar_mask.png: mask is 40x40, image" in r.output and "bar.png is 50x100 (as its EXIF orientation 6 turns it; " \
        "100x50 as stored)" in r.output, r.output


def test_a_missing_or_piped_mesh_is_one_line(tmp_path):
    """A missing mesh was two lines (the second 'cannot load mesh: FileNotFoundError ...'); a named
    pipe as a mesh was 'does not exist' and 'is empty'."""
    for name, make, says in (("gone.obj", lambda p: None, "'gone.obj' does not exist"),
                             ("pipe.obj", os.mkfifo, "'pipe.obj' is not a file (a device, pipe or socket")):
        make(tmp_path / name)
        raw = {"kind": "renderer", "output": {"size": [64, 48]}, "classes": {"thing": {"mesh": name, "size": 0.1}}}
        spec = tmp_path / "spec.yaml"
        write_spec(spec, raw)
        r = runner.invoke(app, ["check", str(spec)])
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert r.exit_code == 2 and len(errors) == 1 and says in errors[0], r.output


def test_a_named_pipe_as_a_meshs_material_or_texture_does_not_hang(tmp_path):
    """trimesh reads what an OBJ names through its resolver: a named pipe as the MTL or as a
    texture blocked ``check`` for ever. Such a file is passed over, as a missing one is."""
    import subprocess
    import sys

    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl a\n"
                                    "f 1/1 2/2 3/3\nf 1/1 2/2 4/3\nf 1/1 3/2 4/3\nf 2/1 3/2 4/3\n")
    write_spec(tmp_path / "spec.yaml", {"kind": "renderer", "output": {"size": [64, 48]},
                                        "classes": {"thing": {"mesh": "m.obj", "size": 0.1}}})
    for pipe, says in (("m.mtl", "its material file 'm.mtl' (named in the mesh) was not found"),
                       ("t.png", "texture 't.png' (named in its material file) was not found")):
        if pipe == "t.png":
            (tmp_path / "m.mtl").unlink()  # the first round's pipe: writing to it would block
            (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd t.png\n")
        os.mkfifo(tmp_path / pipe)
        r = subprocess.run([sys.executable, "-m", "synthgen.cli", "check", str(tmp_path / "spec.yaml")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and says in r.stderr, r.stderr


@pytest.mark.parametrize("first", ["wrapper", "synthgen"])
def test_a_library_that_wraps_pillows_open_does_not_change_what_synthgen_reads(tmp_path, first):
    """Importing ultralytics (8.4) replaces PIL.Image.open with a wrapper that, on a file Pillow
    cannot identify, pip-installs a HEIF plugin and imports it: where that fails the caller gets
    ModuleNotFoundError. A corrupt image in a script that imported both was 'unexpected
    ModuleNotFoundError'. The wrapper here does what ultralytics' does, imported before or
    after synthgen."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "wrapper.py").write_text(textwrap.dedent("""
        from PIL import Image
        _image_open = Image.open  # as ultralytics.utils.patches keeps it
        def image_open(filename, *args, **kwargs):
            try:
                return _image_open(filename, *args, **kwargs)
            except Image.UnidentifiedImageError:
                from pi_heif_that_is_not_installed import register_heif_opener  # noqa: F401
        Image.open = image_open
        """))
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    imports = ["import wrapper", "from synthgen.sources import read_image, image_size"]
    code = "\n".join(imports if first == "wrapper" else imports[::-1]) + textwrap.dedent("""
        from synthgen import SpecError
        try:
            read_image("bad.png")
        except SpecError as e:
            print(e)
        try:
            image_size("bad.png")  # its callers take an OSError as 'not an image'
        except OSError as e:
            print(type(e).__name__)
        """)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bad.png: is not an image (or not one Pillow can read)", "UnidentifiedImageError"], \
        r.stdout + r.stderr
