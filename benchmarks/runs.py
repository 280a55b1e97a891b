"""Memory of a run does not grow with N: peak RSS of ``--n 1000`` (to the end) against the RSS
of ``--n 10000000`` run for a minute (then stopped with Ctrl-C, as a user would).

    python benchmarks/runs.py                      # workers 1, a 60 s large run
    python benchmarks/runs.py --workers 2 --seconds 60

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


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
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


def watch(n: int, workers: int, seconds: float | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "synthgen.cli", "generate", str(SPEC), "--n", str(n), "--out", str(Path(tmp) / "out"),
               "--workers", str(workers), "--formats", "coco,yolo"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.monotonic()
        samples: list[tuple[float, float, float]] = []
        while proc.poll() is None:
            t = time.monotonic() - t0
            worker = max((rss_mib(c) for c in children(proc.pid)), default=0.0)
            samples.append((t, rss_mib(proc.pid), worker))
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
        "main_peak": max(s[1] for s in samples),
        "main_steady": sum(s[1] for s in half) / len(half),
        "worker_peak": max(s[2] for s in samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the 10,000,000-image run goes on")
    args = ap.parse_args()
    small = watch(1000, args.workers, None)
    large = watch(10_000_000, args.workers, args.seconds)
    print(f"workers {args.workers}")
    for name, r in (("--n 1000", small), ("--n 10000000", large)):
        print(f"{name:>14}: {r['images']:>6} images in {r['seconds']:5.1f} s; main RSS peak {r['main_peak']:6.1f} MiB, "
              f"steady {r['main_steady']:6.1f} MiB; largest worker peak {r['worker_peak']:6.1f} MiB")


if __name__ == "__main__":
    main()
