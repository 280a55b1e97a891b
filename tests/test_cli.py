from __future__ import annotations

import json

import cv2
from typer.testing import CliRunner

from synthgen.cli import app

runner = CliRunner()


def test_generate_per_class_writes_every_format(spec_file, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["generate", str(spec_file), "--per-class", "4", "--out", str(out), "--formats", "coco,voc"])
    assert r.exit_code == 0, r.output
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["instances_per_class"] == {"ring": 4, "pair": 4, "bar": 4}
    assert (out / "annotations" / "instances_train.json").exists() and (out / "voc").is_dir()
    assert not (out / "labels").exists()  # yolo was not asked for


def test_non_empty_out_is_refused_without_traceback(spec_file, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(out)])
    assert r.exit_code == 2
    assert "not empty; pass --overwrite" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(out), "--overwrite", "--seed", "3"])
    assert r.exit_code == 0, r.output


def test_bad_spec_is_one_clear_line(spec_file, tmp_path):
    spec_file.write_text(spec_file.read_text().replace("min_visibility", "min_visibilty"))
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "placement.min_visibilty: unknown key" in r.output and "did you mean 'min_visibility'" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(tmp_path / "o"), "--set", "placement=3"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_set_and_missing_count(spec_file, tmp_path):
    r = runner.invoke(app, ["generate", str(spec_file), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--per-class" in r.output
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "3", "--out", str(tmp_path / "o"),
                            "--set", "output.size=[50, 40]", "--set", "output.image_format=png"])
    assert r.exit_code == 0, r.output
    img = cv2.imread(str(next((tmp_path / "o" / "images").rglob("*.png"))))
    assert img.shape == (40, 50, 3)


def test_show_draws_a_sample(spec_file, tmp_path):
    out = tmp_path / "show.png"
    r = runner.invoke(app, ["show", str(spec_file), "--index", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(out)).shape == (96, 128, 3)
    r = runner.invoke(app, ["show", str(spec_file), "-i", "0", "-i", "1", "-i", "2", "--cols", "2", "--out", str(out)])
    assert r.exit_code == 0 and cv2.imread(str(out)).shape[1] > 256


def test_a_run_that_labels_nothing_says_so(assets, tmp_path):
    from .conftest import base_spec, write_spec

    raw = base_spec(assets)
    raw["placement"].update(min_visibility=1.0, scale_range=[0.9, 1.0], max_truncation=0.9)  # nothing whole
    raw["objects_per_image"] = [3, 3]
    spec = write_spec(tmp_path / "s.yaml", raw)
    r = runner.invoke(app, ["generate", str(spec), "--n", "3", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and "warning: no object was labelled" in r.output, r.output
