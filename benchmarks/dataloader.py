"""synthgen in a training loop: DataLoader throughput, the loader's overhead, worker memory, and
the in-memory compositor against an earlier commit.

    python benchmarks/dataloader.py                       # loader figures (a few minutes)
    python benchmarks/dataloader.py --baseline REV        # also in-memory samples/s against REV
    python benchmarks/dataloader.py --memory              # also worker RSS at 1,000, 10,000 and 20,000 samples
    python benchmarks/dataloader.py --handoff             # also what 2 workers hand over at all (zero tensors)
    python benchmarks/dataloader.py --ceiling             # also two independent processes against one (one thread)
    python benchmarks/dataloader.py --in-turn             # also 2 workers sent batches in turn, as torch does

Loader figures: SynthDataset items (uint8 CHW image, boxes, labels, masks) per second through
torch's DataLoader (synthgen's collate; spawned workers for the renderer), with 0 and 2 workers,
for the compositor at 640x480 and 320x320 and the renderer at 320x320, and in the same run the
same items made in a plain loop (``dataset[i]``), so the loader's overhead is a ratio. Blocks of
each alternate, so drift in the machine's speed falls on all alike. Two regimes, each in a
process of its own: library threads as they come (OpenCV and Mesa's rasteriser use every core
from one process) and one thread per process (``cv2.setNumThreads(1)``, ``torch.set_num_threads(1)``,
``LP_NUM_THREADS=1``), where the loader's own scaling shows. Targets: 2 workers at least 1.8x 0
workers; loader overhead under 10%; worker memory flat over 10,000 samples.

``--ceiling``: also, in the one-thread regime and in the same alternating blocks, the same items
made by two independent processes (no DataLoader, no batches; each takes the next 8 items as
soon as it has made 8, as a balanced loader's workers do), against one process making all of
them: what two processes on this machine do at all, the ceiling for the 2-worker ratio.

The blocks of a round take turns in a new order every round (plain loop, 0 workers, 2 workers,
and with ``--ceiling`` one process and two), so none always runs first.

``--baseline REV``: samples/s of ``Generator[i]`` (the in-memory compositor, 640x480, demo spec)
for this tree and for REV (a git worktree made for the run), alternating processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _worktree import worktree  # noqa: E402  (benchmarks/, this script's folder)

DEMO = ROOT / "scenes" / "demo.yaml"
RENDER = ROOT / "scenes" / "demo-renderer.yaml"
CONFIGS = {
    "compositor 640x480": (DEMO, ["output.size=[640, 480]"]),
    "compositor 320x320": (DEMO, ["output.size=[320, 320]"]),
    "renderer 320x320": (RENDER, ["output.size=[320, 320]"]),
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


HELPER = r"""
import sys
sys.path.insert(0, {root!r})
import time
import cv2
import torch
cv2.setNumThreads(1)
torch.set_num_threads(1)
from synthgen import Generator
from synthgen.torch import SynthDataset
ds = SynthDataset(Generator.from_yaml({spec!r}, overrides={sets!r}), length={n})
for i in range(8):
    ds[i]
print("ready", flush=True)
for line in sys.stdin:  # "epoch start stop": make items start..stop-1 of that epoch
    epoch, start, stop = map(int, line.split())
    ds.set_epoch(epoch)
    for i in range(start, stop):
        ds[i]
    print("done", flush=True)
