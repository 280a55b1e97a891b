"""Compositor throughput against the floor, worker scaling and peak memory.

    python benchmarks/compositor.py                 # throughput + workers (about two minutes)
    python benchmarks/compositor.py --memory        # also peak RSS at 1,000 vs 10,000 images

Also prints images/s per blend mode (none, gaussian, pyramid, poisson, motion).

Setup: the shipped demo spec (real BigBIRD cutouts and real photos), 640x480, 1-4 objects,
JPEG q95, COCO with compressed RLE, written to a temporary folder. The floor is what no
generator can beat on one core: decoding a background of the spec and encoding a JPEG of the
same size, per image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthgen import Generator  # noqa: E402

SPEC = ROOT / "scenes" / "demo.yaml"
SETTINGS = ["output.size=[640, 480]", "objects_per_image={int_uniform: [1, 4]}", "output.quality=95",
            "output.image_format=jpg", "output.formats=[coco]", "output.coco_segmentation=rle"]


def floor_rate(gen: Generator, n: int) -> float:
    files = [gen.library.base / b for b in gen.library.backgrounds]
    W, H = gen.spec.output.size
    t0 = time.perf_counter()
    for i in range(n):
        img = cv2.imread(str(files[i % len(files)]), cv2.IMREAD_COLOR)
        if img.shape[:2] != (H, W):
            img = cv2.resize(img, (W, H))
        cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return n / (time.perf_counter() - t0)


def generate_rate(gen: Generator, n: int, workers: int) -> tuple[float, float]:
    """(end-to-end images/s, steady-state images/s over the last 90% of images)."""
    marks: dict[int, float] = {}
    warm = n // 10

    def progress(images: int, _instances: int) -> None:
        if images == warm:
            marks["warm"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gen.generate(Path(tmp) / "out", n=n, workers=workers, progress=progress)
        t1 = time.perf_counter()
    return n / (t1 - t0), (n - warm) / (t1 - marks["warm"])


def peak_rss_mb(n: int) -> float:
    """Peak RSS of a fresh process that generates n images (MiB)."""
    code = (
        "import resource, sys, tempfile; sys.path.insert(0, %r)\n"
        "from synthgen import Generator\n"
        "gen = Generator.from_yaml(%r, overrides=%r)\n"
        "with tempfile.TemporaryDirectory() as t: gen.generate(t + '/out', n=%d)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    ) % (str(ROOT), str(SPEC), SETTINGS, n)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="images per timing run (worker start-up included)")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS at 1,000 and 10,000 images")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--blend-n", type=int, default=1000, help="images per blend-mode timing run")
    ap.add_argument("--no-blend", action="store_true", help="skip the per-blend-mode figures")
    args = ap.parse_args()

    gen = Generator.from_yaml(SPEC, overrides=SETTINGS)
    gen[0]  # decode the parent's assets once, as a long run would (workers decode their own)
    floor = max(floor_rate(gen, args.n) for _ in range(args.repeats))
    one, one_steady = max(generate_rate(gen, args.n, 1) for _ in range(args.repeats))
    two, two_steady = max(generate_rate(gen, args.n, 2) for _ in range(args.repeats))
    res = {
        "floor_images_per_s": round(floor, 1),
        "workers1_images_per_s": round(one, 1),
        "ratio_to_floor": round(one / floor, 3),
        "workers2_images_per_s": round(two, 1),
        "workers2_speedup": round(two / one, 2),
        "workers1_steady_images_per_s": round(one_steady, 1),
        "workers2_steady_images_per_s": round(two_steady, 1),
        "workers2_steady_speedup": round(two_steady / one_steady, 2),
    }
    print(f"floor (decode background + encode JPEG 640x480): {floor:8.1f} images/s")
    print(f"synthgen --workers 1 (full labels, COCO RLE):    {one:8.1f} images/s  = {one / floor:.0%} of the floor")
    print(f"synthgen --workers 2:                            {two:8.1f} images/s  = {two / one:.2f}x --workers 1 "
          "(end to end, worker start-up included)")
    print(f"steady state (last 90% of images): --workers 1 {one_steady:.1f}, --workers 2 {two_steady:.1f} images/s "
          f"= {two_steady / one_steady:.2f}x")
    if not args.no_blend:
        base = None
        print("per blend mode (--workers 1, every object in that mode):")
        for mode in ("none", "gaussian", "pyramid", "poisson", "motion"):
            g = Generator.from_yaml(SPEC, overrides=SETTINGS + [f"blend.modes={{{mode}: 1}}"])
            g[0]
            rate = max(generate_rate(g, args.blend_n, 1)[0] for _ in range(args.repeats))
            base = base or rate
            res[f"blend_{mode}_images_per_s"] = round(rate, 1)
            print(f"  {mode:9s} {rate:8.1f} images/s = {rate / base:.0%} of none")
    if args.memory:
        small, large = peak_rss_mb(1000), peak_rss_mb(10000)
        res.update(peak_rss_mb_1000=round(small, 1), peak_rss_mb_10000=round(large, 1))
        print(f"peak RSS, 1,000 images: {small:.0f} MiB; 10,000 images: {large:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
