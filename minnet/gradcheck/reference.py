"""The reference gradient check: central differences, one entry at a time.

This is the whole idea of a gradient check, as the tutorial writes it::

    numeric[i] = (J(theta + h e_i) - J(theta - h e_i)) / (2 h)

Move one entry of an array up by ``h``, evaluate the scalar ``J``, move it down by ``h``,
evaluate again, put it back, and divide. Float64 rounds ``theta + h`` (:func:`taken_step`);
:func:`step_rounding` is what that does to the quotient, one term of its error bar. The checks
compute every central difference with :func:`difference_quotient`; nothing else divides.

Everything else in :mod:`minnet.gradcheck` (the judge that decides what a disagreement means,
the report, the batched accelerator) is built around these few lines, and the accelerator is
tested to give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def evaluate_moved(J: Callable[[], float], array: np.ndarray, index: int, step: float) -> float:
    """``J()`` with ``array.flat[index]`` moved by ``step``; the entry is put back afterwards.

    ``array`` must be C-contiguous (its ``reshape(-1)`` is then a view).
    """
    flat = array.reshape(-1)
    saved = flat[index]
    flat[index] = saved + step
    try:
        return float(J())
    finally:
        flat[index] = saved


def taken_step(theta, step):
    """The step actually taken in floating point, ``(theta + step) - theta``: at a large
    ``theta`` (1e6) a step of 1e-10 is rounded to a multiple of ``theta``'s last place, and at
    ``epsilon=1e-20`` it is 0. Works on arrays too."""
    return (theta + step) - theta


def difference_quotient(plus, minus, step):
    """The tutorial's central difference ``(J(theta + h) - J(theta - h)) / 2h`` from the two
    values (arrays work too)."""
    return (plus - minus) / (2 * step)


def step_rounding(plus, minus, step, up, down):
    """How far :func:`difference_quotient` is from the same difference divided by the steps
    float64 actually took (``up = (theta + h) - theta``, ``down = theta - (theta - h)``): the
    part of its error that comes from rounding ``theta +- h``. Infinite when ``theta``
    swallowed the step (``up + down == 0``): the values then say nothing about a derivative."""
    span = up + down
    with np.errstate(divide="ignore", invalid="ignore"):
        taken = (plus - minus) / np.where(span > 0, span, 1.0)
        error = np.abs(difference_quotient(plus, minus, step) - taken)
    return np.where(span > 0, error, np.inf)[()]


def central_difference(J: Callable[[], float], array: np.ndarray, index: int, step: float) -> float:
    """``(J(theta + h) - J(theta - h)) / 2h`` for entry ``index`` of ``array``, ``h = step``."""
    plus = evaluate_moved(J, array, index, step)
    minus = evaluate_moved(J, array, index, -step)
    return float(difference_quotient(plus, minus, step))


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, epsilon: float = 1e-7
) -> np.ndarray:
    """The central-difference gradient of the scalar ``f`` at ``x``, one entry at a time.

    ``x`` is copied to float64; the result has ``x``'s shape.

    >>> numeric_gradient(lambda v: float((v**2).sum()), np.array([1.0, -2.0]), 1e-5)
    array([ 2., -4.])
    """
    x = np.array(x, dtype=np.float64, order="C")
    grad = np.empty(x.size)
    for i in range(x.size):
        grad[i] = central_difference(lambda: f(x), x, i, epsilon)
    return grad.reshape(x.shape)
