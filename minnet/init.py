"""Initializers: the starting values of a layer's weights, by name or by a function of yours.

A layer with weights of shape ``shape`` (``Linear``: ``(out_features, in_features)``; a
convolution: ``(out_channels, in_channels, kh, kw)``) takes ``init=`` and calls
:func:`initialize` for its weights and :func:`initial_bias` for its bias. ``fan_in`` is the
number of inputs each output sums (``in_features``; ``in_channels * kh * kw``), ``fan_out`` the
number of outputs each input feeds (``out_features``; ``out_channels * kh * kw``).

- ``"he"`` (the default): normal, std ``sqrt(2 / fan_in)`` (He et al. 2015; for ReLU);
- ``"he_uniform"``: uniform in ``+-sqrt(6 / fan_in)``, the same variance;
- ``"glorot"``: normal, std ``sqrt(2 / (fan_in + fan_out))`` (Glorot & Bengio 2010; for tanh
  and sigmoid);
- ``"glorot_uniform"``: uniform in ``+-sqrt(6 / (fan_in + fan_out))``, the same variance;
- ``"zeros"``: zeros (the classic exercise: every unit of a layer then stays the same);
- ``"torch"``: PyTorch's default, ``kaiming_uniform_(a=sqrt(5))``, that is uniform in
  ``+-1 / sqrt(fan_in)``, and the bias uniform in ``+-1 / sqrt(fan_in)`` too, as ``nn.Linear``
  and ``nn.Conv2d`` draw them in ``reset_parameters``;
- a callable ``init(shape, rng) -> array``: your weights, of exactly ``shape`` and finite
  (``rng`` is the layer's numpy ``Generator``).

The bias starts at zero, except with ``"torch"``. The weights are drawn from ``rng`` first,
then (``"torch"`` only) the bias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _checks

#: The initializers known by name, in the order of the list above.
INITS = ("he", "he_uniform", "glorot", "glorot_uniform", "zeros", "torch")


def check_init(init: Any) -> str | Callable[..., Any]:
    """``init`` if it is one of :data:`INITS` or a callable, else a ``ValueError`` naming it."""
    if callable(init) and not isinstance(init, type):
        return init
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(
            f"init must be one of {list(INITS)} or a function init(shape, rng) -> array, got "
            f"{init!r}"
        )
    return init


def initialize(
    init: str | Callable[..., Any],
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Initial weights of ``shape`` in ``dtype``, drawn from ``rng`` as ``init`` says (see the
    module's table). ``fan_in, fan_out >= 1``."""
    init = check_init(init)
    dtype = _checks.float_dtype("dtype", dtype)
    if callable(init):
        return _called(init, shape, rng, dtype)
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if init == "he":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))
    else:
        bound = {
            "he_uniform": np.sqrt(6.0 / fan_in),
            "glorot_uniform": np.sqrt(6.0 / (fan_in + fan_out)),
            "torch": 1.0 / np.sqrt(fan_in),  # kaiming_uniform_(a=sqrt(5)): sqrt(1/3) * sqrt(3/n)
        }[init]
        weights = rng.uniform(-bound, bound, shape)
    return weights.astype(dtype)


def initial_bias(
    init: str | Callable[..., Any],
    shape: tuple[int, ...],
    fan_in: int,
    rng: np.random.Generator,
    dtype: Any = np.float64,
) -> np.ndarray:
    """The initial bias of ``shape``: uniform in ``+-1 / sqrt(fan_in)`` for ``"torch"``,
    zeros for every other ``init``."""
    dtype = _checks.float_dtype("dtype", dtype)
    if init == "torch":
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)


def _called(
    init: Callable[..., Any], shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """What a user's ``init(shape, rng)`` returned, checked: an array of ``shape``, finite."""
    name = getattr(init, "__name__", type(init).__name__)
    weights = init(tuple(shape), rng)
    array = np.asarray(weights)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"init {name}(shape, rng) must return real numbers, got {array.dtype}")
    if array.shape != tuple(shape):
        raise ValueError(
            f"init {name}(shape, rng) must return an array of shape {tuple(shape)}, got "
            f"{array.shape}"
        )
    array = np.array(array, dtype=dtype)  # a copy: the layer owns its weights
    _checks.finite(f"the weights init {name} returned", array)
    return array


__all__ = ["INITS", "check_init", "initial_bias", "initialize"]
