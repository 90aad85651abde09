"""The layer contract, checked: what every layer must do besides computing the right numbers.

``docs/layers.md`` asks four things of a layer; the gradient check sees only the numbers, so the
rest is checked here, on the layer and input of a layer check, with the check's ``G``:

- ``forward(x)`` leaves ``x`` as it was (the layer below keeps ``x`` for its own backward: an
  in-place ReLU corrupts it), and returns a float array with ``x``'s batch and the
  ``output_features`` the layer declares;
- ``backward(G)`` leaves ``G`` as it was (the layer above may still need it), returns a float
  array of ``x``'s shape, and gives every parameter a ``.grad`` of the parameter's shape;
- ``backward`` *adds* to ``.grad``: two calls after one forward give twice the gradients (a
  backward that assigns ``W.grad = dW`` breaks tied weights and anything that sums gradients);
- two backward calls after one forward return the same input gradient (backward only reads
  what forward kept);
- the model's path for a first layer, ``minnet._fast.backward_first(layer, G)``, gives the same
  parameter gradients as ``layer.backward(G)``.

Each broken rule is a sentence saying what to change; the check fails on any of them. A layer
that returns float32 for a float64 input gets a note (its rounding is float32's: the numeric
check can then decide less, and says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _fast

if TYPE_CHECKING:
    from ..layers import Layer

#: Two gradients that must be equal (or one twice the other) may differ by this much, relative
#: to the largest entry: the same arithmetic repeated gives the same float, so this only allows
#: for a backward that sums in a varying order.
REPEAT_TOLERANCE = 1e-9


#: Words in every violation that leaves nothing to compare numerically (shapes, types).
UNMEASURABLE = "nothing to compare"


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    with np.errstate(invalid="ignore"):
        return bool(np.all((np.abs(a - b) <= REPEAT_TOLERANCE * scale) | (a == b)))


def _grads(layer: Layer) -> dict[str, np.ndarray]:
    return {name: np.array(p.grad, dtype=np.float64) for name, p in layer.named_parameters()}


def _zero(layer: Layer) -> None:
    for p in layer.parameters():
        p.grad = np.zeros_like(p.value)


def _is_float_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def contract_violations(layer: Layer, x: np.ndarray, G: np.ndarray) -> tuple[list[str], list[str]]:
    """``(violations, notes)`` of ``layer`` on the float64 input ``x: (batch, ...)`` and upstream
    gradient ``G`` (the output's shape). The layer's parameter gradients are left at zero."""
    kind = type(layer).__name__
    problems: list[str] = []
    notes: list[str] = []
    _zero(layer)
    given = x.copy()
    out = layer.forward(given)
    if not np.array_equal(given, x, equal_nan=True):
        problems.append(
            f"{kind}.forward changed its input x in place; compute into a new array "
            "(np.maximum(x, 0), not x[x < 0] = 0; x * mask, not x *= mask): the layer below "
            "keeps x for its backward"
        )
    if not _is_float_array(out):
        what = type(out).__name__ if not isinstance(out, np.ndarray) else f"dtype {out.dtype}"
        problems.append(
            f"{kind}.forward must return a float numpy array, got {what} ({UNMEASURABLE})"
        )
        return problems, notes
    if out.dtype != np.float64:
        notes.append(
            f"{kind}.forward returns {out.dtype} for a float64 input: it computes in lower "
            "precision inside, so its rounding noise is that precision's and the check decides "
            "fewer entries; compute in the input's dtype (x.dtype) to check it fully"
        )
    if out.ndim == 0 or len(out) != len(x):
        problems.append(
            f"{kind}.forward must keep the batch: input of shape {x.shape}, output of shape "
            f"{out.shape} ({UNMEASURABLE})"
        )
        return problems, notes
    declared = layer.output_features(x.shape[-1]) if x.ndim == 2 else None
    if declared is not None and out.shape[-1] != declared:
        problems.append(
            f"{kind}.output_features({x.shape[-1]}) says {declared}, forward returned "
            f"{out.shape[-1]} features: make output_features match forward"
        )
    if G.shape != out.shape:  # the check drew G for another output shape: forward varies
        problems.append(
            f"{kind}.forward returned shape {out.shape} once and {G.shape} another time "
            f"for the same input ({UNMEASURABLE})"
        )
        return problems, notes
    upstream = G.copy()
    first = layer.backward(upstream)
    if not np.array_equal(upstream, G):
        problems.append(
            f"{kind}.backward changed grad_output in place; compute into a new array "
            "(grad_output * mask, not grad_output *= mask): the caller may still need it"
        )
    if not _is_float_array(first) or first.shape != x.shape:
        got = f"shape {first.shape}" if isinstance(first, np.ndarray) else type(first).__name__
        problems.append(
            f"{kind}.backward must return the input gradient, a float array of the input's "
            f"shape {x.shape}, got {got} ({UNMEASURABLE})"
        )
    once = _grads(layer)
    for name, p in layer.named_parameters():
        if np.shape(p.grad) != np.shape(p.value):
            problems.append(
                f"{kind}.backward left {name}.grad with shape {np.shape(p.grad)}, {name} has "
                f"shape {np.shape(p.value)} ({UNMEASURABLE})"
            )
    if problems:
        return problems, notes
    second = layer.backward(G.copy())
    twice = _grads(layer)
    for name, grad in once.items():
        if _close(twice[name], 2 * grad):
            continue
        if _close(twice[name], grad):
            problems.append(
                f"{kind}.backward assigns {name}.grad instead of adding to it: two backward "
                f"calls after one forward left {name}.grad unchanged instead of doubled; write "
                f"{name}.grad += ... (gradients of tied weights and of several batches add up)"
            )
        else:
            problems.append(
                f"{kind}.backward: two backward calls after one forward did not double "
                f"{name}.grad; backward must add its gradient to .grad and nothing else"
            )
    if not (_is_float_array(second) and second.shape == first.shape and _close(second, first)):
        problems.append(
            f"{kind}.backward gave a different input gradient when called again after the same "
            "forward: it must only read what forward kept (do not change self.x or other saved "
            "arrays in backward)"
        )
    _zero(layer)
    _fast.backward_first(layer, G.copy())
    for name, grad in _grads(layer).items():
        if not _close(grad, once[name]):
            problems.append(
                f"the first-layer path (minnet._fast.backward_first) gives {kind}'s {name}.grad "
                "other values than backward: a model's first layer would train on other "
                "gradients than the check sees"
            )
    _zero(layer)
    return problems, notes
