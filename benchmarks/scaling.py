"""Images/s with one local worker, two local workers, and Ray actors on a local Ray of 2 CPUs.

    python benchmarks/scaling.py                     # demo spec, 640x480, 3,000 images a run, 2 rounds
    python benchmarks/scaling.py --n 2000 --rounds 3
    python benchmarks/scaling.py --n 4000 --rounds 3 --work /dev/shm   # outputs on tmpfs

Each run is a fresh process (the CLI's own code path: Generator.generate), writing COCO + YOLO to
a folder of its own under ``--work`` (default: the system's temporary folder). Outputs are
deleted only when every run is over: on ext4, files made soon after thousands were deleted cost
the kernel far more (its inode allocator skips recently deleted inodes one by one: 14-20% of a
worker's time, measured with perf), which would fall on whichever run came next. The configurations take turns, round by round, so drift in the machine's
speed falls on all alike; the median over rounds is reported. "End to end" counts start-up (spawning
workers, starting Ray and its actors) and closing (the whole-dataset files, stopping the workers,
shutting down the Ray it started); "steady" is the rate from the first 10% of the images to the
last; "close" is the seconds from the last image to the run's end.

It also measures the driver's own work per image (journaling a finished task's part lines and
journal line, counting it), the ceiling on images/s one driver can take from any number of
workers or actors, with real part lines of the demo spec.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenes" / "demo.yaml"

CHILD = r"""
import json, sys, time
from synthgen import Generator
n, workers, backend, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
gen = Generator.from_yaml(sys.argv[5], overrides=["output.formats=[coco,yolo]"])
gen.check()
marks = {}
def progress(images, instances):
    now = time.perf_counter()
    if images >= n // 10 and "tenth" not in marks:
        marks["tenth"] = (now, images)
    marks["last"] = now
t0 = time.perf_counter()
if __name__ == "__main__":
    gen.generate(out, n=n, workers=workers, backend=backend, progress=progress)
    t1 = time.perf_counter()
    ta, ia = marks["tenth"]
    print(json.dumps({"end_to_end": n / (t1 - t0), "steady": (n - ia) / (marks["last"] - ta), "close_s": t1 - marks["last"]}))
"""

CONFIGS = [("local, 1 worker", 1, "local"), ("local, 2 workers", 2, "local"), ("Ray, 2 actors", 2, "ray")]


def run(n: int, workers: int, backend: str, work: Path) -> dict[str, float]:
    script = work / "child.py"
    script.write_text(CHILD)
    out = work / f"out-{len(list(work.glob('out-*')))}"
    p = subprocess.run([sys.executable, str(script), str(n), str(workers), backend, str(out), str(SPEC)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def driver_capacity(samples: int = 200, passes: int = 25) -> float:
    """Images/s one driver can journal and count, whatever makes them."""
    import time

    from synthgen import Generator
    from synthgen.runs.files import OutputFolder
    from synthgen.runs.journal import Journal
    from synthgen.runs.pool import produce
    from synthgen.runs.stats import RunStats
    from synthgen.writers import make_writers

    gen = Generator.from_yaml(SPEC, overrides=["output.formats=[coco,yolo,webdataset]"])
    with tempfile.TemporaryDirectory() as tmp:
        made = OutputFolder(Path(tmp) / "made")
        made.meta.mkdir(parents=True)
        writers = make_writers(gen.spec)
        results = [produce(gen, writers, made, (i, None)) for i in range(samples)]
        folder = OutputFolder(Path(tmp) / "driver")
        folder.meta.mkdir(parents=True)
        journal, stats = Journal(folder), RunStats(gen.spec)
        t0 = time.perf_counter()
        for p in range(passes):
            for i, r in enumerate(results):
                lines = [x for _, _, parts in r.images for x in parts]
                journal.commit({"i": p * samples + i, "v": [[s, labels] for s, labels, _ in r.images], "n": r.notes}, lines)
                stats.add(r)
        dt = time.perf_counter() - t0
        journal.close()
    return samples * passes / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", help="where the runs write (a folder made inside it, deleted at the end)")
    a = ap.parse_args()
    got: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        for r in range(a.rounds):
            for name, workers, backend in CONFIGS:
                got[name].append(run(a.n, workers, backend, Path(tmp)))
                print(f"round {r + 1}: {name}: {got[name][-1]['end_to_end']:.1f} images/s end to end, "
                      f"{got[name][-1]['steady']:.1f} steady, closed in {got[name][-1]['close_s']:.2f} s", flush=True)
    print(f"driver: journals and counts {driver_capacity():.0f} images/s (the most one driver takes in)", flush=True)
    med = {name: {k: statistics.median(x[k] for x in rs) for k in ("end_to_end", "steady", "close_s")} for name, rs in got.items()}
    one = med["local, 1 worker"]
    print(f"\n{a.n} images a run, median of {a.rounds} rounds")
    print(f"{'':18s} {'end to end':>12s} {'x one':>7s} {'steady':>10s} {'x one':>7s} {'close':>7s}")
    for name, m in med.items():
        print(f"{name:18s} {m['end_to_end']:10.1f}/s {m['end_to_end'] / one['end_to_end']:6.2f}x "
              f"{m['steady']:8.1f}/s {m['steady'] / one['steady']:6.2f}x {m['close_s']:6.2f}s")


if __name__ == "__main__":
    main()
