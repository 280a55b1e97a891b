"""Renderer throughput: labelled frames/s against bare pyrender on the same scenes.

    python benchmarks/renderer.py [--n 200] [--amodal-masks]

Two configurations in one run, interleaved: labels alone (shadows and auto-exposure off: the
labelling's own cost against bare pyrender) and the default looks (shadows on ground-plane
scenes, auto-exposure) against bare pyrender with the same shadows.

Setup: 640x480, 5 textured objects (duck, lemon, jenga, bread, milk) + 3 procedural
distractors, random lights, camera and backgrounds, single process. "Labelled" is a whole
sample: planning, colour + depth, the segmentation pass, the alone passes visibility and amodal
boxes need, annotation (visible box and mask, visibility, truncation, amodal box, pose,
keypoints), with the default looks: shadows on ground-plane scenes and auto-exposure, which
draws the colour pass again when an object would clip (counted and reported). "Bare" is
`OffscreenRenderer.render(scene)` as a user of pyrender would run it: each sample's scene set up
(untimed), then one render() with pyrender's own framebuffer read, with the same shadow flags.
Bare keeps synthgen's other speed-ups to pyrender (uniform locations cached, hidden nodes left
out of the sort), which makes it faster than stock pyrender: the ratio is conservative.
The two alternate in blocks of 10 samples, each on scenes of its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthgen import Generator  # noqa: E402

SPEC = ROOT / "scenes" / "demo-renderer.yaml"
SETTINGS = [
    "output.size=[640, 480]",
    "output.formats=[coco]",
    "objects_per_image=5",
    "distractors.count=3",
    "materials.modes={keep: 1}",
    "classes={duck: {mesh: ../assets/meshes/duck/duck.obj, size: 0.12}, lemon: {mesh: ../assets/meshes/lemon/lemon.obj, size: 0.08},"
    " jenga: {mesh: ../assets/meshes/jenga/jenga.obj, size: 0.1}, bread: {mesh: ../assets/meshes/bread/bread.obj, size: 0.12},"
    " milk: {mesh: ../assets/meshes/milk/milk.obj, size: 0.16}}",
]


def run_block(gen: Generator, start: int, n: int, bare: bool) -> tuple[float, int, int]:
    """Seconds for n samples (bare: one pyrender render() per newly set-up scene), labelled
    objects, extra exposure passes."""
    be = gen.backend
    r = be._renderer
    seconds, objects, exposure = 0.0, 0, 0
    if bare:  # pyrender as a user would run it, with its own framebuffer read
        fast_read = r._renderer._read_main_framebuffer
        del r._renderer._read_main_framebuffer
        saved = r._renderer.__dict__.pop("synthgen_read", None)
        for i in range(start, start + n):
            plan = gen.plan(i)
            be.setup_scene(plan)
            flags = be.colour_flags(plan)  # the same shadows as the labelled colour pass
            t0 = time.perf_counter()
            r.render(be.scene, flags=flags)
            seconds += time.perf_counter() - t0
        r._renderer._read_main_framebuffer = fast_read
        if saved is not None:
            r._renderer.synthgen_read = saved
        return seconds, 0, 0
    for i in range(start, start + n):
        t0 = time.perf_counter()
        s = gen[i]
        seconds += time.perf_counter() - t0
        objects += len(s.annotations)
        exposure += be.exposure_passes
    return seconds, objects, exposure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="samples to time per configuration")
    ap.add_argument("--amodal-masks", action="store_true", help="also an amodal mask for every object")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = SETTINGS + (["placement.amodal_masks=true"] if args.amodal_masks else [])
    gens = {"labels": Generator.from_yaml(SPEC, overrides=settings + ["lights.shadows=off", "lights.exposure=off"]),
            "looks": Generator.from_yaml(SPEC, overrides=settings)}
    # warm up: meshes loaded and uploaded, textures bound, instance slots made, and the shader
    # variants compiled (Mesa compiles one per light and texture layout, a third of a second each)
    for g in gens.values():
        for i in range(120):
            g[i]
    # Blocks of 10 samples, bare and labelled for each configuration in turn, so that drift in
    # the machine's speed falls on all alike; each on scenes of its own, rendered once.
    t = {(k, b): 0.0 for k in gens for b in (True, False)}
    objects = exposure = 0
    for block in range(0, args.n, 10):
        for k, g in gens.items():
            for bare, base in ((True, 1000), (False, 50000)):
                sec, obj, exp = run_block(g, base + block, 10, bare)
                t[(k, bare)] += sec
                if k == "looks" and not bare:
                    objects, exposure = objects + obj, exposure + exp
    n = (args.n + 9) // 10 * 10
    res = {
        "labels_frames_per_s": round(n / t[("labels", False)], 2),
        "bare_frames_per_s": round(n / t[("labels", True)], 2),
        "labels_ratio": round(t[("labels", True)] / t[("labels", False)], 3),
        "looks_frames_per_s": round(n / t[("looks", False)], 2),
        "bare_with_shadows_frames_per_s": round(n / t[("looks", True)], 2),
        "looks_ratio": round(t[("looks", True)] / t[("looks", False)], 3),
        "labelled_objects_per_frame": round(objects / n, 2),
        "exposure_passes_per_frame": round(exposure / n, 3),
        "amodal_masks": args.amodal_masks,
        "machine": platform.processor() or platform.machine(),
    }
    print(f"bare pyrender render():                     {res['bare_frames_per_s']:7.2f} frames/s")
    print(f"synthgen, full labels (shadows, exposure off): {res['labels_frames_per_s']:7.2f} frames/s = {res['labels_ratio']:.0%} of bare")
    print(f"bare pyrender render(), shadows on ground:  {res['bare_with_shadows_frames_per_s']:7.2f} frames/s")
    print(f"synthgen, full labels, default looks:       {res['looks_frames_per_s']:7.2f} frames/s = {res['looks_ratio']:.0%} of bare "
          f"({res['labelled_objects_per_frame']} labelled objects per frame; auto-exposure drew {res['exposure_passes_per_frame']} "
          "extra colour passes per frame)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
