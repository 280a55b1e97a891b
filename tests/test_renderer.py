"""The 3D renderer: labels checked against the geometry itself (headless EGL, Mesa on a CPU)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthgen import Generator, SynthgenError
from synthgen.labels import annotate, annotate_3d
from synthgen.renderer.planning import Camera3D, Light3D, Object3D, RenderScene, look_at
from synthgen.spec import spec_from_dict

from .conftest import ROOT, needs_gl


pytestmark = needs_gl()


def _spec(shared: Path, **over) -> dict:
    meshes = shared / "meshes"
    raw = {
        "kind": "renderer",
        "seed": 4,
        "output": {"size": [320, 240], "formats": ["coco"], "split": {"train": 1.0}},
        "classes": {
            "duck": {"mesh": str(meshes / "duck" / "duck.obj"), "size": 0.12},
            "lemon": {"mesh": str(meshes / "lemon" / "lemon.obj"), "size": 0.08},
            "jenga": {"mesh": str(meshes / "jenga" / "jenga.obj"), "size": 0.1},
            "mug": {"mesh": str(meshes / "mug" / "mug.obj"), "size": 0.1},
        },
        "objects_per_image": [3, 5],
        "placement": {"area": [[-0.15, -0.15], [0.15, 0.15]], "upright": 0.6, "amodal_masks": True, "min_visibility": 0.05, "min_area": 20},
        "distractors": {"count": [0, 2]},
        "camera": {"distance": [0.45, 0.7], "elevation": [20, 70]},
    }
    raw.update(over)
    return raw


@pytest.fixture(scope="module")
def gen(shared) -> Generator:
    return Generator(spec_from_dict(_spec(shared)))


def test_mesh_vertices_project_onto_the_amodal_mask(gen):
    checked = 0
    for i in range(6):
        s = gen[i]
        K = s.camera_K
        for a in s.annotations:
            verts = np.asarray(gen.library.mesh(a.category).vertices)
            cam = verts @ a.pose[:3, :3].T + a.pose[:3, 3]
            uv = cam[:, :2] / cam[:, 2:3] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
            inside = (uv[:, 0] > 0.5) & (uv[:, 0] < s.size[0] - 1.5) & (uv[:, 1] > 0.5) & (uv[:, 1] < s.size[1] - 1.5)
            near = cv2.dilate(a.amodal_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # within 1 px
            px = np.round(uv[inside]).astype(int)
            assert near[px[:, 1], px[:, 0]].mean() > 0.995, f"{a.category}: vertices miss the mask"
            # and the mask reaches as far as the vertices do (the box agrees within about a pixel)
            x0, y0, x1, y1 = a.amodal_bbox
            if a.truncation == 0:
                assert abs(uv[:, 0].min() - x0) < 1.6 and abs(uv[:, 0].max() - (x1 - 1)) < 1.6
                assert abs(uv[:, 1].min() - y0) < 1.6 and abs(uv[:, 1].max() - (y1 - 1)) < 1.6
            checked += 1
    assert checked >= 10


def test_depth_at_visible_pixels_agrees_with_the_pose(gen):
    import trimesh
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    s = gen[2]
    K = s.camera_K
    for a in s.annotations:
        ys, xs = np.nonzero(a.mask)
        pick = rng.choice(len(xs), size=min(150, len(xs)), replace=False)
        z = s.depth[ys[pick], xs[pick]]
        assert (z > 0).all()
        pts = np.stack([(xs[pick] - K[0, 2]) * z / K[0, 0], (ys[pick] - K[1, 2]) * z / K[1, 1], z], axis=1)
        model = (pts - a.pose[:3, 3]) @ a.pose[:3, :3]  # camera -> model frame
        # distance to the surface, against a dense sample of it (about 0.5 mm apart)
        surface, _ = trimesh.sample.sample_surface_even(gen.library.mesh(a.category), 40000, seed=0)
        dist, _ = cKDTree(surface).query(model)
        assert np.median(dist) < 0.0015 and np.percentile(dist, 95) < 0.004, f"{a.category}: depth is {np.median(dist)} m off the surface"
        # and a pose that is off by 5 mm would fail it
        shifted, _ = cKDTree(surface).query(model + [0.005, 0, 0])
        assert np.median(shifted) > 0.002


def test_masks_visibility_and_truncation_are_consistent(gen):
    for i in range(8):
        s = gen[i]
        union = np.zeros(s.image.shape[:2], bool)
        for a in s.annotations:
            ys, xs = np.nonzero(a.mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == a.bbox
            assert not (union & a.mask).any()
            union |= a.mask
            assert not (a.mask & ~a.amodal_mask).any(), "visible pixels outside the amodal mask"
            if a.truncation == 0:
                assert a.visibility == pytest.approx(a.mask.sum() / a.amodal_mask.sum())
            assert a.amodal_bbox[0] <= a.bbox[0] and a.amodal_bbox[2] >= a.bbox[2]
            kp = a.keypoints
            assert kp.shape == (9, 3) and set(np.unique(kp[:, 2])) <= {0, 1, 2}


def _two_object_scene(gen: Generator, blocker_z: float, blocker_size: float) -> RenderScene:
    cam = look_at(np.array([0.0, -0.001, 0.8]), np.array([0.0, 0.0, 0.0]), 0.0)
    lemon = np.eye(4)
    lemon[2, 3] = 0.04
    box = np.eye(4)
    box[:3, 3] = (0.0, 0.0, blocker_z)
    mat = {"mode": "keep", "base_color": [1, 1, 1, 1], "metallic": 0.0, "roughness": 1.0}
    return RenderScene(
        0, 0, (320, 240), "train", Camera3D(cam.tolist(), [300.0, 300.0, 159.5, 119.5], 0.01, 10.0),
        [Light3D("directional", cam.tolist(), [1, 1, 1], 3.0)], 0.3,
        [Object3D("lemon", lemon.tolist(), mat), Object3D(None, box.tolist(), {**mat, "mode": "color"}, 0, "box", blocker_size, False)],
        {"mode": "color", "color": [0.5, 0.5, 0.5]})


def test_a_fully_hidden_object_gets_no_label_and_a_half_hidden_one_an_amodal_box(gen):
    hidden = _two_object_scene(gen, 0.3, 0.4)  # a 40 cm box between the camera and the lemon
    r = gen.backend.render(hidden)
    assert annotate(gen.spec, hidden, r) == []
    half = _two_object_scene(gen, 0.3, 0.4)
    half.objects[1].pose[0][3] = 0.2 + 0.0  # slide the box so it covers part of the lemon
    r = gen.backend.render(half)
    anns = annotate(gen.spec, half, r)
    annotate_3d(anns, r)
    (lemon,) = anns
    assert 0.05 < lemon.visibility < 0.95
    x0, _, x1, _ = lemon.bbox
    ax0, _, ax1, _ = lemon.amodal_bbox
    assert ax1 - ax0 > x1 - x0 + 3  # the amodal box holds the hidden part too


def test_truncated_objects_are_measured_outside_the_frame(gen):
    scene = _two_object_scene(gen, 0.3, 0.01)
    scene.objects = scene.objects[:1]
    scene.camera.K = [300.0, 300.0, 0.0, 119.5]  # principal point on the left edge: half the lemon is outside
    r = gen.backend.render(scene)
    anns = annotate(gen.spec, scene, r)
    annotate_3d(anns, r)
    (lemon,) = anns
    assert 0.35 < lemon.truncation < 0.65
    assert lemon.amodal_bbox[0] < -10 and lemon.bbox[0] == 0.0
    assert lemon.visibility == pytest.approx(1 - lemon.truncation)


def test_meshes_are_normalised_whatever_their_units_and_format(shared, tmp_path):
    import trimesh

    duck = trimesh.load(str(shared / "meshes" / "duck" / "duck.obj"))
    duck.export(str(tmp_path / "duck.glb"))
    trimesh.load(str(shared / "meshes" / "bunny" / "bunny.obj")).export(str(tmp_path / "bunny.ply"))
    trimesh.load(str(shared / "meshes" / "lego" / "lego.obj")).export(str(tmp_path / "lego.stl"))
    raw = _spec(shared)
    raw["classes"] = {"duck": {"mesh": str(tmp_path / "duck.glb"), "size": 0.1},
                      "bunny": {"mesh": str(tmp_path / "bunny.ply"), "size": 0.1},
                      "lego": {"mesh": str(tmp_path / "lego.stl"), "scale": 0.2},
                      "lemon": {"mesh": str(shared / "meshes" / "lemon" / "lemon.obj"), "size": 0.1}}
    g = Generator(spec_from_dict(raw))
    for c in ("duck", "bunny", "lemon"):  # 2.6 units and 0.045 units become 0.1 m alike
        assert max(g.library.mesh(c).extents) == pytest.approx(0.1)
    assert max(g.library.mesh("lego").extents) == pytest.approx(0.3175 * 0.2)
    assert any(s.annotations for s in (g[i] for i in range(3)))


def test_bad_meshes_and_specs_are_named(shared, tmp_path):
    raw = _spec(shared)
    raw["classes"]["duck"]["mesh"] = str(tmp_path / "nope.obj")
    with pytest.raises(SynthgenError, match=r"classes.duck.mesh: .*nope.obj.* does not exist"):
        Generator(spec_from_dict(raw))
    raw = _spec(shared, materials={"modes": {"texture": 1}})
    with pytest.raises(SynthgenError, match="materials.textures is empty"):
        Generator(spec_from_dict(raw))


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "data.yaml" and ".synthgen" not in p.relative_to(root).parts}


@pytest.mark.slow
def test_bop_depth_and_byte_identical_runs_across_workers(shared, tmp_path):
    raw = _spec(shared, output={"size": [160, 120], "formats": ["coco", "yolo", "voc", "bop"], "split": {"train": 1.0}},
                background={"modes": {"image": 1, "color": 1}, "paths": [str(shared / "backgrounds")]},
                materials={"modes": {"keep": 1, "color": 1, "texture": 1}, "textures": [str(shared / "textures")]})
    g = Generator(spec_from_dict(raw))
    g.generate(tmp_path / "a", n=5, workers=1)
    g.generate(tmp_path / "b", n=5, workers=1)
    g.generate(tmp_path / "c", n=5, workers=2)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db == dc and len(da) > 20
    out = tmp_path / "a"
    gt = json.loads((out / "bop" / "train" / "000000" / "scene_gt.json").read_text())
    info = json.loads((out / "bop" / "train" / "000000" / "scene_gt_info.json").read_text())
    cams = json.loads((out / "bop" / "train" / "000000" / "scene_camera.json").read_text())
    coco = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert len(gt) == len(info) == len(cams) == 5
    assert sum(len(v) for v in gt.values()) == len(coco["annotations"])
    s = g[0]
    depth_mm = cv2.imread(str(out / "depth" / "train" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert depth_mm.dtype == np.uint16
    np.testing.assert_allclose(depth_mm / 1000.0, s.depth, atol=0.0006)
    for j, a in enumerate(s.annotations):
        visib = cv2.imread(str(out / "bop" / "train" / "000000" / "mask_visib" / f"000000_{j:06d}.png"), 0) > 0
        np.testing.assert_array_equal(visib, a.mask)
        e = gt["0"][j]
        np.testing.assert_allclose(np.array(e["cam_t_m2c"]) / 1000.0, a.pose[:3, 3])
        assert info["0"][j]["px_count_visib"] == a.area
    assert (out / "bop" / "models" / "obj_000001.ply").exists()


def test_missing_gl_says_what_to_install(shared, tmp_path):
    spec = tmp_path / "r.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(_spec(shared)))
    code = f"from synthgen import Generator; Generator.from_yaml({str(spec)!r})[0]"
    env = {**os.environ, "PYOPENGL_PLATFORM": "no-such-platform"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode != 0
    assert "cannot start offscreen OpenGL" in p.stderr and "libegl1" in p.stderr


@pytest.mark.slow
def test_textured_ground_and_materials_are_byte_identical_across_workers(shared, tmp_path):
    """Textures whose rows are not a multiple of 4 bytes (gray-felt is 854 px wide, RGB) once
    reached GL skewed and read past the end of their data: pixels differed from process to
    process. Every byte is the same now, with one worker or two."""
    raw = _spec(shared, output={"size": [160, 120], "formats": ["coco", "bop"], "split": {"train": 1.0}},
                background={"modes": {"ground": 1}, "textures": [str(shared / "textures")]},
                materials={"modes": {"keep": 1, "texture": 1}, "textures": [str(shared / "textures")]})
    assert any(cv2.imread(str(t)).shape[1] * 3 % 4 for t in (shared / "textures").glob("*.png"))
    g = Generator(spec_from_dict(raw))
    g.generate(tmp_path / "a", n=6, workers=1)
    g.generate(tmp_path / "b", n=6, workers=2)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db and len(da) > 20


def test_in_volume_placement_explicit_intrinsics_and_image_augmentation(shared):
    raw = _spec(shared, placement={"mode": "in_volume", "volume": [[-0.1, -0.1, 0.05], [0.1, 0.1, 0.2]], "amodal_masks": True,
                                   "min_visibility": 0.05, "min_area": 20},
                camera={"distance": [0.6, 0.6], "elevation": [60, 60], "intrinsics": {"fx": 250, "fy": 260, "cx": 150.0, "cy": 110.0}},
                augment={"image": [{"name": "GaussNoise", "std_range": [0.05, 0.05], "p": 1.0}]})
    g = Generator(spec_from_dict(raw))
    plain = Generator(spec_from_dict({**raw, "augment": {}}))
    tipped = 0
    for i in range(4):
        s = g[i]
        np.testing.assert_array_equal(s.camera_K, [[250, 0, 150], [0, 260, 110], [0, 0, 1]])
        for o in s.scene.objects:
            pose = np.array(o.pose)
            assert -0.1 <= pose[0, 3] <= 0.1 and -0.1 <= pose[1, 3] <= 0.1 and 0.05 <= pose[2, 3] <= 0.2
            tipped += int(abs(pose[2, 2]) < 0.99)  # random 3D rotation: z axis no longer up
        p = plain[i]
        assert [a.bbox for a in s.annotations] == [a.bbox for a in p.annotations]  # noise moves no label
        assert np.abs(s.image.astype(int) - p.image).mean() > 2
    assert tipped > 0


def test_windows_beyond_the_gl_limit_are_tiled_with_the_same_labels(shared):
    """Alone passes larger than the largest single-sample window are drawn in tiles, and a full
    segmentation pass beyond it goes through pyrender's own framebuffer: same labels, same depth."""
    g = Generator(spec_from_dict(_spec(shared, camera={"distance": [0.3, 0.4], "elevation": [20, 70]})))
    ref = [g[i] for i in range(3)]
    gl = g.backend._renderer._renderer
    assert gl.synthgen_window_limit >= 320
    gl.synthgen_window_limit = 37  # smaller than every window: tiles of 37 px, full pass the pyrender way
    try:
        for i, r in enumerate(ref):
            s = g[i]
            assert len(s.annotations) == len(r.annotations) > 0
            # the multisampled buffer keeps depth at a sample point, not the pixel centre: microns apart
            np.testing.assert_allclose(s.depth, r.depth, atol=2e-5)
            for a, b in zip(s.annotations, r.annotations):
                assert (a.bbox, a.amodal_bbox, a.visibility, a.truncation) == (b.bbox, b.amodal_bbox, b.visibility, b.truncation)
                np.testing.assert_array_equal(a.amodal_mask, b.amodal_mask)
                np.testing.assert_array_equal(a.mask, b.mask)
    finally:
        gl.synthgen_window_limit = 4096


def test_generators_share_the_process_renderer_and_survive_one_another(shared):
    """Deleting an OffscreenRenderer ends EGL for every other one in the process: a generator
    that is dropped must not break the others (train and val generators in one training loop)."""
    import gc

    a = Generator(spec_from_dict(_spec(shared)))
    first = a[3]
    b = Generator(spec_from_dict(_spec(shared, seed=11)))
    b[0]
    assert b.backend._renderer is a.backend._renderer
    del b
    gc.collect()
    again = a[3]  # its meshes were dropped from the context by b's scene and come back
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.depth, first.depth)
    c = Generator(spec_from_dict(_spec(shared)))
    np.testing.assert_array_equal(c[3].image, first.image)
