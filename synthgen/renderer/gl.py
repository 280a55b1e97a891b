"""pyrender and EGL plumbing for the renderer backend.

pyrender 0.1.45 (pinned) is used through one OffscreenRenderer per process; ``tune_renderer``
replaces some of its internals on that instance: texture upload alignment, where segmentation
passes draw, the framebuffer read, the mesh-node sort and uniform lookups (each explained where
it is defined). ``ordered_light_scene`` gives lights to the shader in a fixed order.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import numpy as np

from ..errors import SynthgenError

SHADOW_MAP = 1024  # shadow map side, texels; the shadow frustum holds just the objects (Scene.bounds)

GL_HINT = (
    "synthgen's renderer needs OpenGL through EGL (PYOPENGL_PLATFORM=egl). On a CPU machine install "
    "Mesa's EGL and software rasteriser (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri; "
    "Fedora: dnf install mesa-libEGL mesa-dri-drivers); on a GPU machine, the vendor's driver with EGL."
)


def import_pyrender():
    """pyrender, imported for headless EGL rendering (call before anything imports OpenGL)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    if not hasattr(np, "infty"):  # pyrender 0.1.45 uses np.infty, gone in NumPy 2
        np.infty = np.inf
    import pyrender

    return pyrender



_RENDERERS: dict[int, object] = {}  # pid -> this process's OffscreenRenderer


# Installed with torch's CUDA builds, triton carries an LLVM of its own; loaded into a process
# where Mesa's software rasteriser has loaded the system's LLVM, it crashes the process
# (segmentation fault: seen with torch 2.14.1, triton 3.8.0, rendering a sample and then
# importing torchvision). Loaded before, both work.
OWN_LLVM = ("triton",)


def _load_own_llvm_first() -> None:
    for name in OWN_LLVM:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a broken install of it is not the renderer's concern
                pass


def process_renderer(width: int, height: int):
    """This process's one OffscreenRenderer, made (and tuned) on first use.

    Every backend in the process shares it: deleting an OffscreenRenderer terminates EGL for all
    of them, so a generator that was dropped would break the others. A backend sets the
    viewport it needs before each pass. Keyed by process id: a forked child never uses its
    parent's context (workers are spawned anyway)."""
    r = _RENDERERS.get(os.getpid())
    if r is None:
        parents = [pid for pid in _RENDERERS if pid != os.getpid()]
        if parents:  # inherited memory: this process was forked from one that holds a context
            raise SynthgenError(
                f"this process was forked from process {parents[0]}, which holds an OpenGL context; an EGL context "
                "made after such a fork hangs. Start worker processes with spawn: DataLoader(..., "
                "multiprocessing_context='spawn') or synthgen.torch.DataLoader, which does; or render nothing "
                "in the main process before the workers start")
        _load_own_llvm_first()
        try:
            pyrender = import_pyrender()
            r = pyrender.OffscreenRenderer(width, height)
        except Exception as e:  # noqa: BLE001 - EGL/GL failures come in many types
            raise SynthgenError(f"cannot start offscreen OpenGL: {type(e).__name__}: {e}\n{GL_HINT}") from None
        tune_renderer(r._renderer)
        _RENDERERS[os.getpid()] = r
    return r


