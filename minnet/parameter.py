"""``Parameter``: an array a model learns, and the gradient accumulated for it.

This is the whole of it: a value, a gradient of the same shape, adding to the gradient, and
zeroing it. A layer's ``backward`` *adds* its parameters' gradients (``p.grad += dW``, or
``p.accumulate(dW)``, the same thing), as in PyTorch, so that a parameter used twice gets the
sum of both uses; an optimizer reads ``p.grad`` and updates ``p.value`` in place.
"""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array ``value`` and its gradient ``grad`` (same shape, same dtype).

    >>> w = Parameter(np.ones(3))
    >>> w.accumulate(np.array([1.0, 2.0, 3.0]))   # w.grad += [1, 2, 3]
    >>> w.grad
    array([1., 2., 3.])
    >>> w.zero_grad()
    """

    def __init__(self, value) -> None:
        self.value = np.asarray(value)
        if self.value.dtype.kind != "f":
            raise TypeError(
                f"a Parameter holds floating-point numbers (it has a gradient), got dtype "
                f"{self.value.dtype}: write e.g. np.ones(n) or array.astype(float)"
            )
        self.grad = np.zeros_like(self.value)

    def accumulate(self, delta: np.ndarray) -> None:
        """``grad += delta``; ``delta`` has the value's shape (or broadcasts to it)."""
        self.grad += delta

    def zero_grad(self) -> None:
        """``grad[...] = 0``, in place."""
        self.grad[...] = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"
