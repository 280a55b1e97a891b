"""The README's code runs as written: every Python block saved as a script and run, and every
concrete ``synthgen`` command line of its bash blocks (not the synopses with SPEC, DIR, N)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A scratch folder that looks like the repository root to README commands."""
    for name in ("scenes", "assets", "examples"):
        if (ROOT / name).exists():
            os.symlink(ROOT / name, tmp_path / name)
    return tmp_path


def _commands() -> list[str]:
    cmds = []
    for lang, body in BLOCKS:
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("synthgen ") and not re.search(r"\b(SPEC|DIR|COCO_JSON|DATASET|BANK|OUT)\b|\[|\|", part):
                    cmds.append(part)
    return cmds


def test_readme_has_python_and_commands():
    assert any(lang == "python" for lang, _ in BLOCKS) and len(_commands()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("i", [i for i, (lang, _) in enumerate(BLOCKS) if lang == "python"])
def test_python_block_runs_as_a_script(i, workdir):
    script = workdir / f"readme_block_{i}.py"
    script.write_text(BLOCKS[i][1])
    r = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _commands())
def test_command_runs_as_written(cmd, workdir):
    r = subprocess.run(shlex.split(cmd), cwd=workdir, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (cmd, r.stderr[-3000:])
