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


def test_an_error_found_before_the_run_starts_is_its_one_line(spec_file, tmp_path):
    """The progress bar was drawn before --out and an interrupted run's parts were checked: an
    empty 'generating 0/2' bar stood above the error line."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(out)])
    assert r.exit_code == 2
    assert [line for line in r.output.splitlines() if line.strip()] == [
        f"error: --out {out} is not empty; pass --overwrite to replace a previous run there, or --resume to finish "
        "an interrupted one"], r.output
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(tmp_path / "new")])
    assert r.exit_code == 0 and "generating" in r.output and "2/2" in r.output, r.output


def test_workers_beyond_the_cpus_are_capped_with_a_warning(spec_file, tmp_path, recwarn):
    """--workers 1000 spawned processes as long as tasks waited (each with its own decoded
    assets, about 200 MB for the demo) until the machine ran out of memory."""
    import subprocess
    import sys

    import pytest

    from synthgen import SynthgenWarning
    from synthgen.runs.pool import available_cpus, local_workers

    most = max(2, available_cpus())
    assert local_workers(2) == 2 and local_workers(most) == most and not recwarn.list
    with pytest.warns(SynthgenWarning, match=rf"--workers 1000: this machine gives synthgen {available_cpus()} CPUs; "
                                             rf"running {most} worker processes"):
        assert local_workers(1000) == most
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "generate", str(spec_file), "--n", "12", "--workers", "1000",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"warning: --workers 1000: this machine gives synthgen {available_cpus()} CPUs" in r.stderr


def test_show_and_report_never_replace_a_file_synthgen_did_not_write(spec_file, tmp_path):
    """'show -o' and 'report --out' replaced whatever the name held: a background photo of the
    spec (a PNG drawn into a .jpg, then an HTML page), the spec itself, a dataset's image."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    photo = tmp_path / "my photo.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(photo)
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my notes</html>")
    mine = {p: p.read_bytes() for p in (photo, notes, spec_file)}
    for args, says in (
        (["show", str(spec_file), "-o", str(photo)], "exists and was not written by synthgen show: it is left as it is"),
        (["show", str(spec_file), "-o", str(spec_file)], "show writes a PNG picture; give the name a .png ending"),
        (["show", str(spec_file), "-o", str(tmp_path / "x.jpg")], "show writes a PNG picture; give the name a .png ending"),
        (["show", str(spec_file), "-o", str(tmp_path)], "show writes a PNG picture"),
        (["report", str(tmp_path / "ds"), "--out", str(notes)], "exists and was not written by synthgen report"),
        (["report", str(tmp_path / "ds"), "--out", str(photo)], "report writes an HTML report; give the name a .html ending"),
    ):
        r = subprocess.run([sys.executable, "-m", "synthgen.cli", *args], capture_output=True, text=True, timeout=300)
        lines = r.stderr.splitlines()  # one line, before any bar or work
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: --out {args[-1]}") and says in lines[0], r.stderr
    assert {p: p.read_bytes() for p in mine} == mine
    assert not (tmp_path / "x.jpg").exists()
    # synthgen's own files are replaced: a picture twice, a report twice, a report written before the mark
    out = tmp_path / "look.png"
    for _ in range(2):
        assert runner.invoke(app, ["show", str(spec_file), "-o", str(out)]).exit_code == 0
    with Image.open(out) as im:
        assert im.info.get("Software") == "synthgen show" and im.size[0] > 0
    assert runner.invoke(app, ["generate", str(spec_file), "--n", "3", "--out", str(tmp_path / "ds")]).exit_code == 0
    report = tmp_path / "r.html"
    for _ in range(2):
        r = runner.invoke(app, ["report", str(tmp_path / "ds"), "--out", str(report)])
        assert r.exit_code == 0, r.output
    old = report.read_text().replace("<meta name='generator' content='synthgen report'>", "")
    report.write_text(old)
    assert runner.invoke(app, ["report", str(tmp_path / "ds"), "--out", str(report)]).exit_code == 0


def test_the_mark_leaves_a_pictures_pixels_as_they_are():
    import cv2
    import numpy as np

    from synthgen.inspect.output import marked_png

    pic = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)
    png = cv2.imencode(".png", pic)[1].tobytes()
    marked = marked_png(png)
    assert len(marked) > len(png)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(marked, np.uint8), cv2.IMREAD_UNCHANGED), pic)


def test_counts_of_one_are_singular(spec_file, tmp_path):
    """'wrote 1 image', '1 class', '1 annotation': not '1 images'."""
    out = tmp_path / "one"
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "1", "--out", str(out), "--set", "objects_per_image=1",
                            "--formats", "coco", "--set", "output.split={train: 1.0}"])
    assert r.exit_code == 0 and "wrote 1 image to " in r.output, r.output
    r = runner.invoke(app, ["validate", str(out)])
    assert "1 image, 1 annotation, no problems" in r.output, r.output
    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0 and ": 1 image, 1 instance, " in r.output, r.output
    assert r.output.startswith("wrote "), r.output  # no empty line where the bar was
    assert ": 1 object</figcaption>" in (tmp_path / "r.html").read_text()
    r = runner.invoke(app, ["generate", str(spec_file), "--n", "2", "--out", str(tmp_path / "two")])
    assert "wrote 2 images to " in r.output, r.output
