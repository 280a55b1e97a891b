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

from ..errors import SURROGATE, SpecError, printable
from .models import Spec
from .renderer import RendererSpec

KINDS = {"compositor": Spec, "renderer": RendererSpec}

Loc = tuple[Any, ...]


MAX_SPEC_BYTES = 1 << 20  # a spec is a few kilobytes; refuse anything over 1 MiB
MAX_VALUES = 20_000  # scalars, lists and mappings, aliases expanded (a legitimate spec has < 1,000)
MAX_DEPTH = 64  # nesting levels (a legitimate spec has < 8)
MAX_NUMBER_CHARS = 1000  # a whole number this long is no value of a spec (Python reads at most 4,300 digits)


def _where(name: str, node: yaml.Node | None) -> str:
    return f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}" if node is not None else name


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def _compose(text: str, name: str) -> tuple[Any, dict[Loc, tuple[int, int]]]:
    """Parse YAML safely, returning plain data and a map key path -> (line, col), 1-based.

    Only plain YAML (no Python tags). Bounded: aliases may not expand to more than MAX_VALUES
    values (a "billion laughs" bomb) or refer to themselves, nesting is at most MAX_DEPTH deep,
    and a key may not appear twice in one mapping.
    """
    _prescan(text, name)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as e:  # the reader refuses control characters at once
        raise SpecError(f"{name}: invalid YAML: {str(e).splitlines()[0]}") from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
            raise SpecError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
        except RecursionError:
            raise SpecError(f"{name}: nested too deeply (a spec is at most {MAX_DEPTH} levels deep)") from None
        positions: dict[Loc, tuple[int, int]] = {}
        if node is None:
            return {}, positions
        sizes: dict[int, int] = {}
        _measure(node, name, sizes, set(), 0)
        if sizes[id(node)] > MAX_VALUES:
            raise SpecError(f"{name}: expands to {sizes[id(node)]:,} values or more (through YAML aliases); "
                            f"a spec may hold at most {MAX_VALUES:,}")
        _walk(node, (), positions, name)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
            raise SpecError(f"{where}: {getattr(e, 'problem', None) or e}; a spec is plain YAML "
                            "(mappings, lists, numbers, strings; no tags)") from None
        return data, positions
    finally:
        loader.dispose()


def _prescan(text: str, name: str) -> None:
    """Refuse excess depth or size from the event stream, before anything is built (the parser
    is iterative, so this is quick and stops early). A syntax error is left for the composer to
    report with its position."""
    depth = values = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                values += 1
                if depth > MAX_DEPTH:
                    raise SpecError(f"{_where(name, event)}: nested too deeply (a spec is at most {MAX_DEPTH} levels deep)")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                values += 1
            if values > MAX_VALUES:
                raise SpecError(f"{_where(name, event)}: holds more than {MAX_VALUES:,} values; a spec is a few hundred")
    except yaml.YAMLError:
        return


