"""Pooling on images: ``MaxPool2d`` and ``AvgPool2d``, as PyTorch's.

Both slide a ``kh x kw`` window over each channel of each image, ``stride`` apart (by default
the window's own size: windows side by side), and summarize it by one number. Written with
``im2col`` on each channel as an image of one channel: every window is one row of
``(N * C * H_out * W_out, kh * kw)``, the pooling is a reduction along the rows, and ``col2im``
brings the rows' gradient back to the image. The loop versions are in
:mod:`minnet.teaching.loops`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks
from .._fast.im2col import col2im, im2col
from .base import Layer
from .conv import Shape, image_input, images_only, int_pair, window_positions


class _Pool2d(Layer):
    """What both poolings share: the arguments, the shapes, and im2col per channel."""

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

    def _windows(self, x: Any) -> np.ndarray:
        """Checks ``x: (N, C, H, W)``, keeps what backward needs, and returns every window of
        every channel as a row: ``(N * C * H_out * W_out, kh * kw)``."""
        x = image_input(self, x)
        n, c, h, w = x.shape
        h_out, w_out = window_positions(self, (h, w), *self._geometry())
        self.x_shape, self.out_shape = x.shape, (n, c, h_out, w_out)
        return im2col(x.reshape(n * c, 1, h, w), *self._geometry(), value=self.pad_value)

    def _to_image(self, grad_cols: np.ndarray) -> np.ndarray:
        """``col2im`` of the rows' gradient, back to the input's shape."""
        n, c, h, w = self.x_shape
        return col2im(grad_cols, (n * c, 1, h, w), *self._geometry()).reshape(self.x_shape)

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
    the function has a kink: a gradient check says so rather than fail.)
    """

    pad_value = -np.inf

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``."""
        cols = self._windows(x)
        self.argmax = np.argmax(cols, axis=1)  # the first maximum of each window
        return np.take_along_axis(cols, self.argmax[:, None], axis=1).reshape(self.out_shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, C, H_out, W_out)`` -> input gradient ``(N, C, H, W)``."""
        _checks.gradient_shape(self, grad_output, self.out_shape)
        grad_cols = np.zeros((len(self.argmax), np.prod(self.kernel_size)), grad_output.dtype)
        np.put_along_axis(grad_cols, self.argmax[:, None], grad_output.reshape(-1, 1), axis=1)
        return self._to_image(grad_cols)


class AvgPool2d(_Pool2d):
    """The mean of each window, as ``torch.nn.AvgPool2d(kernel_size, stride, padding)`` (its
    default ``count_include_pad=True``: padded zeros count, the divisor is always ``kh * kw``):
    ``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    Backward: each output's gradient, divided by ``kh * kw``, goes to every input of its window.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, C, H, W)`` -> ``(N, C, H_out, W_out)``."""
        cols = self._windows(x)
        return (cols.sum(axis=1) / cols.shape[1]).reshape(self.out_shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (N, C, H_out, W_out)`` -> input gradient ``(N, C, H, W)``."""
        _checks.gradient_shape(self, grad_output, self.out_shape)
        size = int(np.prod(self.kernel_size))
        share = grad_output.reshape(-1, 1) / size
        return self._to_image(np.broadcast_to(share, (len(share), size)))


__all__ = ["AvgPool2d", "MaxPool2d"]
