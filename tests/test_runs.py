"""Runs that are killed, interrupted, starved of disk or started wrongly: nothing is lost, nothing
is half-written, and --resume finishes with the same bytes as a run never stopped.

These start the real CLI in a child process and kill it from outside (SIGKILL to the main process
or to a worker, SIGINT to the whole process group as a terminal's Ctrl-C does, SIGTERM to the
main process as ``docker stop`` and Kubernetes send it, or to the whole group as ``timeout`` and
SLURM do).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from synthgen import Generator
from synthgen.spec import spec_from_dict

from .conftest import base_spec, write_spec

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "synthgen.cli"]


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file of the dataset (the run's own bookkeeping in .synthgen/ left out)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".synthgen" not in p.relative_to(root).parts}


@pytest.fixture
def slow_spec(assets, tmp_path) -> Path:
    """The fixture spec at a size where a run lasts a second or two, so kills land mid-run."""
    raw = base_spec(assets)
    raw["output"].update(size=[320, 240], formats=["coco", "yolo", "voc"])
    return write_spec(tmp_path / "spec.yaml", raw)


def _journal_lines(out: Path) -> int:
    j = out / ".synthgen" / "journal.jsonl"
    try:
        return j.read_bytes().count(b"\n")
    except OSError:
        return 0


def _workers_of(pid: int) -> list[int]:
    """Worker processes of a run (children running multiprocessing's spawn entry, not its
    resource tracker)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            found.append(int(d.name))
    return found


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _killed_at(args: list[str], out: Path, lines: int) -> subprocess.Popen:
    """The CLI run with ``args`` (writing to ``out``), its main process killed (SIGKILL) once
    ``lines`` tasks are journaled; it must have died of that kill."""
    proc = _start(args)
    _kill_when(proc, out, lines, "main")
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return proc


def _kill_when(proc: subprocess.Popen, out: Path, lines: int, how: str) -> None:
    deadline = time.monotonic() + 120
    while _journal_lines(out) < lines:
        if proc.poll() is not None or time.monotonic() > deadline:
            return  # finished (or never got there): resume must cope with that too
        time.sleep(0.002)
    if how == "main":
        os.kill(proc.pid, signal.SIGKILL)
    elif how == "worker":
        workers = _workers_of(proc.pid)
        assert workers, "no worker process found"
        os.kill(workers[0], signal.SIGKILL)
    elif how == "sigterm":
        os.kill(proc.pid, signal.SIGTERM)
    elif how == "sigterm-group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:  # Ctrl-C in a terminal: SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)


