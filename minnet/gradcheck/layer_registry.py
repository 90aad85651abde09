"""What the gradient check knows about layers, kept here so that no layer has to know it.

Three things, each with a safe default for a layer nobody registered:

- **Row-wise** (:func:`is_rowwise`): does each output row depend only on the same input row
  (and the parameters)? Then the check may stack many perturbed copies of a batch into one
  forward. Default: no (each copy runs on its own, always right, only slower).
- **Perturbed forwards** (:func:`forward_perturbed`): a layer's outputs for many one-entry moves
  of one parameter at once. Default: one ``forward`` per move.
- **Kinks of its own** (:func:`register_kinks`): where the layer's derivative jumps, when that
  is not at fixed input values (``kink_points``): a max pooling has a kink wherever two entries
  of a window tie for the maximum. Default: the ``kink_points`` class attribute, or none.
- **Held randomness** (:func:`holding_randomness`): every evaluation must see the same function,
  so each numpy ``Generator`` a layer keeps as an attribute replays its draws during a check.
  A layer that draws from elsewhere may opt in with a ``fixed_randomness()`` context manager.

Registration is by exact class: a subclass with a forward of its own computes something else,
so it gets the defaults until it is registered itself (:func:`register_rowwise`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple

import numpy as np

from .._fast.im2col import im2col
from ..layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .judge import KINKS_MEET, NEAR_KINK, NO_KINK, ONE_KINK

# class -> predicate(layer) -> bool
_ROWWISE: dict[type, Callable[[Any], bool]] = {}
# class -> forward_perturbed(layer, x, name, flat_index, steps)
_PERTURBED: dict[type, Callable[..., np.ndarray]] = {}


def register_rowwise(cls: type, when: Callable[[Any], bool] = lambda layer: True) -> None:
    """Declare ``cls``'s layers row-wise (``when(layer)`` is true: e.g. only in eval mode)."""
    _ROWWISE[cls] = when


def is_rowwise(layer: Layer) -> bool:
    """Is ``layer`` known to compute each output row from its own input row only?"""
    when = _ROWWISE.get(type(layer))
    return bool(when(layer)) if when is not None else False


def register_perturbed(cls: type, function: Callable[..., np.ndarray]) -> None:
    """Give ``cls`` a fast ``function(layer, x, name, flat_index, steps)`` for
    :func:`forward_perturbed`."""
    _PERTURBED[cls] = function


def parameter_getter(name: str) -> Callable[[Any], Any]:
    """A function ``layer -> parameter`` for a name of ``named_parameters`` (``"W"``,
    ``"fc.W"``, ``"ws.0"``)."""

    def walk(layer: Any) -> Any:
        value = layer
        for part in name.split("."):
            if isinstance(value, dict):
                value = value[part] if part in value else value[int(part)]
            elif isinstance(value, list | tuple):
                value = value[int(part)]
            else:
                value = getattr(value, part)
        return value

    return walk