def tune_renderer(renderer) -> None:
    """Replace some of pyrender 0.1.45's internals on this renderer instance (the version is
    pinned): the pixel alignment of texture uploads, where segmentation passes draw, the
    framebuffer read, the mesh-node sort and uniform location lookups.

    Segmentation passes (flat colours, multisampling off) draw into a single-sample framebuffer
    of synthgen's own, which only ever grows; pyrender's would draw them into its 4x
    multisampled one and resolve it, and re-create both of its framebuffers whenever the
    viewport changes size (every cropped "alone" pass, and back). With multisampling off every
    sample of a pixel holds the same value, so the pixels are the same; only the work is not.
    The colour pass keeps pyrender's multisampled framebuffer, always at the frame's size.

    pyrender's read gets back and linearises depth on every pass, with boolean indexing. Here
    the caller says what each pass needs (``renderer.synthgen_read``): depth only from the full
    segmentation pass, ids from the red channel alone when they fit, and depth linearised in one
    vectorised expression. Without that attribute it reads what pyrender's own read does.
    """
    import sys

    from OpenGL.GL import GL_SCISSOR_TEST, GL_UNPACK_ALIGNMENT, glDisable, glPixelStorei
    from pyrender.constants import RenderFlags

    # Back faces lit from their own side: pyrender's shader keeps the normal of a face seen from
    # behind, so the inside of an open mesh would be lit as if it faced away.
    renderer._program_cache.shader_dir = _shaders_with_two_sided_lighting()

    upload = renderer._update_context

    def update_context(scene, flags):
        # Rows of pixel data handed to GL are tightly packed (numpy). GL's default unpack
        # alignment is 4: a texture whose row is not a multiple of 4 bytes (an RGB image 854
        # wide, say) was uploaded skewed row by row and read past the end of its data.
        glPixelStorei(GL_UNPACK_ALIGNMENT, 1)
        # Every render starts unscissored: a cropped segmentation pass leaves its scissor on, and
        # the shadow pass that may come first would clear only part of its shadow map, keeping
        # depth from earlier samples (pixels would then depend on what the process drew before).
        glDisable(GL_SCISSOR_TEST)
        return upload(scene, flags)

    renderer._update_context = update_context

    # pyrender sets the shadow pass's viewport to its constant, whatever size the light's shadow
    # map has: the backend makes them SHADOW_MAP texels a side, so the constant must agree.
    import pyrender.renderer as pyrender_renderer

    pyrender_renderer.SHADOW_TEX_SZ = SHADOW_MAP

    # pyrender's segmentation branch enables back-face culling whatever the flags say; a pass that
    # asks for SKIP_CULL_FACES (synthgen's label passes) must see both sides of open meshes.
    from OpenGL.GL import GL_CULL_FACE

    gl_enable = pyrender_renderer.glEnable
    renderer.synthgen_no_cull = False

    def enable(cap):
        if cap == GL_CULL_FACE and renderer.synthgen_no_cull:
            return
        gl_enable(cap)

    pyrender_renderer.glEnable = enable
    draw_primitive = renderer._bind_and_draw_primitive

    def bind_and_draw_primitive(primitive, pose, program, flags):
        # Per primitive: only an open mesh (``synthgen_open``) can show a back face; culling the
        # back faces of a closed one changes no pixel and halves the work.
        renderer.synthgen_no_cull = bool(flags & RenderFlags.SKIP_CULL_FACES) and getattr(primitive, "synthgen_open", False)
        return draw_primitive(primitive, pose, program, flags)

    renderer._bind_and_draw_primitive = bind_and_draw_primitive

    # The largest window side a plain segmentation pass takes (known after the first pass);
    # callers draw larger windows in tiles.
    renderer.synthgen_window_limit = None
    if sys.platform != "darwin":  # pyrender resizes framebuffers for retina there; keep its own
        _tune_passes(renderer)



