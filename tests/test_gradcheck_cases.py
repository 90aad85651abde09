"""A small sample of the random-case generator (benchmarks/gradcheck_cases.py) in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from gradcheck_cases import run  # noqa: E402

SAMPLE = 300


@pytest.fixture(scope="module")
def counts():
    return run(SAMPLE, seed=2026)


def test_no_wrong_gradient_of_the_random_sample_passes(counts):
    assert counts["wrong"]["passed"] == 0, list(counts["examples"])
    assert sum(counts["wrong"].values()) > SAMPLE // 4  # the sample does hold wrong gradients


def test_no_right_gradient_at_a_smooth_float64_point_fails(counts):
    assert counts["right smooth"]["failed"] == 0, list(counts["examples"])
    assert counts["right smooth"]["passed"] > 0


@pytest.mark.xfail(
    reason="issue 17, open: right gradients at kinks, ties and float32 pieces are still failed "
    "in a few percent of the random cases (benchmarks/gradcheck_cases.py prints them); they "
    "should end inconclusive",
    strict=False,
)
def test_no_right_gradient_at_kinks_ties_or_float32_fails(counts):
    assert counts["right kinked"]["failed"] == 0, list(counts["examples"])
