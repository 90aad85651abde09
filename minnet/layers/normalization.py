"""Normalization layers: ``BatchNorm1d`` (statistics over the batch), ``BatchNorm2d`` (over the
batch and the pixels, per channel) and ``LayerNorm`` (over the features of each row), with
PyTorch's numbers.

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

import numpy as np

from .. import _checks
from ..parameter import Parameter
from .base import Layer


def _normalize_backward(g: np.ndarray, x_hat: np.ndarray, std: np.ndarray, axis: int):
    """Input gradient of ``x_hat = (x - mean) / std``, mean and variance over ``axis``, given the
    gradient ``g`` with respect to ``x_hat``."""
    m = x_hat.shape[axis]
    g_sum = np.sum(g, axis=axis, keepdims=True)
    gx_sum = np.sum(g * x_hat, axis=axis, keepdims=True)
    return (m * g - g_sum - x_hat * gx_sum) / (m * std)


def _same_features(layer: Layer, in_features: int | None) -> int:
    """A normalization's ``output_features``: it keeps its ``num_features``, and takes no other."""
    if in_features is not None and in_features != layer.num_features:
        raise ValueError(f"{layer!r} takes {layer.num_features} features, got {in_features}")
    return layer.num_features


class BatchNorm1d(Layer):
    """Batch normalization over the batch axis, as ``torch.nn.BatchNorm1d``.

    ``x: (batch, num_features)`` -> same shape. Parameters ``gamma`` (ones) and ``beta``
    (zeros), both ``(num_features,)``. Buffers ``running_mean`` (zeros) and ``running_var``
    (ones), plain arrays, not parameters: optimizers leave them alone, ``save``/``load`` keep
    them.

    - Training mode: normalizes with the batch's mean and biased variance, and updates
      ``running = (1 - momentum) * running + momentum * batch_statistic`` with the *unbiased*
      variance (``m / (m - 1)`` times the biased one), exactly as PyTorch (``momentum`` in
      ``[0, 1]``: 0 keeps the running statistics as they are). A batch of one row
      has no variance to speak of: refused, as PyTorch does.
    - Evaluation mode (``model.eval()``): normalizes with the running statistics; each row is
      then treated on its own.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, dtype=np.float64
    ) -> None:
        self.num_features = _checks.positive_int("num_features", num_features)
        self.eps = _checks.real_number("eps", eps, 0.0, low_open=True)
        self.momentum = _checks.real_number("momentum", momentum, 0.0, 1.0, high_open=False)
        self.dtype = _checks.float_dtype("dtype", dtype)
        self.gamma = Parameter(np.ones(self.num_features, dtype=self.dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=self.dtype))
        self.running_mean = np.zeros(self.num_features, dtype=self.dtype)
        self.running_var = np.ones(self.num_features, dtype=self.dtype)

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """``("running_mean", array)``, ``("running_var", array)``."""
        yield "running_mean", self.running_mean
        yield "running_var", self.running_var

    def output_features(self, in_features: int | None) -> int:
        return _same_features(self, in_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, num_features)`` -> same shape."""
        x = _checks.features_input(self, x, self.num_features)
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
        self.std = np.sqrt(var + self.eps)
        self.x_hat = (x - mean) / self.std
        self.batch_statistics = self.training
        return self.gamma.value * self.x_hat + self.beta.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, num_features)`` -> input gradient, same shape."""
        grad_output = _checks.gradient_shape(self, grad_output, self.x_hat.shape)
        self.gamma.grad += np.sum(grad_output * self.x_hat, axis=0)
        self.beta.grad += np.sum(grad_output, axis=0)
        g = grad_output * self.gamma.value
        if not self.batch_statistics:
            return g / self.std
        return _normalize_backward(g, self.x_hat, self.std, axis=0)


class LayerNorm(Layer):
    """Layer normalization over the features of each row, as ``torch.nn.LayerNorm(num_features)``.

    ``x: (batch, num_features)`` -> same shape; parameters ``gamma`` (ones) and ``beta`` (zeros),
    both ``(num_features,)``. Each row is normalized with its own mean and biased variance, in
    training and evaluation alike, so rows never mix.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, *, dtype=np.float64) -> None:
        self.num_features = _checks.positive_int("num_features", num_features)
        self.eps = _checks.real_number("eps", eps, 0.0, low_open=True)
        self.dtype = _checks.float_dtype("dtype", dtype)
        self.gamma = Parameter(np.ones(self.num_features, dtype=self.dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=self.dtype))

    def output_features(self, in_features: int | None) -> int:
        return _same_features(self, in_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, num_features)`` -> same shape."""
        x = _checks.features_input(self, x, self.num_features)
        mean = x.mean(axis=1, keepdims=True)
        self.std = np.sqrt(x.var(axis=1, keepdims=True) + self.eps)
        self.x_hat = (x - mean) / self.std
        return self.gamma.value * self.x_hat + self.beta.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, num_features)`` -> input gradient, same shape."""
        grad_output = _checks.gradient_shape(self, grad_output, self.x_hat.shape)
        self.gamma.grad += np.sum(grad_output * self.x_hat, axis=0)
        self.beta.grad += np.sum(grad_output, axis=0)
        return _normalize_backward(grad_output * self.gamma.value, self.x_hat, self.std, axis=1)


class BatchNorm2d(BatchNorm1d):
    """Batch normalization of images per channel, as ``torch.nn.BatchNorm2d``.

    ``x: (N, C, H, W)`` -> same shape, ``C = num_features``. Each channel is normalized with
    the mean and variance of its ``N * H * W`` values: exactly a :class:`BatchNorm1d` whose rows
    are the pixels (``x.transpose(0, 2, 3, 1).reshape(-1, C)``), and that is how it is computed.
    Parameters ``gamma``, ``beta`` and buffers ``running_mean``, ``running_var`` are
    ``(num_features,)``; the running variance is updated with the unbiased variance over the
    ``N * H * W`` values, as PyTorch; evaluation mode uses the running statistics.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, num_features, H, W)`` -> same shape."""
        x = _checks.float_input(self, x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r} expects images of shape (batch, {self.num_features}, height, width), "
                f"got an array of shape {x.shape}"
            )
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                f"{self!r} in training mode needs at least 2 values per channel to compute a "
                f"batch variance, got input of shape {x.shape} (call model.eval() to use the "
                "running statistics)"
            )
        self.x_shape = x.shape
        n, c, h, w = x.shape
        rows = super().forward(x.transpose(0, 2, 3, 1).reshape(n * h * w, c))
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, num_features, H, W)`` -> input gradient, same shape."""
        grad_output = _checks.gradient_shape(self, grad_output, self.x_shape)
        n, c, h, w = self.x_shape
        rows = super().backward(grad_output.transpose(0, 2, 3, 1).reshape(n * h * w, c))
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    def output_shape(self, input_shape):
        """``(num_features, H, W)`` -> the same."""
        if input_shape is None:
            return self.num_features, None, None
        if len(input_shape) != 3 or input_shape[0] not in (None, self.num_features):
            raise ValueError(
                f"{self!r} takes images of shape (batch, {self.num_features}, height, width), "
                f"got (batch, {', '.join(map(str, input_shape))})"
            )
        return tuple(input_shape)

    def output_features(self, in_features: int | None) -> None:
        if in_features is not None:
            raise ValueError(
                f"{self!r} takes images (batch, channels, height, width), got rows of "
                f"{in_features} features (for rows, use BatchNorm1d)"
            )


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
