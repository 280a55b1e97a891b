"""Memory of a run does not grow with N: peak RSS of ``--n 1000`` (to the end) against the RSS
of ``--n 10000000`` run for a minute (then stopped with Ctrl-C, as a user would), or, with
``--complete N``, of a run of N images to the very end (whole-dataset files assembled).

    python benchmarks/runs.py                      # workers 1, a 60 s large run
    python benchmarks/runs.py --workers 2 --seconds 60
    python benchmarks/runs.py --workers 2 --complete 1000000 --size 160x120 --work /var/tmp/bench

RSS is read from /proc every 0.2 s for the main process and, separately, the largest worker.
"Steady" is the mean over the last half of the large run. The demo spec, 640x480, COCO + YOLO,
written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenes" / "demo.yaml"


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """Resident memory (VmRSS), or its high-water mark so far (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def watch(n: int, workers: int, seconds: float | None, size: str | None = None, work: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        cmd = [sys.executable, "-m", "synthgen.cli", "generate", str(SPEC), "--n", str(n), "--out", str(Path(tmp) / "out"),
               "--workers", str(workers), "--formats", "coco,yolo"]
        if size:
            w, h = size.split("x")
            cmd += ["--set", f"output.size=[{w},{h}]"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.monotonic()
        samples: list[tuple[float, float, float]] = []
        hwm = {"main": 0.0, "worker": 0.0}
        while proc.poll() is None:
            t = time.monotonic() - t0
            kids = children(proc.pid)
            worker = max((rss_mib(c) for c in kids), default=0.0)
            samples.append((t, rss_mib(proc.pid), worker))
            hwm["main"] = max(hwm["main"], rss_mib(proc.pid, "VmHWM"))
            hwm["worker"] = max([hwm["worker"], *(rss_mib(c, "VmHWM") for c in kids)])
            if seconds is not None and t > seconds:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=60)
                break
            time.sleep(0.2)
        journal = Path(tmp) / "out" / ".synthgen" / "journal.jsonl"
        done = journal.read_bytes().count(b"\n") if journal.exists() else n
    half = [s for s in samples if s[0] >= samples[-1][0] / 2] or samples
    return {
        "images": done,
        "seconds": samples[-1][0] if samples else 0.0,
        "main_peak": max(hwm["main"], max(s[1] for s in samples)),
        "main_steady": sum(s[1] for s in half) / len(half),
        "worker_peak": max(hwm["worker"], max(s[2] for s in samples)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the 10,000,000-image run goes on")
    ap.add_argument("--complete", type=int, default=None, metavar="N", help="run N images to the end instead")
    ap.add_argument("--size", default=None, metavar="WxH", help="output size (default: the demo's 640x480)")
    ap.add_argument("--work", type=Path, default=None, help="where the outputs go (default: the system's temp folder)")
    args = ap.parse_args()
    small = watch(1000, args.workers, None, args.size, args.work)
    if args.complete:
        large, name = watch(args.complete, args.workers, None, args.size, args.work), f"--n {args.complete}"
    else:
        large, name = watch(10_000_000, args.workers, args.seconds, args.size, args.work), "--n 10000000"
    print(f"workers {args.workers}, size {args.size or '640x480'}")
    for label, r in (("--n 1000", small), (name, large)):
        print(f"{label:>14}: {r['images']:>7} images in {r['seconds']:7.1f} s; main RSS peak {r['main_peak']:6.1f} MiB, "
              f"steady {r['main_steady']:6.1f} MiB; largest worker peak {r['worker_peak']:6.1f} MiB", flush=True)
    print(f"peak difference: main {large['main_peak'] - small['main_peak']:+.1f} MiB, "
          f"worker {large['worker_peak'] - small['worker_peak']:+.1f} MiB")


if __name__ == "__main__":
    main()
