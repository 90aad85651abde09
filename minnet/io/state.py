"""A model's parameters and buffers by name: ``state_dict`` and ``load_state_dict``; the
check for NaN and infinities that they, save and load make."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..layers import Layer
from ..model import Sequential


def count_non_finite(array: np.ndarray, block: int = 1 << 16) -> int:
    """How many entries of a float array are NaN or infinite (0 for other dtypes), counted a
    block at a time so that no temporary of the array's size is made."""
    if array.dtype.kind != "f":
        return 0
    flat, bad = array.reshape(-1), 0
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        bad += part.size - int(np.count_nonzero(np.isfinite(part)))
    return bad


def layer_arrays(layer: Layer) -> list[tuple[str, str, Any]]:
    """``("parameter" | "buffer", name, array)`` for every array of one layer, parameters
    first; the arrays themselves, not copies."""
    parameters = [("parameter", name, p.value) for name, p in layer.named_parameters()]
    return parameters + [("buffer", name, array) for name, array in layer.named_buffers()]


def named_arrays(model: Sequential) -> Iterator[tuple[str, str, np.ndarray]]:
    """:func:`layer_arrays` of every layer, named ``"<layer index>.<name>"``."""
    for i, layer in enumerate(model.layers):
        for kind, name, array in layer_arrays(layer):
            yield kind, f"{i}.{name}", array


def state_dict(model: Sequential) -> dict[str, np.ndarray]:
    """``{"<layer index>.<name>": copy}`` of every parameter and buffer, in order (the names
    :meth:`Sequential.named_parameters` gives, and ``"<i>.running_mean"`` for buffers)."""
    return {name: np.array(array, copy=True) for _, name, array in named_arrays(model)}


def load_state_dict(model: Sequential, state: Mapping[str, Any]) -> None:
    """Copy ``state`` (as :func:`state_dict` gives) into the model's arrays, in place.

    The names must be exactly the model's, each array of the shape and dtype of the array it
    replaces, with finite values (as :func:`save` and ``fit`` require); any mismatch is a
    ``ValueError`` listing them all, and then nothing is changed.
    """
    targets = {name: (kind, array) for kind, name, array in named_arrays(model)}
    if not isinstance(state, Mapping):
        raise TypeError(f"load_state_dict takes a dict of arrays, got {type(state).__name__}")
    problems = []
    if missing := [name for name in targets if name not in state]:
        problems.append(f"missing {missing}")
    if unexpected := [name for name in state if name not in targets]:
        problems.append(f"unexpected {reprlib.repr(unexpected)}")
    for name, (kind, target) in targets.items():
        if name in state:
            given = state[name]
            if not isinstance(given, np.ndarray):
                problems.append(f"{kind} {name!r}: expected a numpy array, got {type(given)}")
            elif given.shape != target.shape or given.dtype != target.dtype:
                problems.append(
                    f"{kind} {name!r}: expected {target.dtype} of shape {target.shape}, got "
                    f"{given.dtype} of shape {given.shape}"
                )
            elif bad := count_non_finite(given):  # as save, load and fit refuse them
                problems.append(f"{kind} {name!r} holds {bad} NaN or infinite values")
    if problems:
        raise ValueError(f"load_state_dict changed nothing: {'; '.join(problems)}")
    for name, (_, target) in targets.items():
        target[...] = state[name]
