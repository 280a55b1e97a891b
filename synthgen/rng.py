"""The only place where randomness is created.

Every random draw in synthgen comes from ``rng_for(seed, index, stream)`` (a training-loop
transform's, from the same seed sequence, ``synthgen.torch.items._draws_of``): sample *i*
is reproducible without replaying samples 0..i-1 (Unity Perception's IterateSeed idea),
independent of worker count and order.
"""

import numpy as np

# Independent streams per sample, so that adding draws to one never shifts another.
SCENE = 0  # the planned scene: background, objects, placement
SPLIT = 1  # train/val assignment
COUNT = 2  # objects_per_image draw used by the per-class scheduler
LOOKS = 3  # blend, colour, shadow and augmentation draws: toggling them never moves objects
TRANSFORMS = 4  # a training-loop transform's draws (synthgen.torch), whatever random source it uses


def rng_for(seed: int, index: int, stream: int = SCENE) -> np.random.Generator:
    """A fresh numpy Generator for (seed, sample index, stream)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index), int(stream))))


def pick(rng: np.random.Generator, weights: dict) -> object:
    """One key of ``weights``, drawn in proportion to its (not necessarily normalised) weight."""
    keys = list(weights)
    w = np.array([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]
