"""``out += a @ b`` with small temporaries: a block of rows at a time when ``out`` is large."""

from __future__ import annotations

import numpy as np


def add_product(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``out += a @ b`` for ``out: (rows, cols)``, with temporaries of at most ``PRODUCT_BLOCK``
    entries: a block of rows at a time when ``out`` is larger."""
    if out.size <= PRODUCT_BLOCK:
        out += a @ b
        return
    rows = max(1, PRODUCT_BLOCK // out.shape[1])
    for start in range(0, len(out), rows):
        out[start : start + rows] += a[start : start + rows] @ b


PRODUCT_BLOCK = 1 << 18  # entries of add_product's temporary: 2 MiB in float64
