"""--backend ray on a local Ray (ray.init(num_cpus=2)): the same bytes as local workers, for the
compositor and the renderer (whose EGL context lives in the actor's own rendering thread); a
killed actor is replaced and its samples redone; a killed run resumes with Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.spec import spec_from_dict

from .conftest import base_spec, needs_gl, write_spec
from .test_runs import _kill_when, _killed_at, _start, digest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _same(a: Path, b: Path) -> None:
    da, db = digest(a), digest(b)
    assert (da.pop("data.yaml", None) is None) == (db.pop("data.yaml", None) is None)
    assert da == db


def _producer_pids() -> list[int]:
    """Processes of live synthgen actors (Ray names them after the actor class)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::_Producer"):
                pids.append(int(d.name))
    return pids


@pytest.fixture
def spec(assets) -> dict:
    raw = base_spec(assets)
    raw["output"].update(size=[160, 120], formats=["coco", "yolo", "webdataset"], shard_size=16)
    return raw


def test_ray_writes_the_same_bytes_as_local_workers(local_ray, spec, tmp_path):
    Generator(spec_from_dict(spec)).generate(tmp_path / "local", n=60, workers=2)
    summary = Generator(spec_from_dict(spec)).generate(tmp_path / "ray", n=60, workers=2, backend="ray")
    assert summary["images"] == 60
    _same(tmp_path / "ray", tmp_path / "local")
    Generator(spec_from_dict(spec)).generate(tmp_path / "local-pc", per_class=40)
    Generator(spec_from_dict(spec)).generate(tmp_path / "ray-pc", per_class=40, workers=2, backend="ray")
    _same(tmp_path / "ray-pc", tmp_path / "local-pc")


def test_a_killed_actor_is_replaced_and_nothing_is_lost(local_ray, spec, tmp_path):
    Generator(spec_from_dict(spec)).generate(tmp_path / "local", n=120)
    killed: list[int] = []

    def progress(images: int, instances: int) -> None:
        if images >= 10 and not killed:
            pids = _producer_pids()
            assert pids, "no actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    Generator(spec_from_dict(spec)).generate(tmp_path / "ray", n=120, workers=2, backend="ray", progress=progress)
    assert killed
    _same(tmp_path / "ray", tmp_path / "local")


@needs_gl()
def test_renderer_actors_render_in_their_own_thread(local_ray, shared, tmp_path):
    from .test_renderer import _spec

    raw = _spec(shared)
    raw["output"].update(formats=["coco"], size=[96, 72])
    Generator(spec_from_dict(raw)).generate(tmp_path / "local", n=6)
    Generator(spec_from_dict(raw)).generate(tmp_path / "ray", n=6, workers=2, backend="ray")
    _same(tmp_path / "ray", tmp_path / "local")


def test_a_killed_run_resumes_with_ray(assets, tmp_path):
    raw = base_spec(assets)
    raw["output"].update(size=[320, 240], formats=["coco", "yolo"])
    f = write_spec(tmp_path / "spec.yaml", raw)
    args = ["generate", str(f), "--n", "300", "--workers", "2"]
    proc = _killed_at(args + ["--backend", "ray", "--out", str(tmp_path / "a")], tmp_path / "a", 30)
    try:  # the killed driver's own Ray (raylet, GCS, actors) would otherwise linger
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", *args, "--backend", "ray", "--out", str(tmp_path / "a"), "--resume"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = runner.invoke(app, args + ["--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    _same(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("how", ["sigterm", "sigterm-group"])
def test_sigterm_stops_a_ray_run_as_it_stops_a_local_one(assets, tmp_path, how):
    """ray.init installs a SIGTERM handler that exits where the run stands (it dumped 'SIGTERM
    received ... PC: @' and nothing said what to do): it is set aside for the run, so SIGTERM
    stops it after the task being finished, exit 143, and --resume finishes it."""
    raw = base_spec(assets)
    raw["output"].update(size=[320, 240], formats=["coco", "yolo"])
    f = write_spec(tmp_path / "spec.yaml", raw)
    args = ["generate", str(f), "--n", "600", "--workers", "2", "--backend", "ray", "--out", str(tmp_path / "a")]
    proc = _start(args)
    _kill_when(proc, tmp_path / "a", 30, how)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        try:  # whatever of its Ray is left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode != 0:  # 0: it finished before the signal came
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 128 + signal.SIGTERM and len(errors) == 1, (proc.returncode, stderr[-2000:])
        assert errors[0].startswith("error: terminated (SIGTERM): ") and "SIGTERM received" not in stderr, stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", *args, "--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 or "already complete" in r.stderr, r.stderr[-2000:]
    r = runner.invoke(app, args[:6] + ["--out", str(tmp_path / "b")])  # local workers
    assert r.exit_code == 0, r.output
    _same(tmp_path / "a", tmp_path / "b")


def test_ray_flags_checked_first(spec, tmp_path):
    f = write_spec(tmp_path / "spec.yaml", spec)
    r = runner.invoke(app, ["generate", str(f), "--n", "5", "--backend", "spark", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--backend 'spark': choose from local, ray" in r.output
    r = runner.invoke(app, ["generate", str(f), "--n", "5", "--ray-address", "x:1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--ray-address needs --backend ray" in r.output
    assert not (tmp_path / "o").exists()
