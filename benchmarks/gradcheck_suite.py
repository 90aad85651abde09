"""How good is minnet's gradient check: catch rate, false alarms, and fast against full cost.

    python benchmarks/gradcheck_suite.py [--nets N]

- catch rate: every bug of ``minnet.bugs.CATALOGUE`` (plus the loss's missing 1/m), in full,
  fast and sampled mode, in its layer alone and inside a model; caught means the check fails
  and blames the right tensor (the layer's own, and the layer's index inside the model);
- false alarms: random correct nets, half of them full of kinks (zero biases, zero inputs),
  checked with the defaults and with the tutorial's settings, in full and fast mode;
- cost: evaluations and time of a full and a fast check of a 20-100-80-1 net (10,261 params).

The tests (tests/test_gradcheck_bugs.py) assert the same on fewer nets; this prints the counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import random_data, random_net  # noqa: E402
from test_gradcheck_bugs import MODES, correct_net_with_kinks, model_with  # noqa: E402

from minnet.bugs import CATALOGUE, MissingMeanLoss  # noqa: E402


def catch_rate() -> tuple[int, int]:
    caught = total = 0
    for bug in CATALOGUE:
        for options in MODES.values():
            rng = np.random.default_rng(0)
            report = bug.make(4, rng).gradcheck(rng.standard_normal((5, 4)), **options)
            caught += not report.passed and report.worst_parameter == bug.blame
            rng = np.random.default_rng(1)
            model = model_with(bug.make(4, rng), rng)
            report = model.gradcheck(*random_data(rng, 6, 3), **options)
            caught += not report.passed and report.blamed_layers == (2,)
            total += 2
    rng = np.random.default_rng(2)
    model = random_net(rng, [3, 4, 1])
    model.loss = MissingMeanLoss()
    report = model.gradcheck(*random_data(rng, 6, 3))
    return caught + (not report.passed and report.blamed_layers == ()), total + 1


def false_alarms(nets: int) -> None:
    settings = {
        "defaults": {},
        "tutorial's (epsilon=1e-7, threshold=2e-7)": {"epsilon": 1e-7, "threshold": 2e-7},
    }
    for mode in ("full", "fast"):
        for name, options in settings.items():
            alarms = kinks = 0
            for seed in range(nets):
                model, X, Y = correct_net_with_kinks(seed)
                report = model.gradcheck(X, Y, **options, **MODES[mode])
                alarms += not report.passed
                kinks += len(report.kinks)
            print(f"  {mode} mode, {name}: {alarms} false alarms in {nets} nets ({kinks} kinks)")


def cost() -> None:
    rng = np.random.default_rng(0)
    model = random_net(rng, [20, 100, 80, 1])
    X, Y = random_data(rng, 32, 20)
    for mode in ("full", "fast"):
        start = time.perf_counter()
        report = model.gradcheck(X, Y, **MODES[mode])
        seconds = time.perf_counter() - start
        print(f"  {mode}: {report.evaluations} evaluations, {seconds * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=1000, help="random correct nets to check")
    args = parser.parse_args()
    caught, total = catch_rate()
    print(f"catch rate: {caught}/{total} bugs caught and blamed on the right layer and tensor")
    print("false alarms:")
    false_alarms(args.nets)
    print("cost of a check of a 20-100-80-1 net (10,261 parameters, batch 32):")
    cost()


if __name__ == "__main__":
    main()
