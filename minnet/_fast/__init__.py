"""The accelerator, behind the textbook path's seams. Nothing here changes a number, only speed.

What it does (each piece tested to give the textbook path's numbers):

- :class:`~.storage.FlatStorage`: a model's parameters as views into two flat vectors (values,
  gradients), so that ``zero_grad`` is one ``fill`` and an optimizer step a few numpy calls for
  the whole model, however many parameters it has;
- :func:`backward`: a model's backward, with a plain ``Linear``'s weight gradient added a block
  of rows at a time (no temporary as large as ``W``) and without the first layer's input
  gradient, which nobody uses (the input is the data): for a ``Linear``, a product as large as
  its forward, skipped; for a ``Conv2d``, a product and a ``col2im``;
- :mod:`.parallel`: the blocks of an optimizer step on two threads (the caller's and one
  worker, started on first use), for an optimizer whose block update allows it (all of minnet's);
- :mod:`.im2col`: the windows of an image as the columns of a matrix, for ``Conv2d``;
- :func:`cost` and :mod:`.plan`: a model's training step planned once, for models of plain
  ``Linear``, ``ReLU``, ``Sigmoid`` and ``Tanh`` layers with a binary cross-entropy from the
  logits (or a cross-entropy or NLL loss on class indices): ``Sequential.cost`` asks
  :func:`cost` first, and :func:`backward` runs the plan's backward after a planned cost;
- :mod:`.watch`: the guards that what was planned with is still in place (a storage's
  ``intact()``, the plan's guards), written out once as one expression each.

:func:`use_fast_path` switches it all off (``use_fast_path(False)``): every model then keeps
its parameters as they are and runs exactly the code a learner reads. The setting is read when a
model or an optimizer is built, and by each cost, backward and zero_grad.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Sequence

import numpy as np

from .. import _checks
from ..layers.base import Layer
from ..layers.linear import Linear
from ..parameter import Parameter
from .plan import REPLAN, Body, Plan, plan_of
from .products import PRODUCT_BLOCK, add_product
from .storage import BLOCK, FlatStorage

_ENABLED = True


def use_fast_path(enabled: bool = True) -> None:
    """Switch the accelerator on (the default) or off, for models and optimizers built after."""
    global _ENABLED
    _ENABLED = bool(enabled)


def fast_path_enabled() -> bool:
    return _ENABLED


# model -> the flat storage of its parameters
_STORAGE_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def place(model, parameters: Sequence[Parameter], dtype: np.dtype | None) -> bool:
    """Move ``model``'s ``parameters`` (``model.parameters()``) into flat storage (converted to
    ``dtype`` if given), or reuse the live storage that already holds exactly them. ``False``
    when the fast path is off or they cannot move (see :meth:`FlatStorage.create`): they stay
    as they are."""
    if not _ENABLED:
        return False
    storage = FlatStorage.find(parameters)
    if storage is None or (dtype is not None and storage.values.dtype != dtype):
        storage = FlatStorage.create(parameters, dtype)
    if storage is None:
        return False
    _STORAGE_OF[model] = storage
    return True


# id(model) -> (each layer's number of attributes, the layers, (a layer's attribute dict,
# attribute name) per parameter)
_PLACES: dict[int, tuple[list, tuple, list]] = {}


def current_parameters(model) -> list[Parameter]:
    """``model.parameters()``, cheaply, for every training step.

    Where each parameter sits (a layer and one of its attribute names) is found by a full walk
    once, and again whenever the list of layers or the number of any layer's attributes changes
    (a lazy layer that creates a parameter in its first forward). Each call reads the attributes
    anew, so a parameter assigned later (``layer.W = Parameter(...)``) is the one returned. Models
    whose parameters sit deeper (in lists, dicts, sub-layers) always get the full walk.
    """
    layers = model.layers
    key = [len(layer.__dict__) for layer in layers]  # with the layers themselves, below
    cached = _PLACES.get(id(model))
    if cached is None or cached[0] != key or not _same(cached[1], layers):
        if any(map(may_gain_parameters, layers)):
            return model.parameters()  # (a list that may gain one: the full walk each time)
        places = []
        for name, _ in model.named_parameters():
            index, attribute = name.split(".", 1)
            if "." in attribute:
                return model.parameters()
            places.append((layers[int(index)].__dict__, attribute))
        cached = (key, tuple(layers), places)  # holding the layers keeps their ids
        _PLACES[id(model)] = cached
        _drop_when_gone(model)
    found = [attributes.get(name) for attributes, name in cached[2]]
    for p in found:
        if type(p) is not Parameter and not isinstance(p, Parameter):
            return model.parameters()
    return found


def may_gain_parameters(layer) -> bool:
    """Does ``layer`` hold, as an attribute, a container in which a parameter may appear
    without a change of its number of attributes (a list, a dict, a layer, or a tuple of
    them: ``layer.extras.append(Parameter(...))``)? Its parameters must then be found by the
    full walk each time: what watches the number of attributes would not see one more."""
    return any(map(_may_hold, vars(layer).values()))


def _may_hold(value) -> bool:
    if isinstance(value, list | dict | Layer):
        return True
    return type(value) is tuple and any(map(_may_hold, value))


# ids of the models whose entries in _PLACES and _PLANS are dropped when they are gone
_WATCHED: set[int] = set()


def _drop_when_gone(model) -> None:
    """Drop ``model``'s entries in the tables keyed by its id when it is garbage collected
    (one finalizer per model, however often its plan is made again)."""
    key = id(model)
    if key not in _WATCHED:
        _WATCHED.add(key)
        weakref.finalize(model, _forget_id, key)


def _forget_id(key: int) -> None:
    _PLACES.pop(key, None)
    _PLANS.pop(key, None)
    _WATCHED.discard(key)


def _same(cached: tuple, layers: list) -> bool:
    return len(cached) == len(layers) and all(map(operator.is_, cached, layers))


def zero_grad(model) -> None:
    """``p.zero_grad()`` for every parameter of ``model``: one ``fill`` of its flat storage
    when the storage holds exactly its parameters."""
    plan = _PLANS.get(id(model)) if _ENABLED else None
    if plan is not None and plan.zero_grad(model):
        return
    storage = _STORAGE_OF.get(model) if _ENABLED else None
    parameters = current_parameters(model) if _ENABLED else model.parameters()
    if storage is not None and storage.holds(parameters):
        storage.grads.fill(0)
        return
    for p in parameters:
        p.zero_grad()


def backward(body: list, grad_output: np.ndarray) -> bool:
    """``for layer in reversed(body): grad = layer.backward(grad)``, the way the accelerator does
    it; ``False`` (nothing done) when it is off.

    Two differences, neither changing a number's meaning: a plain ``Linear`` adds ``W``'s
    gradient a block of rows at a time (no temporary as large as ``W``), and the first layer's
    input gradient, which nobody uses (its input is the data), is not computed.
    """
    if not _ENABLED:
        return False
    if type(body) is Body and body.plan.backward(grad_output):  # after a planned cost
        return True
    for i in range(len(body) - 1, -1, -1):
        layer = body[i]
        if type(layer) is Linear and "backward" not in vars(layer):
            grad_output = _linear_backward(layer, grad_output, needs_input_grad=i > 0)
        elif i == 0 and _is_plain_conv(layer, grad_output):
            _conv_backward_without_input(layer, grad_output)
        else:
            grad_output = layer.backward(grad_output)
    return True


def _is_plain_conv(layer, grad_output: np.ndarray) -> bool:
    from ..layers.conv import Conv2d  # here, not above: Conv2d imports this package's im2col

    return (
        type(layer) is Conv2d
        and "backward" not in vars(layer)
        and grad_output.shape == layer.out_shape
    )


def _conv_backward_without_input(layer, grad_output: np.ndarray) -> None:
    """``Conv2d.backward`` without its input gradient (a product and a col2im, skipped)."""
    g = grad_output.transpose(1, 2, 3, 0).reshape(layer.out_channels, -1)
    layer.W.grad += (g @ layer.cols.T).reshape(layer.W.value.shape)
    if layer.bias:
        layer.b.grad += g.sum(axis=1)


def _linear_backward(layer: Linear, grad_output: np.ndarray, needs_input_grad: bool):
    """``Linear.backward``, with ``W.grad += grad_output.T @ x`` made a block of rows at a time."""
    _checks.gradient_shape(layer, grad_output, (len(layer.x), layer.out_features))
    add_product(layer.W.grad, grad_output.T, layer.x)
    layer.b.grad += grad_output.sum(axis=0)
    return grad_output @ layer.W.value if needs_input_grad else None


def backward_first(layer, grad_output: np.ndarray) -> None:
    """A model's first layer's backward as the accelerator runs it: ``layer.backward`` adding
    the same parameter gradients, without the input gradient nobody uses (for a plain
    ``Linear`` or ``Conv2d``). The gradient check compares the two."""
    backward([layer], grad_output)


# id(model) -> its plan (see .plan), while the model lives
_PLANS: dict[int, Plan] = {}


def forget(model) -> None:
    """Drop ``model``'s plan: its layers, its loss or its L2 factor changed (the model says
    so), and the next ``cost`` plans again."""
    _PLANS.pop(id(model), None)


def cost(model, X, Y, sample_weight=None) -> tuple | None:
    """``model.cost(X, Y)`` by the model's planned step (see :mod:`.plan`): the cost and what
    the model keeps for backward (:meth:`.Plan.cost`); or ``None`` when the accelerator is off,
    does not know the model, or ``X``, ``Y`` or ``sample_weight`` are not the common case: then
    the textbook ``cost`` runs, with its checks and its errors."""
    if not _ENABLED or sample_weight is not None:
        return None
    key = id(model)
    plan = _PLANS.get(key)
    if plan is not None and plan.model() is model:
        planned = plan.cost(model, X, Y)  # (it tests first that the plan still fits the model)
        if planned is not REPLAN:
            return planned
    plan = plan_of(model, _STORAGE_OF.get(model))
    if plan is None:
        return None
    _drop_when_gone(model)
    _PLANS[key] = plan
    planned = plan.cost(model, X, Y)
    return None if planned is REPLAN else planned  # (a new plan fits: never REPLAN)


__all__ = [
    "BLOCK",
    "PRODUCT_BLOCK",
    "FlatStorage",
    "add_product",
    "backward",
    "backward_first",
    "cost",
    "current_parameters",
    "fast_path_enabled",
    "forget",
    "place",
    "use_fast_path",
    "zero_grad",
]
