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


@pytest.fixture(scope="module")
def open_meshes(tmp_path_factory):
    """Meshes with holes, as scans are: a box without its top, a bowl, a single-sided plane."""
    import trimesh

    d = tmp_path_factory.mktemp("open")
    box = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    box.update_faces(box.face_normals[:, 2] < 0.5)  # the top removed: you can look inside
    box.export(str(d / "open_box.obj"))
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    sphere.update_faces(sphere.triangles_center[:, 2] < 0.05)  # a bowl, open at the top
    sphere.export(str(d / "bowl.ply"))
    plane = trimesh.Trimesh(vertices=[[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    plane.export(str(d / "plane.stl"))
    return d


def _coverage(g: Generator, n: int) -> tuple[float, int]:
    """Share of projected mesh vertices (inside the frame) within 1 px of their amodal mask."""
    import cv2

    hits = total = 0
    for i in range(n):
        s = g[i]
        K = s.camera_K
        for a in s.annotations:
            verts = np.asarray(g.library.mesh(a.category).vertices)
            cam = verts @ a.pose[:3, :3].T + a.pose[:3, 3]
            uv = cam[:, :2] / cam[:, 2:3] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
            inside = (uv[:, 0] > 0.5) & (uv[:, 0] < s.size[0] - 1.5) & (uv[:, 1] > 0.5) & (uv[:, 1] < s.size[1] - 1.5)
            near = cv2.dilate(a.amodal_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            px = np.round(uv[inside]).astype(int)
            hits += int(near[px[:, 1], px[:, 0]].sum())
            total += len(px)
    return hits / max(total, 1), total


def test_open_meshes_are_labelled_whole_from_any_side(shared, open_meshes):
    raw = _spec(shared)
    raw["classes"] = {"open_box": {"mesh": str(open_meshes / "open_box.obj"), "size": 0.12},
                      "bowl": {"mesh": str(open_meshes / "bowl.ply"), "size": 0.12},
                      "plane": {"mesh": str(open_meshes / "plane.stl"), "size": 0.12}}
    raw["placement"].update(upright=0.3)  # tipped at random: their insides and backs face the camera
    raw["distractors"] = {"count": 0}
    g = Generator(spec_from_dict(raw))
    share, n = _coverage(g, 12)
    assert n > 500 and share > 0.995, f"{share:.4f} of {n} projected vertices on their amodal masks"
    seen = {a.category for i in range(12) for a in g[i].annotations}
    assert seen == {"open_box", "bowl", "plane"}  # a plane seen from behind is labelled too
