"""Layers written the way a user writes them, right and with the classic backward bugs.

None of them declares ``rowwise``: the gradient check must work them out on its own. The batch
norms mix the rows of a batch (each output row depends on the batch's mean and variance), which
is exactly what a check that stacks perturbed copies of a batch would get wrong.
"""

from __future__ import annotations

import numpy as np

from minnet import Layer, Parameter

EPS = 1e-5


class UserBatchNorm(Layer):
    """Batch norm over the batch axis, with a correct backward (CS231n's compact form)."""

    axis = 0

    def __init__(self, features: int) -> None:
        self.features = features
        rng = np.random.default_rng(self.features)
        self.gamma = Parameter(1 + 0.1 * rng.standard_normal(self.features))
        self.beta = Parameter(0.1 * rng.standard_normal(self.features))

    def forward(self, x):
        mean = x.mean(axis=self.axis, keepdims=True)
        var = x.var(axis=self.axis, keepdims=True)
        std = np.sqrt(var + EPS)
        xhat = (x - mean) / std
        self.cache = (xhat, std)
        return self.gamma.value * xhat + self.beta.value

    def backward(self, grad_output):
        xhat, std = self.cache
        self.gamma.grad += (grad_output * xhat).sum(axis=0)
        self.beta.grad += grad_output.sum(axis=0)
        g = grad_output * self.gamma.value
        return self.input_gradient(g, xhat, std)

    def input_gradient(self, g, xhat, std):
        a = self.axis
        n = xhat.shape[a]
        return (n * g - g.sum(a, keepdims=True) - xhat * (g * xhat).sum(a, keepdims=True)) / (
            n * std
        )


class BatchStatsAsConstants(UserBatchNorm):
    """The classic: the batch mean and variance treated as constants, ``dx = g / std``."""

    def input_gradient(self, g, xhat, std):
        return g / std


class MissingMeanTerm(UserBatchNorm):
    """The ``- sum(g)`` term (through the mean) forgotten."""

    def input_gradient(self, g, xhat, std):
        a = self.axis
        n = xhat.shape[a]
        return (n * g - xhat * (g * xhat).sum(a, keepdims=True)) / (n * std)


class UnbiasedInBackward(UserBatchNorm):
    """Forward with the biased variance (1/N), backward as if it were unbiased (1/(N-1))."""

    def input_gradient(self, g, xhat, std):
        a = self.axis
        n = xhat.shape[a]
        return (
            g - g.mean(a, keepdims=True) - xhat * (g * xhat).sum(a, keepdims=True) / (n - 1)
        ) / std


class UserLayerNorm(UserBatchNorm):
    """Layer norm: the same algebra over the feature axis (rows do not mix)."""

    axis = 1


class LayerNormWrongAxis(UserLayerNorm):
    """Layer norm whose backward reduces over the batch axis, as a batch norm would."""

    def input_gradient(self, g, xhat, std):
        n = xhat.shape[0]
        return (n * g - g.sum(0, keepdims=True) - xhat * (g * xhat).sum(0, keepdims=True)) / (
            n * std
        )


class LayerNormMissingMean(MissingMeanTerm):
    axis = 1


class PlainScale(Layer):
    """A layer written as a plain Python class: ``y = x * w`` with one weight per feature."""

    def __init__(self, features: int, wrong: bool = False) -> None:
        super().__init__()
        self.w = Parameter(np.linspace(0.5, 1.5, features))
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x * self.w.value

    def backward(self, grad_output):
        factor = 1.01 if self.wrong else 1.0
        self.w.grad += factor * (grad_output * self.x).sum(axis=0)
        return grad_output * self.w.value


CORRECT = [UserBatchNorm, UserLayerNorm]
WRONG = [
    BatchStatsAsConstants,
    MissingMeanTerm,
    UnbiasedInBackward,
    LayerNormWrongAxis,
    LayerNormMissingMean,
]
