"""The gradient-checking tutorial minnet grew from: its test case, its bugs and its cost formula.

The tutorial builds LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID with parameters drawn
by ``np.random.seed(1)`` and two bugs in backward: ``dW2`` doubled and ``db1`` times four. Here
the data are batch-first, the bugs live in :class:`ScaledGradLinear`, and
:class:`TutorialBCELoss` computes the cost exactly the tutorial's way.
"""

from __future__ import annotations

import numpy as np

from ..layers import Linear, ReLU, Sigmoid
from ..losses import BCELoss
from ..model import Sequential


class ScaledGradLinear(Linear):
    """A ``Linear`` whose backward scales its ``W`` and ``b`` gradients by wrong factors."""

    def __init__(self, *args, w_factor: float = 1.0, b_factor: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.w_factor, self.b_factor = w_factor, b_factor

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self.x  # what forward kept
        self.W.grad += self.w_factor * (grad_output.T @ x)  # right with w_factor = 1
        self.b.grad += self.b_factor * grad_output.sum(axis=0)  # right with b_factor = 1
        return grad_output @ self.W.value


class TutorialBCELoss(BCELoss):
    """The tutorial's cost, computed its way: ``1/m * sum(-Y log(A) - (1-Y) log(1-A))``.

    ``log(1 - A)`` loses digits when ``A = sigmoid(z)`` is near 1: that, not backprop, is what
    limits the tutorial's corrected check to about 1e-7.
    """

    def forward_fused(self, logits: np.ndarray, targets: np.ndarray) -> float:
        m = targets.size
        A = 1 / (1 + np.exp(-logits))
        logprobs = np.multiply(-np.log(A), targets) + np.multiply(-np.log(1 - A), 1 - targets)
        self._grad = (A - targets) / m
        return float(1.0 / m * np.sum(logprobs))


def tutorial_case() -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The tutorial's ``gradient_check_n_test_case()``, batch-first.

    Returns ``X: (3, 4)``, ``Y: (3,)`` and ``[(W1, b1), (W2, b2), (W3, b3)]`` with
    ``W: (out, in)`` and ``b: (out,)``.
    """
    rng = np.random.RandomState(1)  # the legacy generator np.random.seed(1) sets up
    x = rng.randn(4, 3)
    y = np.array([1, 1, 0])
    W1, b1 = rng.randn(5, 4), rng.randn(5, 1)
    W2, b2 = rng.randn(3, 5), rng.randn(3, 1)
    W3, b3 = rng.randn(1, 3), rng.randn(1, 1)
    return x.T, y, [(W1, b1.ravel()), (W2, b2.ravel()), (W3, b3.ravel())]


def tutorial_net(
    weights: list[tuple[np.ndarray, np.ndarray]], *, bugs: bool = False, loss: BCELoss | None = None
) -> Sequential:
    """The tutorial's net with the given weights; ``bugs=True`` puts its two backward bugs in."""
    (W1, b1), (W2, b2), (W3, b3) = weights
    if bugs:
        first = ScaledGradLinear.from_weights(W1, b1)
        first.b_factor = 4.0  # the tutorial's  db1 = 4./m * np.sum(dZ1, ...)
        second = ScaledGradLinear.from_weights(W2, b2)
        second.w_factor = 2.0  # the tutorial's  dW2 = 1./m * np.dot(dZ2, A1.T) * 2
    else:
        first, second = Linear.from_weights(W1, b1), Linear.from_weights(W2, b2)
    layers = [first, ReLU(), second, ReLU(), Linear.from_weights(W3, b3), Sigmoid()]
    return Sequential(layers, loss=loss if loss is not None else BCELoss())
