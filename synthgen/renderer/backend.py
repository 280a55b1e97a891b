"""The 3D backend: pyrender, offscreen through EGL (Mesa's software rasteriser on a CPU, the
GPU driver where there is one). Draws a planned RenderScene; draws no random numbers.

One OffscreenRenderer per process, shared by every backend in it (``gl.process_renderer``),
and one pyrender scene per backend, created on first use in the thread that renders (a GL
context does not survive fork; deleting one renderer ends EGL for all).
Meshes are uploaded once; per sample only poses, materials, lights and the camera change.

Passes per sample:
1. colour (RGBA: a background photo is composited with the render's own alpha; a solid
   colour or sky is the clear colour);
2. segmentation: every object, distractors and the ground plane included, in flat colours,
   so the instance map's occlusion is exact; depth comes from this pass too;
3. "alone" passes, only where needed: an object with something nearer showing inside its
   projected 3D box, or reaching the frame's edge, or whose amodal mask is asked for, is drawn
   alone in a viewport cropped (or grown) to that box; objects whose boxes are disjoint share
   a pass. An object that needs none is its own silhouette, whole and inside the frame. These
   give each object's own pixel count (visibility, truncation) and its amodal box and mask.

The GL plumbing (EGL, pyrender patches) is in ``gl.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Render
from .meshes import MeshLibrary
from .planning import RenderScene, primitive_mesh
from .gl import SHADOW_MAP, ids_from_seg, import_pyrender, ordered_light_scene, process_renderer

EXPOSURE_STEPS = 3  # most colour passes auto-exposure adds to a sample
GL_NEAREST, GL_CLAMP_TO_BORDER = 0x2600, 0x812D  # OpenGL enums (no GL import at module level)
CLIPPED = 250  # a channel at or above this (of 255) is clipped
# 3D box corners (model frame, unit cube) in the order written as keypoints, then the centre.
CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)] + [[0, 0, 0]], float)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes -> OpenCV camera axes


class RendererBackend:
    kind = "renderer"

    def __init__(self, lib: MeshLibrary):
        self.lib = lib
        self.spec = lib.spec
        from ..augment import Augmenter

        self.augmenter = Augmenter(self.spec)
        self._renderer = None
        self._slots: dict[str, list[Any]] = {}
        self._prims: dict[str, list[Any]] = {}
        self._textures: dict[str, Any] = {}

    # -- lazy GL state --------------------------------------------------------------------
    def _setup(self) -> None:
        if self._renderer is not None:
            return
        pyrender = import_pyrender()
        self._renderer = process_renderer(*self.spec.output.size)
        self.pr = pyrender
        self._label_pass = pyrender.RenderFlags.SEG | pyrender.RenderFlags.SKIP_CULL_FACES
        self.scene = ordered_light_scene(pyrender)(bg_color=[0, 0, 0, 0], ambient_light=[0.2, 0.2, 0.2])
        self.cam_node = self.scene.add(pyrender.IntrinsicsCamera(500, 500, 320, 240), pose=np.eye(4))
        import trimesh

        # The ground: one triangle covering [-1, 1]^2 (scaled by its pose), the texture laid once
        # over that square and repeated beyond it.
        plane = trimesh.Trimesh(vertices=[[-1, -1, 0], [3, -1, 0], [-1, 3, 0]], faces=[[0, 1, 2]], process=False)
        uv = np.array([[0, 0], [2, 0], [0, 2]], float)  # the [-1, 1]^2 square is the texture once
        self._plane_uv = uv
        plane.visual = trimesh.visual.TextureVisuals(uv=uv)
        self._plane_tm = plane
        self.ground = None
        self._grounds: dict[str, Any] = {}
        self._light_nodes: list[Any] = []
        self._light_pool: dict[str, list[Any]] = {}
        self.exposure_passes = 0  # colour passes auto-exposure added to the last sample

    def _plane(self, material):
        """The ground triangle as a pyrender Mesh holding ``material`` itself. (Mesh.from_trimesh
        deep-copies a material it is given, textures and their GL ids included.)"""
        tm = self._plane_tm
        prim = self.pr.Primitive(positions=tm.vertices, normals=np.tile([0.0, 0.0, 1.0], (3, 1)),
                                 texcoord_0=self._plane_uv, indices=tm.faces, material=material)
        return self.pr.Mesh([prim])

    def _texture(self, key: str):
        """A pyrender Texture for ``key``, made once and shared by every material that uses it."""
        t = self._textures.get(key)
        if t is None:
            t = self._textures[key] = self.pr.Texture(source=np.ascontiguousarray(self.lib.image(key)), source_channels="RGB")
        return t

    def _slot(self, category: str, i: int):
        slots = self._slots.setdefault(category, [])
        while len(slots) <= i:
            if not slots:
                source = self.lib.render_mesh(category)
                mesh = self.pr.Mesh.from_trimesh(source, smooth=self.spec.classes[category].shading != "flat")
                mtl = type(getattr(source.visual, "material", None)).__name__ == "SimpleMaterial"
                is_open = self.lib.is_open(category)
                ds = self.spec.materials.double_sided
                for p in mesh.primitives:
                    p.synthgen_open = is_open  # label passes draw both sides of open meshes (gl.py)
                    p.material.doubleSided = ds == "on" or (ds == "auto" and is_open)
                    if mtl:  # an OBJ's MTL has no metalness; pyrender's default of 1.0 renders it dark metal
                        p.material.metallicFactor = 0.0
            else:  # another instance: its own primitives (own material slot), shared textures
                mesh = self.pr.Mesh([self.pr.Primitive(positions=p.positions, normals=p.normals, texcoord_0=p.texcoord_0,
                                                       color_0=p.color_0, indices=p.indices, material=p.material, mode=p.mode)
                                     for p in slots[0][1].primitives])
                for p, first in zip(mesh.primitives, slots[0][1].primitives):
                    p.synthgen_open = first.synthgen_open
            originals = list(slots[0][2]) if slots else [p.material for p in mesh.primitives]

            node = self.scene.add(mesh, pose=np.eye(4))
            slots.append((node, mesh, originals))
        return slots[i]

    def _prim(self, kind: str, i: int):
        nodes = self._prims.setdefault(kind, [])
        while len(nodes) <= i:
            mesh = self.pr.Mesh.from_trimesh(primitive_mesh(kind), smooth=kind in ("sphere", "capsule"))
            nodes.append((self.scene.add(mesh, pose=np.eye(4)), mesh, [p.material for p in mesh.primitives]))
        return nodes[i]

    # -- one sample -------------------------------------------------------------------------
    def setup_scene(self, scene: RenderScene) -> list:
        """Pose, dress and light the pyrender scene for ``scene``; returns the object nodes."""
        self._setup()
        pr = self.pr
        W, H = scene.size
        for node in self.scene.mesh_nodes:
            node.mesh.is_visible = False
        used: dict[str, int] = {}
        nodes = []
        for obj in scene.objects:
            key = obj.category if obj.category is not None else obj.primitive
            i = used.get(key, 0)
            used[key] = i + 1
            node, mesh, originals = self._slot(obj.category, i) if obj.category is not None else self._prim(obj.primitive, i)
            mesh.is_visible = True
            pose = np.array(obj.pose, float)
            if obj.category is None:
                pose = pose @ np.diag([obj.size, obj.size, obj.size, 1.0])
            self.scene.set_pose(node, pose)
            self._apply_material(mesh, originals, obj.material)
            nodes.append(node)
        bg = scene.background
        self.ground = None
        if bg["mode"] == "ground":
            # One ground mesh per texture, made once and never changed; unused ones stay in the
            # scene, hidden.
            g = self._grounds.get(bg["texture"])
            if g is None:
                mat = pr.MetallicRoughnessMaterial(baseColorTexture=self._texture(bg["texture"]), metallicFactor=0.0, roughnessFactor=0.9)
                g = self._grounds[bg["texture"]] = self.scene.add(self._plane(mat), pose=np.diag([1.5, 1.5, 1.0, 1.0]))
                g.synthgen_ground = True
            self.ground = g
            g.mesh.is_visible = True
        # Lights come from a pool per kind, reused from sample to sample, so a light's shadow map
        # is made once (pyrender would make a 2048 x 2048 one for every new light).
        for ln in self._light_nodes:
            self.scene.remove_node(ln)
        self._light_nodes = []
        used: dict[str, int] = {}
        for li in scene.lights:
            pool = self._light_pool.setdefault(li.kind, [])
            i = used[li.kind] = used.get(li.kind, -1) + 1
            if len(pool) <= i:
                if li.kind == "directional":
                    light = pr.DirectionalLight()
                elif li.kind == "point":
                    light = pr.PointLight()
                else:
                    light = pr.SpotLight(innerConeAngle=0.3, outerConeAngle=0.7)
                if li.kind != "point":  # pyrender casts no shadows from point lights
                    light._generate_shadow_texture(size=SHADOW_MAP)
                    # beyond the (tight) shadow frustum: the border, depth 1.0, lit; pyrender's
                    # default wrap would repeat the objects' shadows across the ground
                    light.shadow_texture.sampler = pr.Sampler(magFilter=GL_NEAREST, minFilter=GL_NEAREST,
                                                              wrapS=GL_CLAMP_TO_BORDER, wrapT=GL_CLAMP_TO_BORDER)
                pool.append(pr.Node(light=light))
            node = pool[i]
            node.light.color, node.light.intensity = np.asarray(li.color, float), float(li.intensity)
            node.synthgen_order = len(self._light_nodes)
            self.scene.add_node(node)
            self.scene.set_pose(node, np.array(li.pose))
            self._light_nodes.append(node)
        self.scene.ambient_light = np.full(3, scene.ambient)
        # A solid colour or a sky behind a ground plane is the clear colour: the colour pass is
        # then the final image. Only a photo is composited afterwards, with the render's alpha.
        if bg["mode"] == "image":
            self.scene.bg_color = np.zeros(4)
        else:
            self.scene.bg_color = np.array([*(bg["color"] if bg["mode"] == "color" else bg["sky"]), 1.0])
        self.scene.set_pose(self.cam_node, np.array(scene.camera.pose, float))
        self._camera(*scene.camera.K, scene.camera, W, H)
        return nodes

    def render(self, scene: RenderScene, blend: str | None = None) -> Render:
        nodes = self.setup_scene(scene)
        W, H = scene.size
        bg = scene.background
        fx, fy, cx, cy = scene.camera.K
        cam_pose = np.array(scene.camera.pose, float)
        r = self._renderer
        ids_red = len(nodes) < 255
        r._renderer.synthgen_read = {"depth": False, "ids_red": ids_red}
        colour_pass = self.colour_flags(scene)
        color, _ = r.render(self.scene, flags=colour_pass)
        seg_map = {n: [(k + 1) & 255, (k + 1) >> 8, 0] for k, n in enumerate(nodes)}
        if self.ground is not None and self.ground.mesh.is_visible:
            seg_map[self.ground] = [0, 0, 0]  # occludes, owns nothing
        # Depth from the segmentation pass: no multisampling there, so a pixel's depth and its
        # owner in the instance map come from the same sample (its centre).
        r._renderer.synthgen_read = {"depth": True, "ids_red": ids_red}
        # Label passes draw every face whichever way it faces: an open mesh (a scan with holes, a
        # bowl, a single-sided plane) shows its inside or back, and those pixels are its own too.
        seg, depth = r.render(self.scene, flags=self._label_pass, seg_node_map=seg_map)
        r._renderer.synthgen_read = {"depth": False, "ids_red": ids_red}
        imap = ids_from_seg(seg)
        if self.spec.lights.exposure == "auto":
            color = self._expose(color, imap, scene, colour_pass)

        image = self._composite(color, bg, W, H) if bg["mode"] == "image" else np.ascontiguousarray(color[..., :3])
        k_n = len(scene.objects)
        world_to_cv = GL_TO_CV @ np.linalg.inv(cam_pose)
        Kmat = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        proj_boxes = np.zeros((k_n, 4))
        corners_cam = []
        for k, obj in enumerate(scene.objects):
            ext = self._extent(obj)
            pts = (np.array(obj.pose) @ np.c_[CORNERS * ext / 2, np.ones(9)].T).T
            cam = (world_to_cv @ pts.T).T[:, :3]
            corners_cam.append(cam)
            front = cam[:8, 2] > scene.camera.znear
            if not front.any():  # wholly behind the camera: it draws nowhere
                proj_boxes[k] = [0, 0, 0, 0]
            elif not front.all():  # across the camera plane: its projection is unbounded
                proj_boxes[k] = [-2, -2, W + 2, H + 2]
            else:
                uv = (Kmat @ (cam / cam[:, 2:3]).T).T[:, :2]
                proj_boxes[k] = [uv[:8, 0].min() - 2, uv[:8, 1].min() - 2, uv[:8, 0].max() + 3, uv[:8, 1].max() + 3]

        visible_counts = np.bincount(imap.ravel(), minlength=k_n + 1)[1:] if k_n else np.zeros(0, np.int64)
        own_area = visible_counts.astype(np.int64)
        inframe = own_area.copy()
        amodal_boxes = np.zeros((k_n, 4))
        amodal_masks: dict[int, tuple[np.ndarray, int, int]] = {}
        want_all = self.spec.placement.amodal_masks or "bop" in self.spec.output.formats
        labelled = [k for k, o in enumerate(scene.objects) if o.labelled]
        need = []
        under_ground = self.ground is not None and self.ground.mesh.is_visible and cam_pose[2, 3] < 0
        for k in labelled:
            # Anything covering part of k shows its own pixels inside k's projected box, so a box
            # holding only k and background means k is whole, unless it is cut by the frame.
            # Only pixels nearer than k's farthest corner can be covering k (exact-safe).
            b = regions_of(proj_boxes[k], W, H)
            if b[2] <= b[0] or b[3] <= b[1]:
                continue  # its box lies wholly outside the frame: nothing of it is visible
            window = imap[b[1] : b[3], b[0] : b[2]]
            far = corners_cam[k][:8, 2].max()
            other = (window != 0) & (window != k + 1)
            covered = bool(other.any() and (depth[b[1] : b[3], b[0] : b[2]][other] < far).any())
            mine = window == k + 1
            at_border = (b[0] == 0 and mine[:, 0].any()) or (b[1] == 0 and mine[0].any()) or \
                        (b[2] == W and mine[:, -1].any()) or (b[3] == H and mine[-1].any())
            if want_all or covered or at_border or under_ground:
                need.append(k)
            # else: visible = alone, nothing more to render
        for group in _disjoint_groups([proj_boxes[k] for k in need]):
            ks = [need[i] for i in group]
            x0 = int(math.floor(min(proj_boxes[k][0] for k in ks)))
            y0 = int(math.floor(min(proj_boxes[k][1] for k in ks)))
            x1 = int(math.ceil(max(proj_boxes[k][2] for k in ks)))
            y1 = int(math.ceil(max(proj_boxes[k][3] for k in ks)))
            x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
            alone = self._alone(nodes, ks, x0, y0, x1 - x0, y1 - y0, (fx, fy, cx, cy), scene.camera)
            # The window's part inside the frame, in window and in image coordinates.
            fx0, fy0 = max(0, -x0), max(0, -y0)
            fx1, fy1 = max(fx0, min(x1, W) - x0), max(fy0, min(y1, H) - y0)
            inside = np.s_[fy0:fy1, fx0:fx1]
            frame = np.s_[y0 + fy0 : y0 + fy1, x0 + fx0 : x0 + fx1]
            drawn = depth[frame] > 0
            for k in ks:
                m = alone == k + 1
                # The window's projection differs from the full frame's in float rounding, so a
                # pixel whose centre lies on an edge can fall differently in the two passes. In
                # the frame, the full segmentation pass has the last word: the object's own
                # pixels include its visible ones, and none where that pass drew nothing at all.
                m[inside] = (m[inside] & drawn) | (imap[frame] == k + 1)
                own_area[k] = int(m.sum())
                inframe[k] = int(m[inside].sum())
                amodal_masks[k] = (m, x0, y0)
        self._camera(fx, fy, cx, cy, scene.camera, W, H)  # back to the full frame

        regions = np.array([regions_of(proj_boxes[k], W, H) for k in range(k_n)], np.int64).reshape(k_n, 4)
        for k in labelled:
            if k not in amodal_masks:  # whole and unoccluded: the amodal mask is the visible one
                x0, y0, x1, y1 = regions[k]
                amodal_masks[k] = (imap[y0:y1, x0:x1] == k + 1, int(x0), int(y0))
            m, ox, oy = amodal_masks[k]
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            amodal_boxes[k] = (cols[0] + ox, rows[0] + oy, cols[-1] + 1 + ox, rows[-1] + 1 + oy) if len(rows) else (0, 0, 0, 0)

        if scene.image_augment_seed is not None and self.augmenter.image is not None:
            image = np.ascontiguousarray(self.augmenter.apply_image(image, scene.image_augment_seed))
        extras = {
            "depth": depth.astype(np.float32),
            "K": Kmat,
            "poses": [world_to_cv @ np.array(o.pose) for o in scene.objects],
            "corners": corners_cam,
            "amodal_boxes": amodal_boxes,
            "amodal_masks": amodal_masks,
            "want_amodal_masks": want_all,
        }
        return Render(image, imap, own_area, inframe, regions, extras)

    # -- helpers ----------------------------------------------------------------------------
    def _expose(self, color: np.ndarray, imap: np.ndarray, scene: RenderScene, flags: int) -> np.ndarray:
        """Auto-exposure, as a camera does: while some labelled object has more than
        ``lights.max_clipped`` of its visible pixels near white, dim every light and the ambient
        and draw the colour pass again (at most three times). A function of the render alone, so
        sample i stays a pure function of (spec, seed, i)."""
        labelled = np.array([k + 1 for k, o in enumerate(scene.objects) if o.labelled], np.int64)
        self.exposure_passes = 0
        if not len(labelled):
            return color
        for _ in range(EXPOSURE_STEPS):
            near_white = color[..., :3].max(axis=2) >= CLIPPED
            total = np.bincount(imap.ravel(), minlength=len(scene.objects) + 1)[labelled]
            hot = np.bincount(imap[near_white], minlength=len(scene.objects) + 1)[labelled]
            share = np.where(total >= 50, hot / np.maximum(total, 1), 0.0)
            worst = float(share.max())
            if worst <= self.spec.lights.max_clipped:
                break
            k = 0.6 if worst < 0.15 else 0.4
            for node in self._light_nodes:
                node.light.intensity *= k
            self.scene.ambient_light = self.scene.ambient_light * k
            color, _ = self._renderer.render(self.scene, flags=flags)
            self.exposure_passes += 1
        return color

    def colour_flags(self, scene: RenderScene) -> int:
        """The colour pass's pyrender flags for ``scene`` (shadows where the spec casts them)."""
        L, pr = self.spec.lights, self.pr
        flags = pr.RenderFlags.RGBA
        if L.shadows == "on" or (L.shadows == "auto" and scene.background["mode"] == "ground"):
            flags |= pr.RenderFlags.SHADOWS_DIRECTIONAL | pr.RenderFlags.SHADOWS_SPOT
        return flags

    def _extent(self, obj) -> np.ndarray:
        if obj.category is not None:
            return np.asarray(self.lib.mesh(obj.category).extents, float)
        return np.asarray(primitive_mesh(obj.primitive).extents, float) * obj.size

    def _camera(self, fx, fy, cx, cy, cam, w, h) -> None:
        # pyrender puts the principal point at cx in a frame whose pixel centres are at i + 0.5;
        # OpenCV's K has them at integers: shift by half a pixel.
        self.cam_node.camera = self.pr.IntrinsicsCamera(fx, fy, cx + 0.5, cy + 0.5, znear=cam.znear, zfar=cam.zfar)
        r = self._renderer
        if (r.viewport_width, r.viewport_height) != (w, h):
            r.viewport_width, r.viewport_height = w, h

    def _alone(self, nodes, ks, x0, y0, w, h, K, cam) -> np.ndarray:
        """Objects ``ks`` drawn without any other, in the window (x0, y0, w, h) of image pixels
        (which may reach outside the frame): (h, w) int32 of k + 1 / 0. A window larger than
        the GL limit is drawn in tiles."""
        fx, fy, cx, cy = K
        seg_map = {nodes[k]: [(k + 1) & 255, (k + 1) >> 8, 0] for k in ks}
        t = self._renderer._renderer.synthgen_window_limit or max(w, h)
        out = np.zeros((h, w), np.int32) if w > t or h > t else None
        for ty in range(0, h, t):
            for tx in range(0, w, t):
                tw, th = min(t, w - tx), min(t, h - ty)
                self._camera(fx, fy, cx - x0 - tx, cy - y0 - ty, cam, tw, th)
                seg, _ = self._renderer.render(self.scene, flags=self._label_pass, seg_node_map=seg_map)
                if out is None:
                    return ids_from_seg(seg)
                out[ty : ty + th, tx : tx + tw] = ids_from_seg(seg)
        return out

    def _apply_material(self, mesh, originals, mat: dict[str, Any]) -> None:
        if mat["mode"] == "keep":
            for p, m in zip(mesh.primitives, originals):
                p.material = m
            return
        ds = self.spec.materials.double_sided
        kwargs = {"metallicFactor": mat["metallic"], "roughnessFactor": mat["roughness"],
                  "doubleSided": ds == "on" or (ds == "auto" and getattr(mesh.primitives[0], "synthgen_open", False))}
        if mat["mode"] == "texture":
            new = self.pr.MetallicRoughnessMaterial(baseColorTexture=self._texture(mat["texture"]), **kwargs)
        else:
            new = self.pr.MetallicRoughnessMaterial(baseColorFactor=mat["base_color"], **kwargs)
        for p in mesh.primitives:
            p.material = new

    def _composite(self, rgba: np.ndarray, bg: dict[str, Any], W: int, H: int) -> np.ndarray:
        """The render over its background photo, with the render's own alpha."""
        import cv2

        back = np.ascontiguousarray(self._photo(bg["asset"], bg["crop"], W, H))
        # rgb + back * (1 - a): pyrender's colour over a transparent clear is premultiplied.
        inv = cv2.cvtColor(255 - rgba[..., 3], cv2.COLOR_GRAY2RGB)
        return cv2.add(np.ascontiguousarray(rgba[..., :3]), cv2.multiply(back, inv, scale=1.0 / 255.0))

    def _photo(self, key: str, crop, W: int, H: int) -> np.ndarray:
        from ..compositor.assets import crop_fitted

        return crop_fitted(self.lib.image(key, (W, H)), crop, (W, H))


def regions_of(box, W: int, H: int) -> tuple[int, int, int, int]:
    """A float xyxy box as whole pixels, clipped to the frame; empty (x1 = x0 or y1 = y0) when
    it lies wholly outside, on any side."""
    x0 = min(W, max(0, int(math.floor(box[0]))))
    y0 = min(H, max(0, int(math.floor(box[1]))))
    return x0, y0, max(x0, min(W, int(math.ceil(box[2])))), max(y0, min(H, int(math.ceil(box[3]))))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _disjoint_groups(boxes: list) -> list[list[int]]:
    """Greedy colouring: groups of indices whose boxes do not overlap one another."""
    groups: list[list[int]] = []
    for i, b in enumerate(boxes):
        for g in groups:
            if not any(_overlap(b, boxes[j]) for j in g):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


__all__ = ["RendererBackend"]
