"""Convolution and pooling as a learner writes them first: loops over examples, channels and
output pixels, one window at a time (the "naive" functions of CS231n's second assignment).

They are slow and meant to be read: each output is written as its definition. minnet's layers
(:class:`minnet.Conv2d`, :class:`minnet.MaxPool2d`, :class:`minnet.AvgPool2d`) compute the same
numbers with im2col and one matrix product, and the tests check both against each other (and
against PyTorch). Shapes, as in PyTorch: ``x: (N, C, H, W)``, ``W: (F, C, kh, kw)``, ``b: (F,)``,
``stride = (sh, sw)``, ``padding = (ph, pw)``, output ``(N, F, H_out, W_out)`` with
``H_out = (H + 2 ph - kh) // sh + 1`` (and the same for ``W_out``).
"""

from __future__ import annotations

import numpy as np


def _padded(x: np.ndarray, padding: tuple[int, int], value: float) -> np.ndarray:
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _out_size(x_shape, kernel, stride, padding) -> tuple[int, int]:
    _, _, h, w = x_shape
    return (
        (h + 2 * padding[0] - kernel[0]) // stride[0] + 1,
        (w + 2 * padding[1] - kernel[1]) // stride[1] + 1,
    )


def conv_forward(x, W, b, stride=(1, 1), padding=(0, 0)) -> np.ndarray:
    """``out[n, f, i, j] = sum(window * W[f]) + b[f]``, the window of ``x[n]`` (zero-padded)
    under the kernel at output position ``(i, j)``. ``b`` may be ``None`` (no bias)."""
    n_examples, _, _, _ = x.shape
    n_filters, _, kh, kw = W.shape
    sh, sw = stride
    h_out, w_out = _out_size(x.shape, (kh, kw), stride, padding)
    xp = _padded(x, padding, 0.0)
    out = np.zeros((n_examples, n_filters, h_out, w_out), dtype=x.dtype)
    for n in range(n_examples):
        for f in range(n_filters):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[n, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    out[n, f, i, j] = np.sum(window * W[f]) + (0 if b is None else b[f])
    return out


def conv_backward(grad_output, x, W, stride=(1, 1), padding=(0, 0)):
    """``(dx, dW, db)`` for :func:`conv_forward`: each output ``(n, f, i, j)`` sends
    ``grad_output[n, f, i, j] * W[f]`` back to its window of ``x`` and
    ``grad_output[n, f, i, j] * window`` to ``W[f]``; ``db[f]`` sums ``grad_output[:, f]``."""
    n_examples, _, h, w = x.shape
    n_filters, _, kh, kw = W.shape
    sh, sw = stride
    ph, pw = padding
    h_out, w_out = grad_output.shape[2:]
    xp = _padded(x, padding, 0.0)
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for n in range(n_examples):
        for f in range(n_filters):
            for i in range(h_out):
                for j in range(w_out):
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    dxp[n, :, rows, cols] += grad_output[n, f, i, j] * W[f]
                    dW[f] += grad_output[n, f, i, j] * xp[n, :, rows, cols]
    db = grad_output.sum(axis=(0, 2, 3))
    return dxp[:, :, ph : ph + h, pw : pw + w], dW, db


def max_pool_forward(x, kernel, stride, padding=(0, 0)) -> np.ndarray:
    """``out[n, c, i, j] = max(window)``, the window padded with ``-inf`` (padding never wins)."""
    kh, kw = kernel
    sh, sw = stride
    h_out, w_out = _out_size(x.shape, kernel, stride, padding)
    xp = _padded(x, padding, -np.inf)
    out = np.zeros((*x.shape[:2], h_out, w_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(h_out):
                for j in range(w_out):
                    out[n, c, i, j] = np.max(xp[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw])
    return out


def max_pool_backward(grad_output, x, kernel, stride, padding=(0, 0)) -> np.ndarray:
    """``dx`` for :func:`max_pool_forward`: each output's gradient goes to the input that was the
    maximum of its window; at a tie, to the first one in reading order (row by row), as
    PyTorch does. Windows that overlap add up."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    _, _, h, w = x.shape
    h_out, w_out = grad_output.shape[2:]
    xp = _padded(x, padding, -np.inf)
    dxp = np.zeros_like(xp)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    p, q = np.unravel_index(np.argmax(window), window.shape)  # the first max
                    dxp[n, c, i * sh + p, j * sw + q] += grad_output[n, c, i, j]
    return dxp[:, :, ph : ph + h, pw : pw + w]


def avg_pool_forward(x, kernel, stride, padding=(0, 0)) -> np.ndarray:
    """``out[n, c, i, j] = sum(window) / (kh * kw)``, padded zeros counted (PyTorch's default,
    ``count_include_pad=True``)."""
    kh, kw = kernel
    sh, sw = stride
    h_out, w_out = _out_size(x.shape, kernel, stride, padding)
    xp = _padded(x, padding, 0.0)
    out = np.zeros((*x.shape[:2], h_out, w_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    out[n, c, i, j] = np.sum(window) / (kh * kw)
    return out


def avg_pool_backward(grad_output, x, kernel, stride, padding=(0, 0)) -> np.ndarray:
    """``dx`` for :func:`avg_pool_forward`: each output's gradient, divided by ``kh * kw``, goes to
    every input of its window."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    _, _, h, w = x.shape
    h_out, w_out = grad_output.shape[2:]
    dxp = np.zeros_like(_padded(x, padding, 0.0))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(h_out):
                for j in range(w_out):
                    share = grad_output[n, c, i, j] / (kh * kw)
                    dxp[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw] += share
    return dxp[:, :, ph : ph + h, pw : pw + w]


__all__ = [
    "avg_pool_backward",
    "avg_pool_forward",
    "conv_backward",
    "conv_forward",
    "max_pool_backward",
    "max_pool_forward",
]