def _tune_passes(renderer) -> None:
    """Single-sample segmentation passes, the framebuffer read, the node sort and uniform
    lookups (see ``tune_renderer``)."""
    from OpenGL.GL import (GL_COLOR_ATTACHMENT0, GL_COLOR_BUFFER_BIT, GL_DEPTH_ATTACHMENT, GL_DEPTH_BUFFER_BIT,
                           GL_DEPTH_COMPONENT, GL_DEPTH_COMPONENT24, GL_DEPTH_TEST, GL_DRAW_FRAMEBUFFER, GL_FLOAT,
                           GL_FRAMEBUFFER, GL_LESS, GL_LINEAR, GL_MAX_RENDERBUFFER_SIZE, GL_MAX_VIEWPORT_DIMS, GL_NEAREST,
                           GL_READ_FRAMEBUFFER, GL_RED, GL_RENDERBUFFER, GL_RGB, GL_RGBA, GL_RGBA8, GL_SCISSOR_TEST,
                           GL_TRUE, GL_UNSIGNED_BYTE, glBindFramebuffer,
                           glBindRenderbuffer, glBlitFramebuffer, glDeleteFramebuffers,
                           glDeleteRenderbuffers, glDepthFunc, glDepthMask, glDepthRange, glDisable, glEnable,
                           glFramebufferRenderbuffer, glGenFramebuffers, glGenRenderbuffers, glGetIntegerv,
                           glReadPixels, glRenderbufferStorage, glScissor, glViewport)
    from pyrender.constants import RenderFlags

    plain = {"fb": None, "rbs": None, "size": (0, 0), "on": False}

    def bind_plain(w: int, h: int) -> None:
        cw, ch = plain["size"]
        if w > cw or h > ch:  # grow (never shrink): one allocation for the largest window seen
            if plain["fb"] is not None:
                glDeleteFramebuffers(1, [plain["fb"]])
                glDeleteRenderbuffers(2, plain["rbs"])
            cw, ch = max(w, cw), max(h, ch)
            cb, db = glGenRenderbuffers(2)
            glBindRenderbuffer(GL_RENDERBUFFER, cb)
            glRenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8, cw, ch)
            glBindRenderbuffer(GL_RENDERBUFFER, db)
            glRenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT24, cw, ch)
            fb = glGenFramebuffers(1)
            glBindFramebuffer(GL_FRAMEBUFFER, fb)
            glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, cb)
            glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, db)
            plain.update(fb=fb, rbs=[cb, db], size=(cw, ch))
        glBindFramebuffer(GL_DRAW_FRAMEBUFFER, plain["fb"])

    configure = renderer._configure_forward_pass_viewport

    def configure_viewport(flags):
        if renderer.synthgen_window_limit is None:  # first pass: the context is current now
            vp = np.asarray(glGetIntegerv(GL_MAX_VIEWPORT_DIMS)).ravel()
            renderer.synthgen_window_limit = int(min(int(glGetIntegerv(GL_MAX_RENDERBUFFER_SIZE)), vp.min(), 4096))
        w, h = renderer.viewport_width, renderer.viewport_height
        plain["on"] = bool(flags & RenderFlags.SEG and flags & RenderFlags.OFFSCREEN) and max(w, h) <= renderer.synthgen_window_limit
        if not plain["on"]:
            glDisable(GL_SCISSOR_TEST)
            return configure(flags)
        bind_plain(w, h)
        glViewport(0, 0, w, h)
        glEnable(GL_SCISSOR_TEST)  # the clear that follows touches only the window
        glScissor(0, 0, w, h)
        glEnable(GL_DEPTH_TEST)
        glDepthMask(GL_TRUE)
        glDepthFunc(GL_LESS)
        glDepthRange(0.0, 1.0)

    renderer._configure_forward_pass_viewport = configure_viewport

    def sorted_mesh_nodes(scene):
        # pyrender's own sorts every mesh node by distance, computing a world pose for each, on
        # every pass. Hidden nodes (unused instance slots, other grounds) are never drawn:
        # leaving them out keeps the draw order of the rest and skips their poses.
        cam = scene.get_pose(scene.main_camera_node)[:3, 3]
        solid, trans = [], []
        for node in scene.mesh_nodes:
            if node.mesh.is_visible:
                (trans if node.mesh.is_transparent else solid).append(node)
        key = lambda n: -np.linalg.norm(scene.get_pose(n)[:3, 3] - cam)  # noqa: E731
        return sorted(solid, key=key) + sorted(trans, key=key)

    renderer._sorted_mesh_nodes = sorted_mesh_nodes

    def read(scene, flags):
        want = getattr(renderer, "synthgen_read", {"depth": True, "ids_red": False})
        if plain["on"]:  # drawn single-sample: read it as it is
            width, height = renderer.viewport_width, renderer.viewport_height
            glBindFramebuffer(GL_READ_FRAMEBUFFER, plain["fb"])
        else:
            width, height = renderer._main_fb_dims
            glBindFramebuffer(GL_READ_FRAMEBUFFER, renderer._main_fb_ms)
            glBindFramebuffer(GL_DRAW_FRAMEBUFFER, renderer._main_fb)
            glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL_COLOR_BUFFER_BIT, GL_LINEAR)
            if want["depth"]:
                glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL_DEPTH_BUFFER_BIT, GL_NEAREST)
            glBindFramebuffer(GL_READ_FRAMEBUFFER, renderer._main_fb)
        depth = None
        if want["depth"]:
            d = np.frombuffer(glReadPixels(0, 0, width, height, GL_DEPTH_COMPONENT, GL_FLOAT), np.float32).reshape(height, width)[::-1]
            n, f = scene.main_camera_node.camera.znear, scene.main_camera_node.camera.zfar
            with np.errstate(divide="ignore"):
                depth = np.where(d >= 1.0, 0.0, (2.0 * n * f) / (f + n - (2.0 * d - 1.0) * (f - n))).astype(np.float32)
            if flags & RenderFlags.DEPTH_ONLY:
                return depth
        if flags & RenderFlags.SEG and want["ids_red"]:  # ids fit the red channel
            red = np.frombuffer(glReadPixels(0, 0, width, height, GL_RED, GL_UNSIGNED_BYTE), np.uint8).reshape(height, width)[::-1]
            return red[..., None], depth
        fmt, ch = (GL_RGBA, 4) if flags & RenderFlags.RGBA else (GL_RGB, 3)
        color = np.frombuffer(glReadPixels(0, 0, width, height, fmt, GL_UNSIGNED_BYTE), np.uint8).reshape(height, width, ch)[::-1]
        return color, depth

    renderer._read_main_framebuffer = read

    # Uniform locations looked up once per program, not on every set_uniform call.
    cache = renderer._program_cache
    get_program = cache.get_program

    def get_program_cached(*args, **kwargs):
        program = get_program(*args, **kwargs)
        if "set_uniform" not in program.__dict__:
            program.set_uniform = _set_uniform_cached(program)
        return program

    cache.get_program = get_program_cached


