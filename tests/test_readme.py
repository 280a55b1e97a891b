"""The README's code runs as written, top to bottom in one folder as a reader would follow it:
every concrete ``synthgen`` command line of its bash blocks (not the synopses with SPEC, DIR, N)
and every Python block, saved as a script and run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from .conftest import ROOT, gl_error

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)


def _commands(body: str) -> list[str]:
    cmds = []
    for line in body.replace("\\\n", " ").splitlines():
        for part in line.strip().split("&&"):
            part = part.strip()
            if part.startswith("synthgen ") and not re.search(r"\b(SPEC|DIR|COCO_JSON|DATASET|BANK|OUT)\b|\[|\|", part):
                cmds.append(part)
    return cmds


def test_readme_has_python_and_commands():
    assert any(lang == "python" for lang, _ in BLOCKS)
    assert sum(len(_commands(b)) for lang, b in BLOCKS if lang == "bash") >= 3


@pytest.mark.slow
@pytest.mark.skipif(gl_error() is not None, reason=f"the README runs the renderer: {gl_error()}")
def test_readme_runs_top_to_bottom(tmp_path):
    for name in ("scenes", "assets", "examples"):
        if (ROOT / name).exists():
            os.symlink(ROOT / name, tmp_path / name)
    ran = 0
    for i, (lang, body) in enumerate(BLOCKS):
        if lang == "bash":
            for cmd in _commands(body):
                r = subprocess.run(shlex.split(cmd), cwd=tmp_path, capture_output=True, text=True, timeout=900)
                assert r.returncode == 0, (cmd, r.stderr[-3000:])
                ran += 1
        elif lang == "python":
            script = tmp_path / f"readme_block_{i}.py"
            script.write_text(body)
            r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, (f"python block {i}", body[:200], r.stderr[-3000:])
            ran += 1
    assert ran >= 5
