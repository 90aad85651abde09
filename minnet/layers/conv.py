"""Convolution on images: ``Conv2d``, and ``Flatten`` from images to feature rows.

Images are batch-first, channels first, as in PyTorch: ``x: (N, C, H, W)``.

``Conv2d`` is written as a learner's second version of it (after the loops of
:mod:`minnet.teaching.loops`): every window the kernel covers becomes one column of a matrix
(``im2col``), and the convolution is one matrix product with the weights laid out as rows::

    cols = im2col(x)                          # (C * kh * kw, H_out * W_out * N)
    out = W.reshape(F, -1) @ cols + b         # (F, H_out * W_out * N) -> (N, F, H_out, W_out)

The backward is the backward of a ``Linear`` on those columns, and ``col2im`` (the adjoint of
``im2col``: windows that overlap add up) brings the columns' gradient back to the image.
``docs/conv.md`` says why this is the form in the layer and the loops are in the teaching
material.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _checks
from .._fast.im2col import col2im, im2col, output_size
from ..init import check_init, initial_bias, initialize
from ..parameter import Parameter
from .base import Layer, Shape


def int_pair(name: str, value: Any, low: int) -> tuple[int, int]:
    """``(a, a)`` for a whole number ``a``, or a pair (tuple or list) of whole numbers, each at
    least ``low``: how ``kernel_size``, ``stride`` and ``padding`` are given, as in PyTorch."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be a whole number or a pair of them, got {value!r}")
        return (
            _checks.whole_number(f"{name}[0]", value[0], low=low),
            _checks.whole_number(f"{name}[1]", value[1], low=low),
        )
    number = _checks.whole_number(name, value, low=low)
    return number, number


def image_input(layer: Layer, x: Any, channels: int | None = None) -> np.ndarray:
    """``x`` as a float array of shape ``(N, C, H, W)`` (with ``C == channels`` if given), else a
    ``ValueError`` naming the layer and the shapes."""
    x = _checks.float_input(layer, x)
    if x.ndim != 4:
        raise ValueError(
            f"{layer!r} expects images of shape (batch, channels, height, width), got an array "
            f"of shape {x.shape}" + (" (add the channel axis: x[:, None])" if x.ndim == 3 else "")
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer!r} expects {channels} channels, got input of shape {x.shape} "
            f"({x.shape[1]} channels)"
        )
    return x


def window_positions(
    layer: Layer, size: tuple[int | None, int | None], kernel, stride, padding
) -> tuple[int | None, int | None]:
    """``(H_out, W_out)``, the kernel positions along each axis of an image of ``size = (H,
    W)`` (``None``: not known), else a ``ValueError`` when the kernel does not fit once."""
    out = []
    for axis, n, k, s, p in zip(("height", "width"), size, kernel, stride, padding, strict=True):
        if n is None:
            out.append(None)
            continue
        if n + 2 * p < k:
            raise ValueError(
                f"{layer!r}: the image is smaller than the kernel: {axis} {n}"
                + (f" (+ 2 * {p} padding)" if p else "")
                + f" < kernel {k}"
            )
        out.append(output_size(n, k, s, p))
    return out[0], out[1]


def images_only(layer: Layer, in_features: int | None) -> None:
    """For ``output_features``: an image layer cannot follow rows of features."""
    if in_features is not None:
        raise ValueError(
            f"{layer!r} takes images (batch, channels, height, width), got rows of "
            f"{in_features} features"
        )


