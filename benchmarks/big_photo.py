"""Reading a big photo: peak memory and time of ``read_image`` on a 108-megapixel JPEG.

    python benchmarks/big_photo.py                    # this tree
    python benchmarks/big_photo.py --baseline REV     # also REV (a git worktree made for the run)

The photo is a real one (scikit-image's astronaut, from ../shared/data) scaled to 12000x9000, as
a 108-megapixel phone camera makes, saved as a JPEG in a temporary folder. Each read is in a
fresh process; its peak is VmHWM (that process's own high-water mark of resident memory) less
what it held before reading, also as a multiple of the pixels read (the array's bytes). Trees
alternate, best of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
from _worktree import worktree  # benchmarks/, this script's folder

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "backgrounds" / "skimage-astronaut.jpg"

READ = r"""
import sys, time
sys.path.insert(0, {tree!r})
from synthgen.sources import read_image

def hwm():
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

before = hwm()
t = time.perf_counter()
a = read_image({path!r}, "RGB")
print(time.perf_counter() - t, hwm() - before, a.nbytes)
"""


def read_once(tree: Path, path: Path) -> tuple[float, int, int]:
    r = subprocess.run([sys.executable, "-c", READ.format(tree=str(tree), path=str(path))], capture_output=True,
                       text=True, cwd=tree)
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    secs, peak, nbytes = r.stdout.split()
    return float(secs), int(peak), int(nbytes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="a git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        photo = Path(tmp) / "photo.jpg"
        src = cv2.imread(str(PHOTO))
        if src is None:
            raise SystemExit(f"{PHOTO} is missing (the shared data folder)")
        cv2.imwrite(str(photo), cv2.resize(src, (12000, 9000), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92])
        trees = {"this tree": ROOT}
        if args.baseline:
            trees[args.baseline] = stack.enter_context(worktree(args.baseline))
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                secs, peak, nbytes = read_once(tree, photo)
                old = best.get(name)
                best[name] = (min(secs, old[0]) if old else secs, min(peak, old[1]) if old else peak, nbytes)
        print(f"12000x9000 JPEG ({photo.stat().st_size / 2**20:.1f} MiB file, {best['this tree'][2] / 2**20:.0f} MiB of pixels), "
              f"best of {args.rounds}:")
        for name, (secs, peak, nbytes) in best.items():
            print(f"  {name}: {secs:.2f} s, peak {peak / 2**20:,.0f} MiB = {peak / nbytes:.2f}x the pixels")

if __name__ == "__main__":
    main()
