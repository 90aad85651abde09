"""The small-net training step against the hand-written numpy step, in one process.

    python benchmarks/step_ab.py [ROOT ...] [--rounds N]

For each minnet checkout ROOT (default: this one), in its own interpreter, the step of
``cases.minnet_step`` and ``cases.NumpyStep`` (and the softmax net's, ``cases.softmax_step``)
run in alternating chunks of 200 steps (50 for the softmax net), so that
both see the same load; the figure is the median of the per-round ratios (minnet / numpy). On a
shared machine, whose load moves the absolute times by 2x, the ratio is what holds; give several
ROOTs (a baseline first) to compare versions, and run it twice, alternating.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = (("4-5-3-1", 3), ("2-16-16-1", 64))
SOFTMAX_CASES = (("64-128-10", 32),)


def chunk(step, n: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e6


def measure(root: Path, rounds: int) -> None:
    """In this interpreter: the ratio for each case and dtype of checkout ``root``, printed."""
    sys.path[:0] = [str(root), str(root / "benchmarks")]
    import cases  # benchmarks/cases.py of that checkout

    import minnet

    assert minnet.__file__.startswith(str(root)), minnet.__file__

    for dtype in ("float64", "float32"):
        for net, batch in CASES:
            X, Y, weights = cases.cast(*cases.make_case(net, batch), dtype)
            ours, _ = cases.minnet_step(X, Y, weights, dtype)
            floor, _ = cases.numpy_step(X, Y, weights, dtype)
            for _ in range(300):  # warm up both
                ours()
                floor()
            ratios = []
            for _ in range(rounds):
                ratios.append(chunk(ours) / chunk(floor))
            print(f"  {dtype} {net} b{batch}: {statistics.median(ratios):.2f}x numpy", flush=True)
    # the softmax net with CrossEntropyLoss and Adam, as run.py's softmax row (float64)
    for net, batch in SOFTMAX_CASES:
        ours, _ = cases.softmax_step("minnet", net, batch, "float64")
        floor, _ = cases.softmax_step("numpy", net, batch, "float64")
        for _ in range(300):
            ours()
            floor()
        ratios = [chunk(ours, 50) / chunk(floor, 50) for _ in range(rounds)]
        print(f"  float64 softmax {net} b{batch}: {statistics.median(ratios):.2f}x numpy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[HERE.parent])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child, args.rounds)
        return
    for root in args.roots:
        print(f"{root.resolve()}:", flush=True)
        command = [sys.executable, __file__, "--child", str(root.resolve())]
        subprocess.run([*command, "--rounds", str(args.rounds)], check=True)


if __name__ == "__main__":
    main()
