"""Renderer throughput: labelled frames/s against bare pyrender on the same scenes.

    python benchmarks/renderer.py [--n 200] [--amodal-masks]

Setup: 640x480, 5 textured objects (duck, lemon, jenga, bread, milk) + 3 procedural
distractors, random lights, camera and backgrounds, single process. "Labelled" is a whole
sample: planning, colour + depth, the segmentation pass, the alone passes visibility and amodal
boxes need, annotation (visible box and mask, visibility, truncation, amodal box, pose,
keypoints). "Bare" is `OffscreenRenderer.render(scene)` as a user of pyrender would run it:
each sample's scene set up (untimed), then one render() with pyrender's own framebuffer read.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="samples to time")
    ap.add_argument("--amodal-masks", action="store_true", help="also an amodal mask for every object")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    settings = SETTINGS + (["placement.amodal_masks=true"] if args.amodal_masks else [])
    gen = Generator.from_yaml(SPEC, overrides=settings)
    for i in range(40):  # warm up: meshes loaded and uploaded, textures bound, instance slots made
        gen[i]
    be = gen.backend
    r = be._renderer
    fast_read = r._renderer._read_main_framebuffer

    # Blocks of 10 bare and 10 labelled samples, alternating, so that drift in the machine's
    # speed falls on both alike. Each uses scenes of its own (indices 1000+ and 50000+), each
    # scene rendered once: every render is the first of its scene, as in a real run.
    bare = labelled = 0.0
    objects = 0
    for block in range(0, args.n, 10):
        # bare: pyrender as a user would run it, one render() per newly set-up scene, with
        # pyrender's own framebuffer read
        del r._renderer._read_main_framebuffer
        saved = r._renderer.__dict__.pop("synthgen_read", None)
        for i in range(1000 + block, 1000 + block + 10):
            be.setup_scene(gen.plan(i))
            t0 = time.perf_counter()
            r.render(be.scene)
            bare += time.perf_counter() - t0
        r._renderer._read_main_framebuffer = fast_read
        if saved is not None:
            r._renderer.synthgen_read = saved
        # labelled: whole samples
        for i in range(50000 + block, 50000 + block + 10):
            t0 = time.perf_counter()
            s = gen[i]
            labelled += time.perf_counter() - t0
            objects += len(s.annotations)
    args.n = (args.n + 9) // 10 * 10

    res = {
        "labelled_frames_per_s": round(args.n / labelled, 2),
        "bare_pyrender_frames_per_s": round(args.n / bare, 2),
        "ratio": round(bare / labelled, 3),
        "labelled_objects_per_frame": round(objects / args.n, 2),
        "amodal_masks": args.amodal_masks,
        "machine": platform.processor() or platform.machine(),
    }
    print(f"bare pyrender render():  {res['bare_pyrender_frames_per_s']:7.2f} frames/s")
    print(f"synthgen, full labels:   {res['labelled_frames_per_s']:7.2f} frames/s = {res['ratio']:.0%} of bare "
          f"({res['labelled_objects_per_frame']} labelled objects per frame)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
