"""``Linear``: the affine layer ``y = x @ W.T + b``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _checks
from ..init import check_init, initial_bias, initialize
from ..parameter import Parameter
from .base import Layer

#: Standard deviation of the two normal initial-weight schemes, from (in_features, out_features)
#: (all the schemes: :mod:`minnet.init`).
INIT_STD = {
    "he": lambda n_in, n_out: np.sqrt(2.0 / n_in),
    "glorot": lambda n_in, n_out: np.sqrt(2.0 / (n_in + n_out)),
}


class Linear(Layer):
    """Affine layer ``y = x @ W.T + b``.

    Shapes: ``x: (batch, in_features)``, ``W: (out_features, in_features)``,
    ``b: (out_features,)``, ``y: (batch, out_features)``.

    ``W`` is drawn from ``rng`` (a numpy ``Generator`` or a seed) as ``init`` says (see
    :mod:`minnet.init`; ``fan_in = in_features``, ``fan_out = out_features``): ``"he"`` (the
    default: normal, std ``sqrt(2 / in_features)``, for ReLU-family activations),
    ``"he_uniform"``, ``"glorot"`` (normal, std ``sqrt(2 / (in_features + out_features))``, for
    sigmoid and tanh), ``"glorot_uniform"``, ``"zeros"``, ``"torch"`` (``nn.Linear``'s own:
    ``W`` and ``b`` uniform in ``+-1 / sqrt(in_features)``), or a function
    ``init(shape, rng) -> array`` for ``W``. ``b`` starts at zero (except with ``"torch"``).
    Putting the layer in a model never changes its weights.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str | Callable[..., Any] = "he",
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.in_features = _checks.whole_number("in_features", in_features, low=1)
        self.out_features = _checks.whole_number("out_features", out_features, low=1)
        self.init = check_init(init)
        self.dtype = _checks.float_dtype("dtype", dtype)
        rng = _checks.generator("rng", rng)
        n_in, n_out = self.in_features, self.out_features
        self.W = Parameter(initialize(self.init, (n_out, n_in), n_in, n_out, rng, self.dtype))
        self.b = Parameter(initial_bias(self.init, (n_out,), n_in, rng, self.dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, in_features)`` -> ``x @ W.T + b``, ``(batch, out_features)``."""
        self.x = _checks.features_input(self, x, self.in_features)
        return self.x @ self.W.value.T + self.b.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, out_features)`` -> ``grad_output @ W``: ``(batch, in_features)``.

        Adds ``grad_output.T @ x`` to ``W.grad`` and the column sums to ``b.grad``."""
        grad_output = _checks.gradient_shape(self, grad_output, (len(self.x), self.out_features))
        self.W.grad += grad_output.T @ self.x
        self.b.grad += grad_output.sum(axis=0)
        return grad_output @ self.W.value

    def output_features(self, in_features: int | None) -> int:
        if in_features is not None and in_features != self.in_features:
            raise ValueError(f"{self!r} takes {self.in_features} input features, got {in_features}")
        return self.out_features

    @classmethod
    def from_weights(cls, W: np.ndarray, b: np.ndarray) -> Linear:
        """A layer holding float copies of ``W: (out, in)`` and ``b: (out,)``."""
        W, b = np.array(W), np.array(b)
        for name, array in (("W", W), ("b", b)):
            if array.dtype.kind not in "biuf":
                raise TypeError(
                    f"Linear.from_weights needs real numbers for {name}, got dtype {array.dtype}"
                    + (" (an imaginary part would be lost)" if array.dtype.kind == "c" else "")
                )
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"expected W of shape (out, in) and b of shape (out,), got {W.shape} and {b.shape}"
            )
        if W.dtype.kind != "f":
            W = W.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            b = b.astype(W.dtype)
        for name, array in (("W", W), ("b", b)):
            bad = array.size - int(np.count_nonzero(np.isfinite(array)))
            if bad:
                raise ValueError(
                    f"Linear.from_weights needs finite {name}, but {bad} of its entries are NaN "
                    f"or infinite in {W.dtype}"
                )
        layer = cls(W.shape[1], W.shape[0], dtype=W.dtype, rng=0)
        layer.W, layer.b = Parameter(W), Parameter(b)
        return layer


__all__ = ["INIT_STD", "Linear"]
