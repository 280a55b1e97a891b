"""What --overwrite and --out may touch: only files runs recorded writing, never a user's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthgen import Generator, SynthgenError

from .conftest import base_spec, write_spec
from .test_generate import _tree_digest


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_overwrite_never_deletes_a_users_photos_in_an_output_folder(spec_file, tmp_path):
    out = tmp_path / "out"
    (out / "images" / "holiday").mkdir(parents=True)
    (out / "images" / "holiday" / "me.jpg").write_bytes(b"my holiday")
    gen = Generator.from_yaml(spec_file)
    with pytest.raises(SynthgenError, match="not empty"):
        gen.generate(out, n=2)
    with pytest.raises(SynthgenError, match=r"holds files no synthgen run recorded writing \(images/holiday/me.jpg\)"):
        gen.generate(out, n=2, overwrite=True)
    assert _all_files(out) == {"images/holiday/me.jpg": b"my holiday"}


def test_overwrite_after_a_run_keeps_what_the_user_added_elsewhere(spec_file, tmp_path):
    gen = Generator.from_yaml(spec_file)
    out = tmp_path / "out"
    gen.generate(out, n=4)
    first = _tree_digest(out)
    (out / "README.txt").write_text("notes")
    (out / "mine").mkdir()
    (out / "mine" / "a.jpg").write_bytes(b"x")
    gen.generate(out, n=4, overwrite=True)
    assert _tree_digest(out) == first | {"README.txt": _tree_digest(out)["README.txt"], "mine/a.jpg": _tree_digest(out)["mine/a.jpg"]}
    assert (out / "README.txt").read_text() == "notes" and (out / "mine" / "a.jpg").read_bytes() == b"x"
    gen.generate(out, n=2, overwrite=True)  # fewer images: the other recorded ones are gone
    assert len(list((out / "images").rglob("*.jpg"))) == 2


def test_overwrite_refuses_a_folder_that_holds_the_inputs(assets, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(assets, work / "assets")
    spec = write_spec(work / "spec.yaml", base_spec(work / "assets"))
    before = _all_files(work)
    gen = Generator.from_yaml(spec)
    with pytest.raises(SynthgenError, match="--overwrite refuses --out .*: it holds the spec's folder"):
        gen.generate(work, n=2, overwrite=True)
    # a spec elsewhere whose backgrounds lie inside --out
    raw = base_spec(assets)
    raw["backgrounds"]["paths"] = [str(work / "assets" / "bg")]
    elsewhere = Generator.from_yaml(write_spec(tmp_path / "elsewhere.yaml", raw))
    with pytest.raises(SynthgenError, match="--overwrite refuses --out .*: it holds the asset .*bg0.png"):
        elsewhere.generate(work, n=2, overwrite=True)
    assert _all_files(work) == before


def test_overwrite_refuses_root_and_home(spec_file, tmp_path, monkeypatch):
    gen = Generator.from_yaml(spec_file)
    with pytest.raises(SynthgenError, match="root of the filesystem"):
        gen.generate("/", n=1, overwrite=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(SynthgenError, match="your home folder"):
        gen.generate(home, n=1, overwrite=True)
    assert _all_files(home) == {".bashrc": b"x"}


def test_empty_out_is_refused(spec_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SynthgenError, match="--out is empty"):
        Generator.from_yaml(spec_file).generate("", n=1)
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]