"""


class _Helpers:
    """Two processes (one thread each) that make the loader's items without a loader: the
    ceiling for what 2 workers can do on this machine."""

    def __init__(self, spec: Path, sets: list[str], n: int):
        code = HELPER.format(root=str(ROOT), spec=str(spec), sets=sets, n=n)
        env = {**os.environ, "LP_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.n = n
        self.procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                      for _ in range(2)]
        self._buffers = {p.pid: b"" for p in self.procs}
        for p in self.procs:
            self._expect(p, "ready")

    def _lines(self, p: Any) -> list[bytes]:
        """The whole lines helper ``p`` has written since last asked (waits for some output)."""
        got = os.read(p.stdout.fileno(), 65536)
        if not got:
            raise SystemExit(f"a ceiling helper ended (exit {p.wait()})")
        *lines, self._buffers[p.pid] = (self._buffers[p.pid] + got).split(b"\n")
        return [line.strip() for line in lines]

    def _expect(self, p: Any, word: str) -> None:
        """Wait for helper ``p`` to say ``word`` (anything a library prints is skipped)."""
        while word.encode() not in self._lines(p):
            pass

    @staticmethod
    def _send(p: Any, epoch: int, start: int, stop: int) -> None:
        p.stdin.write(f"{epoch} {start} {stop}\n".encode())
        p.stdin.flush()

    def one(self, epoch: int) -> float:
        """Seconds for one process to make all n items of ``epoch``."""
        t0 = time.perf_counter()
        self._send(self.procs[0], epoch, 0, self.n)
        self._expect(self.procs[0], "done")
        return time.perf_counter() - t0

    def two(self, epoch: int, chunk: int = 8) -> float:
        """Seconds for two processes side by side to make them, ``chunk`` items at a time, each
        taking the next chunk as soon as it has done one (two chunks ahead each, as loader workers
        have): which process makes what follows their speed, as in a balanced loader."""
        import selectors

        chunks = [(a, min(a + chunk, self.n)) for a in range(0, self.n, chunk)][::-1]
        ahead = dict.fromkeys(self.procs, 0)
        sel = selectors.DefaultSelector()
        for p in self.procs:
            sel.register(p.stdout.fileno(), selectors.EVENT_READ, p)
        t0 = time.perf_counter()
        for _ in range(2):
            for p in self.procs:
                if chunks:
                    self._send(p, epoch, *chunks.pop())
                    ahead[p] += 1
        while any(ahead.values()):
            for key, _ in sel.select():
                p = key.data
                for _ in range(self._lines(p).count(b"done")):
                    ahead[p] -= 1
                    if chunks:
                        self._send(p, epoch, *chunks.pop())
                        ahead[p] += 1
        sel.close()
        return time.perf_counter() - t0

    def close(self) -> None:
        for p in self.procs:
            p.stdin.close()
            p.wait()


def loader_figures(n: int, rounds: int, one_thread: bool, ceiling: bool = False, in_turn: bool = False) -> None:
    if one_thread:
        import cv2
        import torch

        cv2.setNumThreads(1)
        torch.set_num_threads(1)
    from synthgen import Generator
    from synthgen.torch import DataLoader, SynthDataset

    print("one thread per process:" if one_thread else "library threads as they come:")

    for name, (spec, sets) in CONFIGS.items():
        ds = SynthDataset(Generator.from_yaml(spec, overrides=sets), length=n)
        loaders: dict[Any, Any] = {w: DataLoader(ds, batch_size=8, num_workers=w, persistent_workers=w > 0) for w in (0, 2)}
        if in_turn:  # torch's own order: batch k to worker k mod 2
            loaders["turn"] = DataLoader(ds, batch_size=8, num_workers=2, persistent_workers=True, balance=False)
        ds.set_epoch(1000)
        for w, loader in loaders.items():  # warm up: workers started, assets decoded, GL and shaders made
            for _ in range(2):
                for _ in loader:
                    pass
        for i in range(n):
            ds[i]
        helpers = _Helpers(spec, sets, n) if ceiling else None
        blocks: list[Any] = ["plain", *loaders] + (["one", "two"] if helpers is not None else [])
        t: dict[Any, float] = dict.fromkeys(blocks, 0.0)
        per_round = []
        for r in range(rounds):
            ds.set_epoch(r + 1)  # new samples every round, the same for all
            this = {}
            for block in blocks[r % len(blocks):] + blocks[:r % len(blocks)]:
                t0 = time.perf_counter()
                if block == "plain":
                    for i in range(n):
                        ds[i]
                elif block in loaders:
                    for _ in loaders[block]:
                        pass
                else:
                    (helpers.one if block == "one" else helpers.two)(r + 1)
                this[block] = time.perf_counter() - t0
                t[block] += this[block]
            per_round.append(this)
        if helpers is not None:
            helpers.close()
        rate = {k: n * rounds / v for k, v in t.items() if v}
        print(f"  {name}: plain loop {rate['plain']:6.1f}/s, DataLoader 0 workers {rate[0]:6.1f}/s "
              f"(overhead {rate['plain'] / rate[0] - 1:+.1%}), 2 workers {rate[2]:6.1f}/s = {rate[2] / rate[0]:.2f}x 0 workers "
              f"(median of rounds {statistics.median(x[0] / x[2] for x in per_round):.2f}x)")
        if in_turn:
            print(f"    2 workers in turn (torch's order, balance=False): {rate['turn']:6.1f}/s = {rate['turn'] / rate[0]:.2f}x 0 workers; "
                  "per round, balanced / in turn: " + ", ".join(f"{x[0] / x[2]:.2f} / {x[0] / x['turn']:.2f}" for x in per_round))
        if helpers is not None:
            print(f"    ceiling: two independent processes {rate['two']:6.1f}/s = {rate['two'] / rate['one']:.2f}x one "
                  f"({rate['one']:.1f}/s; median of rounds {statistics.median(x['one'] / x['two'] for x in per_round):.2f}x); 2 workers reach {(rate[2] / rate[0]) / (rate['two'] / rate['one']):.0%} of it")
            print("    per round, 2 workers / 0 workers; two processes / one: "
                  + ", ".join(f"{x[0] / x[2]:.2f}; {x['one'] / x['two']:.2f}" for x in per_round))


def memory(samples: tuple[int, ...]) -> None:
    from synthgen import Generator
    from synthgen.torch import DataLoader, SynthDataset

    ds = SynthDataset(Generator.from_yaml(DEMO, overrides=["output.size=[320, 320]"]), length=max(samples))
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    it = iter(loader)
    seen = 0
    pids = [w.pid for w in it._workers]
    for _ in it:
        seen += 8
        if seen in samples:
            print(f"after {seen:6d} samples: worker RSS {', '.join(f'{rss_mib(p):.1f}' for p in pids)} MiB; "
                  f"main {rss_mib(os.getpid()):.1f} MiB")


class _Zeros:
    """Items that cost nothing to make, the size of a 640x480 sample with 5 objects (about 1.7 MB)."""

    def __len__(self) -> int:
        return 960

    def __getitem__(self, i: int):
        import torch

        return torch.zeros(3, 480, 640, dtype=torch.uint8), {
            "boxes": torch.zeros(5, 4), "labels": torch.zeros(5, dtype=torch.int64), "masks": torch.zeros(5, 480, 640, dtype=torch.uint8),
            "area": torch.zeros(5), "iscrowd": torch.zeros(5, dtype=torch.int64), "image_id": i}


def _as_tuples(batch):
    return tuple(zip(*batch))


def handoff(rounds: int) -> None:
    """What a 2-worker loader can hand over at all: zero tensors the size of a 640x480 sample,
    through torch's DataLoader with tuples (torch shares each tensor itself), with synthgen's
    ``collate`` (one new segment a batch), and through synthgen's DataLoader (segments reused)."""
    import torch

    from synthgen.torch import DataLoader, collate

    torch.set_num_threads(1)
    loaders = {
        "torch's DataLoader, tuples (a segment per tensor)": torch.utils.data.DataLoader(
            _Zeros(), batch_size=8, num_workers=2, persistent_workers=True, collate_fn=_as_tuples),
        "torch's DataLoader, synthgen's collate (a new segment a batch)": torch.utils.data.DataLoader(
            _Zeros(), batch_size=8, num_workers=2, persistent_workers=True, collate_fn=collate),
        "synthgen's DataLoader (segments reused)": DataLoader(_Zeros(), batch_size=8, num_workers=2, persistent_workers=True),
    }
    for loader in loaders.values():
        for _ in loader:
            pass
    t = dict.fromkeys(loaders, 0.0)
    for _ in range(rounds):
        for name, loader in loaders.items():
            t0 = time.perf_counter()
            for _ in loader:
                pass
            t[name] += time.perf_counter() - t0
    print("zero tensors of a 640x480 sample's size through 2 workers:")
    for name, secs in t.items():
        print(f"  {name}: {960 * rounds / secs:7.1f} items/s")