class Conv2d(Layer):
    """2-D convolution (a cross-correlation, as in every framework), as ``torch.nn.Conv2d``.

    Shapes: ``x: (N, in_channels, H, W)``, ``W: (out_channels, in_channels, kh, kw)``,
    ``b: (out_channels,)`` (no ``b`` with ``bias=False``), output ``(N, out_channels, H_out,
    W_out)`` with ``H_out = (H + 2 * ph - kh) // sh + 1`` and the same for ``W_out``.
    ``kernel_size``, ``stride`` and ``padding`` are each a whole number or a pair ``(along H,
    along W)``; the padding is zeros.

    ``W`` is drawn from ``rng`` (a numpy ``Generator`` or a seed) as ``init`` says, as for a
    ``Linear`` (see :mod:`minnet.init`) with ``fan_in = in_channels * kh * kw`` and ``fan_out =
    out_channels * kh * kw``: ``"he"`` (the default, normal with std ``sqrt(2 / fan_in)``),
    ``"glorot"``, their uniform versions, ``"zeros"``, ``"torch"`` (``nn.Conv2d``'s own draws,
    the bias too) or a function ``init(shape, rng)``. ``b`` starts at zero (except with
    ``"torch"``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        bias: bool = True,
        init: str | Callable[..., Any] = "he",
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.in_channels = _checks.whole_number("in_channels", in_channels, low=1)
        self.out_channels = _checks.whole_number("out_channels", out_channels, low=1)
        self.kernel_size = int_pair("kernel_size", kernel_size, low=1)
        self.stride = int_pair("stride", stride, low=1)
        self.padding = int_pair("padding", padding, low=0)
        self.bias = _checks.flag("bias", bias)
        self.init = check_init(init)
        self.dtype = _checks.float_dtype("dtype", dtype)
        rng = _checks.generator("rng", rng)
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.W = Parameter(initialize(self.init, shape, fan_in, fan_out, rng, self.dtype))
        if self.bias:
            bias_values = initial_bias(self.init, (self.out_channels,), fan_in, rng, self.dtype)
            self.b = Parameter(bias_values)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, in_channels, H, W)`` -> ``(N, out_channels, H_out, W_out)``."""
        x = image_input(self, x, self.in_channels)
        h_out, w_out = window_positions(self, x.shape[2:], *self._geometry())
        self.x_shape, self.out_shape = x.shape, (len(x), self.out_channels, h_out, w_out)
        self.cols = im2col(x, *self._geometry())  # (C*kh*kw, H_out*W_out*N)
        out = self.W.value.reshape(self.out_channels, -1) @ self.cols  # (F, H_out*W_out*N)
        if self.bias:
            out += self.b.value[:, np.newaxis]
        return out.reshape(self.out_channels, h_out, w_out, len(x)).transpose(3, 0, 1, 2)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, out_channels, H_out, W_out)`` -> input gradient ``(N,
        in_channels, H, W)``. Adds to ``W.grad`` and ``b.grad``, as a ``Linear`` on the columns
        of ``cols`` would."""
        grad_output = _checks.gradient_shape(self, grad_output, self.out_shape)
        g = grad_output.transpose(1, 2, 3, 0).reshape(self.out_channels, -1)  # (F, Ho*Wo*N)
        self.W.grad += (g @ self.cols.T).reshape(self.W.value.shape)
        if self.bias:
            self.b.grad += g.sum(axis=1)
        grad_cols = self.W.value.reshape(self.out_channels, -1).T @ g  # (C*kh*kw, Ho*Wo*N)
        return col2im(grad_cols, self.x_shape, *self._geometry())

    def _geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return self.kernel_size, self.stride, self.padding

    def output_shape(self, input_shape: Shape) -> Shape:
        """``(in_channels, H, W)`` -> ``(out_channels, H_out, W_out)`` (sizes may be ``None``)."""
        if input_shape is None:
            return self.out_channels, None, None
        if len(input_shape) != 3 or input_shape[0] not in (None, self.in_channels):
            raise ValueError(
                f"{self!r} takes images of shape (batch, {self.in_channels}, height, width), "
                f"got (batch, {', '.join(map(str, input_shape))})"
            )
        return self.out_channels, *window_positions(self, input_shape[1:], *self._geometry())

    def output_features(self, in_features: int | None) -> None:
        images_only(self, in_features)


class Flatten(Layer):
    """``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)``, each example's entries in C order, as
    ``torch.nn.Flatten()``: ``(N, C, H, W)`` -> ``(N, C * H * W)``. The backward reshapes the
    gradient back."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, ...)`` -> ``(N, size of one example)``."""
        x = _checks.float_input(self, x)
        if x.ndim < 2:
            raise ValueError(f"{self!r} expects input of shape (batch, ...), got shape {x.shape}")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, size of one example)`` -> the input's shape."""
        n = self.x_shape[0]
        grad_output = _checks.gradient_shape(self, grad_output, (n, int(np.prod(self.x_shape[1:]))))
        return grad_output.reshape(self.x_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        """``(d1, d2, ...)`` -> ``(d1 * d2 * ...,)``, ``(None,)`` while a size is not known."""
        if input_shape is None or None in input_shape:
            return (None,)
        return (int(np.prod(input_shape)),)


__all__ = ["Conv2d", "Flatten", "image_input", "images_only", "int_pair", "window_positions"]
