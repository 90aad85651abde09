"""What ``minnet.load`` costs: a real model against ``safetensors.numpy.load_file``, and the
crafted files it refuses.

    python benchmarks/load_bench.py [--repeat N] [--processes N]

Method: every measurement runs in a fresh interpreter (``load_bench.py --child``), which imports
minnet and numpy, reads its peak resident memory (``VmHWM``), loads the file once, and reads
the peak again: the difference is the load's extra peak memory. It then times ``--repeat`` more
loads and reports the median. Each figure below is the median over ``--processes`` children.

1. A 784-1024-1024-10 ReLU net (1.86 M float64 weights, 14.9 MB): the time and extra peak
   memory of ``minnet.load`` against ``safetensors.numpy.load_file`` reading the same file (both
   as ratios; the goals are 1.5x the time and 1.3x the weights). ``minnet.load`` keeps a model's
   values and its gradients (the flat storage of ``minnet._fast`` holds both), so 2x the weights
   is its floor; ``load_file`` holds the values only.
2. Each crafted file of ``tests/crafted.py`` (``HUGE``): the time to refuse it and the extra
   peak memory, against the goal of 50 ms and 20 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GOAL_MS, GOAL_MB = 50.0, 20.0


def peak_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, so a child started by
    a large parent would report the parent's size as its own starting peak.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(kind: str, path: str, repeat: int) -> None:
    """Run in a fresh interpreter: one measured load, then ``repeat`` timed ones; print JSON."""

    import safetensors.numpy

    import minnet

    def numpy_load() -> dict:
        return safetensors.numpy.load_file(path)

    def minnet_load() -> object:
        return minnet.load(path)

    def refused() -> None:
        try:
            minnet.load(path)
        except ValueError:
            return
        raise AssertionError(f"{path} was not refused")

    run = {"numpy": numpy_load, "minnet": minnet_load, "refused": refused}[kind]
    before = peak_mb()
    start = time.perf_counter()
    kept = run()
    first = time.perf_counter() - start
    extra = peak_mb() - before
    del kept
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times) if times else first
    print(json.dumps({"first_ms": 1000 * first, "ms": 1000 * median, "peak_mb": extra}))


def measure(kind: str, path: Path, repeat: int, processes: int) -> dict[str, float]:
    """Median over ``processes`` fresh interpreters of ``child(kind, path)``'s figures."""
    runs = []
    for _ in range(processes):
        command = [sys.executable, __file__, "--child", kind, str(path), "--repeat", str(repeat)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def real_model(folder: Path) -> tuple[Path, float]:
    import numpy as np

    import minnet

    rng = np.random.default_rng(0)
    sizes = [784, 1024, 1024, 10]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [minnet.Linear(n_in, n_out, rng=rng), minnet.ReLU()]
    model = minnet.Sequential(layers[:-1], loss=minnet.CrossEntropyLoss())
    weights_mb = sum(p.value.nbytes for p in model.parameters()) / 2**20
    return model.save(folder / "mlp"), weights_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed loads per process")
    parser.add_argument("--processes", type=int, default=3, help="processes per figure")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.repeat)
        return

    import crafted

    with tempfile.TemporaryDirectory() as folder:
        path, weights_mb = real_model(Path(folder))
        print(
            f"784-1024-1024-10 model: {weights_mb:.1f} MB of float64 weights, file "
            f"{path.stat().st_size / 2**20:.1f} MB"
        )
        numpy = measure("numpy", path, args.repeat, args.processes)
        ours = measure("minnet", path, args.repeat, args.processes)
        print(f"{'':24}{'time (ms)':>12}{'first (ms)':>12}{'peak (MB)':>12}{'peak/weights':>14}")
        for name, row in [("load_file (the arrays)", numpy), ("minnet.load", ours)]:
            print(
                f"{name:24}{row['ms']:12.1f}{row['first_ms']:12.1f}{row['peak_mb']:12.1f}"
                f"{row['peak_mb'] / weights_mb:14.2f}"
            )
        print(
            f"{'minnet / load_file':24}{ours['ms'] / numpy['ms']:11.2f}x"
            f"{ours['first_ms'] / numpy['first_ms']:11.2f}x"
            f"{ours['peak_mb'] / max(numpy['peak_mb'], 1e-9):11.2f}x"
        )
        print()
        print(f"crafted files (goal: refused in < {GOAL_MS:.0f} ms and < {GOAL_MB:.0f} MB)")
        print(f"{'file':36}{'size (KB)':>11}{'time (ms)':>11}{'first (ms)':>12}{'peak (MB)':>11}")
        met = 0
        for name, make in crafted.HUGE.items():
            file = make(Path(folder) / f"{name}.safetensors")
            row = measure("refused", file, args.repeat, args.processes)
            ok = row["first_ms"] < GOAL_MS and row["peak_mb"] < GOAL_MB
            met += ok
            print(
                f"{name:36}{file.stat().st_size / 1024:11.1f}{row['ms']:11.2f}"
                f"{row['first_ms']:12.2f}{row['peak_mb']:11.2f}  {'met' if ok else 'NOT MET'}"
            )
            file.unlink()
        print(f"goals met: {met}/{len(crafted.HUGE)}")


if __name__ == "__main__":
    main()