IN_MEMORY = r"""
import sys, time
sys.path.insert(0, {tree!r})
from synthgen import Generator
gen = Generator.from_yaml({spec!r}, overrides=["output.size=[640, 480]"])
for i in range(40): gen[i]
t = time.perf_counter()
for i in range(1000, 1000 + {n}): gen[i]
print({n} / (time.perf_counter() - t))
"""


def against(rev: str, n: int, rounds: int) -> None:
    with worktree(rev) as base:
        rates: dict[str, list[float]] = {"this tree": [], rev: []}
        for _ in range(rounds):
            for name, tree in (("this tree", ROOT), (rev, base)):
                code = IN_MEMORY.format(tree=str(tree), spec=str(tree / "scenes" / "demo.yaml"), n=n)
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=base.parent,
                                   env={**os.environ, "PYTHONPATH": str(tree)})
                if r.returncode:
                    raise SystemExit(r.stderr[-2000:])
                rates[name].append(float(r.stdout.split()[-1]))
        now, then = max(rates["this tree"]), max(rates[rev])
        print(f"in-memory compositor 640x480: this tree {now:.1f} samples/s, {rev} {then:.1f} samples/s "
              f"= {now / then:.2f}x (best of {rounds}: {rates})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=160, help="samples per round and configuration")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a git revision to compare the in-memory compositor with")
    ap.add_argument("--memory", action="store_true", help="worker RSS at 1,000, 10,000 and 20,000 samples")
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--handoff", action="store_true", help="also what 2 workers can hand over at all (zero tensors)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also the same items from two independent processes against one (one-thread regime)")
    ap.add_argument("--in-turn", action="store_true",
                    help="also 2 workers sent batches in turn (torch's order, balance=False) against balanced ones")
    ap.add_argument("--regime", choices=["default", "one-thread"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.regime:  # a child: one regime, in a process of its own
        loader_figures(args.n, args.rounds, args.regime == "one-thread", args.ceiling, args.in_turn)
        return
    if args.baseline:
        against(args.baseline, 400, args.rounds)
    if not args.skip_loader:
        for regime in ("default", "one-thread"):
            env = {**os.environ, **({"LP_NUM_THREADS": "1"} if regime == "one-thread" else {})}
            subprocess.run([sys.executable, __file__, "--regime", regime, "--n", str(args.n), "--rounds", str(args.rounds),
                            *(["--ceiling"] if args.ceiling and regime == "one-thread" else []),
                            *(["--in-turn"] if args.in_turn else [])], check=True, env=env)
    if args.handoff:
        handoff(args.rounds)
    if args.memory:
        memory((1000, 10000, 20000))


if __name__ == "__main__":
    main()
