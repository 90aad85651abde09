"""``out += a @ b`` with small temporaries: a block of rows at a time when ``out`` is large."""

from __future__ import annotations

import numpy as np


def add_product(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``out += a @ b`` for ``out: (rows, cols)``, with temporaries of about ``PRODUCT_BLOCK``
    entries: a block of rows at a time when ``out`` is larger.

    The same numbers as the whole product: no block has one row (of a product of several),
    nor is a product of one column cut: numpy makes a product of one row or one column a
    matrix-vector product, another BLAS routine than the matrix product's, with another
    rounding. (A last block of one row joins the block before it.)"""
    rows, cols = out.shape
    if out.size <= PRODUCT_BLOCK or cols == 1:
        out += a @ b
        return
    step = max(2, PRODUCT_BLOCK // cols)
    start = 0
    while start < rows:
        stop = start + step
        if stop == rows - 1:  # (a last block of one row)
            stop = rows
        out[start:stop] += a[start:stop] @ b
        start = stop


PRODUCT_BLOCK = 1 << 18  # entries of add_product's temporary: 2 MiB in float64
