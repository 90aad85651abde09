"""examples/digits.py, examples/digits_cnn.py and examples/regression.py, run as a user would
(quietly, and fast)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str):
    module = runpy.run_path(str(ROOT / "examples" / name))
    return module["main"](["--quiet", *args])


def test_digits_reaches_96_percent_top1_held_out(capsys):
    pytest.importorskip("sklearn")
    accuracy = run_example("digits.py")
    out = capsys.readouterr().out
    assert "Total params: 9,610" in out
    assert "gradient check: passed" in out
    found = re.search(r"top-1 accuracy ([\d.]+)% on 449 images", out)
    assert found and float(found.group(1)) / 100 == pytest.approx(accuracy, abs=1e-3)
    assert accuracy >= 0.96


def test_regression_reaches_r2_of_0_9_held_out(capsys):
    r2 = run_example("regression.py")
    out = capsys.readouterr().out
    assert "gradient check: passed" in out
    found = re.search(r"R\^2 ([\d.]+) on 100 points", out)
    assert found and float(found.group(1)) == pytest.approx(r2, abs=1e-3)
    assert r2 >= 0.9


def test_digits_cnn_reaches_98_percent_top1_held_out(capsys):
    pytest.importorskip("sklearn")
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    with threadpool_limits(1):  # small products: 2 BLAS threads on a busy machine are 5x slower
        accuracy = run_example("digits_cnn.py")
    out = capsys.readouterr().out
    assert "(None, 32, 2, 2)" in out and "Total params: 6,090" in out
    assert "gradient check: passed" in out
    found = re.search(r"top-1 accuracy ([\d.]+)% on 449 images", out)
    assert found and float(found.group(1)) / 100 == pytest.approx(accuracy, abs=1e-3)
    assert accuracy >= 0.98
