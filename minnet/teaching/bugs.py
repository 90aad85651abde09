"""Deliberately wrong layers and losses: the mistakes people make when writing backward.

Each one is a small subclass of a correct minnet class with one bug in ``backward``. They show
what a gradient check reports for a real mistake, and the tests use them to prove the checker
catches every one and blames the right layer and parameter. :data:`CATALOGUE` lists them with
the parameter a check should blame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from attrs import frozen

from ..layers import BatchNorm1d, Layer, LayerNorm, Linear, ReLU, Sigmoid, Softmax
from ..losses import BCELoss, CrossEntropyLoss
from .tutorial import ScaledGradLinear


class TransposedWeightGrad(Linear):
    """``dW = x.T @ grad_output``: the weight gradient transposed (shapes fit on square layers)."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.W.grad += self.x.T @ grad_output
        self.b.grad += grad_output.sum(axis=0)
        return grad_output @ self.W.value


class TransposedInputGrad(Linear):
    """``dx = grad_output @ W.T``: the input gradient through the transposed weights."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        return grad_output @ self.W.value.T


class WrongInputGrad(Linear):
    """The input gradient scaled by 1.5; the parameter gradients are right."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return 1.5 * super().backward(grad_output)


class SignFlippedBias(Linear):
    """``db = -sum(grad_output)``: the bias gradient with the wrong sign."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.b.grad += -2 * grad_output.sum(axis=0)
        return super().backward(grad_output)


class AveragedBias(Linear):
    """``db = mean(grad_output)``: a stray ``1/m`` on the bias gradient."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.b.grad += -grad_output.sum(axis=0) * (1 - 1 / len(grad_output))
        return super().backward(grad_output)


class MaskLetsAllThrough(ReLU):
    """A ReLU whose backward forgets the mask: every gradient passes, even where ``x < 0``."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        return grad_output


class SigmoidMissingFactor(Sigmoid):
    """``dx = grad * s`` instead of ``grad * s * (1 - s)``."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        return grad_output * self.out


class MissingMeanLoss(BCELoss):
    """Binary cross-entropy whose gradient forgets the ``1/m`` of the mean."""

    def forward_fused(self, logits: np.ndarray, targets: np.ndarray) -> float:
        value = super().forward_fused(logits, targets)
        self._grad = self._grad * targets.size
        return value


class CrossEntropyMissingMean(CrossEntropyLoss):
    """Softmax cross-entropy whose gradient ``softmax(z) - q`` forgets the ``1/m`` of the mean
    over the rows (the value is still the mean)."""

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        value = super().forward(logits, targets)
        self._grad = self._grad * len(logits)
        return value


class BatchStatsAsConstants(BatchNorm1d):
    """The classic batch-norm mistake: the batch mean and variance treated as constants, so the
    input gradient is ``gamma * grad_output / std``, without the two terms through the mean and
    the variance."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        return grad_output * self.gamma.value / self.std


class BatchNormMissingMeanTerm(BatchNorm1d):
    """Batch norm whose input gradient forgets the ``- sum(dx_hat)`` term (through the mean)."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        right = super().backward(grad_output)
        std = self.std
        g = grad_output * self.gamma.value
        return right + np.sum(g, axis=0) / (len(g) * std)


class LayerNormWrongAxis(LayerNorm):
    """Layer norm whose backward takes its sums over the batch axis, as a batch norm would."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        x_hat, std = self.x_hat, self.std
        g = grad_output * self.gamma.value
        m = len(g)
        return (m * g - g.sum(0) - x_hat * (g * x_hat).sum(0)) / (m * std)


class SoftmaxDiagonalOnly(Softmax):
    """Softmax whose backward keeps only the diagonal of the Jacobian: ``s * (1 - s) * g``."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        super().backward(grad_output)
        s = self.out
        return s * (1 - s) * grad_output


@frozen
class Bug:
    """One mistake: how to build the wrong layer, and what a check must blame.

    ``make(n, rng)`` returns a layer taking and giving ``n`` features. ``blame`` is the name of
    the wrong tensor in the layer's own check (``"W"``, ``"b"`` or ``"input"``).
    """

    name: str
    make: Callable[[int, np.random.Generator], Layer]
    blame: str


def _scaled(w: float = 1.0, b: float = 1.0) -> Callable[[int, np.random.Generator], Layer]:
    def make(n: int, rng: np.random.Generator) -> Layer:
        return ScaledGradLinear(n, n, rng=rng, w_factor=w, b_factor=b)

    return make


def _linear(cls: type[Linear]) -> Callable[[int, np.random.Generator], Layer]:
    def make(n: int, rng: np.random.Generator) -> Layer:
        return cls(n, n, rng=rng)

    return make


CATALOGUE: tuple[Bug, ...] = (
    Bug("tutorial: dW doubled", _scaled(w=2.0), "W"),
    Bug("tutorial: db times four", _scaled(b=4.0), "b"),
    *(Bug(f"dW scaled by 1 + {s:g}", _scaled(w=1 + s), "W") for s in (1e-1, 1e-2, 1e-3, 1e-4)),
    *(Bug(f"db scaled by 1 - {s:g}", _scaled(b=1 - s), "b") for s in (1e-2, 1e-4)),
    Bug("dW transposed", _linear(TransposedWeightGrad), "W"),
    Bug("input gradient through W.T", _linear(TransposedInputGrad), "input"),
    Bug("input gradient scaled", _linear(WrongInputGrad), "input"),
    Bug("bias gradient sign flipped", _linear(SignFlippedBias), "b"),
    Bug("bias gradient averaged (extra 1/m)", _linear(AveragedBias), "b"),
    Bug("ReLU mask lets everything through", lambda n, rng: MaskLetsAllThrough(), "input"),
    Bug("sigmoid derivative missing (1 - s)", lambda n, rng: SigmoidMissingFactor(), "input"),
    Bug("batch norm: statistics as constants", lambda n, rng: BatchStatsAsConstants(n), "input"),
    Bug("batch norm: mean term missing", lambda n, rng: BatchNormMissingMeanTerm(n), "input"),
    Bug("layer norm: sums over the batch axis", lambda n, rng: LayerNormWrongAxis(n), "input"),
    Bug("softmax: diagonal of the Jacobian only", lambda n, rng: SoftmaxDiagonalOnly(), "input"),
)
