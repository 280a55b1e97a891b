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


def _duck_copy(shared, tmp_path, mtl_line: str):
    d = tmp_path / "duck"
    d.mkdir()
    src = shared / "meshes" / "duck"
    (d / "duck.obj").write_bytes((src / "duck.obj").read_bytes())
    (d / "duckCM.png").write_bytes((src / "duckCM.png").read_bytes())
    mtl = (src / "duck.mtl").read_text()
    (d / "duck.mtl").write_text("\n".join(mtl_line if ln.startswith("map_Kd") else ln for ln in mtl.splitlines()) + "\n")
    return d / "duck.obj"


def _object_colour(g: Generator, category: str) -> np.ndarray:
    """Mean colour of the object's visible pixels over a few samples."""
    pix = []
    for i in range(4):
        s = g[i]
        pix += [s.image[a.mask] for a in s.annotations if a.category == category]
    return np.concatenate(pix).mean(0)


@pytest.mark.parametrize("line", ["map_Kd .\\duckCM.png", "map_Kd textures\\..\\duckCM.png", "map_Kd -s 1 1 1 DUCKCM.PNG"])
def test_textures_named_the_windows_way_are_found(shared, tmp_path, line):
    import warnings

    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["classes"] = {"duck": {"mesh": str(_duck_copy(shared, tmp_path, line)), "size": 0.12}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found: no warning
        g = Generator(spec_from_dict(raw))
        g.check()
    assert getattr(g.library.mesh("duck").visual.material, "image", None) is not None
    r, gr, b = _object_colour(g, "duck")
    assert r > gr > b and r > 1.5 * b  # the duck's orange, not the untextured grey


def test_a_lost_texture_is_a_warning_naming_it_and_not_a_black_mesh(shared, tmp_path):
    from synthgen import SynthgenWarning

    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["classes"] = {"duck": {"mesh": str(_duck_copy(shared, tmp_path, "map_Kd nowhere.png")), "size": 0.12}}
    with pytest.warns(SynthgenWarning, match=r"duck.obj: texture 'nowhere.png' .* was not found"):
        g = Generator(spec_from_dict(raw))
        g.check()
    assert _object_colour(g, "duck").mean() > 60  # a lit grey, not near-black metal


def test_a_y_up_gltf_stands_on_its_base(shared, tmp_path):
    import trimesh

    post = trimesh.creation.box(extents=(0.02, 0.1, 0.03))  # tall along y, as glTF has it
    post.export(str(tmp_path / "post.glb"))
    post.export(str(tmp_path / "post.obj"))
    raw = _spec(shared)
    raw["placement"].update(upright=1.0)
    raw["classes"] = {"glb": {"mesh": str(tmp_path / "post.glb"), "size": 0.1},
                      "obj_y": {"mesh": str(tmp_path / "post.obj"), "size": 0.1, "up_axis": "y"},
                      "obj_z": {"mesh": str(tmp_path / "post.obj"), "size": 0.1}}
    g = Generator(spec_from_dict(raw))
    for c in ("glb", "obj_y"):
        assert np.argmax(g.library.mesh(c).extents) == 2  # tallest along z: it stands
    assert np.argmax(g.library.mesh("obj_z").extents) == 1  # as written: lying on its side
    scene = g.plan(0)
    for o in scene.objects:
        if o.category in ("glb", "obj_y"):
            R = np.array(o.pose)[:3, :3]
            assert abs(R[2, 2]) > 0.999  # upright: turned about z only, its top still up


def test_shading_is_smooth_where_the_surface_is_and_creased_where_it_is_not(shared, tmp_path):
    import trimesh

    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(str(tmp_path / "ball.ply"))
    trimesh.creation.box(extents=(1, 1, 1)).export(str(tmp_path / "cube.ply"))
    raw = _spec(shared)
    raw["classes"] = {"ball": {"mesh": str(tmp_path / "ball.ply"), "size": 0.1},
                      "cube": {"mesh": str(tmp_path / "cube.ply"), "size": 0.1},
                      "flat_ball": {"mesh": str(tmp_path / "ball.ply"), "size": 0.1, "shading": "flat"}}
    g = Generator(spec_from_dict(raw))
    g.backend._setup()

    def normals_off_faces(c: str) -> float:
        """Mean angle (degrees) between each drawn vertex normal and the normals of its faces."""
        prim = g.backend._slot(c, 0)[1].primitives[0]
        pos, nrm = prim.positions, prim.normals
        idx = (prim.indices if prim.indices is not None else np.arange(len(pos))).reshape(-1, 3).astype(int)
        fn = np.cross(pos[idx[:, 1]] - pos[idx[:, 0]], pos[idx[:, 2]] - pos[idx[:, 0]])
        fn /= np.linalg.norm(fn, axis=1, keepdims=True)
        cos = np.clip((nrm[idx] * fn[:, None, :]).sum(-1), -1, 1)
        return float(np.degrees(np.arccos(cos)).mean())

    assert normals_off_faces("ball") > 3.0  # smooth: vertex normals between its faces'
    assert normals_off_faces("flat_ball") < 0.01  # faceted
    assert normals_off_faces("cube") < 0.01  # the creases kept: a smooth-shaded cube would be a blob


def test_objects_that_do_not_fit_are_reported(shared, tmp_path):
    import json

    from typer.testing import CliRunner

    from synthgen.cli import app

    from .conftest import write_spec

    raw = _spec(shared, objects_per_image=[7, 8], distractors={"count": 0})
    raw["placement"].update(area=[[-0.05, -0.05], [0.05, 0.05]])  # a crowd on a 10 cm square
    raw["output"]["formats"] = ["coco"]
    r = CliRunner().invoke(app, ["generate", str(write_spec(tmp_path / "s.yaml", raw)), "--n", "3", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    placement = json.loads((tmp_path / "o" / "dataset.json").read_text())["placement"]
    requested = sum(v["requested"] for v in placement.values())
    placed = sum(v["placed"] for v in placement.values())
    assert requested >= 21 and placed < requested
    assert "requested objects placed" in r.output and "found no free spot" in r.output
    manifest = [json.loads(x) for x in (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()]
    assert sum(len(m["scene"]["requested"]) for m in manifest) == requested


def _ground_spec(shared, **lights) -> dict:
    return _spec(shared, background={"modes": {"ground": 1}, "textures": [str(shared / "textures")]},
                 lights={"directional": 1, "point": 0, "spot": 0, "intensity": [3, 3], **lights}, distractors={"count": 0})


def test_objects_on_a_ground_plane_cast_shadows_and_labels_do_not_move(shared):
    with_shadows = Generator(spec_from_dict(_ground_spec(shared)))
    without = Generator(spec_from_dict(_ground_spec(shared, shadows="off")))
    darker = 0
    for i in range(3):
        a, b = with_shadows[i], without[i]
        assert [x.bbox for x in a.annotations] == [x.bbox for x in b.annotations]  # colour only
        ground = np.ones(a.image.shape[:2], bool)
        for x in a.annotations:
            ground &= ~x.amodal_mask
        diff = b.image.astype(int).sum(2) - a.image.astype(int).sum(2)
        darker += int((diff[ground] > 60).sum())
    assert darker > 500  # shadowed ground pixels


def test_exposure_keeps_white_objects_from_clipping(shared, tmp_path):
    import trimesh

    trimesh.creation.box(extents=(1, 0.8, 0.6)).export(str(tmp_path / "white.ply"))
    raw = _spec(shared, lights={"directional": 2, "point": 2, "spot": 0, "intensity": [5, 5], "point_intensity": [8, 8],
                                "ambient": [0.35, 0.35]},
                materials={"modes": {"color": 1}}, distractors={"count": 0})
    raw["classes"] = {"white": {"mesh": str(tmp_path / "white.ply"), "size": 0.12}}

    def worst(g: Generator) -> float:
        shares = []
        for i in range(6):
            s = g[i]
            for x in s.annotations:
                if x.area >= 50:
                    shares.append(float((s.image[x.mask].max(1) >= 250).mean()))
        return max(shares)

    bright = {"lights": {**raw["lights"], "exposure": "off"}}
    assert worst(Generator(spec_from_dict({**raw, **bright}))) > 0.2
    assert worst(Generator(spec_from_dict(raw))) <= 0.02


def test_the_cli_shows_a_lost_texture_once_as_one_line(shared, tmp_path):
    import subprocess
    import sys

    from .conftest import write_spec

    raw = {"kind": "renderer", "output": {"size": [64, 48], "formats": ["coco"]},
           "classes": {"duck": {"mesh": str(_duck_copy(shared, tmp_path, "map_Kd nowhere.png")), "size": 0.1}}}
    spec = write_spec(tmp_path / "s.yaml", raw)
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "generate", str(spec), "--n", "2", "--workers", "2",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if "nowhere.png" in x]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "SynthgenWarning" not in r.stderr, r.stderr


# -- see-through materials and unreadable textures -----------------------------------------------
def _images_of(raw: dict, mesh, n: int = 3) -> list:
    raw = {**raw, "classes": {"thing": {"mesh": str(mesh), "size": 0.1}}}
    g = Generator(spec_from_dict(raw))
    return [g[i] for i in range(n)]


def _duck_with_alpha(shared, folder, alpha: int):
    """The duck, its texture given an alpha channel: ``alpha`` on the left half, 255 elsewhere."""
    from PIL import Image

    folder.mkdir()
    obj = _duck_copy(shared, folder, "map_Kd duckCM.png")
    tex = Image.open(obj.parent / "duckCM.png").convert("RGBA")
    a = np.full(tex.size[::-1], 255, np.uint8)
    a[:, : tex.size[0] // 2] = alpha
    tex.putalpha(Image.fromarray(a))
    tex.save(obj.parent / "duckCM.png")
    return obj


def _box(folder, vertex_alpha: int | None = None, base_alpha: int | None = None):
    import trimesh

    folder.mkdir()
    box = trimesh.creation.box(extents=(0.08, 0.06, 0.05))
    if vertex_alpha is not None:
        box.visual.vertex_colors = np.tile([200, 30, 30, vertex_alpha], (len(box.vertices), 1)).astype(np.uint8)
        box.export(str(folder / "box.ply"))
        return folder / "box.ply"
    box.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        baseColorFactor=[220, 20, 20, base_alpha], metallicFactor=0.0, alphaMode="BLEND" if base_alpha < 255 else "OPAQUE"))
    box.export(str(folder / "box.glb"))
    return folder / "box.glb"


@pytest.mark.parametrize("kind", ["texture alpha", "vertex colours", "base colour alpha"])
def test_see_through_materials_are_drawn_opaque_as_labelled(shared, tmp_path, kind):
    """pyrender blends a material with alpha below 1 with what lies behind it, while the labels
    take the object whole: a duck whose texture is transparent on one side showed the background
    there inside its mask. Such a mesh is drawn exactly as its opaque twin, with a warning."""
    from synthgen import SynthgenWarning

    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0}, objects_per_image=[2, 2])
    raw["output"]["size"] = [160, 120]
    if kind == "texture alpha":
        seen, opaque = _duck_with_alpha(shared, tmp_path / "a", 0), _duck_with_alpha(shared, tmp_path / "b", 255)
    elif kind == "vertex colours":
        seen, opaque = _box(tmp_path / "a", vertex_alpha=60), _box(tmp_path / "b", vertex_alpha=255)
    else:
        seen, opaque = _box(tmp_path / "a", base_alpha=80), _box(tmp_path / "b", base_alpha=255)
    with pytest.warns(SynthgenWarning, match=rf"{seen.name}: its material is partly transparent \({kind}\); .* opaque"):
        see_through = _images_of(raw, seen)
    reference = _images_of(raw, opaque)
    assert sum(len(s.annotations) for s in reference) >= 4
    for s, r in zip(see_through, reference):
        assert np.array_equal(s.image, r.image)
        assert [a.bbox for a in s.annotations] == [a.bbox for a in r.annotations]
    if kind == "base colour alpha":  # a glTF colour without texture coordinates keeps its colour
        pix = np.concatenate([s.image[a.mask] for s in reference for a in s.annotations]).mean(0)
        assert pix[0] > 2 * pix[1] and pix[0] > 2 * pix[2], pix  # red, not trimesh's default grey


