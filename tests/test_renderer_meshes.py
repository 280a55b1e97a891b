"""The renderer on meshes it has never seen: objects outside the frame, open meshes, lost
textures, y-up files, shading, objects that do not fit, shadows and exposure."""

from __future__ import annotations

import numpy as np
import pytest

from synthgen import Generator
from synthgen.labels import annotate, annotate_3d
from synthgen.renderer.planning import Camera3D, Light3D, Object3D, RenderScene, look_at
from synthgen.spec import spec_from_dict

from .conftest import needs_gl
from .test_renderer import _spec

pytestmark = needs_gl()

MAT = {"mode": "keep", "base_color": [1, 1, 1, 1], "metallic": 0.0, "roughness": 1.0}


def _scene(objects: list[tuple[str | None, np.ndarray]], size=(320, 240), background=None) -> RenderScene:
    cam = look_at(np.array([0.0, -0.001, 0.8]), np.array([0.0, 0.0, 0.0]), 0.0)
    objs = [Object3D(c, pose.tolist(), MAT) for c, pose in objects]
    return RenderScene(0, 0, size, "train", Camera3D(cam.tolist(), [300.0, 300.0, 159.5, 119.5], 0.01, 10.0),
                       [Light3D("directional", cam.tolist(), [1, 1, 1], 3.0)], 0.3, objs,
                       background or {"mode": "color", "color": [0.5, 0.5, 0.5]})


def _at(x: float, y: float, z: float = 0.04) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


@pytest.fixture(scope="module")
def gen(shared) -> Generator:
    return Generator(spec_from_dict(_spec(shared)))


@pytest.mark.parametrize("side", ["left", "right", "above", "below", "behind the camera"])
def test_an_object_wholly_outside_the_frame_is_no_crash_and_no_label(gen, side):
    far = {"left": _at(-1.5, 0), "right": _at(1.5, 0), "above": _at(0, 1.2), "below": _at(0, -1.2),
           "behind the camera": _at(0, 0, 1.5)}[side]
    scene = _scene([("lemon", far), ("duck", _at(0, 0))])
    r = gen.backend.render(scene)
    anns = annotate(gen.spec, scene, r)
    annotate_3d(anns, r)
    assert [a.category for a in anns] == ["duck"]
    assert r.own_area[0] == 0 and r.inframe_area[0] == 0
    x0, y0, x1, y1 = r.regions[0]
    assert x1 <= x0 or y1 <= y0 or (x0, y0, x1, y1) == (0, 0, 320, 240)  # an empty window, never a wrong one
