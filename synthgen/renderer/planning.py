"""Planning a 3D scene: every random choice of a renderer sample, as plain data.

World: z up, metres, the ground plane at z = 0. Poses are 4x4 row-major lists. ``camera.pose``
is camera-to-world in the OpenGL convention (pyrender's: the camera looks down its -z, y up);
``camera.K`` is OpenCV's (pixel centres at integer coordinates). Labels export poses in the
OpenCV camera convention (x right, y down, z forward).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..choices import choose_categories, choose_split
from ..rng import LOOKS, SCENE, pick, rng_for
from ..spec.renderer import RendererSpec
from .meshes import MeshLibrary

PRIMITIVES = ("box", "sphere", "cylinder", "capsule", "cone")
PLACE_ATTEMPTS = 30  # positions tried per object before it is left out (never a hang)


@dataclass
class Object3D:
    category: str | None
    """Class name; None for a distractor (never labelled)."""
    pose: list[list[float]]
    """Model to world, 4x4."""
    material: dict[str, Any]
    """{"mode": keep | color | texture, "base_color", "metallic", "roughness", "texture"}."""
    slot: int = 0
    """Instance slot of its class in this sample (each slot has its own material)."""
    primitive: str | None = None
    """Distractor shape, one of PRIMITIVES."""
    size: float = 0.0
    """Distractor longest extent, metres."""
    labelled: bool = True


@dataclass
class Camera3D:
    pose: list[list[float]]
    K: list[float]
    """fx, fy, cx, cy (OpenCV: pixel centres at integer coordinates)."""
    znear: float
    zfar: float


@dataclass
class Light3D:
    kind: str
    """directional | point | spot"""
    pose: list[list[float]]
    color: list[float]
    intensity: float


@dataclass
class RenderScene:
    index: int
    seed: int
    size: tuple[int, int]
    split: str
    camera: Camera3D
    lights: list[Light3D]
    ambient: float
    objects: list[Object3D] = field(default_factory=list)
    background: dict[str, Any] = field(default_factory=dict)
    """{"mode": image, "asset", "crop"} | {"mode": color, "color"} | {"mode": ground, "texture", "sky"}"""
    image_augment_seed: int | None = None
    request: list[str] | None = None
    requested: list[str] = field(default_factory=list)
    """The classes this sample asked for; those that found no free spot are missing from objects."""

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def notes(self) -> dict[str, int]:
        """Counts for the run's report: objects requested and placed per class."""
        out: dict[str, int] = {}
        for c in self.requested:
            out[f"requested/{c}"] = out.get(f"requested/{c}", 0) + 1
        for o in self.objects:
            if o.category is not None:
                out[f"placed/{o.category}"] = out.get(f"placed/{o.category}", 0) + 1
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RenderScene:
        return cls(d["index"], d["seed"], tuple(d["size"]), d["split"], Camera3D(**d["camera"]),
                   [Light3D(**x) for x in d["lights"]], d["ambient"], [Object3D(**o) for o in d["objects"]],
                   d["background"], d.get("image_augment_seed"), d.get("request"), d.get("requested", []))