@pytest.mark.parametrize("texture, why", [(b"not an image\n", "is not an image"), (None, "is truncated or corrupt")])
def test_an_unreadable_texture_is_a_warning_naming_it_not_a_crash(shared, tmp_path, texture, why):
    """trimesh drops a texture that is not an image without a word, and opens a truncated one
    lazily, so that it failed when first drawn ('unexpected OSError ... a bug in synthgen')."""
    from synthgen import SynthgenWarning

    obj = _duck_copy(shared, tmp_path, "map_Kd duckCM.png")
    png = (obj.parent / "duckCM.png").read_bytes()
    (obj.parent / "duckCM.png").write_bytes(texture if texture is not None else png[: len(png) // 2])
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["output"]["size"] = [160, 120]
    with pytest.warns(SynthgenWarning, match=rf"duck.obj: texture 'duckCM.png' \(named in its material file\) {why}; "
                                             "the mesh renders untextured"):
        samples = _images_of(raw, obj, 2)
    assert any(s.annotations for s in samples)


def test_a_missing_material_file_is_named_as_such(shared, tmp_path):
    from synthgen import SynthgenWarning

    obj = _duck_copy(shared, tmp_path, "map_Kd duckCM.png")
    (obj.parent / "duck.mtl").unlink()
    with pytest.warns(SynthgenWarning, match=r"duck.obj: its material file 'duck.mtl' \(named in the mesh\) was not found"):
        Generator(spec_from_dict({**_spec(shared), "classes": {"duck": {"mesh": str(obj), "size": 0.1}}})).check()


def test_a_texture_wider_than_opengl_takes_is_drawn_scaled_down(shared, tmp_path):
    """glTexImage2D refuses a texture over GL_MAX_TEXTURE_SIZE ('unexpected GLError ... invalid
    value', a run stopped half-written): a mesh's texture, or one from materials.textures, is
    scaled to OpenGL 4.1's least limit (16384 pixels a side) with a warning, and drawn."""
    import cv2

    from synthgen import SynthgenWarning

    wide = np.zeros((8, 16500, 3), np.uint8)
    wide[..., 2] = 230  # red, as OpenCV writes BGR
    obj = _duck_copy(shared, tmp_path, "map_Kd wide.png")
    cv2.imwrite(str(obj.parent / "wide.png"), wide)
    (tmp_path / "textures").mkdir()
    cv2.imwrite(str(tmp_path / "textures" / "wide.png"), wide)
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["output"]["size"] = [160, 120]
    with pytest.warns(SynthgenWarning, match=r"duck.obj: a texture of 16500x8 is larger than OpenGL's 16384 pixels a side; "
                                             r"drawn scaled to 16384x8"):
        samples = _images_of(raw, obj, 2)
    with pytest.warns(SynthgenWarning, match=r"wide.png: a texture of 16500x8 is larger than OpenGL's 16384"):
        samples += _images_of({**raw, "materials": {"modes": {"texture": 1}, "textures": [str(tmp_path / "textures")]}},
                              shared / "meshes" / "jenga" / "jenga.obj", 2)
    pix = np.concatenate([s.image[a.mask] for s in samples for a in s.annotations]).mean(0)
    assert pix[0] > 2 * pix[1] and pix[0] > 2 * pix[2], pix  # the texture's red on both


def test_a_gltf_texture_named_by_a_percent_encoded_uri_is_found(tmp_path, shared):
    """glTF names its files by URI, percent-encoded ("my%20tex%20%C3%A9.png" for "my tex é.png"):
    the texture was reported not found and the mesh drawn untextured."""
    import json
    import warnings

    import trimesh
    from PIL import Image

    box = trimesh.creation.box(extents=(0.08, 0.06, 0.05))
    green = Image.fromarray(np.dstack([np.full((16, 16), v, np.uint8) for v in (20, 200, 20)]))
    box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(box.vertices), 2)),
                                               material=trimesh.visual.material.PBRMaterial(baseColorTexture=green, metallicFactor=0.0))
    files = trimesh.exchange.gltf.export_gltf(box)
    doc = json.loads(files.pop("model.gltf"))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    image = doc["images"][0]  # moved out of its buffer into a file of its own, named by URI
    view = doc["bufferViews"][image.pop("bufferView")]
    data = (tmp_path / doc["buffers"][view["buffer"]]["uri"]).read_bytes()
    start = view.get("byteOffset", 0)
    (tmp_path / "my tex é.png").write_bytes(data[start : start + view["byteLength"]])
    image.pop("mimeType", None)
    image["uri"] = "my%20tex%20%C3%A9.png"
    (tmp_path / "box.gltf").write_text(json.dumps(doc))
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["output"]["size"] = [160, 120]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found: no warning
        samples = _images_of(raw, tmp_path / "box.gltf", 3)
    pix = np.concatenate([s.image[a.mask] for s in samples for a in s.annotations]).mean(0)
    assert pix[1] > 2 * pix[0] and pix[1] > 2 * pix[2], pix  # the texture's green, not untextured grey


