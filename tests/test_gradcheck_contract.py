"""Probes that cannot be degenerate, and the layer contract checked by every layer check."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import example_shape, layer_example

import minnet
from minnet.gradcheck import targets
from minnet.gradcheck.contract import contract_violations
from minnet.layers import Linear, ReLU
from minnet.testing import assert_gradients, check_file, random_input

ROOT = Path(__file__).resolve().parent.parent


class ZeroGradNorm(minnet.Layer):
    """Row-wise normalization whose backward forgets the input gradient."""

    def forward(self, x):
        return (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True))

    def backward(self, g):
        return np.zeros_like(g)


class RowNorm(ZeroGradNorm):
    """The same normalization with its right backward."""

    def backward(self, g):
        x = self.x_saved
        std = np.sqrt(x.var(1, keepdims=True))
        y = (x - x.mean(1, keepdims=True)) / std
        return (g - g.mean(1, keepdims=True) - y * (g * y).mean(1, keepdims=True)) / std

    def forward(self, x):
        self.x_saved = x
        return super().forward(x)


class AssigningLinear(Linear):
    def backward(self, grad_output):
        self.W.grad = grad_output.T @ self.x  # BUG: assigns instead of adding
        self.b.grad = grad_output.sum(axis=0)
        return grad_output @ self.W.value


class InPlaceReLU(ReLU):
    def forward(self, x):
        x[x < 0] = 0  # BUG: the layer below kept x for its backward
        self.mask = x > 0
        return x

    def backward(self, grad_output):
        return grad_output * self.mask


class InPlaceBackward(ReLU):
    def backward(self, grad_output):
        grad_output *= self.out > 0  # BUG: changes the caller's array
        return grad_output


class DriftingBackward(minnet.Layer):
    """Right on the first backward call only."""

    def forward(self, x):
        self.scale = 2.0
        return 2 * x

    def backward(self, grad_output):
        result = self.scale * grad_output
        self.scale *= 0.5  # BUG: backward changes what forward kept
        return result


class WrongShapeGrad(Linear):
    def backward(self, grad_output):
        super().backward(grad_output)
        return (grad_output @ self.W.value)[:, :-1]


def test_the_student_zero_grad_norm_fails_with_the_docs_recipe():
    x = np.random.default_rng(0).standard_normal((5, 4))
    assert ZeroGradNorm().gradcheck(x).status == "failed"
    with pytest.raises(AssertionError):
        assert_gradients(ZeroGradNorm(), x)
    assert RowNorm().gradcheck(x).passed


def test_the_upstream_gradient_never_equals_an_input_drawn_from_the_same_seed():
    for seed in range(5):
        x = np.random.default_rng(seed).standard_normal((5, 4))
        assert not np.array_equal(targets.upstream_gradient(x.shape, seed, 0), x)
        assert not np.array_equal(
            targets.upstream_gradient(x.shape, seed, 0), random_input(x.shape, seed)
        )
        assert ZeroGradNorm().gradcheck(x, seed=seed).status == "failed"


def test_a_powerless_probe_is_redrawn(monkeypatch):
    """Force the first G to be the input itself (the old degenerate draw): the check notices
    that J does not move while the output does, draws another G, and fails the layer."""
    x = np.random.default_rng(0).standard_normal((5, 4))
    real = targets.upstream_gradient

    def degenerate_first(shape, seed, attempt):
        return x.copy() if attempt == 0 else real(shape, seed, attempt)

    monkeypatch.setattr(targets, "upstream_gradient", degenerate_first)
    assert ZeroGradNorm().gradcheck(x).status == "failed"


def test_a_probe_that_stays_powerless_is_inconclusive_never_passed(monkeypatch):
    x = np.random.default_rng(0).standard_normal((5, 4))
    monkeypatch.setattr(targets, "upstream_gradient", lambda shape, seed, attempt: x.copy())
    report = ZeroGradNorm().gradcheck(x)
    assert report.status == "inconclusive"
    assert any("no power" in reason for reason in report.reasons)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: AssigningLinear(4, 3), "assigns W.grad instead of adding"),
        (lambda: InPlaceReLU(), "forward changed its input x in place"),
        (lambda: InPlaceBackward(), "backward changed grad_output in place"),
        (lambda: DriftingBackward(), "different input gradient when called again"),
        (lambda: WrongShapeGrad(4, 3), "of the input's shape"),
    ],
)
def test_each_contract_violation_fails_with_a_reason(make, words):
    x = random_input((6, 4), seed=1)
    report = make().gradcheck(x)
    assert report.status == "failed"
    assert report.reasons and any(words in reason for reason in report.reasons), report.reasons
    with pytest.raises(AssertionError, match="failed"):
        assert_gradients(make(), x)


@pytest.mark.parametrize("name", sorted(minnet.layers.layer_classes()))
def test_every_library_layer_keeps_the_contract(name):
    cls = minnet.layers.layer_classes()[name]
    rng = np.random.default_rng(3)
    layer = layer_example(cls, 4, rng)  # every layer of minnet, image layers on images
    x = rng.standard_normal((6, *example_shape(cls, 4)))
    G = rng.standard_normal(np.shape(layer.forward(x.copy())))
    problems, notes = contract_violations(layer, x, G)
    assert problems == [] and notes == []
    assert layer.gradcheck(x).status != "failed"


def test_backward_first_differs_from_backward_is_caught(monkeypatch):
    from minnet import _fast

    def half(layer, grad_output):
        layer.backward(grad_output / 2)

    monkeypatch.setattr(_fast, "backward_first", half)
    report = Linear(4, 3).gradcheck(random_input((6, 4)))
    assert report.status == "failed"
    assert any("backward_first" in reason for reason in report.reasons)


def test_minnet_check_reports_every_layer_even_when_one_raises(tmp_path):
    source = textwrap.dedent(
        """
        import numpy as np
        import minnet

        class Boom(minnet.Layer):
            def forward(self, x):
                raise RuntimeError("boom")

            def backward(self, g):
                return g

        class ZeroGradNorm(minnet.Layer):
            def forward(self, x):
                return (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True))

            def backward(self, g):
                return np.zeros_like(g)

        class Double(minnet.Layer):
            def forward(self, x):
                return 2 * x

            def backward(self, g):
                return 2 * g
        """
    )
    path = tmp_path / "layers.py"
    path.write_text(source)
    results = {r.name: r.status for r in check_file(path)}
    assert results == {"Boom": "error", "ZeroGradNorm": "failed", "Double": "passed"}
    run = subprocess.run(
        [sys.executable, "-m", "minnet", "check", str(path), "--seed", "7"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Boom") and "ERROR" in lines[0]
    assert lines[1].startswith("ZeroGradNorm") and "FAILED" in lines[1]
    assert lines[2].startswith("Double") and "PASSED" in lines[2]


def test_a_failed_or_inconclusive_headline_never_reads_fine():
    report = AssigningLinear(4, 3).gradcheck(random_input((6, 4)))
    headline = str(report).splitlines()[0]
    assert "FAILED" in headline and "fine" not in headline
