"""What ``minnet.load`` costs: a real model against ``safetensors.numpy.load_file``, and the
crafted files it refuses.

    python benchmarks/load_bench.py [--repeat N] [--processes N]

Method: every measurement runs in a fresh interpreter (``load_bench.py --child``, started by a
shell that forks it, so that its ``ru_maxrss`` starts from its own size, not this process's),
which imports minnet and numpy, reads its peak resident memory (``VmHWM`` and ``ru_maxrss``),
loads the file once (``first``), and reads the peaks again: the differences are the load's
extra peak memory. It then loads once more under ``tracemalloc`` (the peak of the bytes
allocated, whether or not the system has given them pages yet), and times ``--repeat`` more
loads in the same process (``repeat``: their median). Each figure is the median over
``--processes`` children, the two loaders' children alternating.

1. A 784-1024-1024-10 ReLU net (1.86 M float64 weights, 14.2 MiB): the time and extra peak
   memory of ``minnet.load`` against ``safetensors.numpy.load_file`` reading the same file (the
   goals: 1.5x its time, 1.3x the weights). ``minnet.load`` reads each tensor once, into the
   model's flat storage (``minnet._fast``); that storage holds the gradients too, zeros the
   system gives pages only when they are written (by the first backward): ``tracemalloc`` counts
   them, the resident peaks do not. ``load_file``'s resident peak counts the file's pages it maps.
2. Each crafted file of ``tests/crafted.py`` (``HUGE``): the time to refuse it and the extra
   peak memory, against the goal of 50 ms and 20 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
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


def maxrss_mb() -> float:
    """This process's ``ru_maxrss`` in MiB (kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    before, maxrss_before = peak_mb(), maxrss_mb()
    start = time.perf_counter()
    kept = run()
    first = time.perf_counter() - start
    extra, maxrss_extra = peak_mb() - before, maxrss_mb() - maxrss_before
    del kept
    tracemalloc.start()
    kept = run()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    del kept
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times) if times else first
    figures = {"first_ms": 1000 * first, "ms": 1000 * median, "peak_mb": extra}
    print(json.dumps({**figures, "maxrss_mb": maxrss_extra, "traced_mb": traced}))


def run_child(kind: str, path: Path, repeat: int) -> dict[str, float]:
    """``child(kind, path)``'s figures, from a fresh interpreter that a shell forks (a process
    exec'd straight from this one would inherit this one's ``ru_maxrss``)."""
    command = [sys.executable, __file__, "--child", kind, str(path), "--repeat", str(repeat)]
    shell = f"{shlex.join(command)}; exit $?"
    output = subprocess.run(["sh", "-c", shell], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def measure(kind: str, path: Path, repeat: int, processes: int) -> dict[str, float]:
    """Median over ``processes`` fresh interpreters of ``child(kind, path)``'s figures."""
    return median([run_child(kind, path, repeat) for _ in range(processes)])


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
        runs: dict[str, list] = {"numpy": [], "minnet": []}
        for _ in range(args.processes):  # the two alternate
            for kind, found in runs.items():
                found.append(run_child(kind, path, args.repeat))
        numpy, ours = median(runs["numpy"]), median(runs["minnet"])
        columns = ("first_ms", "ms", "peak_mb", "maxrss_mb", "traced_mb")
        heads = ("first (ms)", "repeat (ms)", "VmHWM (MB)", "maxrss (MB)", "traced (MB)")
        print(f"{'':24}" + "".join(f"{head:>13}" for head in heads))
        for name, row in [("load_file (the arrays)", numpy), ("minnet.load", ours)]:
            print(f"{name:24}" + "".join(f"{row[key]:13.1f}" for key in columns))
        ratios = [ours[key] / max(numpy[key], 1e-9) for key in columns]
        print(f"{'minnet / load_file':24}" + "".join(f"{ratio:12.2f}x" for ratio in ratios))
        per_weight = [ours[key] / weights_mb for key in columns[2:]]
        print(f"{'minnet / the weights':50}" + "".join(f"{ratio:12.2f}x" for ratio in per_weight))
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