def test_face_colours_stay_on_their_faces_whatever_the_shading(shared, tmp_path):
    """A PLY coloured per face: trimesh's split for smooth shading averaged the colours over
    shared vertices (a box with six coloured sides rendered as gradients), and ``shading:
    smooth`` stopped the run ('unexpected ValueError: Cannot use face colors with a smooth
    mesh'). A box's sides are flat, so shading auto must draw it exactly as shading flat."""
    import trimesh

    box = trimesh.creation.box(extents=(0.08, 0.06, 0.05))
    sides = np.array([[220, 30, 30, 255], [30, 220, 30, 255], [30, 30, 220, 255], [220, 220, 30, 255],
                      [30, 220, 220, 255], [220, 30, 220, 255]], np.uint8)
    colours = np.zeros((len(box.faces), 4), np.uint8)
    for i, facet in enumerate(box.facets):
        colours[facet] = sides[i]
    box.visual.face_colors = colours
    box.export(str(tmp_path / "box.ply"))
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["output"]["size"] = [160, 120]

    def images(shading: str) -> list:
        spec = {**raw, "classes": {"box": {"mesh": str(tmp_path / "box.ply"), "size": 0.1, "shading": shading}}}
        g = Generator(spec_from_dict(spec))
        return [g[i] for i in range(3)]

    flat, auto, smooth = images("flat"), images("auto"), images("smooth")
    assert sum(len(s.annotations) for s in flat) >= 3
    for f, a, s in zip(flat, auto, smooth):
        assert np.array_equal(f.image, a.image)
        assert [x.bbox for x in f.annotations] == [x.bbox for x in a.annotations] == [x.bbox for x in s.annotations]


