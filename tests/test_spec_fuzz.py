"""The spec loader under fire: whatever the input, only SpecError escapes, quickly.

Three hypothesis strategies (2,000 examples in all): random nested YAML, the demo spec with a
value replaced, deleted or added anywhere, and the demo spec's text with characters inserted or
deleted. Then the inputs known to break YAML loaders (bombs, cycles, depth, tags), each run in a
child process with a time limit so that a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthgen import SpecError
from synthgen.errors import problem_lines
from synthgen.spec import spec_from_text

from .conftest import ROOT

DEMO_TEXT = (ROOT / "scenes" / "demo.yaml").read_text()
DEMO = yaml.safe_load(DEMO_TEXT)
RENDER = yaml.safe_load((ROOT / "scenes" / "demo-renderer.yaml").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "coco", "uniform", "normal", "choice", "renderer", "{stem}.png", "-1", ".nan"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-3, 3), st.sampled_from(
            ["uniform", "normal", "choice", "weights", "int_uniform", "mean", "std", "kind", "classes"])), inner, max_size=4),
    ),
    max_leaves=25,
)


def _only_spec_errors(text: str) -> None:
    try:
        spec_from_text(text, name="fuzz.yaml", base_dir=ROOT / "scenes")
    except SpecError as e:
        assert str(e).strip(), "a SpecError must say something"
        lines = problem_lines(str(e))
        assert lines and all(line.startswith("fuzz.yaml") for line in lines), str(e)
        assert all(line.isprintable() for line in lines), lines


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_random_yaml_raises_only_spec_errors(value):
    _only_spec_errors(yaml.safe_dump(value))


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_demo_specs_raise_only_spec_errors(data):
    base = copy.deepcopy(data.draw(st.sampled_from([DEMO, RENDER])))
    paths = [p for p in _paths(base) if p]
    path = data.draw(st.sampled_from(paths))
    parent = base
    for part in path[:-1]:
        parent = parent[part]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(values)
    elif action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(values)
    _only_spec_errors(yaml.safe_dump(base, sort_keys=False))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(DEMO_TEXT)), st.integers(0, 3), st.text(max_size=3)), min_size=1, max_size=4))
def test_text_mutations_raise_only_spec_errors(edits):
    text = DEMO_TEXT
    for pos, cut, insert in edits:
        pos = min(pos, len(text))
        text = text[:pos] + insert + text[pos + cut:]
    _only_spec_errors(text)


HOSTILE = {
    "alias bomb": "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)),
    "self-referencing alias": "seed: 1\nbackgrounds: &b {paths: [*b]}\nclasses: {a: {source: x}}\n",
    "5000-deep nesting": "classes: " + "[" * 5000 + "]" * 5000 + "\n",
    "5000-deep mappings": "".join("  " * 0 + "{a: " for _ in range(5000)) + "1" + "}" * 5000 + "\n",
    "python tag": "seed: !!python/object/apply:os.system [echo pwned]\n",
    "python name tag": "seed: !!python/name:os.system\n",
    "duplicate key": "seed: 1\nseed: 2\nbackgrounds: {paths: x}\nclasses: {a: {source: y}}\n",
    "control character": "seed: 1\x01\n",
    "one megabyte of list": "classes: [" + "1," * 400_000 + "1]\n",
    # Python reads whole numbers of at most 4,300 digits: PyYAML's int() raised ValueError
    "5,000-digit number": "seed: " + "9" * 5000 + "\n",
    "5,000-digit hex number": "seed: 0x" + "f" * 5000 + "\n",
    "5,000-digit number as a key": "classes:\n  ? " + "9" * 5000 + "\n  : {source: x}\n",
}


def test_hostile_yaml_gives_one_spec_error_fast():
    code = textwrap.dedent("""
        import sys, json
        from synthgen import SpecError
        from synthgen.spec import spec_from_text
        cases = json.loads(sys.stdin.read())
        for name, text in cases.items():
            try:
                spec_from_text(text, name="hostile.yaml")
            except SpecError as e:
                print(name, "=>", str(e).splitlines()[0][:100])
            else:
                print(name, "=> ACCEPTED")
        """)
    import json

    r = subprocess.run([sys.executable, "-c", code], input=json.dumps(HOSTILE), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == len(HOSTILE), r.stdout + r.stderr
    assert not any("ACCEPTED" in line for line in lines), r.stdout
    assert "python" not in r.stdout.split("pwned")[0] or "pwned" not in r.stdout  # nothing was executed