def _session(sid: int) -> list[int]:
    """Processes still running in session ``sid`` (a run and its workers, started in one)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[4]) == sid:
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.parametrize(
    "count,workers,how,at",
    [
        (["--n", "90"], 1, "main", 1),
        (["--n", "90"], 1, "main", 45),
        (["--n", "90"], 2, "main", 30),
        (["--n", "90"], 2, "worker", 20),
        (["--n", "90"], 1, "ctrl-c", 25),
        (["--per-class", "40"], 2, "main", 15),
        (["--per-class", "40"], 1, "ctrl-c", 30),
        (["--per-class", "40"], 2, "worker", 10),
        (["--n", "90"], 2, "sigterm", 20),
        (["--n", "90"], 2, "sigterm-group", 20),
        (["--per-class", "40"], 1, "sigterm", 15),
    ],
)
def test_killed_then_resumed_is_byte_identical(slow_spec, tmp_path, count, workers, how, at):
    ref = tmp_path / "ref"
    r = subprocess.run(CLI + ["generate", str(slow_spec), *count, "--out", str(ref)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    args = ["generate", str(slow_spec), *count, "--out", str(out), "--workers", str(workers)]
    proc = _start(args)
    _kill_when(proc, out, at, how)
    try:
        _, stderr = proc.communicate(timeout=60)  # a dead worker must end the run, not hang it
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run did not end after its {how} was killed")
    if how == "worker" and proc.returncode != 0:
        assert proc.returncode == 2 and "worker process was killed by SIGKILL" in stderr, stderr
        assert "--resume" in stderr and "Traceback" not in stderr, stderr
    if how == "ctrl-c" and proc.returncode != 0:
        assert proc.returncode == 130, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "interrupted" in errors[0] and "--resume" in errors[0], stderr
        assert "Traceback" not in stderr, stderr
    if how.startswith("sigterm") and proc.returncode != 0:
        # stopped as Ctrl-C stops it, not killed: one line, the workers ended, nothing leaked
        assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, stderr)
        errors = [line for line in stderr.splitlines() if line.strip() and "generating" not in line and "images/s" not in line]
        assert len(errors) == 1 and errors[0].startswith("error: terminated (SIGTERM): ") and "--resume" in errors[0], stderr
        deadline = time.monotonic() + 10
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _session(proc.pid), "worker processes outlived the run"
    # nothing half-written is visible: every image decodes and has its label files
    for img in (out / "images").rglob("*.jpg"):
        with Image.open(img) as im:
            im.load()
        assert (out / "labels" / img.parent.name / f"{img.stem}.txt").exists()
    assert not (out / "manifest.jsonl").exists() or proc.returncode == 0
    r = subprocess.run(CLI + args[:-2] + ["--resume"], capture_output=True, text=True)  # the same command, one worker
    if proc.returncode == 0:
        assert "already complete" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
    d_out, d_ref = digest(out), digest(ref)
    assert (out / "data.yaml").read_text() == (ref / "data.yaml").read_text().replace(str(ref), str(out))
    d_out.pop("data.yaml"), d_ref.pop("data.yaml")  # the dataset's absolute path differs, nothing else
    assert d_out == d_ref and len(d_ref) > 100


def test_resume_refuses_another_run_and_a_complete_one(slow_spec, tmp_path):
    out = tmp_path / "out"
    proc = _start(["generate", str(slow_spec), "--n", "60", "--out", str(out)])
    _kill_when(proc, out, 10, "main")
    proc.wait(timeout=60)
    r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "61", "--out", str(out), "--resume"], capture_output=True, text=True)
    assert r.returncode == 2 and "holds a different run (request.n: 60 there, 61 now)" in r.stderr, r.stderr
    r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out), "--seed", "3", "--resume"], capture_output=True, text=True)
    assert r.returncode == 2 and "different run (seed" in r.stderr, r.stderr
    r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "--resume to finish an interrupted one" in r.stderr
    assert subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out), "--resume"]).returncode == 0
    r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out), "--resume"], capture_output=True, text=True)
    assert r.returncode == 2 and "already complete" in r.stderr


def test_resume_refuses_a_run_whose_parts_were_lost_or_cut(slow_spec, tmp_path):
    """The journal says how long each part (the lines of the COCO file, the manifest, ...) was
    at its last record. A part deleted or cut short was appended to from nothing and the
    finished COCO file held the interrupted run's images without their annotations, silently."""
    out = tmp_path / "out"
    proc = _start(["generate", str(slow_spec), "--n", "60", "--out", str(out)])
    _kill_when(proc, out, 10, "main")
    proc.wait(timeout=60)
    parts = out / ".synthgen" / "parts"
    victim = next(p for p in sorted(parts.iterdir()) if p.name.endswith(".annotations") and p.stat().st_size)
    saved = victim.read_bytes()
    images = sorted(p.name for p in (out / "images").rglob("*.jpg"))
    for damage, says in ((lambda: victim.unlink(), "is missing"), (lambda: victim.write_bytes(saved[:10]), "holds 10 bytes")):
        damage()
        r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out), "--resume"], capture_output=True, text=True)
        assert r.returncode == 2 and f"{victim.name}: the part of the run's" in r.stderr and says in r.stderr, r.stderr
        assert "start it again with --overwrite" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert sorted(p.name for p in (out / "images").rglob("*.jpg")) == images  # nothing more written
    victim.write_bytes(saved)  # put back, the run finishes
    r = subprocess.run(CLI + ["generate", str(slow_spec), "--n", "60", "--out", str(out), "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


SCRIPT = """
from synthgen import Generator

gen = Generator.from_yaml({spec!r})
gen.generate({out!r}, n=20, workers=2)
print("done")
"""


def test_a_script_without_main_guard_fails_at_once(slow_spec, tmp_path):
    script = tmp_path / "make_data.py"
    script.write_text(SCRIPT.format(spec=str(slow_spec), out=str(tmp_path / "out")))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode != 0 and "done" not in r.stdout
    assert 'if __name__ == "__main__":' in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("Traceback") <= 1, r.stderr[-3000:]  # the script's own, not one per respawned worker
    assert time.monotonic() - t0 < 100
    # and with the guard, the same script works
    guarded = "if __name__ == \"__main__\":\n" + "".join("    " + line + "\n" for line in SCRIPT.format(
        spec=str(slow_spec), out=str(tmp_path / "out2")).strip().splitlines())
    script.write_text(guarded)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-3000:]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, small filesystem (tmpfs), so that the disk really fills up."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill it ({r.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_gives_one_line_and_a_resumable_folder(slow_spec, tmp_path, tiny_disk):
    ref = tmp_path / "ref"
    args = ["generate", str(slow_spec), "--n", "150", "--workers", "2"]
    assert subprocess.run(CLI + args + ["--out", str(ref)], capture_output=True).returncode == 0
    assert sum(p.stat().st_size for p in ref.rglob("*") if p.is_file()) > 3 * 1500 * 1024 / 2  # it cannot fit
    out = tiny_disk / "out"
    r = subprocess.run(CLI + args + ["--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "--resume" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    for p in out.rglob("*"):  # nothing truncated or empty in the dataset
        if p.is_file() and ".synthgen" not in p.parts:
            assert p.stat().st_size > 0, p
            if p.suffix == ".jpg":
                with Image.open(p) as im:
                    im.load()
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    r = subprocess.run(CLI + args + ["--out", str(out), "--resume"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d_out, d_ref = digest(out), digest(ref)
    d_out.pop("data.yaml"), d_ref.pop("data.yaml")  # holds the dataset's absolute path
    assert d_out == d_ref


def test_tasks_are_made_lazily(assets):
    """--n 10**12 and --per-class 10**9 start without building a task list (memory flat in N)."""
    from synthgen.runs.scheduler import PerClassSchedule

    gen = Generator(spec_from_dict(base_spec(assets)))
    schedule = PerClassSchedule(gen.spec, gen.seed, 10**9)
    first_round = next(schedule.rounds())
    first = [next(first_round) for _ in range(3)]  # a task list of a billion would never get here
    lanes = schedule.count  # 10**7 blocks of 100 per class: block 0 numbers its images 0, B, 2B, ...
    assert lanes == 10**7 and [t[0] for t in first] == [0, lanes, 2 * lanes]


def test_a_programs_own_sigterm_handler_is_kept(assets, tmp_path):
    """A training script (or its framework) that handles SIGTERM itself keeps its handler while
    generate runs; one with none gets synthgen's stop-and-keep for the run, and its default back."""
    gen = Generator(spec_from_dict(base_spec(assets)))
    seen = []

    def mine(signum, frame):  # pragma: no cover - never sent
        pass

    for handler in (mine, signal.SIG_DFL):
        old = signal.signal(signal.SIGTERM, handler)
        try:
            gen.generate(tmp_path / str(len(seen)), n=2, progress=lambda *_: seen.append(signal.getsignal(signal.SIGTERM)))
            assert signal.getsignal(signal.SIGTERM) is handler
        finally:
            signal.signal(signal.SIGTERM, old)
    assert seen[0] is mine and seen[-1] not in (mine, signal.SIG_DFL), seen
