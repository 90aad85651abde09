"""im2col and col2im: a convolution as one matrix product, without Python loops over examples
or pixels.

``im2col`` lays every window a kernel covers out as one *column* of a matrix (the layout of
CS231n's ``im2col``)::

    x: (N, C, H, W)  ->  cols: (C * kh * kw, N * H_out * W_out)

column ``(n, i, j)`` (in C order) holding the ``C * kh * kw`` inputs under the kernel when its
top-left corner sits at ``(i * sh - ph, j * sw - pw)``, row ``(c, p, q)`` (in C order: the
layout of a weight ``W[o, c, p, q]``). A convolution is then ``W.reshape(F, -1) @ cols``.
``col2im`` is its adjoint: it adds each column back onto the input positions it came from
(where windows overlap, the contributions sum), which is the input gradient of ``im2col``.

Row ``(c, p, q)`` of ``cols`` is one strided slice of the padded input (:func:`offsets`), copied
whole. Two versions of ``im2col``, giving the same array to the bit (they only copy numbers):

- the fast one reads all windows through one strided view of the padded input
  (``numpy.lib.stride_tricks.sliding_window_view``, no copy) and copies it once into place;
- with ``minnet.use_fast_path(False)``, one strided slice per kernel offset ``(p, q)``, the
  way CS231n and Saito's book write it: ``kh * kw`` copies.

``col2im`` loops over the ``kh * kw`` kernel offsets, each adding one strided slice of
``(N, C, H_out, W_out)``; the fast version adds the same numbers in the same order as one
contiguous range per offset (``_overlapping_col2im``), so both give the same array to the bit.
Windows that do not overlap (stride >= kernel) are written in one assignment.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pair = tuple[int, int]


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """The number of kernel positions along one axis, as torch's (``floor`` rounding):
    ``(size + 2 * padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """``x: (N, C, H, W)`` with ``padding = (ph, pw)`` rows and columns of ``value`` on each
    side: ``(N, C, H + 2 ph, W + 2 pw)``. ``x`` itself when there is no padding."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def offsets(kernel: Pair, stride: Pair, out: Pair):
    """``(p, q, rows, cols)`` for each kernel offset, in reading order: ``padded[:, :, rows,
    cols]`` is the entry at offset ``(p, q)`` of every window, ``(N, C, H_out, W_out)``."""
    (kh, kw), (sh, sw), (h_out, w_out) = kernel, stride, out
    for p in range(kh):
        for q in range(kw):
            yield p, q, slice(p, p + sh * h_out, sh), slice(q, q + sw * w_out, sw)


def windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, value: float = 0.0):
    """Every window as a strided view (no copy) of the padded input, ``(N, C, H_out, W_out,
    kh, kw)``."""
    (kh, kw), (sh, sw) = kernel, stride
    view = sliding_window_view(pad(x, padding, value), (kh, kw), axis=(2, 3))
    return view[:, :, ::sh, ::sw]


def im2col(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, value: float = 0.0
) -> np.ndarray:
    """``x: (N, C, H, W)`` -> ``cols: (C * kh * kw, N * H_out * W_out)``, padded with ``value``
    (zeros for a convolution, ``-inf`` for a max pooling)."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw) = kernel, stride
    out = output_size(x.shape[2], kh, sh, padding[0]), output_size(x.shape[3], kw, sw, padding[1])
    from . import fast_path_enabled  # here, not above: the package imports the layers

    cols = np.empty((c, kh, kw, n, *out), dtype=x.dtype)
    if fast_path_enabled():
        # One copy of one strided view: (N, C, H_out, W_out, kh, kw) -> (C, kh, kw, N, ...)
        cols[...] = windows(x, kernel, stride, padding, value).transpose(1, 4, 5, 0, 2, 3)
    else:
        padded = pad(x, padding, value)
        for p, q, rows, columns in offsets(kernel, stride, out):
            cols[:, p, q] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * out[0] * out[1])


def col2im(
    cols: np.ndarray, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair
) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``cols: (C * kh * kw, N * H_out * W_out)`` -> ``(N, C,
    H, W)``, each entry the sum of the entries of ``cols`` that :func:`im2col` copied from it
    (padding dropped)."""
    from . import fast_path_enabled  # here, not above: the package imports the layers

    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out = h_out, w_out = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    blocks = cols.reshape(c, kh, kw, n, h_out, w_out)
    # room for every window's whole stride (the last one may reach past the padded input)
    rows, columns = max(h + 2 * ph, sh * h_out), max(w + 2 * pw, sw * w_out)
    if fast_path_enabled() and (sh < kh or sw < kw):
        padded = _overlapping_col2im(blocks, kernel, stride, (rows, columns))
        return padded[:, :, ph : ph + h, pw : pw + w]
    padded = np.zeros((n, c, rows, columns), dtype=cols.dtype)
    if sh >= kh and sw >= kw:
        # No two windows overlap: each input gets at most one entry, written in one go.
        tiles = padded[:, :, : sh * h_out, : sw * w_out].reshape(n, c, h_out, sh, w_out, sw)
        tiles[:, :, :, :kh, :, :kw] = blocks.transpose(3, 0, 4, 1, 5, 2)
    else:
        for p, q, at_rows, at_columns in offsets(kernel, stride, out):
            padded[:, :, at_rows, at_columns] += blocks[:, p, q].transpose(1, 0, 2, 3)
    return padded[:, :, ph : ph + h, pw : pw + w]


def _overlapping_col2im(blocks: np.ndarray, kernel: Pair, stride: Pair, size: Pair) -> np.ndarray:
    """col2im's loop over the kernel offsets with long contiguous adds: the same sums, in the
    same order (plus zeros), so the same numbers. ``blocks: (C, kh, kw, N, H_out, W_out)`` ->
    the padded input's gradient ``(N, C, rows, columns)`` (a transposed view).

    Each padded image is one flat row of ``rows * columns``; offset ``(p, q)`` of window ``(i,
    j)`` lands at ``p * columns + q + i * sh * columns + j * sw``. Spread each block over rows of
    ``sh * columns`` entries (zeros between), and each offset adds one contiguous range starting
    at ``p * columns + q``, instead of ``H_out`` pieces of ``W_out`` entries.
    """
    c, kh, kw, n, h_out, w_out = blocks.shape
    (sh, sw), (rows, columns) = stride, size
    span = sh * columns
    spread = np.zeros((c, kh, kw, n, h_out, span), dtype=blocks.dtype)
    spread[..., : sw * w_out : sw] = blocks
    length = h_out * span
    flat = np.zeros(
        (c, n, max(rows * columns, (kh - 1) * columns + kw - 1 + length)), dtype=blocks.dtype
    )
    for p in range(kh):
        for q in range(kw):
            start = p * columns + q
            flat[:, :, start : start + length] += spread[:, p, q].reshape(c, n, length)
    return flat[:, :, : rows * columns].reshape(c, n, rows, columns).transpose(1, 0, 2, 3)


__all__ = ["col2im", "im2col", "offsets", "output_size", "pad", "windows"]