def _shaders_with_two_sided_lighting() -> str:
    """A copy of pyrender's shader folder (made once per process, removed at exit) whose
    fragment shader turns the normal of a back face towards the viewer, and filters shadows with
    one bilinear tap instead of nine (a 3 x 3 texel kernel adds no visible softness with the
    tight shadow frustum synthgen gives, and on a CPU the 36 lookups per fragment per light were
    most of a shadowed frame)."""
    import atexit
    import shutil
    import tempfile

    import pyrender

    src = os.path.join(os.path.dirname(pyrender.__file__), "shaders")
    dst = tempfile.mkdtemp(prefix="synthgen-shaders-")
    atexit.register(shutil.rmtree, dst, True)
    for name in os.listdir(src):
        shutil.copy(os.path.join(src, name), dst)
    anchor = "    vec3 n = normalize(get_normal());\n"
    with open(os.path.join(src, "mesh.frag")) as f:
        frag = f.read()
    pcf = "float PCF(sampler2D depths, vec2 size, vec2 uv, float compare){\n"
    if anchor not in frag or pcf not in frag:  # pyrender is pinned; a different one must be looked at again
        raise SynthgenError("pyrender's mesh.frag is not the one synthgen was made for (pyrender==0.1.45)")
    frag = frag.replace(anchor, anchor + "    if (!gl_FrontFacing) n = -n;\n")
    frag = frag.replace(pcf, pcf + "    return texture2DShadowLerp(depths, size, uv, compare);\n")
    with open(os.path.join(dst, "mesh.frag"), "w") as f:
        f.write(frag)
    return dst


def ordered_light_scene(pyrender):
    """A pyrender Scene class whose lights come out in the plan's order (each light node carries
    ``synthgen_order``, set by the backend when it adds the light), and whose bounds are those of
    the objects drawn.

    pyrender keeps lights in sets of nodes hashed by memory address, so the order in which they
    fill the shader's light arrays, and with it the float rounding of the light sum, could
    change from one process to the next."""

    class Scene(pyrender.Scene):
        @property
        def light_nodes(self):
            nodes = self.point_light_nodes | self.spot_light_nodes | self.directional_light_nodes
            return sorted(nodes, key=lambda n: n.synthgen_order)

        @property
        def bounds(self):
            # The objects drawn, not hidden instance slots or the ground plane: pyrender sizes a
            # directional light's shadow frustum by these bounds, so shadow maps stay sharp.
            corners = []
            for node in self.mesh_nodes:
                if node.mesh.is_visible and not getattr(node, "synthgen_ground", False):
                    pose = self.get_pose(node)
                    lo, hi = node.mesh.bounds
                    c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
                    corners.append(c @ pose[:3, :3].T + pose[:3, 3])
            if not corners:
                return np.zeros((2, 3))
            allc = np.vstack(corners)
            return np.array([allc.min(axis=0), allc.max(axis=0)])

    return Scene


def _set_uniform_cached(program):
    """pyrender's ``ShaderProgram.set_uniform`` for ``program``, with the uniform locations it
    looks up on every call (a GL round trip through PyOpenGL) kept per name. Same calls, same
    conversions, same silence about unknown names."""
    from OpenGL.GL import GL_TRUE, glGetUniformLocation, glUniform1f, glUniform1i, glUniform1ui

    funcs = program._FUNC_MAP
    locs: dict[str, int] = {}

    def set_uniform(name, value, unsigned=False):
        try:
            loc = locs.get(name)
            if loc is None:
                loc = locs[name] = glGetUniformLocation(program._program_id, name)
            if loc == -1:
                return
            if isinstance(value, np.ndarray):
                if value.ndim == 1:
                    kind = value.dtype.kind
                    if kind == "u" or unsigned:
                        funcs[(value.shape[0], "u")](loc, 1, value.astype(np.uint32))
                    elif kind == "i":
                        funcs[(value.shape[0], "i")](loc, 1, value.astype(np.int32))
                    else:
                        funcs[(value.shape[0], "f")](loc, 1, value.astype(np.float32))
                else:
                    funcs[(value.shape[0], value.shape[1])](loc, 1, GL_TRUE, value)
            elif isinstance(value, float):
                glUniform1f(loc, value)
            elif isinstance(value, int):
                (glUniform1ui if unsigned else glUniform1i)(loc, int(value))
        except Exception:  # noqa: BLE001 - pyrender's own swallows every error here
            pass

    return set_uniform


def ids_from_seg(seg: np.ndarray) -> np.ndarray:
    """Object ids (k + 1) from a segmentation read-back: red = low byte, green = high byte."""
    ids = seg[..., 0].astype(np.int32)
    if seg.shape[2] > 1:
        ids += seg[..., 1].astype(np.int32) << 8
    return ids
