"""A checker for the checker: random test functions with known gradients, and random bugs.

    python benchmarks/gradcheck_cases.py [--cases N] [--seed S]

Each case is a random function ``J(x)`` of a few entries, built from pieces with exact
derivatives: polynomials, exp, log, sin, tanh, and kinks (abs, ReLU, max of a group), each
applied to ``u = (x - center) / scale`` with parameter scales from 1e-8 to 1e8, a constant offset
from 1e-12 to 1e20 (or none), points exactly on kinks, next to them (1e-9 .. 1e-6 away) and on
ties of a max, and pieces computed in float32. Half the cases claim the true gradient (a
subgradient at kinks: the one-sided slope on the side the backward's convention picks); the
other half carry one random bug: a relative error of 1e-1 .. 1e-6 on a random entry, a zeroed
entry, a flipped sign, two swapped entries, or every tied entry of a max claiming the whole
share.

What counts as wrong is docs/gradcheck.md's definition: a claim ``a`` for an entry whose true
derivative is ``g`` is wrong when ``|a - g| > threshold * (|a| + |g|) + threshold * max|g|``
(the largest true derivative of the case); a case whose bug changes no entry by more than that
is counted as right. On a kink (ReLU or abs at exactly 0) and on a tie of a max, the true
gradient is a set: any slope between the kink's two sides, and any split of the max's share
among the tied entries (the tied entries are exactly equal in float64). A claim is right when
some member of the set is within the tolerance of it in every entry: a swap of two tied
entries' shares is no bug, every tied entry claiming the whole share is one.

It prints the wrong gradients passed (must be 0), the right gradients failed, split into smooth
float64 cases (must be 0) and cases at kinks, ties or float32 pieces (may be inconclusive, never
failed), and how often the check was inconclusive. ``tests/test_gradcheck_cases.py`` runs a small
sample of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minnet.gradcheck import DEFAULT_THRESHOLD, check_function  # noqa: E402

SMOOTH = ("poly", "exp", "log", "sin", "tanh")
KINKED = ("abs", "relu")


def _smooth(kind: str, power: int):
    """``(g, dg)`` of a smooth piece of ``u``."""
    if kind == "poly":
        return (lambda u: u**power), (lambda u: power * u ** (power - 1))
    if kind == "exp":
        return (lambda u: np.exp(0.5 * u)), (lambda u: 0.5 * np.exp(0.5 * u))
    if kind == "log":
        return (lambda u: np.log1p(u * u)), (lambda u: 2 * u / (1 + u * u))
    if kind == "sin":
        return np.sin, np.cos
    return np.tanh, (lambda u: 1 - np.tanh(u) ** 2)


@dataclass
class Case:
    """One random function: ``J(x)``, the point, the true gradient (a valid subgradient at
    kinks) and what makes it hard."""

    f: Callable[[np.ndarray], float]
    x: np.ndarray
    grad: np.ndarray
    tags: set[str] = field(default_factory=set)
    ties: list[int] = field(default_factory=list)
    #: Every claim in ``[low, high]`` entry by entry, plus shares of the tie (``share_unit``
    #: times a point of the simplex over ``ties``), is a valid subgradient: an entry on a kink
    #: (ReLU or abs at exactly 0) has an interval of them, and a tie of a max may give its share
    #: to any mix of the tied entries. Elsewhere ``low == high == grad``.
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    share_unit: float = 0.0
    #: How the case was built (scale, center, offset, pieces): for reading a misjudged case.
    description: str = ""


def random_case(rng: np.random.Generator) -> Case:
    n = int(rng.integers(1, 7))
    scale = 10.0 ** rng.uniform(-8, 8) if rng.random() < 0.7 else 1.0
    center = scale * rng.standard_normal(n) * (rng.random() < 0.3) * 10.0 ** rng.uniform(0, 4)
    offset = 10.0 ** rng.uniform(-12, 20) * rng.choice([-1, 1]) if rng.random() < 0.4 else 0.0
    u0 = rng.uniform(-1.5, 1.5, size=n)
    pieces = []  # (entry, weight, g, dg, float32)
    names: list[str] = []
    tags: set[str] = set()
    ties: list[int] = []
    kinked = rng.random() < 0.4
    for i in range(n):
        weight = float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-2, 2))
        float32 = rng.random() < 0.1
        if kinked and rng.random() < 0.4:
            kind = str(rng.choice(KINKED))
            where = rng.choice(["on", "near", "off"])
            u0[i] = {
                "on": 0.0,
                "near": float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-9, -6)),
                "off": u0[i],
            }[str(where)]
            tags.add(f"kink-{where}")
            names.append(f"{kind}-{where}")
            if kind == "abs":
                pieces.append((i, weight, np.abs, lambda u: np.sign(u), float32))
            else:
                pieces.append(
                    (i, weight, lambda u: np.maximum(u, 0), lambda u: 1.0 * (u > 0), float32)
                )
        else:
            kind = str(rng.choice(SMOOTH))
            power = int(rng.integers(1, 4))
            g, dg = _smooth(kind, power)
            names.append(f"{kind}{power if kind == 'poly' else ''}")
            pieces.append((i, weight, g, dg, float32))
        if float32:
            tags.add("float32")
    if kinked and n >= 3 and rng.random() < 0.5:  # a max over a group, often tied
        group = sorted(rng.choice(n, size=int(rng.integers(2, n + 1)), replace=False).tolist())
        if rng.random() < 0.6:
            u0[group] = u0[group[0]]
            # An exact tie: the tied entries of x are equal, so float64 keeps their u equal.
            if np.ndim(center):
                center[group] = center[group[0]]
            ties = group
            tags.add("tie")
    else:
        group = []
    x = center + scale * u0

    def f(v: np.ndarray) -> float:
        u = (v - center) / scale
        total = offset
        for i, w, g, _, low in pieces:
            value = g(np.float32(u[i])) if low else g(u[i])
            total += w * float(value)
        if group:
            total += float(np.max(u[group]))
        return total

    u = (x - center) / scale
    grad = np.zeros(n)
    low, high = np.zeros(n), np.zeros(n)
    for i, w, _, dg, _ in pieces:
        grad[i] += w * float(dg(u[i])) / scale
        low[i] = high[i] = grad[i]
        kink = names[i].split("-")[0] in KINKED
        if kink and u[i] == 0:  # exactly on the kink: any slope between the sides
            sides = [w * float(dg(np.float64(side))) / scale for side in (-1.0, 1.0)]
            low[i], high[i] = min(sides), max(sides)
            low[i], high[i] = min(low[i], grad[i]), max(high[i], grad[i])
    if group and not ties:
        # Tied by accident (two entries exactly on their kinks at 0): a tie all the same.
        top = [i for i in group if u[i] == np.max(u[group])]
        if len(top) >= 2:
            ties = top
            tags.add("tie")
    if group:
        grad[group[int(np.argmax(u[group]))]] += 1 / scale  # numpy's argmax: the first tie
    description = (
        f"scale {scale:.3g} offset {offset:.3g} center {center} u {u} "
        f"pieces {[(name, w, low) for name, (_, w, _, _, low) in zip(names, pieces, strict=True)]}"
        f" max over {group}"
    )
    if group and not ties:  # the one largest entry takes the whole share: no choice
        low[group[int(np.argmax(u[group]))]] += 1 / scale
        high[group[int(np.argmax(u[group]))]] += 1 / scale
    share = 1 / scale if ties else 0.0
    return Case(f, x, grad, tags or {"smooth"}, ties, low, high, share, description)


def random_bug(rng: np.random.Generator, case: Case) -> tuple[str, np.ndarray]:
    claim = case.grad.copy()
    n = len(claim)
    kinds = ["relative", "zeroed", "sign", "swap", "share"]
    kind = str(rng.choice(kinds if case.ties else kinds[:4]))
    i = int(rng.integers(n))
    if kind == "relative":
        claim[i] = claim[i] * (1 + rng.choice([-1, 1]) * 10.0 ** rng.uniform(-6, -1))
    elif kind == "zeroed":
        claim[i] = 0.0
    elif kind == "sign":
        claim[i] = -claim[i]
    elif kind == "swap" and n >= 2:
        j = (i + 1 + int(rng.integers(n - 1))) % n
        claim[i], claim[j] = claim[j], claim[i]
    elif kind == "share":
        top = case.grad[case.ties].max()
        claim[case.ties] = top  # every tied entry claims the whole share
    return kind, claim


def is_wrong(claim: np.ndarray, case: Case, kind: str, threshold: float) -> bool:
    """docs/gradcheck.md's definition, per entry against the case's largest derivative, with
    the true gradient a set at kinks and ties: the claim is right when some valid subgradient
    (:attr:`Case.low`, :attr:`Case.high`, shares of the tie) is within the tolerance of it in
    every entry."""
    g = case.grad
    slack = threshold * (np.abs(claim) + np.abs(g)) + threshold * np.max(np.abs(g))
    nearest = np.clip(claim, case.low - slack, case.high + slack)
    outside = np.abs(claim - nearest) > 0
    ties = np.array(case.ties, dtype=int)
    if ties.size == 0:
        return bool(np.any(outside))
    if np.any(np.delete(outside, ties)):
        return True
    # The tied entries' shares: entry i may take a share in [lo_i, hi_i] (what its claim leaves
    # over its own interval, in units of the whole share); the shares must add up to 1.
    unit = case.share_unit
    lo = np.maximum((claim[ties] - case.high[ties] - slack[ties]) / unit, 0.0)
    hi = np.minimum((claim[ties] - case.low[ties] + slack[ties]) / unit, 1.0)
    return bool(np.any(lo > hi) or lo.sum() > 1 or hi.sum() < 1)


def run(
    cases: int, seed: int, threshold: float = DEFAULT_THRESHOLD, only: int | None = None
) -> dict[str, Counter]:
    """Check ``cases`` random cases; counts by (claim kind, smooth or not) and status. With
    ``only``, the cases are drawn as usual but only case number ``only`` is checked, and its
    description, claim and report are printed."""
    rng = np.random.default_rng(seed)
    counts: dict[str, Counter] = {
        "wrong": Counter(),
        "right smooth": Counter(),
        "right kinked": Counter(),
    }
    examples: list[str] = []
    for number in range(cases):
        case = random_case(rng)
        buggy = rng.random() < 0.5
        kind, claim = random_bug(rng, case) if buggy else ("right", case.grad)
        wrong = buggy and is_wrong(claim, case, kind, threshold)
        if only is not None and number != only:
            continue
        with np.errstate(all="ignore"):
            report = check_function(case.f, case.x, claim, threshold=threshold)
        status = report.status
        if only is not None:
            print(f"case {number} (seed {seed}): wrong={wrong} {kind} {sorted(case.tags)}")
            print(f"  {case.description}")
            print(f"  x {case.x!r}\n  true {case.grad!r}\n  claim {claim!r}")
            print(f"  low {case.low!r} high {case.high!r} ties {case.ties}")
            print(report)
        smooth = case.tags == {"smooth"}
        group = "wrong" if wrong else "right smooth" if smooth else "right kinked"
        counts[group][status] += 1
        if (wrong and status == "passed") or (not wrong and status == "failed"):
            examples.append(f"case {number} (seed {seed}): {group} {kind} {sorted(case.tags)}")
    counts["examples"] = Counter(examples)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, help="check only this case number, and show it")
    parser.add_argument("--all", action="store_true", help="print every misjudged case")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.only is not None:
        run(args.only + 1, args.seed, only=args.only)
        return 0
    counts = run(args.cases, args.seed)
    wrong, smooth, kinked = counts["wrong"], counts["right smooth"], counts["right kinked"]
    right = smooth + kinked
    print(f"{args.cases} random cases (seed {args.seed}) in {time.perf_counter() - start:.0f}s")
    print(f"  wrong gradients passed:  {wrong['passed']} of {sum(wrong.values())} {dict(wrong)}")
    print(f"  right gradients failed:  {right['failed']} of {sum(right.values())}")
    print(f"    smooth float64:        {smooth['failed']} of {sum(smooth.values())} {dict(smooth)}")
    print(f"    kinks, ties, float32:  {kinked['failed']} of {sum(kinked.values())} {dict(kinked)}")
    for example in list(counts["examples"])[: None if args.all else 10]:
        print(f"  ! {example}")
    return 1 if wrong["passed"] or smooth["failed"] or kinked["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