# -- odd mesh files ------------------------------------------------------------------------------
@pytest.mark.parametrize("line, where", [("map_Kd -s 1 1 1 -o 0 0 -bm 0.5 -clamp off duck skin.png", "duck skin.png"),
                                         ("map_Kd tex\\DUCKCM.PNG", "Tex/duckCM.png"),
                                         ("map_Kd ../Textures/DuckCM.png", "../textures/duckCM.png"),
                                         ('map_Kd "duck skin.png"', "duck skin.png")])
def test_a_texture_after_options_in_quotes_or_in_a_folder_of_another_case_is_found(shared, tmp_path, line, where):
    """An MTL statement may give options before the file name, and the name may hold spaces:
    trimesh passes "-s 1 1 1 -bm 0.5 duck skin.png" whole, and its last word alone is not the
    file. Meshes made on Windows name their textures' folders in any letter case (only the
    file name was matched so); some exporters put a name with spaces in quotes."""
    import warnings

    obj = _duck_copy(shared, tmp_path, line)
    target = (obj.parent / where).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    (obj.parent / "duckCM.png").rename(target)
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["classes"] = {"duck": {"mesh": str(obj), "size": 0.12}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found: no warning
        g = Generator(spec_from_dict(raw))
        g.check()
    r, gr, b = _object_colour(g, "duck")
    assert r > gr > b and r > 1.5 * b  # the duck's orange, not the untextured grey


def test_a_texture_lost_after_mtl_options_is_named_without_them(shared, tmp_path):
    from synthgen import SynthgenWarning

    obj = _duck_copy(shared, tmp_path, "map_Kd -s 2 2 1 -bm 0.5 lost skin.png")
    with pytest.warns(SynthgenWarning, match=r"duck.obj: texture 'lost skin.png' \(named in its material file\) was not found"):
        Generator(spec_from_dict({**_spec(shared), "classes": {"duck": {"mesh": str(obj), "size": 0.1}}})).check()


def _glb_with_texture(path, edit) -> None:
    """A textured cube as GLB, its JSON chunk changed by ``edit(header, binary)``."""
    import json
    import struct

    import trimesh
    from PIL import Image

    cube = trimesh.creation.box((1.0, 1.0, 1.0))
    uv = np.random.default_rng(0).random((8, 2))
    mesh = trimesh.Trimesh(cube.vertices, cube.faces, visual=trimesh.visual.TextureVisuals(
        uv=uv, image=Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8))))
    glb = mesh.export(file_type="glb")
    n = struct.unpack("<I", glb[12:16])[0]
    header, rest = json.loads(glb[20:20 + n]), bytearray(glb[20 + n:])
    edit(header, rest)
    js = json.dumps(header).encode()
    js += b" " * (-len(js) % 4)
    out = glb[:12] + struct.pack("<I", len(js)) + b"JSON" + js + bytes(rest)
    path.write_bytes(out[:8] + struct.pack("<I", len(out)) + out[12:])