def _measure(node: yaml.Node, name: str, sizes: dict[int, int], active: set[int], depth: int) -> int:
    """Values under ``node`` with aliases expanded (memoised: shared nodes are counted, not
    walked again); refuses cycles, excess depth and more than MAX_VALUES."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise SpecError(f"{_where(name, node)}: a YAML alias refers to the value that contains it")
    if depth > MAX_DEPTH:
        raise SpecError(f"{_where(name, node)}: nested too deeply (a spec is at most {MAX_DEPTH} levels deep)")
    active.add(key)
    total = 1
    if isinstance(node, yaml.MappingNode):
        children = [c for kv in node.value for c in kv]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
        odd = SURROGATE.search(node.value)
        if odd:  # an escape such as "\udce9" stands for no character: no file name, class or text has it
            raise SpecError(f"{_where(name, node)}: {ascii(odd[0])[1:-1]} is not a character (half of a UTF-16 pair "
                            "written alone): write the character itself")
        if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_NUMBER_CHARS:  # Python refuses to read it
            raise SpecError(f"{_where(name, node)}: the number {node.value[:12]}... is {len(node.value):,} characters "
                            "long: too long for any value of a spec")
    for c in children:
        total += _measure(c, name, sizes, active, depth + 1)
        if total > MAX_VALUES:
            break
    active.discard(key)
    sizes[key] = total
    return total


def _walk(n: yaml.Node, loc: Loc, positions: dict[Loc, tuple[int, int]], name: str) -> None:
    if loc in positions:
        return  # an alias to a value already walked
    positions[loc] = (n.start_mark.line + 1, n.start_mark.column + 1)
    if isinstance(n, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in n.value:
            key: Any = k.value if isinstance(k, yaml.ScalarNode) else f"<{k.id}>"
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:str":
                try:
                    key = yaml.safe_load(yaml.serialize(k))
                except yaml.YAMLError:
                    key = k.value
            try:
                hash(key)
            except TypeError:
                key = str(key)
            if key in seen:
                raise SpecError(f"{_where(name, k)}: key {_short(key)} appears twice in the same mapping")
            seen.add(key)
            positions[loc + (key, "__key__")] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _walk(v, loc + (key,), positions, name)
    elif isinstance(n, yaml.SequenceNode):
        for i, v in enumerate(n.value):
            _walk(v, loc + (i,), positions, name)


def _set_path(data: dict, dotted: str, value: Any, label: str) -> None:
    parts = dotted.split(".")
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                raise SpecError(f"{label}: {'.'.join(parts[:i]) or 'spec'} is a list; {part!r} is not an index in it")
            part = int(part)
        elif not isinstance(cur, dict):
            raise SpecError(f"{label}: {'.'.join(parts[:i])} is not a mapping")
        if last:
            cur[part] = value
        else:
            if isinstance(cur, dict) and part not in cur:
                cur[part] = {}
            cur = cur[part]


Override = Union[str, "tuple[str, Any, str]"]
"""``"key.path=value"`` (a ``--set``; the value is YAML) or ``(key.path, value, label)``, where
label is what errors call it (the flag the user typed, such as ``--formats coco,bop``)."""


def parse_overrides(items: Iterable[Override]) -> list[tuple[str, Any, str]]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``[("a.b", 1, "--set a.b=1"), ("c", [1, 2], "--set c=[1, 2]")]``."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            out.append(item)
            continue
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:  # one line: the problem and where in the value, not PyYAML's excerpt of it
            mark = getattr(e, "problem_mark", None)
            at = f" (at character {mark.column + 1})" if mark is not None else ""
            raise SpecError(f"--set {_short(item)}: value is not valid YAML: "
                            f"{getattr(e, 'problem', None) or str(e).splitlines()[0]}{at}") from None
        except RecursionError:
            raise SpecError(f"--set {_short(item)}: value is not valid YAML: nested too deeply") from None
        except ValueError:  # a whole number of more than 4,300 digits: Python refuses to read it
            raise SpecError(f"--set {_short(item)}: a number in the value is too long for any value of a spec") from None
        if _size(value) > MAX_VALUES:
            raise SpecError(f"--set {item!r}: value is too large")
        out.append((key.strip(), value, f"--set {item}"))
    return out


def _size(v: Any, depth: int = 0) -> int:
    if depth > MAX_DEPTH:
        return MAX_VALUES + 1
    if isinstance(v, dict):
        return 1 + sum(_size(k, depth + 1) + _size(x, depth + 1) for k, x in v.items())
    if isinstance(v, list):
        return 1 + sum(_size(x, depth + 1) for x in v)
    return 1


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
    root = KINDS.get(str(data.get("kind", "compositor")), Spec)
    for e in err.errors():
        raw_loc = e["loc"]
        if raw_loc and raw_loc[0] in KINDS and raw_loc[0] not in data:
            raw_loc = raw_loc[1:]  # the union's tag, not a key
        loc = _data_loc(data, raw_loc)
        path = printable(".".join(str(p) for p in loc)) or "(top level)"
        where = name
        origin = next((o for o in overridden if loc[: len(o)] == o), None)
        if origin is not None:
            where = overridden[origin]
        else:
            at_key = e["type"] == "extra_forbidden"  # point at the key itself, else at its value
            for i in range(len(loc), -1, -1):
                key_pos = positions.get(loc[:i] + ("__key__",)) if at_key and i == len(loc) else None
                pos = key_pos or positions.get(loc[:i])
                if pos:
                    where = f"{name}:{pos[0]}:{pos[1]}"
                    break
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
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
    overrides: Iterable[Override] = (),
    seed: int | None = None,
) -> Spec | RendererSpec:
    """Read, override and validate a spec file. Raises SpecError naming file:line:col and key."""
    path = Path(path)
    try:
        if path.is_dir():
            raise SpecError(f"{path}: is a folder, not a spec file")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {path.stat().st_size:,} bytes is too large for a spec (at most {MAX_SPEC_BYTES:,})")
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    return spec_from_text(text, name=str(path), base_dir=path.resolve().parent, overrides=overrides, seed=seed)


def spec_from_text(
    text: str,
    name: str = "<spec>",
    base_dir: str | Path = ".",
    overrides: Iterable[Override] = (),
    seed: int | None = None,
) -> Spec | RendererSpec:
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{name}: too large for a spec (at most {MAX_SPEC_BYTES:,} characters)")
    data, positions = _compose(text, name)
    return spec_from_dict(data, name=name, base_dir=base_dir, overrides=overrides, seed=seed, positions=positions)


def spec_from_dict(
    data: Any,
    name: str = "<spec>",
    base_dir: str | Path = ".",
    overrides: Iterable[Override] = (),
    seed: int | None = None,
    positions: dict[Loc, tuple[int, int]] | None = None,
) -> Spec | RendererSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{name}: a spec must be a mapping of keys, got {type(data).__name__}")
    data = copy.deepcopy(data)  # we edit it; key order (= class order) is kept
    overridden: dict[Loc, str] = {}
    for key, value, label in parse_overrides(overrides):
        _set_path(data, key, value, label)
        overridden[tuple(int(p) if p.isdigit() else p for p in key.split("."))] = label
    if seed is not None:
        data["seed"] = int(seed)
    if "base_dir" in data:
        raise SpecError(f"{name}: 'base_dir' is not a spec key (paths are relative to the spec file)")
    kind = data.get("kind", "compositor")
    if not isinstance(kind, str) or kind not in KINDS:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        where = f"{name}:{positions[('kind',)][0]}:{positions[('kind',)][1]}" if positions and ("kind",) in positions else name
        raise SpecError(f"{where} kind: unknown kind {_short(kind)}; choose {' or '.join(KINDS)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    try:
        return _ADAPTER.validate_python({**data, "kind": kind, "base_dir": Path(base_dir)})
    except ValidationError as e:
        raise SpecError(_format_errors(e, data, name, positions or {}, overridden)) from None
