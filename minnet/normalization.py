"""Normalization layers: ``BatchNorm1d`` (statistics over the batch) and ``LayerNorm`` (over the
features of each row), with PyTorch's numbers.

Both normalize ``x`` to ``x_hat = (x - mean) / sqrt(var + eps)`` (``var`` the biased variance)
and return ``gamma * x_hat + beta``. They differ in *which* numbers the mean and variance are
taken over, and that changes the backward: a batch norm's output for one row depends on every row
of the batch (through the batch mean and variance), so its input gradient has the two extra terms
that the famous CS231n exercise is about::

    dx = (m * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat)) / (m * sqrt(var + eps))

with the sums over the batch (for ``LayerNorm``, over the features, ``m`` the number of
features). Forgetting them (treating the statistics as constants) is the classic bug; the
gradient check catches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from attrs import define, field

from .layers import Layer, as_float_input, real_number
from .parameter import Parameter


def _positive_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"num_features must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"num_features must be a positive int, got {value}")
    return int(value)


def _positive_finite(name: str):
    def check(instance: Any, attribute: Any, value: float) -> None:
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")

    return check


def _check_momentum(instance: Any, attribute: Any, value: float) -> None:
    if not (np.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"momentum must be a number in (0, 1], got {value}")


def _float_dtype(value: Any) -> np.dtype:
    dtype = np.dtype(value)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    return dtype


def _check_x(layer: Layer, x: Any, features: int) -> np.ndarray:
    x = as_float_input(layer, x)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{layer!r} expects input of shape (batch, {features}), got {x.shape}")
    return x


def _normalize_backward(g: np.ndarray, x_hat: np.ndarray, std: np.ndarray, axis: int):
    """Input gradient of ``x_hat = (x - mean) / std``, mean and variance over ``axis``, given the
    gradient ``g`` with respect to ``x_hat``."""
    m = x_hat.shape[axis]
    g_sum = np.sum(g, axis=axis, keepdims=True)
    gx_sum = np.sum(g * x_hat, axis=axis, keepdims=True)
    return (m * g - g_sum - x_hat * gx_sum) / (m * std)


@define(eq=False)
class BatchNorm1d(Layer):
    """Batch normalization over the batch axis, as ``torch.nn.BatchNorm1d``.

    ``x: (batch, num_features)``. Parameters ``gamma`` (ones) and ``beta`` (zeros), both
    ``(num_features,)``. Buffers ``running_mean`` (zeros) and ``running_var`` (ones), plain
    arrays, not parameters: optimizers leave them alone, ``save``/``load`` keep them.

    - Training mode: normalizes with the batch's mean and biased variance, and updates
      ``running = (1 - momentum) * running + momentum * batch_statistic`` with the *unbiased*
      variance (``m / (m - 1)`` times the biased one), exactly as PyTorch. A batch of one row
      has no variance to speak of: refused, as PyTorch does.
    - Evaluation mode (``model.eval()``): normalizes with the running statistics; each row is
      then treated on its own.
    """

    num_features: int = field(converter=_positive_count)
    eps: float = field(
        default=1e-5, converter=real_number("eps"), validator=_positive_finite("eps")
    )
    momentum: float = field(
        default=0.1, converter=real_number("momentum"), validator=_check_momentum
    )
    dtype: np.dtype = field(default=np.float64, converter=_float_dtype, repr=False, kw_only=True)
    gamma: Parameter = field(init=False, repr=False)
    beta: Parameter = field(init=False, repr=False)
    running_mean: np.ndarray = field(init=False, repr=False)
    running_var: np.ndarray = field(init=False, repr=False)
    _cache: tuple[np.ndarray, np.ndarray, bool] | None = field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.gamma = Parameter(np.ones(self.num_features, dtype=self.dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=self.dtype))
        self.running_mean = np.zeros(self.num_features, dtype=self.dtype)
        self.running_var = np.ones(self.num_features, dtype=self.dtype)

    @property
    def rowwise(self) -> bool:
        """Rows are independent only in evaluation mode (running statistics)."""
        return not self.training

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """``("running_mean", array)``, ``("running_var", array)``."""
        yield "running_mean", self.running_mean
        yield "running_var", self.running_var

    def output_features(self, in_features: int | None) -> int:
        if in_features is not None and in_features != self.num_features:
            raise ValueError(f"{self!r} takes {self.num_features} features, got {in_features}")
        return self.num_features

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, num_features)`` -> same shape."""
        x = _check_x(self, x, self.num_features)
        if self.training:
            m = len(x)
            if m < 2:
                raise ValueError(
                    f"{self!r} in training mode needs at least 2 rows to compute a batch "
                    f"variance, got {m} (call model.eval() to use the running statistics)"
                )
            mean = x.mean(axis=0)
            var = x.var(axis=0)
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / (m - 1))
        else:
            mean, var = self.running_mean, self.running_var
        std = np.sqrt(var + self.eps)
        x_hat = (x - mean) / std
        self._cache = (x_hat, std, self.training)
        return self.gamma.value * x_hat + self.beta.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, num_features)`` -> input gradient, same shape."""
        self._require_cache(self._cache)
        x_hat, std, batch_statistics = self._cache
        self.gamma.accumulate(np.sum(grad_output * x_hat, axis=0))
        self.beta.accumulate(np.sum(grad_output, axis=0))
        g = grad_output * self.gamma.value
        if not batch_statistics:
            return g / std
        return _normalize_backward(g, x_hat, std, axis=0)


@define(eq=False)
class LayerNorm(Layer):
    """Layer normalization over the features of each row, as ``torch.nn.LayerNorm(num_features)``.

    ``x: (batch, num_features)``; parameters ``gamma`` (ones) and ``beta`` (zeros), both
    ``(num_features,)``. Each row is normalized with its own mean and biased variance, in
    training and evaluation alike, so rows never mix.
    """

    rowwise: ClassVar[bool] = True

    num_features: int = field(converter=_positive_count)
    eps: float = field(
        default=1e-5, converter=real_number("eps"), validator=_positive_finite("eps")
    )
    dtype: np.dtype = field(default=np.float64, converter=_float_dtype, repr=False, kw_only=True)
    gamma: Parameter = field(init=False, repr=False)
    beta: Parameter = field(init=False, repr=False)
    _cache: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.gamma = Parameter(np.ones(self.num_features, dtype=self.dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=self.dtype))

    def output_features(self, in_features: int | None) -> int:
        if in_features is not None and in_features != self.num_features:
            raise ValueError(f"{self!r} takes {self.num_features} features, got {in_features}")
        return self.num_features

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, num_features)`` -> same shape."""
        x = _check_x(self, x, self.num_features)
        mean = x.mean(axis=1, keepdims=True)
        std = np.sqrt(x.var(axis=1, keepdims=True) + self.eps)
        x_hat = (x - mean) / std
        self._cache = (x_hat, std)
        return self.gamma.value * x_hat + self.beta.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, num_features)`` -> input gradient, same shape."""
        self._require_cache(self._cache)
        x_hat, std = self._cache
        self.gamma.accumulate(np.sum(grad_output * x_hat, axis=0))
        self.beta.accumulate(np.sum(grad_output, axis=0))
        return _normalize_backward(grad_output * self.gamma.value, x_hat, std, axis=1)


__all__ = ["BatchNorm1d", "LayerNorm"]
