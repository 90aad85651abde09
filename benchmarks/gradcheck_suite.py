"""How good is minnet's gradient check: wrong gradients passed, false alarms, and cost.

    python benchmarks/gradcheck_suite.py [--nets N] [--baseline PATH]

- catch rate: every bug of ``minnet.teaching.bugs.CATALOGUE`` (plus the loss's missing 1/m), in
  full, fast and sampled mode, in its layer alone and inside a model; caught means the check fails
  and blames the right tensor (the layer's own, and the layer's index inside the model);
- the adversarial set (``tests/adversarial.py``): wrong gradients built to slip through
  (relative errors of 1e-2 to 1e-4 near zero, large offsets, zero true gradients, NaN claims,
  huge and tiny epsilons, user batch/layer norms with their classic bugs): how many pass
  (must be 0), and how many right ones fail;
- false alarms and inconclusive verdicts: random correct nets, half of them full of kinks (zero
  biases, zero inputs), one in three with a user batch norm, checked with the defaults and the
  tutorial's settings, in full and fast mode;
- random cases (``benchmarks/gradcheck_cases.py``): random functions with known gradients and
  random bugs, nobody tuned the checker to;
- cost: evaluations and time of a full and a fast check of a 20-100-80-1 net (10,261 params);
  with ``--baseline PATH`` (another minnet checkout), both measured alternately, side by side.

The tests (tests/test_gradcheck_bugs.py, tests/test_gradcheck_rules.py) assert the same on fewer
nets; this prints the counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from adversarial import cases  # noqa: E402
from conftest import random_data, random_net  # noqa: E402
from gradcheck_cases import run as run_cases  # noqa: E402
from test_gradcheck_bugs import MODES, correct_net_with_kinks, model_with  # noqa: E402

from minnet.teaching.bugs import CATALOGUE, MissingMeanLoss  # noqa: E402


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


def adversarial() -> None:
    wrong, right = cases()
    passed = [name for name, run in wrong if run().passed]
    failed = [name for name, run in right if run().status == "failed"]
    print(f"  wrong gradients passed: {len(passed)} of {len(wrong)} {passed or ''}")
    print(f"  right gradients failed: {len(failed)} of {len(right)} {failed or ''}")


def false_alarms(nets: int) -> None:
    settings = {
        "defaults": {},
        "tutorial's (epsilon=1e-7, threshold=2e-7)": {"epsilon": 1e-7, "threshold": 2e-7},
    }
    for mode in ("full", "fast"):
        for name, options in settings.items():
            alarms = inconclusive = kinks = 0
            for seed in range(nets):
                model, X, Y = correct_net_with_kinks(seed)
                report = model.gradcheck(X, Y, **options, **MODES[mode])
                alarms += report.status == "failed"
                inconclusive += report.status == "inconclusive"
                kinks += len(report.kinks)
            print(
                f"  {mode} mode, {name}: {alarms} false alarms, {inconclusive} inconclusive in "
                f"{nets} nets ({kinks} kinks excused)"
            )


COST_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import random_data, random_net
rng = np.random.default_rng(0)
model = random_net(rng, [20, 100, 80, 1])
X, Y = random_data(rng, 32, 20)
for mode, options in (("full", {{}}), ("fast", {{"fast": True}})):
    start = time.perf_counter()
    report = model.gradcheck(X, Y, **options)
    print(mode, report.evaluations, time.perf_counter() - start, report.passed)
"""


def _cost_once(checkout: Path) -> dict[str, tuple[int, float]]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    script = COST_SCRIPT.format(tests=str(HERE.parent / "tests"))
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=checkout,  # python -c puts the working folder first on sys.path
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        mode: (int(evals), float(seconds))
        for mode, evals, seconds, _ in (line.split() for line in out.splitlines())
    }


def cost(baseline: Path | None, rounds: int = 5) -> None:
    checkouts = {"this checkout": HERE.parent}
    if baseline is not None:
        checkouts["baseline"] = baseline
    runs: dict[str, list[dict]] = {name: [] for name in checkouts}
    for _ in range(rounds):  # alternate, so that both see the same machine
        for name, checkout in checkouts.items():
            runs[name].append(_cost_once(checkout))
    for mode in ("full", "fast"):
        medians = {}
        for name in checkouts:
            evaluations = runs[name][0][mode][0]
            seconds = float(np.median([run[mode][1] for run in runs[name]]))
            medians[name] = seconds
            print(f"  {mode:<4} {name:<14} {evaluations:>6} evaluations, {seconds * 1e3:7.1f} ms")
        if baseline is not None:
            ratio = medians["this checkout"] / medians["baseline"]
            print(f"  {mode:<4} ratio this/baseline: {ratio:.2f}x (median of {rounds} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=1000, help="random correct nets to check")
    parser.add_argument("--baseline", type=Path, help="another minnet checkout to compare cost")
    parser.add_argument("--cases", type=int, default=2000, help="random cases of the generator")
    args = parser.parse_args()
    caught, total = catch_rate()
    print(f"catch rate: {caught}/{total} bugs caught and blamed on the right layer and tensor")
    print("adversarial set:")
    adversarial()
    print("false alarms:")
    false_alarms(args.nets)
    print("random cases (benchmarks/gradcheck_cases.py):")
    random_cases(args.cases)
    print("cost of a check of a 20-100-80-1 net (10,261 parameters, batch 32):")
    cost(args.baseline)


def random_cases(cases: int) -> None:
    counts = run_cases(cases, seed=0)
    wrong, smooth, kinked = counts["wrong"], counts["right smooth"], counts["right kinked"]
    print(f"  wrong gradients passed: {wrong['passed']} of {sum(wrong.values())}")
    print(f"  right gradients failed, smooth float64: {smooth['failed']} of {sum(smooth.values())}")
    print(
        f"  right gradients failed at kinks, ties, float32: {kinked['failed']} of "
        f"{sum(kinked.values())} ({kinked['inconclusive']} inconclusive)"
    )


if __name__ == "__main__":
    main()
