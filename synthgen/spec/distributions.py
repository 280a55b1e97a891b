"""Values that vary: a fixed value or a distribution, sampled with an explicit rng.

Accepted spellings in a spec (for a key with bounds ``[lo, hi]``)::

    0.3                                  fixed
    [0.2, 0.5]                           uniform over the interval (the ``_range`` shorthand)
    {uniform: [0.2, 0.5]}
    {normal: {mean: 0.3, std: 0.1}}      clipped to the key's bounds
    {choice: [0.2, 0.3, 0.5], weights: [1, 2, 1]}
    {int_uniform: [1, 4]}                integers, both ends included
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_KINDS = ("fixed", "uniform", "normal", "choice", "int_uniform")
_HELP = (
    "expected a number, [low, high], {uniform: [low, high]}, {normal: {mean: m, std: s}}, "
    "{choice: [v1, v2, ...], weights: [...]} or {int_uniform: [low, high]}"
)


@dataclass(frozen=True)
class Distribution:
    """A sampleable value. ``params`` depends on ``kind``; ``bounds`` clip every draw."""

    kind: str
    params: tuple
    bounds: tuple[float | None, float | None] = (None, None)
    weights: tuple[float, ...] | None = None
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "fixed":
            value = self.params[0]
        elif self.kind == "uniform":
            value = float(rng.uniform(self.params[0], self.params[1]))
        elif self.kind == "normal":
            value = float(rng.normal(self.params[0], self.params[1]))
        elif self.kind == "int_uniform":
            value = int(rng.integers(self.params[0], self.params[1], endpoint=True))
        else:  # choice
            p = None
            if self.weights is not None:
                w = np.asarray(self.weights, dtype=float)
                p = w / w.sum()
            value = self.params[int(rng.choice(len(self.params), p=p))]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = self.bounds
            if lo is not None:
                value = max(lo, value)
            if hi is not None:
                value = min(hi, value)
            if self.integer:
                value = int(round(value))
        return value

    @property
    def support(self) -> tuple[float, float]:
        """(low, high) of the values this can produce (normal: the bounds, or +-3 std)."""
        if self.kind in ("fixed", "choice"):
            vals = [float(v) for v in self.params]
            return min(vals), max(vals)
        if self.kind == "normal":
            m, s = self.params
            lo = self.bounds[0] if self.bounds[0] is not None else m - 3 * s
            hi = self.bounds[1] if self.bounds[1] is not None else m + 3 * s
            return float(lo), float(hi)
        return float(self.params[0]), float(self.params[1])

    @property
    def mean(self) -> float:
        if self.kind == "choice":
            w = np.ones(len(self.params)) if self.weights is None else np.asarray(self.weights, float)
            return float(np.dot(w / w.sum(), [float(v) for v in self.params]))
        if self.kind == "normal":
            return float(self.params[0])
        lo, hi = self.support
        return (lo + hi) / 2

    def to_json(self) -> Any:
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "normal":
            return {"normal": {"mean": self.params[0], "std": self.params[1]}}
        if self.kind == "choice":
            out: dict[str, Any] = {"choice": list(self.params)}
            if self.weights is not None:
                out["weights"] = list(self.weights)
            return out
        return {self.kind: list(self.params)}


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def _number(v: Any, integer: bool) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{_short(v)} is not a number; {_HELP}")
    if not math.isfinite(v) or abs(v) > 1e15:
        raise ValueError(f"{_short(v)} is not a finite number of reasonable size")
    if integer and float(v) != int(v):
        raise ValueError(f"{_short(v)} is not a whole number")
    return int(v) if integer else float(v)


def _pair(v: Any, what: str, integer: bool) -> tuple:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"{what} takes [low, high], got {_short(v)}")
    lo, hi = (_number(x, integer) for x in v)
    if lo > hi:
        raise ValueError(f"{what} has low {lo} > high {hi}")
    return lo, hi


def parse_distribution(
    value: Any,
    bounds: tuple[float | None, float | None] = (None, None),
    integer: bool = False,
) -> Distribution:
    """Parse one spec value into a Distribution, checking it against ``bounds``.

    Raises ValueError with a message meant for a user (pydantic adds the key path).
    """
    if isinstance(value, Distribution):
        return value
    lo, hi = bounds

    def check(*vals: float) -> None:
        for x in vals:
            if (lo is not None and x < lo) or (hi is not None and x > hi):
                raise ValueError(f"{x} is outside the allowed range [{lo}, {hi}]")

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = _number(value, integer)
        check(x)
        return Distribution("fixed", (x,), bounds, integer=integer)
    if isinstance(value, (list, tuple)):
        a, b = _pair(value, "a range", integer)
        check(a, b)
        kind = "int_uniform" if integer else "uniform"
        return Distribution(kind, (a, b), bounds, integer=integer)
    if isinstance(value, dict):
        keys = set(value)
        if keys == {"uniform"}:
            a, b = _pair(value["uniform"], "uniform", False)
            check(a, b)
            return Distribution("uniform", (a, b), bounds, integer=integer)
        if keys == {"int_uniform"}:
            a, b = _pair(value["int_uniform"], "int_uniform", True)
            check(a, b)
            return Distribution("int_uniform", (a, b), bounds, integer=True)
        if keys == {"normal"}:
            p = value["normal"]
            if not isinstance(p, dict) or set(p) != {"mean", "std"}:
                raise ValueError(f"normal takes {{mean: m, std: s}}, got {_short(p)}")
            m, s = _number(p["mean"], False), _number(p["std"], False)
            if s < 0:
                raise ValueError(f"normal std must be >= 0, got {s}")
            check(m)
            return Distribution("normal", (m, s), bounds, integer=integer)
        if keys in ({"choice"}, {"choice", "weights"}):
            opts = value["choice"]
            if not isinstance(opts, (list, tuple)) or not opts:
                raise ValueError(f"choice takes a non-empty list of numbers, got {_short(opts)}")
            opts = tuple(_number(o, integer) for o in opts)
            check(*opts)
            weights = value.get("weights")
            if weights is not None:
                if not isinstance(weights, (list, tuple)) or len(weights) != len(opts):
                    raise ValueError(f"weights must be a list as long as choice ({len(opts)})")
                weights = tuple(_number(w, False) for w in weights)
                if min(weights) < 0 or sum(weights) <= 0:
                    raise ValueError("weights must be >= 0 and not all 0")
            return Distribution("choice", opts, bounds, weights, integer=integer)
        raise ValueError(f"unknown distribution {_short(sorted(map(str, keys)))}; {_HELP}")
    raise ValueError(f"{_short(value)} is not a value; {_HELP}")
