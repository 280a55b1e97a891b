"""How long ``synthgen report`` takes on a 10,000-image dataset, and the memory ``synthgen
validate`` needs for a COCO file of about 100,000 annotations against one ten times smaller.

    python benchmarks/report.py                       # 10,000 images, about 10 objects each
    python benchmarks/report.py --images 2000 --work /tmp/bench-inspect
    python benchmarks/report.py --baseline REV         # also each command with REV's tree, in turn

The dataset is made once with the demo spec (320x240, 8-12 objects per image, COCO + YOLO,
two workers) and kept in --work for later runs. Each command runs in its own process; its
wall time and peak RSS (``ru_maxrss`` of the child) are printed.

``--baseline REV``: each command also runs with REV's synthgen (a git worktree), the two taking
turns ``--rounds`` times, and the medians are printed with their ratio: what a change costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenes" / "demo.yaml"
sys.path.insert(0, str(ROOT))

from _worktree import worktree  # noqa: E402  (benchmarks/, this script's folder)


def run(args: list[str], tree: Path = ROOT) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit code) of ``python -m synthgen.cli ARGS`` in a fresh process,
    with the synthgen of ``tree``."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode)")
    env = {**os.environ, "PYTHONPATH": str(tree)}  # run in the tree: ``-m`` puts the working folder first
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "synthgen.cli", *args],
                         capture_output=True, text=True, check=True, env=env, cwd=tree).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def compare(label: str, args: list[str], base: Path, rounds: int) -> None:
    """``args`` with this tree and with ``base``'s, in turn, ``rounds`` times: medians and ratio."""
    times: dict[str, list[float]] = {"this": [], "base": []}
    for r in range(rounds):
        for name in (("this", "base") if r % 2 == 0 else ("base", "this")):
            s, _, rc = run(args, ROOT if name == "this" else base)
            if rc != 0 and not (rc == 1 and args[0] == "validate"):
                raise SystemExit(f"{label}: exit {rc} with the {name} tree")
            times[name].append(s)
    a, b = statistics.median(times["this"]), statistics.median(times["base"])
    print(f"{label:26s} this {a:6.2f} s   baseline {b:6.2f} s   {a / b:5.2f}x   (medians of {rounds})", flush=True)


def make(work: Path, images: int) -> Path:
    ds = work / f"ds{images}"
    if (ds / "dataset.json").is_file():
        return ds
    spec = yaml.safe_load(SPEC.read_text())
    spec["backgrounds"]["paths"] = [str((SPEC.parent / p).resolve()) for p in spec["backgrounds"]["paths"]]
    for c in spec["classes"].values():
        c["source"] = str((SPEC.parent / c["source"]).resolve())
    spec["output"].update(size=[320, 240], formats=["coco", "yolo"])
    spec["objects_per_image"] = {"int_uniform": [8, 12]}
    spec["placement"]["min_visibility"] = 0.1
    work.mkdir(parents=True, exist_ok=True)
    f = work / "spec.yaml"
    f.write_text(yaml.safe_dump(spec))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "synthgen.cli", "generate", str(f), "--n", str(images), "--out", str(ds),
                    "--workers", "2", "--resume"], check=True, stdout=subprocess.DEVNULL)  # --resume: a make cut short goes on
    print(f"made {ds} ({images} images) in {time.perf_counter() - t:.0f} s", flush=True)
    return ds


def shrink(ds: Path, keep: int, dst: Path) -> Path:
    """One COCO file with the first ``keep`` images of ``ds``'s train split (images left where they are)."""
    coco = json.loads((ds / "annotations" / "instances_train.json").read_text())
    coco["images"] = coco["images"][:keep]
    ids = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    dst.write_text(json.dumps(coco))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthgen-bench-inspect"))
    ap.add_argument("--baseline", metavar="REV", help="also run each command with this commit's synthgen, in turn")
    ap.add_argument("--rounds", type=int, default=3, help="--baseline: runs of each command per tree")
    a = ap.parse_args()
    ds = make(a.work, a.images)
    if a.baseline:
        train = ds / "annotations" / "instances_train.json"
        with worktree(a.baseline) as base:
            for label, args in (("report (COCO)", ["report", str(ds), "--out", str(a.work / "report.html")]),
                                ("report (YOLO)", ["report", str(ds), "--format", "yolo", "--out", str(a.work / "report-yolo.html")]),
                                ("validate, the whole file", ["validate", str(train), "--images", str(ds / "images" / "train")])):
                compare(label, args, base, a.rounds)
        return
    total = sum(len(json.loads(f.read_text())["annotations"]) for f in (ds / "annotations").glob("*.json"))
    print(f"dataset: {a.images} images, {total} annotations")
    for label, args in (("report (COCO)", ["report", str(ds), "--out", str(a.work / "report.html")]),
                        ("report (YOLO)", ["report", str(ds), "--format", "yolo", "--out", str(a.work / "report-yolo.html")]),
                        ("report --real (itself)", ["report", str(ds), "--real", str(ds), "--out", str(a.work / "report-real.html")])):
        s, rss, rc = run(args)
        size = (a.work / args[args.index("--out") + 1].rsplit("/", 1)[-1]).stat().st_size / 2**20
        print(f"{label:26s} {s:6.1f} s   peak RSS {rss:6.0f} MiB   {size:.1f} MiB html   exit {rc}", flush=True)
    train = ds / "annotations" / "instances_train.json"
    n_train = len(json.loads(train.read_text())["images"])
    images_dir = ds / "images" / "train"
    small = shrink(ds, max(1, n_train // 10), a.work / "small.json")
    for label, f in (("validate, 1/10 of the file", small), ("validate, the whole file", train)):
        n = len(json.loads(f.read_text())["annotations"])
        s, rss, rc = run(["validate", str(f), "--images", str(images_dir)])
        print(f"{label:26s} {s:6.1f} s   peak RSS {rss:6.0f} MiB   {n} annotations, {f.stat().st_size / 2**20:.1f} MiB json   exit {rc}",
              flush=True)


if __name__ == "__main__":
    main()
