"""``python -m minnet demo [--plot PATH]`` and ``examples/train_moons.py``, run as a user would."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from minnet.teaching import demo

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def has_matplotlib() -> bool:
    """In CI matplotlib must be there (the test extra installs it); elsewhere it may be missing."""
    if os.environ.get("CI"):
        return True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minnet", "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


def held_out_accuracy(stdout: str) -> float:
    found = re.search(r"^Held-out accuracy: ([\d.]+)% \(250 points never trained on\)$", stdout,
                      re.MULTILINE)  # fmt: skip
    assert found, stdout
    return float(found.group(1)) / 100


def test_demo_trains_and_plots(tmp_path):
    plot = has_matplotlib()
    result = run_demo(*(["--plot", "out.png"] if plot else []), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "== 1. The tutorial's check through minnet" in result.stdout
    assert "== 4. Training: a 2-16-16-1 ReLU net on two moons" in result.stdout
    assert "Total params: 337" in result.stdout
    assert held_out_accuracy(result.stdout) >= 0.95
    assert re.search(r"^Trained 50 epochs .* in [\d.]+ s", result.stdout, re.MULTILINE)
    assert "== 5. Multi-class: a 2-16-16-3 net with Softmax + CrossEntropyLoss" in result.stdout
    assert "Gradient check before training (8 rows, every parameter): passed" in result.stdout
    found = re.search(r"^Held-out top-1 accuracy: ([\d.]+)% \(150 points, 3 classes", result.stdout,
                      re.MULTILINE)  # fmt: skip
    assert found and float(found.group(1)) >= 95, result.stdout
    assert result.stderr == "", "no progress bar when stderr is not a terminal"
    if not plot:
        pytest.skip("matplotlib is not installed: the plot was not tested")
    png = tmp_path / "out.png"
    assert f"Wrote {png.name}: the decision boundary" in result.stdout
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1.5 * height > 600, (width, height)
    assert "and the multi-class decision regions" in result.stdout


def test_without_matplotlib_the_plot_option_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert demo.main(plot=tmp_path / "out.png") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and 'pip install "minnet[plot]"' in err
    assert not (tmp_path / "out.png").exists()


def test_the_cli_refuses_unknown_options(tmp_path):
    result = run_demo("--plto", "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "--plto" in result.stderr


def test_the_example_script_trains_to_95_percent(capsys):
    module = runpy.run_path(str(ROOT / "examples" / "train_moons.py"))
    accuracy = module["main"](["--quiet"])
    assert accuracy >= 0.95
    out = capsys.readouterr().out
    assert "gradient check: passed" in out
    assert "same predictions: True" in out
