"""Choices both planners make the same way: a sample's split and its labelled classes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .rng import SPLIT, rng_for


def choose_split(splits: dict[str, float], seed: int, index: int) -> str:
    """Split of sample ``index``: a draw from its own stream, so it never shifts the scene."""
    u = rng_for(seed, index, SPLIT).random()
    acc = 0.0
    names = list(splits)
    for name in names:
        acc += splits[name]
        if u < acc:
            return name
    return names[-1]


def choose_categories(spec, rng: np.random.Generator, categories: Sequence[str] | None) -> list[str]:
    """The labelled classes of a sample: the scheduler's request as given, or drawn: a negative
    image with probability ``negative_ratio``, else ``objects_per_image`` classes by weight."""
    if categories is not None:
        unknown = [c for c in categories if c not in spec.classes]
        if unknown:
            raise KeyError(f"unknown categories {unknown}")
        return list(categories)
    names = spec.categories
    negative = spec.negative_ratio > 0 and rng.random() < spec.negative_ratio
    k = 0 if negative else int(spec.objects_per_image.sample(rng))
    w = np.array([spec.classes[c].weight for c in names], dtype=float)
    return [names[int(i)] for i in rng.choice(len(names), size=k, p=w / w.sum())]