def kelvin_to_rgb(k: float) -> list[float]:
    """Approximate colour of a black body at ``k`` Kelvin, 0..1 (Tanner Helland's fit)."""
    t = k / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    return [min(1.0, max(0.0, v / 255.0)) for v in (r, g, b)]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random 3x3 rotation (from a uniform unit quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """Camera-to-world (OpenGL: looks down -z, y up) at ``eye`` looking at ``target``, z-up world."""
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0]) if abs(fwd[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    R = np.stack([right, true_up, -fwd], axis=1)
    R = R @ rot_z(math.radians(roll_deg))  # roll about the viewing axis
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, eye
    return T


@functools.lru_cache(maxsize=None)
def primitive_points(kind: str) -> np.ndarray:
    """Points bounding a unit-extent primitive (longest extent 1, centred), for placement."""
    import trimesh

    return primitive_mesh(kind).vertices if kind != "sphere" else trimesh.creation.icosphere(1, 0.5).vertices


@functools.lru_cache(maxsize=None)
def primitive_mesh(kind: str):
    import trimesh

    if kind == "box":
        return trimesh.creation.box(extents=(1.0, 0.7, 0.5))
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=0.3, height=1.0, sections=24)
    if kind == "capsule":
        return trimesh.creation.capsule(height=0.6, radius=0.2, count=[16, 16])
    return trimesh.creation.cone(radius=0.4, height=1.0, sections=24).apply_translation([0, 0, -0.5])


def plan_render_scene(spec: RendererSpec, lib: MeshLibrary, seed: int, index: int, categories: Sequence[str] | None = None) -> RenderScene:
    rng = rng_for(seed, index, SCENE)
    looks = rng_for(seed, index, LOOKS)
    W, H = spec.output.size
    chosen = choose_categories(spec, rng, categories)
    n_dis = int(spec.distractors.count.sample(rng))
    items: list[tuple[str | None, str | None, float]] = [(c, None, 0.0) for c in chosen]
    for _ in range(n_dis):
        items.append((None, PRIMITIVES[int(rng.integers(len(PRIMITIVES)))], float(spec.distractors.size.sample(rng))))

    p = spec.placement
    placed: list[tuple[np.ndarray, float]] = []  # (centre, radius) footprints / bounding spheres
    objects: list[Object3D] = []
    slots: dict[str, int] = {}
    for cat, prim, size in items:
        pts = (lib.hull(cat) if cat is not None else primitive_points(prim) * size)
        pose = _place(rng, p, pts, placed)
        if pose is None:
            continue  # no free spot: left out (the per-class scheduler asks again)
        slot = slots.get(cat or "", 0)
        slots[cat or ""] = slot + 1
        objects.append(Object3D(cat, pose.tolist(), _material(spec, lib, looks, cat), slot, prim, size, cat is not None))

    c = spec.camera
    target = np.array(c.target, float) + np.array([*looks_jitter(rng, c.target_jitter), 0.0])
    az, el, dist = math.radians(c.azimuth.sample(rng)), math.radians(c.elevation.sample(rng)), float(c.distance.sample(rng))
    eye = target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    cam_pose = look_at(eye, target, float(c.roll.sample(rng)))
    if c.intrinsics is not None:
        K = [c.intrinsics.fx, c.intrinsics.fy, c.intrinsics.cx, c.intrinsics.cy]
    else:
        fy = (H / 2) / math.tan(math.radians(float(c.fov.sample(rng))) / 2)
        K = [fy, fy, (W - 1) / 2, (H - 1) / 2]
    camera = Camera3D(cam_pose.tolist(), [float(v) for v in K], c.znear, c.zfar)

    L = spec.lights
    lights = []
    for kind, count, inten in (("directional", L.directional, L.intensity), ("point", L.point, L.point_intensity),
                               ("spot", L.spot, L.point_intensity)):
        for _ in range(int(count.sample(looks))):
            az_l, el_l = looks.uniform(0, 2 * math.pi), looks.uniform(math.radians(25), math.radians(85))
            r = looks.uniform(0.8, 2.0)
            pos = target + r * np.array([math.cos(el_l) * math.cos(az_l), math.cos(el_l) * math.sin(az_l), math.sin(el_l)])
            lights.append(Light3D(kind, look_at(pos, target, 0.0).tolist(), kelvin_to_rgb(float(L.temperature.sample(looks))),
                                  float(inten.sample(looks))))
    ambient = float(L.ambient.sample(looks))

    B = spec.background
    mode = pick(looks, B.modes)
    if mode == "image":
        background = {"mode": "image", "asset": lib.backgrounds[int(looks.integers(len(lib.backgrounds)))],
                      "crop": [float(looks.random()), float(looks.random())]}
    elif mode == "ground":
        background = {"mode": "ground", "texture": lib.ground_textures[int(looks.integers(len(lib.ground_textures)))],
                      "sky": [float(v) for v in looks.uniform(0.4, 0.95, 3)]}
    else:
        background = {"mode": "color", "color": [float(v) for v in looks.uniform(0, 1, 3)]}
    image_seed = int(looks.integers(2**31)) if spec.augment.image else None
    return RenderScene(index, seed, (W, H), choose_split(spec.output.split, seed, index), camera, lights, ambient,
                       objects, background, image_seed, None if categories is None else list(categories), list(chosen))


def looks_jitter(rng: np.random.Generator, j: float) -> tuple[float, float]:
    return (float(rng.uniform(-j, j)), float(rng.uniform(-j, j))) if j > 0 else (0.0, 0.0)


def _place(rng: np.random.Generator, p, pts: np.ndarray, placed: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
    """A model-to-world pose that touches no object placed before, or None."""
    for _ in range(PLACE_ATTEMPTS):
        if p.mode == "on_ground":
            R = rot_z(rng.uniform(0, 2 * math.pi))
            if rng.random() >= p.upright:
                R = random_rotation(rng)
            q = pts @ R.T
            (x0, y0), (x1, y1) = p.area
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            centre_xy = (q[:, :2].max(0) + q[:, :2].min(0)) / 2
            radius = float(np.linalg.norm(q[:, :2] - centre_xy, axis=1).max())
            t = np.array([xy[0] - centre_xy[0], xy[1] - centre_xy[1], -q[:, 2].min()])  # rest at the lowest point
            centre = np.array([xy[0], xy[1], 0.0])
            overlap = any(math.hypot(centre[0] - c[0], centre[1] - c[1]) < radius + r for c, r in placed)
        else:
            R = random_rotation(rng)
            lo, hi = np.array(p.volume[0]), np.array(p.volume[1])
            t = rng.uniform(lo, hi)
            radius = float(np.linalg.norm(pts, axis=1).max())
            centre = t
            overlap = any(math.dist(centre, c) < radius + r for c, r in placed)
        if not overlap:
            placed.append((centre, radius))
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R, t
            return T
    return None


def _material(spec: RendererSpec, lib: MeshLibrary, rng: np.random.Generator, cat: str | None) -> dict[str, Any]:
    M = spec.materials
    modes = dict(M.modes) if cat is not None else {"color": M.modes.get("color", 1.0)}
    mode = pick(rng, modes) if sum(modes.values()) > 0 else "keep"
    mat: dict[str, Any] = {
        "mode": mode,
        "base_color": [float(v) for v in rng.uniform(0.05, 1.0, 3)] + [1.0],
        "metallic": float(M.metallic.sample(rng)),
        "roughness": float(M.roughness.sample(rng)),
    }
    if mode == "texture":
        if cat is not None and not lib.has_uv(cat):
            mat["mode"] = "color"  # no texture coordinates on this mesh: a random colour instead
        else:
            mat["texture"] = lib.textures[int(rng.integers(len(lib.textures)))]
    return mat
