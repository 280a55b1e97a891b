"""Load a YAML spec into a validated ``Spec``, with errors that say file:line:col and key path.

``--set key.path=value`` overrides are applied to the parsed YAML before validation, so
they are checked exactly like keys written in the file.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Iterable, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ..errors import SpecError
from .models import Spec
from .renderer import RendererSpec

KINDS = {"compositor": Spec, "renderer": RendererSpec}

Loc = tuple[Any, ...]


def _compose(text: str, name: str) -> tuple[Any, dict[Loc, tuple[int, int]]]:
    """Parse YAML, returning plain data and a map key path -> (line, col), 1-based."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise SpecError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    positions: dict[Loc, tuple[int, int]] = {}

    def walk(n: yaml.Node, loc: Loc) -> None:
        positions[loc] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = yaml.safe_load(yaml.serialize(k)) if isinstance(k, yaml.ScalarNode) else str(k)
                positions[loc + (key, "__key__")] = (k.start_mark.line + 1, k.start_mark.column + 1)
                walk(v, loc + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, loc + (i,))

    if node is None:
        return {}, positions
    walk(node, ())
    return yaml.safe_load(text), positions


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                raise SpecError(f"--set {dotted}: {'.'.join(parts[:i]) or 'spec'} is a list; {part!r} is not an index in it")
            part = int(part)
        elif not isinstance(cur, dict):
            raise SpecError(f"--set {dotted}: {'.'.join(parts[:i])} is not a mapping")
        if last:
            cur[part] = value
        else:
            if isinstance(cur, dict) and part not in cur:
                cur[part] = {}
            cur = cur[part]


def parse_overrides(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``[("a.b", 1), ("c", [1, 2])]``; values are YAML."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise SpecError(f"--set {item!r}: value is not valid YAML: {e}") from None
        out.append((key.strip(), value))
    return out


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types a field annotation may hold (Annotated, Optional and unions opened)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(tp) for t in _unwrap(a)]
    return [tp]


def _allowed_keys(loc: Loc, root: type[BaseModel] = Spec) -> list[str]:
    """Field names valid at ``loc`` in the spec model tree (for 'did you mean')."""
    current: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
                if part in tp.model_fields:
                    nxt += _unwrap(tp.model_fields[part].annotation)
            elif typing.get_origin(tp) is dict:
                nxt += _unwrap(typing.get_args(tp)[1])
            elif typing.get_origin(tp) is list and isinstance(part, int):
                nxt += _unwrap(typing.get_args(tp)[0])
        current = nxt
    keys: list[str] = []
    for tp in current:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys += [k for k, f in tp.model_fields.items() if not f.exclude]
    return keys


def _data_loc(data: Any, loc: Loc) -> Loc:
    """Keep only the parts of a pydantic error location that are real keys in ``data``."""
    out: list[Any] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and not part[:1].isupper() and "[" not in part:
            out.append(part)  # a missing or unknown key
            cur = None
    return tuple(out)


def _format_errors(
    err: ValidationError,
    data: Any,
    name: str,
    positions: dict[Loc, tuple[int, int]],
    overridden: dict[Loc, str],
) -> str:
    lines = []
    root = KINDS.get(data.get("kind", "compositor"), Spec)
    for e in err.errors():
        raw_loc = e["loc"]
        if raw_loc and raw_loc[0] in KINDS and raw_loc[0] not in data:
            raw_loc = raw_loc[1:]  # the union's tag, not a key
        loc = _data_loc(data, raw_loc)
        path = ".".join(str(p) for p in loc) or "(top level)"
        where = name
        origin = next((o for o in overridden if loc[: len(o)] == o), None)
        if origin is not None:
            where = f"--set {overridden[origin]}"
        else:
            at_key = e["type"] == "extra_forbidden"  # point at the key itself, else at its value
            for i in range(len(loc), -1, -1):
                key_pos = positions.get(loc[:i] + ("__key__",)) if at_key and i == len(loc) else None
                pos = key_pos or positions.get(loc[:i])
                if pos:
                    where = f"{name}:{pos[0]}:{pos[1]}"
                    break
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1], root)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            msg = f"unknown key {loc[-1]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            if allowed:
                msg += f" (allowed: {', '.join(allowed)})"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{where} {path}: {msg}")
    return "\n".join(lines)


AnySpec = Annotated[Union[Spec, RendererSpec], Field(discriminator="kind")]
_ADAPTER: TypeAdapter = TypeAdapter(AnySpec)


def load_spec(
    path: str | Path,
    overrides: Iterable[str] = (),
    seed: int | None = None,
) -> Spec | RendererSpec:
    """Read, override and validate a spec file. Raises SpecError naming file:line:col and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec: {e.strerror or e}") from None
    return spec_from_text(text, name=str(path), base_dir=path.resolve().parent, overrides=overrides, seed=seed)


def spec_from_text(
    text: str,
    name: str = "<spec>",
    base_dir: str | Path = ".",
    overrides: Iterable[str] = (),
    seed: int | None = None,
) -> Spec | RendererSpec:
    data, positions = _compose(text, name)
    return spec_from_dict(data, name=name, base_dir=base_dir, overrides=overrides, seed=seed, positions=positions)


def spec_from_dict(
    data: Any,
    name: str = "<spec>",
    base_dir: str | Path = ".",
    overrides: Iterable[str] = (),
    seed: int | None = None,
    positions: dict[Loc, tuple[int, int]] | None = None,
) -> Spec | RendererSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{name}: a spec must be a mapping of keys, got {type(data).__name__}")
    data = copy.deepcopy(data)  # we edit it; key order (= class order) is kept
    overridden: dict[Loc, str] = {}
    for key, value in parse_overrides(overrides):
        _set_path(data, key, value)
        overridden[tuple(int(p) if p.isdigit() else p for p in key.split("."))] = f"{key}={value!r}"
    if seed is not None:
        data["seed"] = int(seed)
    if "base_dir" in data:
        raise SpecError(f"{name}: 'base_dir' is not a spec key (paths are relative to the spec file)")
    kind = data.get("kind", "compositor")
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        where = f"{name}:{positions[('kind',)][0]}:{positions[('kind',)][1]}" if positions and ("kind",) in positions else name
        raise SpecError(f"{where} kind: unknown kind {kind!r}; choose {' or '.join(KINDS)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    try:
        return _ADAPTER.validate_python({**data, "kind": kind, "base_dir": Path(base_dir)})
    except ValidationError as e:
        raise SpecError(_format_errors(e, data, name, positions or {}, overridden)) from None
