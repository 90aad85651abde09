"""Pooling on images: ``MaxPool2d`` and ``AvgPool2d``, as PyTorch's.

Both slide a ``kh x kw`` window over each channel of each image, ``stride`` apart (by default
the window's own size: windows side by side), and summarize it by one number. Written as a loop
over the ``kh * kw`` offsets of the window, not over pixels: the entry at offset ``(p, q)`` of
every window at once is one strided slice of the (padded) input, ``(N, C, H_out, W_out)``, so
the maximum (or the sum) of the windows is built one offset at a time, and the backward sends
each output's gradient back through the same slices. The loops over pixels, as a learner writes
them first, are in :mod:`minnet.teaching.loops`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _checks
from .._fast.im2col import offsets, pad
from .base import Layer, Shape
from .conv import image_input, images_only, int_pair, window_positions


class _Pool2d(Layer):
    """What both poolings share: the arguments, the shapes, the padding, the offsets."""

    #: what the padding holds (-inf for max pooling, so that it never wins)
    pad_value = 0.0

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        self.kernel_size = int_pair("kernel_size", kernel_size, low=1)
        self.stride = self.kernel_size if stride is None else int_pair("stride", stride, low=1)
        self.padding = int_pair("padding", padding, low=0)
        for k, p in zip(self.kernel_size, self.padding, strict=True):
            if p > k // 2:
                raise ValueError(
                    f"padding must be at most half the kernel size (as in PyTorch), got padding "
                    f"{padding!r} for kernel_size {kernel_size!r}"
                )

    def _geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return self.kernel_size, self.stride, self.padding

    def _padded(self, x: Any) -> np.ndarray:
        """Checks ``x: (N, C, H, W)``, keeps its shape and the output's, and pads it with
        :attr:`pad_value`."""
        x = image_input(self, x)
        n, c, h, w = x.shape
        h_out, w_out = window_positions(self, (h, w), *self._geometry())
        self.x_shape, self.out_shape = x.shape, (n, c, h_out, w_out)
        return pad(x, self.padding, self.pad_value)

    def _offsets(self) -> Iterator[tuple[int, int, slice, slice]]:
        """``(p, q, rows, cols)``: ``padded[:, :, rows, cols]`` is the entry at offset ``(p, q)``
        of every window, ``(N, C, H_out, W_out)``."""
        return offsets(self.kernel_size, self.stride, self.out_shape[2:])

    def _unpadded(self, padded: np.ndarray) -> np.ndarray:
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        return padded[:, :, ph : ph + h, pw : pw + w]

    def output_shape(self, input_shape: Shape) -> Shape:
        """``(C, H, W)`` -> ``(C, H_out, W_out)`` (sizes may be ``None``)."""
        if input_shape is None:
            return None, None, None
        if len(input_shape) != 3:
            raise ValueError(
                f"{self!r} takes images of shape (batch, channels, height, width), got "
                f"(batch, {', '.join(map(str, input_shape))})"
            )
        return input_shape[0], *window_positions(self, input_shape[1:], *self._geometry())

    def output_features(self, in_features: int | None) -> None:
        images_only(self, in_features)


class MaxPool2d(_Pool2d):
    """The largest entry of each window, as ``torch.nn.MaxPool2d(kernel_size, stride,
    padding)``: ``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)`` with ``H_out = (H + 2 * ph - kh)
    // sh + 1`` (the same for ``W_out``). The padding is ``-inf``: it never wins.

    Backward: each output's gradient goes to the input that was its window's maximum; at a tie,
    to the first one in reading order (row by row), as PyTorch's does. (Where two inputs tie,
    the function has a kink: a gradient check says so rather than fail.) A NaN in a window makes
    its output NaN, as in PyTorch; its gradient then goes nowhere.
    """

    pad_value = -np.inf

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``."""
        self.padded = self._padded(x)
        entries = (self.padded[:, :, rows, cols] for _, _, rows, cols in self._offsets())
        self.out = next(entries).copy(order="K")  # in the input's memory order: faster
        for entry in entries:  # the largest so far of every window, one offset at a time
            np.maximum(self.out, entry, out=self.out)
        return self.out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, C, H_out, W_out)`` -> input gradient ``(N, C, H, W)``."""
        grad_output = _checks.gradient_shape(self, grad_output, self.out_shape)
        # every array below in the memory order of the input (faster than mixed orders)
        g = np.empty_like(self.out, dtype=grad_output.dtype)
        g[...] = grad_output
        grad = np.zeros_like(self.padded, dtype=g.dtype)
        zero = np.zeros((), dtype=g.dtype)
        taken = np.zeros_like(self.out, dtype=bool)  # windows whose maximum was found
        # the padding never wins, even a tie with an input of -inf (as in PyTorch)
        inside = pad(np.ones((1, 1, *self.x_shape[2:]), dtype=bool), self.padding, False)
        for _, _, rows, cols in self._offsets():  # in reading order: the first maximum wins
            first = (self.padded[:, :, rows, cols] == self.out) & ~taken & inside[:, :, rows, cols]
            taken |= first
            grad[:, :, rows, cols] += np.where(first, g, zero)
        return self._unpadded(grad)


class AvgPool2d(_Pool2d):
    """The mean of each window, as ``torch.nn.AvgPool2d(kernel_size, stride, padding)`` (its
    default ``count_include_pad=True``: padded zeros count, the divisor is always ``kh * kw``):
    ``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    Backward: each output's gradient, divided by ``kh * kw``, goes to every input of its window.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``."""
        padded = self._padded(x)
        total = sum(padded[:, :, rows, cols] for _, _, rows, cols in self._offsets())
        return total / (self.kernel_size[0] * self.kernel_size[1])

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, C, H_out, W_out)`` -> input gradient ``(N, C, H, W)``."""
        grad_output = _checks.gradient_shape(self, grad_output, self.out_shape)
        n, c, h, w = self.x_shape
        (ph, pw) = self.padding
        grad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_output.dtype)
        share = grad_output / (self.kernel_size[0] * self.kernel_size[1])
        for _, _, rows, cols in self._offsets():
            grad[:, :, rows, cols] += share
        return self._unpadded(grad)


__all__ = ["AvgPool2d", "MaxPool2d"]