def _as_ktx2(header, rest) -> None:  # a KTX2/Basis texture, as glTF pipelines compress them
    header["images"][0]["mimeType"] = "image/ktx2"
    header["textures"][0] = {"extensions": {"KHR_texture_basisu": {"source": 0}}}
    header["extensionsUsed"] = ["KHR_texture_basisu"]


def _corrupt_png(header, rest) -> None:
    i = rest.find(b"\x89PNG")
    rest[i:i + 8] = b"garbage!"


@pytest.mark.parametrize("edit, kind", [(_as_ktx2, "image/ktx2"), (_corrupt_png, "image/png")])
def test_a_gltf_texture_trimesh_cannot_decode_is_a_warning_naming_it(shared, tmp_path, edit, kind):
    """trimesh skips a KTX2 texture, and an embedded image Pillow cannot open, without a word:
    the object was drawn untextured in silence."""
    from synthgen import SynthgenWarning

    _glb_with_texture(tmp_path / "cube.glb", edit)
    raw = {**_spec(shared), "classes": {"cube": {"mesh": str(tmp_path / "cube.glb"), "size": 0.1}}}
    with pytest.warns(SynthgenWarning, match=rf"cube.glb: its base colour texture \({kind}\) cannot be decoded; "
                                             "the mesh renders untextured"):
        Generator(spec_from_dict(raw)).check()


