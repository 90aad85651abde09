"""im2col and col2im: a convolution as one matrix product, without Python loops over examples
or pixels.

``im2col`` lays every window a kernel covers out as one *column* of a matrix::

    x: (N, C, H, W)  ->  cols: (C * kh * kw, H_out * W_out * N)

row ``(c, p, q)`` (in C order: the layout of a weight ``W[o, c, p, q]``), column ``(i, j, n)``
(in C order, the example last) holding input ``(n, c)`` at ``(i * sh - ph + p, j * sw - pw +
q)``: the window of output pixel ``(i, j)`` of example ``n``. A convolution is then
``W.reshape(F, -1) @ cols``. ``col2im`` is its adjoint: it adds each column back onto the input
positions it came from (where windows overlap, the contributions sum), which is the input
gradient of ``im2col``.

Both loop over the ``kh * kw`` kernel offsets ``(p, q)`` (:func:`offsets`), never over pixels or
examples: row block ``(:, p, q)`` of ``cols`` is one strided slice of the padded input. The
example is the *last* axis, as in the images seen as ``(C, H, W, N)``, so that each slice is
long runs of contiguous numbers (``W_out * N`` of them at stride 1) instead of runs of
``W_out``: this layout made both 2-4x faster than CS231n's ``(C * kh * kw, N * H_out * W_out)``
(and than one copy of ``sliding_window_view``), measured on a LeNet's layers. A convolution's
output ``(N, F, H_out, W_out)`` is then a transposed view of ``(F, H_out, W_out, N)``, which the
layers after it read as they read any array.
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """The number of kernel positions along one axis, as torch's (``floor`` rounding):
    ``(size + 2 * padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """``x: (N, C, H, W)`` with ``padding = (ph, pw)`` rows and columns of ``value`` on each
    side: ``(N, C, H + 2 ph, W + 2 pw)`` (in ``x``'s memory order). ``x`` itself when there is
    no padding."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    padded = np.full_like(x, value, shape=(n, c, h + 2 * ph, w + 2 * pw))
    padded[:, :, ph : ph + h, pw : pw + w] = x
    return padded


def offsets(kernel: Pair, stride: Pair, out: Pair):
    """``(p, q, rows, cols)`` for each kernel offset, in reading order: ``padded[:, :, rows,
    cols]`` is the entry at offset ``(p, q)`` of every window, ``(N, C, H_out, W_out)``."""
    (kh, kw), (sh, sw), (h_out, w_out) = kernel, stride, out
    for p in range(kh):
        for q in range(kw):
            yield p, q, slice(p, p + sh * h_out, sh), slice(q, q + sw * w_out, sw)


def im2col(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, value: float = 0.0
) -> np.ndarray:
    """``x: (N, C, H, W)`` -> ``cols: (C * kh * kw, H_out * W_out * N)``, padded with ``value``
    (zeros for a convolution, ``-inf`` for a max pooling)."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw) = kernel, stride
    out = output_size(x.shape[2], kh, sh, padding[0]), output_size(x.shape[3], kw, sw, padding[1])
    images = pad(x, padding, value).transpose(1, 2, 3, 0)  # (C, H, W, N): a view
    cols = np.empty((c, kh, kw, *out, n), dtype=x.dtype)
    for p, q, rows, columns in offsets(kernel, stride, out):
        cols[:, p, q] = images[:, rows, columns]
    return cols.reshape(c * kh * kw, out[0] * out[1] * n)


def col2im(
    cols: np.ndarray, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair
) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``cols: (C * kh * kw, H_out * W_out * N)`` -> ``(N, C,
    H, W)`` (a transposed view of ``(C, H, W, N)``), each entry the sum of the entries of
    ``cols`` that :func:`im2col` copied from it, in the order of the kernel offsets."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    blocks = cols.reshape(c, kh, kw, *out, n)
    images = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=cols.dtype)
    for p, q, rows, columns in offsets(kernel, stride, out):
        images[:, rows, columns] += blocks[:, p, q]
    return images[:, ph : ph + h, pw : pw + w].transpose(3, 0, 1, 2)


__all__ = ["col2im", "im2col", "offsets", "output_size", "pad"]
