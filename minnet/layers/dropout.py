"""``Dropout``: inverted dropout, a random mask in training, nothing in evaluation."""

from __future__ import annotations

import numpy as np

from .. import _checks
from .base import Layer


class Dropout(Layer):
    """In training, zero each entry with probability ``p`` and scale the rest by ``1 / (1 - p)``;
    in evaluation mode (``model.eval()``), pass the input through unchanged.

    The mask is drawn from ``seed`` (a numpy ``Generator`` or a seed) at every training forward;
    ``backward`` applies the mask of the last forward. (The gradient check sees one fixed
    function by putting the generator back to its state before each evaluation.)
    """

    def __init__(self, p: float = 0.5, *, seed: np.random.Generator | int | None = None) -> None:
        self.p = _checks.real_number("p", p, 0.0, 1.0)
        self.seed = _checks.generator("seed", seed)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _checks.float_input(self, x)
        self.shape = x.shape
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = self.seed.random(x.shape) >= self.p
        self.mask = (keep / (1 - self.p)).astype(x.dtype)
        return x * self.mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output = _checks.gradient_shape(self, grad_output, self.shape)
        return grad_output if self.mask is None else grad_output * self.mask


__all__ = ["Dropout"]