def test_a_decodable_gltf_texture_is_no_warning(shared, tmp_path):
    import warnings

    _glb_with_texture(tmp_path / "cube.glb", lambda header, rest: None)
    raw = {**_spec(shared), "classes": {"cube": {"mesh": str(tmp_path / "cube.glb"), "size": 0.1}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = Generator(spec_from_dict(raw))
        g.check()
    assert g.library.mesh("cube").visual.material.baseColorTexture is not None


def test_a_mesh_whose_faces_have_no_area_is_one_line(shared, tmp_path):
    """Three points on a line: qhull refused its hull when the first sample was planned, and the
    run ended in 'unexpected QhullError ... (a bug in synthgen)', exit 1."""
    import subprocess
    import sys

    from .conftest import write_spec

    (tmp_path / "line.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    spec = write_spec(tmp_path / "s.yaml", {"kind": "renderer", "output": {"size": [64, 48], "formats": ["coco"]},
                                            "classes": {"line": {"mesh": "line.obj", "size": 0.1}}})
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "generate", str(spec), "--n", "2", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: classes.line.mesh: ") and last.endswith(
        "line.obj: the mesh has no surface (every face has zero area: its points lie on a line)"), r.stderr
    assert not (tmp_path / "o").exists()


def test_a_flat_mesh_is_planned_without_numpy_warnings(shared, open_meshes):
    """trimesh's hull of a flat mesh divided by its zero volume ('RuntimeWarning: invalid value
    encountered in divide' printed into the run's output)."""
    import warnings

    raw = _spec(shared, distractors={"count": 0})
    raw["classes"] = {"plane": {"mesh": str(open_meshes / "plane.stl"), "size": 0.12}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = Generator(spec_from_dict(raw))
        assert any(g[i].annotations for i in range(3))


@pytest.mark.parametrize("kind", ["cmyk", "la", "1-bit", "grey16", "float"])
def test_a_texture_in_any_pixel_format_draws_as_its_rgb(shared, tmp_path, kind):
    """pyrender takes a 4-band image as RGBA: a CMYK JPEG texture was drawn with its black
    channel as alpha, see-through, while the labels took the duck whole. An LA or 1-bit texture
    stopped the run, a float one drew black. Each now draws exactly as the same texture
    converted to RGB(A) beforehand, as read_image converts any image."""
    from PIL import Image

    from synthgen.sources import read_image

    base = Image.open(shared / "meshes" / "duck" / "duckCM.png").convert("RGB")
    grey = np.asarray(base.convert("L"))
    odd, ext, alpha = {"cmyk": (base.convert("CMYK"), "jpg", False), "la": (base.convert("LA"), "png", True),
                       "1-bit": (base.convert("1"), "png", False),
                       "grey16": (Image.fromarray(grey.astype(np.uint16) * 257), "png", False),
                       "float": (Image.fromarray(grey.astype(np.float32)), "tif", False)}[kind]
    (tmp_path / "odd").mkdir()
    (tmp_path / "ref").mkdir()
    odd_obj = _duck_copy(shared, tmp_path / "odd", f"map_Kd duckCM.{ext}")
    odd.save(odd_obj.parent / f"duckCM.{ext}")
    ref_obj = _duck_copy(shared, tmp_path / "ref", "map_Kd duckCM.png")
    Image.fromarray(read_image(odd_obj.parent / f"duckCM.{ext}", "RGBA" if alpha else "RGB")).save(ref_obj.parent / "duckCM.png")
    raw = _spec(shared, background={"modes": {"color": 1}}, distractors={"count": 0})
    raw["output"]["size"] = [160, 120]
    got, want = _images_of(raw, odd_obj, 2), _images_of(raw, ref_obj, 2)
    assert any(s.annotations for s in want)
    for s, r in zip(got, want):
        np.testing.assert_array_equal(s.image, r.image)
        assert [a.bbox for a in s.annotations] == [a.bbox for a in r.annotations]


def test_a_draco_compressed_gltf_loads_and_an_undecodable_one_is_one_line(shared, tmp_path):
    """Web glTF pipelines compress geometry with Draco (KHR_draco_mesh_compression). trimesh
    decodes it only with DracoPy, now a dependency; without it, or for a stream that does not
    decode, trimesh filled the vertices with zeros and logged a line into the run's output, and
    synthgen said 'the mesh has no extent'."""
    import json
    import struct
    import subprocess
    import sys

    import trimesh

    from synthgen.renderer.meshes import load_mesh

    from .conftest import write_spec

    duck = trimesh.load(str(shared / "meshes" / "duck" / "duck.obj"), force="mesh")
    glb = duck.export(file_type="glb", extension_draco=True)
    n = struct.unpack("<I", glb[12:16])[0]
    assert "KHR_draco_mesh_compression" in json.loads(glb[20:20 + n])["extensionsRequired"]
    (tmp_path / "duck.glb").write_bytes(glb)
    a = load_mesh(tmp_path / "duck.glb", 0.1, None, "z")
    b = load_mesh(shared / "meshes" / "duck" / "duck.obj", 0.1, None, "z")
    assert len(a.faces) == len(b.faces)
    np.testing.assert_allclose(a.bounds, b.bounds, atol=1e-4)  # Draco quantises positions
    raw = _spec(shared, distractors={"count": 0})
    raw["classes"] = {"duck": {"mesh": str(tmp_path / "duck.glb"), "size": 0.12}}
    assert any(Generator(spec_from_dict(raw))[i].annotations for i in range(3))
    # a primitive that says it is Draco-compressed but whose stream is not Draco
    at = glb.index(b"DRACO")
    (tmp_path / "bad.glb").write_bytes(glb[:at] + b"NOTDR" + glb[at + 5:])
    spec = write_spec(tmp_path / "s.yaml", {"kind": "renderer", "output": {"size": [64, 48], "formats": ["coco"]},
                                            "classes": {"bad": {"mesh": "bad.glb", "size": 0.1}}})
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "check", str(spec)], capture_output=True, text=True, timeout=300)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: classes.bad.mesh: ") and lines[0].endswith(
        "bad.glb: its Draco-compressed geometry (KHR_draco_mesh_compression) cannot be decoded"), r.stderr
