"""synthgen.arena: where a sample's image and masks are made changes nothing of the sample."""

from __future__ import annotations

import numpy as np
import pytest

from synthgen import Generator, arena
from synthgen.spec import spec_from_dict

from .conftest import base_spec


class Bump:
    """An arena over one buffer of garbage (0xAB: a pixel left unwritten shows), handing out its
    bytes in order."""

    def __init__(self, nbytes: int):
        self.buf = np.full(nbytes, 0xAB, np.uint8)
        self.end = 0

    def __call__(self, shape, dtype):
        n = int(np.prod(shape)) * dtype.itemsize
        if self.end + n > len(self.buf):
            return None
        a = self.buf[self.end : self.end + n].view(dtype).reshape(shape)
        self.end += n
        return a

    def holds(self, a: np.ndarray) -> bool:
        lo = a.ctypes.data - self.buf.ctypes.data
        return 0 <= lo and lo + a.nbytes <= len(self.buf)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert [(x.area, x.visibility, x.truncation, x.amodal_bbox) for x in a.annotations] == \
        [(x.area, x.visibility, x.truncation, x.amodal_bbox) for x in b.annotations]


@pytest.mark.parametrize("extra", [
    {},
    {"objects_per_image": [0, 2], "blend": {"modes": {"none": 1, "gaussian": 1, "poisson": 1}}},
    {"augment": {"image": [{"name": "GaussNoise", "std_range": [0.02, 0.05], "p": 1.0}]}},  # the image is replaced
])
def test_a_sample_made_in_an_arena_is_the_same_sample(assets, extra):
    gen = Generator(spec_from_dict({**base_spec(assets), **extra}))
    for i in range(16):
        plain = gen[i]
        bump = Bump(8 << 20)
        with arena.using(bump):
            s = gen[i]
        _same(s, plain)
        if s.annotations:
            assert bump.holds(s.masks)  # the masks were made in the arena ...
            assert np.shares_memory(s.masks, s.annotations[0].mask) and not s.masks.flags.owndata  # ... and are still the annotations' own
        assert bump.holds(s.image) == ("augment" not in extra)  # an augmented image is a new array
        assert not bump.holds(gen[i].image)  # outside the context, arrays are made as usual


def test_an_arena_without_room_leaves_arrays_to_numpy(assets):
    gen = Generator(spec_from_dict(base_spec(assets)))
    bump = Bump(1000)  # smaller than any image
    with arena.using(bump):
        s = gen[3]
    _same(s, gen[3])
    assert bump.end == 0 and not bump.holds(s.image)
