"""Gradient clipping by the total norm of all gradients, as ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._checks import flag, real_number
from ..parameter import Parameter


def clip_grad_norm_(
    parameters: Parameter | Iterable[Parameter],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``; return the total norm *before* clipping.

    The total norm is the ``norm_type``-norm of all the gradients as one vector (the norm of
    each gradient's norm, as PyTorch computes it). When it exceeds ``max_norm``, every
    gradient is multiplied by ``max_norm / (total_norm + 1e-6)``; otherwise nothing changes::

        total = ||(||g_1||, ||g_2||, ...)||
        g_i = g_i * min(1, max_norm / (total + 1e-6))

    Parameters
    ----------
    parameters
        A :class:`~minnet.Parameter` or any iterable of them (``model.parameters()``).
    max_norm
        The largest total norm allowed, ``>= 0``; ``math.inf`` leaves the gradients as they are
        and only measures their norm (PyTorch's idiom).
    norm_type
        ``p`` of the p-norm, ``> 0``, or ``math.inf`` (the largest absolute entry).
    error_if_nonfinite
        Raise a ``RuntimeError`` (and change nothing) when the total norm is NaN or infinite;
        by default the gradients are scaled anyway, as PyTorch does.
    """
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters[{i}] must be a minnet Parameter, got {type(p).__name__}")
    max_norm = real_number("max_norm", max_norm, 0.0, finite=False)  # inf: only measure
    if not max_norm >= 0:  # NaN or < 0
        raise ValueError(f"max_norm must be a number >= 0 (or math.inf), got {max_norm!r}")
    error_if_nonfinite = flag("error_if_nonfinite", error_if_nonfinite)
    norm_type = real_number("norm_type", norm_type, 0.0, math.inf, low_open=True, finite=False)
    if not norm_type > 0:  # NaN or <= 0
        raise ValueError(f"norm_type must be a number > 0 or math.inf, got {norm_type!r}")
    if not params:
        return 0.0
    norms = np.array([np.linalg.norm(p.grad.ravel(), ord=norm_type) for p in params])
    total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of the gradients (norm_type={norm_type}) is {total}: "
            "error_if_nonfinite=True, so they were left as they are"
        )
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        for p in params:
            p.grad *= coefficient
    return total


__all__ = ["clip_grad_norm_"]