def forward_perturbed(
    layer: Layer, x: np.ndarray, name: str, flat_index: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    """Outputs for ``x`` with entry ``flat_index[k]`` of parameter ``name`` moved by
    ``steps[k]``, one per k: shape ``(len(steps), batch, *out)``. The parameter is left as it
    was."""
    fast = _PERTURBED.get(type(layer))
    if fast is not None:
        return fast(layer, x, name, flat_index, steps)
    value = parameter_getter(name)(layer).value.reshape(-1)  # a view: values are contiguous
    outputs = []
    for i, step in zip(flat_index, steps, strict=True):
        saved = value[i]
        value[i] = saved + step
        outputs.append(layer.forward(x))
        value[i] = saved
    return np.stack(outputs)


def _linear_perturbed(
    layer: Linear, x: np.ndarray, name: str, flat_index: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    # Moving W[i, j] by s adds s * x[:, j] to output column i; moving b[i] adds s.
    outputs = np.repeat(layer.forward(x)[np.newaxis], len(steps), axis=0)
    which = np.arange(len(steps))
    if name == "W":
        rows, cols = np.divmod(flat_index, layer.in_features)
        outputs[which, :, rows] += steps[:, np.newaxis] * x[:, cols].T
    else:
        outputs[which, :, flat_index] += steps[:, np.newaxis]
    return outputs


def _conv2d_perturbed(
    layer: Conv2d, x: np.ndarray, name: str, flat_index: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    # out[n, o] is sum(W[o] * window) + b[o]: moving W[o, c, p, q] by s adds s times row
    # (c, p, q) of the layer's im2col matrix to output channel o; moving b[o] adds s.
    out = layer.forward(x)
    outputs = np.repeat(out[np.newaxis], len(steps), axis=0)  # (steps, N, F, H_out, W_out)
    n, _, h_out, w_out = out.shape
    if name == "W":
        channels, columns = np.divmod(flat_index, layer.W.value[0].size)
        moved = layer.cols[columns].reshape(len(steps), h_out, w_out, n).transpose(0, 3, 1, 2)
        outputs[np.arange(len(steps)), :, channels] += steps[:, None, None, None] * moved
    else:
        outputs[np.arange(len(steps)), :, flat_index] += steps[:, None, None, None]
    return outputs


class Kinks(NamedTuple):
    """A layer's own kinks: ``sides(layer, x)``, an array of -1, 0, 1 (0: on a kink) that changes
    exactly when an input crosses one, and ``crossing(sides, sides0)``: what moving from the
    input of ``sides0`` (the check's unmoved one) to that of ``sides`` crossed (``NO_KINK``,
    ``ONE_KINK``, ``KINKS_MEET`` or ``NEAR_KINK``, see :mod:`.judge`)."""

    sides: Callable[[Any, np.ndarray], np.ndarray | None]
    crossing: Callable[[np.ndarray, np.ndarray], int]


_KINKS: dict[type, Kinks] = {}


def register_kinks(cls: type, sides: Callable, crossing: Callable) -> None:
    """Give ``cls`` kinks of its own (see :class:`Kinks`) instead of its ``kink_points``."""
    _KINKS[cls] = Kinks(sides, crossing)


def kinks_of(layer: Layer) -> Kinks | None:
    """The kinks registered for ``layer``'s class, or ``None`` (then its ``kink_points``)."""
    return _KINKS.get(type(layer))


def _max_pool_sides(layer: MaxPool2d, x: np.ndarray) -> np.ndarray | None:
    # Each window's entries (a column of im2col): the sign of (entry - the largest of the
    # others): 1 for the maximum, -1 below it, 0 where two entries tie for the maximum (a kink).
    n, c, h, w = x.shape
    geometry = (layer.kernel_size, layer.stride, layer.padding)
    cols = im2col(x.reshape(n * c, 1, h, w), *geometry, value=-np.inf)
    if len(cols) < 2:
        return None
    second, first = np.sort(cols, axis=0)[-2:]
    others = np.where(cols == first, second, first)
    with np.errstate(invalid="ignore"):  # -inf padding minus -inf padding
        return np.nan_to_num(np.sign(cols - others), nan=-1.0)


def _max_pool_crossing(sides: np.ndarray, sides0: np.ndarray) -> int:
    # One window whose tie broke: the gradient's choice (the first maximum) is one side's
    # slope. Ties broken in several windows at once: backprop's choices need not be the
    # slopes of one side (KINKS_MEET: a value outside them is undecided, not wrong).
    changed = sides != sides0
    if not changed.any():
        return NO_KINK
    if not np.all(sides0[changed] == 0):
        return NEAR_KINK  # a maximum changed that was not tied at theta: the step is too large
    return ONE_KINK if np.count_nonzero(changed.any(axis=0)) == 1 else KINKS_MEET


class _Replay:
    """Stands in for a numpy ``Generator`` during a check: the first call with given arguments
    draws from the real generator; every later identical call returns that same draw."""

    def __init__(self, generator: np.random.Generator) -> None:
        self._generator = generator
        self._draws: dict[Any, Any] = {}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        draw = getattr(self._generator, method)

        def replayed(*args: Any, **kwargs: Any) -> Any:
            key = (method, repr(args), repr(sorted(kwargs.items())))
            if key not in self._draws:
                self._draws[key] = draw(*args, **kwargs)
            value = self._draws[key]
            return value.copy() if isinstance(value, np.ndarray) else value

        return replayed


@contextmanager
def holding_randomness(layers: list[Layer]) -> Iterator[None]:
    """Within this block, every random draw of these layers repeats: each ``Generator``
    attribute replays its first draw for the same call, and a layer's own
    ``fixed_randomness()`` context (if it has one) is entered."""
    replaced: list[tuple[Any, Any, np.random.Generator]] = []  # (holder, key, generator)
    states: dict[int, tuple[np.random.Generator, dict[str, Any]]] = {}
    with ExitStack() as stack:
        for layer in _with_sublayers(layers):
            for holder, key, value in _slots(layer):
                if isinstance(value, np.random.Generator):
                    replaced.append((holder, key, value))
                    states.setdefault(id(value), (value, value.bit_generator.state))
                    _put(holder, key, _Replay(value))
            hold = getattr(type(layer), "fixed_randomness", None)
            if hold is not None:
                stack.enter_context(layer.fixed_randomness())
        try:
            yield
        finally:
            for holder, key, value in replaced:
                _put(holder, key, value)
            # A check is an observation: the generators draw next what they would have drawn
            # without it (training after a check is training without one).
            for generator, state in states.values():
                generator.bit_generator.state = state


@contextmanager
def keeping_state(layers: list[Layer]) -> Iterator[None]:
    """Within this block the layers may run forward and backward as they like; afterwards
    every attribute of them and of their sub-layers is what it was before: the same objects
    (what ``forward`` cached for a pending ``backward`` too), and the same contents for arrays
    and for the items of lists and dicts held as attributes (``Parameter`` objects keep their
    identity; :func:`.targets.checking` puts their arrays back)."""
    saved = []
    for layer in _with_sublayers(layers):
        attributes = dict(vars(layer))
        contents = [
            (value, _contents(value))
            for value in attributes.values()
            if _contents(value) is not None
        ]
        saved.append((layer, attributes, contents))
    try:
        yield
    finally:
        for layer, attributes, contents in saved:
            vars(layer).clear()
            vars(layer).update(attributes)
            for value, content in contents:
                _restore(value, content)


def _contents(value: Any) -> Any:
    """A copy of what can change in place: an array's entries, a list's or dict's items."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return None


def _restore(value: Any, content: Any) -> None:
    if isinstance(value, np.ndarray):
        if value.flags.writeable:
            value[...] = content
    elif isinstance(value, list):
        value[:] = content
    else:
        value.clear()
        value.update(content)


def _with_sublayers(layers: list[Layer]) -> list[Layer]:
    """The layers and every layer held inside them (attributes, lists, tuples, dicts)."""
    found: list[Layer] = []
    stack = list(layers)
    while stack:
        layer = stack.pop()
        if any(layer is other for other in found):
            continue
        found.append(layer)
        stack.extend(v for _, _, v in _slots(layer) if isinstance(v, Layer))
    return found


def _slots(layer: Layer) -> list[tuple[Any, Any, Any]]:
    """``(holder, key, value)`` for the layer's attributes and the items of its lists and dicts
    (one level deep)."""
    slots = []
    for name, value in vars(layer).items():
        slots.append((layer, name, value))
        if isinstance(value, list):
            slots.extend((value, i, item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            slots.extend((value, key, item) for key, item in value.items())
    return slots


def _put(holder: Any, key: Any, value: Any) -> None:
    if isinstance(holder, list | dict):
        holder[key] = value
    else:
        setattr(holder, key, value)


for _cls in (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LayerNorm):
    register_rowwise(_cls)
# Image layers: each output example depends on its own input example only (rows = examples).
for _cls in (Conv2d, MaxPool2d, AvgPool2d, Flatten):
    register_rowwise(_cls)
register_rowwise(BatchNorm1d, lambda layer: not layer.training)
register_rowwise(BatchNorm2d, lambda layer: not layer.training)
register_rowwise(Dropout, lambda layer: not layer.training or layer.p == 0)
register_perturbed(Linear, _linear_perturbed)
register_perturbed(Conv2d, _conv2d_perturbed)
register_kinks(MaxPool2d, _max_pool_sides, _max_pool_crossing)

__all__ = [
    "Kinks",
    "forward_perturbed",
    "holding_randomness",
    "is_rowwise",
    "keeping_state",
    "kinks_of",
    "parameter_getter",
    "register_kinks",
    "register_perturbed",
    "register_rowwise",
]
