"""Activations: elementwise functions (and ``Softmax``, row by row). No parameters.

Each keeps what its derivative needs in ``forward`` and multiplies by that derivative in
``backward`` (the chain rule, entry by entry).
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from .base import Layer


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow or warnings for any finite ``x``."""
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z) / sum(exp(z))`` over the last axis, computed from ``z - max(z)``: no overflow, and
    exact rows summing to 1 for any finite logits (+-1000 included)."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` over the last axis, from ``z - max(z)``: finite for any finite ``z``."""
    shifted = z - np.max(z, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


class ReLU(Layer):
    """``max(x, 0)``; its derivative is 1 where ``x > 0``, else 0 (0 at exactly 0)."""

    kink_points = (0.0,)  # where the derivative jumps (optional: the gradient check uses it)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.maximum(_checks.float_input(self, x), 0)
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.out.shape)
        return grad_output * (self.out > 0)  # the output is positive exactly where x > 0


class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (any finite slope, as in PyTorch: a
    negative one too)."""

    kink_points = (0.0,)

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = _checks.real_number("negative_slope", negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = _checks.float_input(self, x)
        return np.where(self.x > 0, self.x, self.negative_slope * self.x).astype(self.x.dtype)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.x.shape)
        slope = np.where(self.x > 0, 1.0, self.negative_slope)
        return (grad_output * slope).astype(grad_output.dtype)


class Sigmoid(Layer):
    """``s = 1 / (1 + exp(-x))``; its derivative is ``s * (1 - s)``.

    As the last layer of a model with :class:`~minnet.BCELoss`, the model hands the loss this
    layer's input (the logits) instead: exact even where ``s`` rounds to 0 or 1.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _checks.float_input(self, x)
        self.out = sigmoid(x).astype(x.dtype)
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.out.shape)
        return grad_output * self.out * (1 - self.out)


class Tanh(Layer):
    """``tanh(x)``; its derivative is ``1 - tanh(x)**2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(_checks.float_input(self, x))
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.out.shape)
        return grad_output * (1 - self.out**2)


def _last_axis(layer: Layer, x: np.ndarray) -> np.ndarray:
    """``x`` if ``layer.dim`` names its last axis (``-1``, or ``x.ndim - 1``), else a
    ``ValueError``: minnet's softmaxes are over the last axis only."""
    if layer.dim not in (-1, x.ndim - 1):
        raise ValueError(
            f"{layer!r} is over the last axis only (dim=-1, or {x.ndim - 1} for input of "
            f"{x.ndim} axes), got input of shape {x.shape}: move the axis last "
            "(for images, x.transpose(0, 2, 3, 1)) or use dim=-1"
        )
    return x


class Softmax(Layer):
    """Softmax over the last axis: each row of ``(batch, classes)`` becomes probabilities.

    ``dim`` names that axis, as in ``torch.nn.Softmax(dim)``: ``-1`` (the default) or its
    number (``dim=1`` for rows ``(batch, classes)``); a softmax over another axis is refused
    when the input comes. Its backward is ``s * (g - sum(g * s))`` row by row. As the last
    layer of a model with :class:`~minnet.CrossEntropyLoss`, the model hands the loss this
    layer's input (the logits).
    """

    def __init__(self, dim: int = -1) -> None:
        self.dim = _checks.whole_number("dim", dim, low=-1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = softmax(_last_axis(self, _checks.float_input(self, x)))
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.out.shape)
        s = self.out
        return s * (grad_output - np.sum(grad_output * s, axis=-1, keepdims=True))


class LogSoftmax(Layer):
    """Log-softmax over the last axis: each row of ``(batch, classes)`` becomes
    log-probabilities, ``z - max(z) - log(sum(exp(z - max(z))))`` (finite for any finite ``z``).

    Its backward is ``g - softmax(x) * sum(g)`` row by row. As the last layer of a model with
    :class:`~minnet.NLLLoss`, the model hands the loss this layer's input (the logits), as
    ``Softmax`` with ``CrossEntropyLoss``. ``dim`` as :class:`Softmax`'s: ``-1`` (the default)
    or the number of the last axis.
    """

    def __init__(self, dim: int = -1) -> None:
        self.dim = _checks.whole_number("dim", dim, low=-1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = log_softmax(_last_axis(self, _checks.float_input(self, x)))
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.out.shape)
        return grad_output - np.exp(self.out) * np.sum(grad_output, axis=-1, keepdims=True)


__all__ = [
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "log_softmax",
    "sigmoid",
    "softmax",
]
