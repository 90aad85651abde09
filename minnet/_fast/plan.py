"""A model's training step, planned once: ``cost`` and ``backward`` without the per-layer dispatch.

For a :class:`~minnet.Sequential` made only of layers the accelerator knows (plain ``Linear``,
``ReLU``, ``Sigmoid``, ``Tanh``) with a binary cross-entropy computed from the logits
(``BCELoss`` fused with the final ``Sigmoid``, or ``BCEWithLogitsLoss``), a :class:`Plan` runs
what the textbook ``Sequential.cost`` and ``Sequential.backward`` run, with the same numpy
operations in the same order (so the same numbers), but:

- the data's checks are the textbook's, done only for the common case (``X`` and ``Y`` numpy
  arrays of the model's dtype and shapes): anything else (a list, another dtype, a bad shape, a
  NaN, a target out of [0, 1]) makes :func:`cost` return ``None``, and the textbook path runs
  from the start, checks, converts, refuses with its own errors;
- ``Linear`` and ``ReLU`` run inline, ``ReLU`` in place on the ``Linear``'s fresh output (nobody
  else holds it), and ``Sigmoid``/``Tanh`` by their own methods;
- the loss runs by its own methods (``forward_fused`` or ``forward``), which keep its gradient.

The plan leaves the model as the textbook would: each layer keeps what its forward keeps
(``Linear.x``, ``ReLU.out``), the loss its gradient, and ``Sequential.cost`` keeps the body's
outputs and the layers a ``backward`` runs, which the plan returns with the cost; so a
textbook ``backward`` may follow a planned ``cost``, and the planned ``backward`` reads the
layers' state and parameters as the textbook does.

A plan is checked before each use (:meth:`Plan.fits`) and rebuilt when it does not fit: the list
of layers changed (or any layer's attributes were added to, e.g. a ``forward`` replaced on an
instance), the loss was replaced, changed its reduction or was patched, the model's dtype
changed, or the accelerator was switched off. Parameters (``layer.W``, ``p.value``) are read
anew at each step, as the textbook reads them.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import _checks
from ..layers.activations import ReLU, Sigmoid, Tanh
from ..layers.linear import Linear
from .products import add_product

# What a layer's forward keeps, for its backward: the plan needs it to exist before it plans.
_KEPT = {Linear: "x", ReLU: "out", Sigmoid: "out", Tanh: "out"}
_LINEAR, _RELU, _OTHER = 0, 1, 2
# Up to this many parameters, backward writes the gradients after a zero_grad (one pass over
# them to check they are zero, one to add a zero at the end) instead of adding to them.
FIRST_WRITE = 1 << 16


class Body(list):
    """The layers a planned ``cost`` hands to ``backward`` (``model._pending``), knowing their
    plan: ``backward`` recognises it."""

    plan: Plan


class Plan:
    """The planned ``cost`` and ``backward`` of one model, for its current layers and loss."""

    def __init__(self, model, body: list, fused: bool, storage) -> None:
        self.model = weakref.ref(model)
        self.layers = tuple(model.layers)
        self.dicts = [vars(layer) for layer in self.layers]
        self.sizes = [len(attributes) for attributes in self.dicts]
        self.loss = model.loss
        self.loss_size = len(vars(model.loss))
        self.reduction = model.loss.reduction
        self.dtype = model.dtype
        # 0 and 1 as arrays of the model's dtype: numpy takes them faster than Python's numbers,
        # and every array they meet here is of that dtype or a wider one (it comes from X,
        # checked of that dtype), so the results are the same
        self.zero, self.one = np.zeros((), self.dtype), np.ones((), self.dtype)
        self.fused = fused
        self.body = Body(body)
        self.body.plan = self
        self.body_dicts = [vars(layer) for layer in body]
        self.body_sizes = [len(attributes) for attributes in self.body_dicts]
        kinds = {Linear: _LINEAR, ReLU: _RELU}
        self.steps = [(kinds.get(type(layer), _OTHER), layer) for layer in body]
        self.backward_steps = [(i, *step) for i, step in enumerate(self.steps)][::-1]
        # The flat storage of the model's parameters (None: not all of them are in one), and
        # each Linear with its parameters and their gradients, views of the storage's
        self.storage = storage
        # a storage small enough that writing the gradients pays (see backward)
        self.small_storage = storage if storage and storage.grads.size <= FIRST_WRITE else None
        self.held = [
            (layer, layer.W, layer.b, layer.W.grad, layer.b.grad)
            for layer in body
            if type(layer) is Linear
        ]

    def fits(self, model) -> bool:
        """Is this still the plan of ``model``: the same layers (see :meth:`same_layers`), the
        same loss (not patched) with the same reduction, the same dtype?"""
        loss = self.loss
        return (
            model.loss is loss
            and loss.reduction == self.reduction
            and len(vars(loss)) == self.loss_size
            and model.dtype == self.dtype
            and self.same_layers(model)
        )

    def same_layers(self, model) -> bool:
        """Does ``model`` have the plan's layers, none with an attribute added or removed since
        (a ``forward`` set on an instance, a new parameter)?"""
        return model.layers == self.layers and list(map(len, self.dicts)) == self.sizes

    # -- cost ------------------------------------------------------------------------------------
    def cost(self, model, X, Y) -> tuple | None:
        """``model.cost(X, Y)`` and what the model keeps for backward, ``(cost, the body's
        outputs, the layers backward runs, None: no sample weights)``; or ``None`` (nothing done
        that counts) when ``X`` or ``Y`` is not the common case: then the textbook path checks
        them (and refuses them) itself."""
        if type(X) is not np.ndarray or type(Y) is not np.ndarray:
            return None
        dtype = self.dtype
        if X.dtype != dtype or Y.dtype != dtype or X.ndim != 2:
            return None
        m, n = X.shape
        k = model.out_features
        if m == 0 or n != model.in_features or X.shape[1:] != model.input_shape:
            return None
        if Y.shape != (m, k):
            if Y.shape != (m,) or k != 1:
                return None
            Y = Y.reshape(-1, 1)  # as BCELoss.check_targets shapes it
        # the textbook's checks: X finite, targets in [0, 1] (so finite)
        if np.count_nonzero(np.isfinite(X)) != X.size:
            return None
        # y in [0, 1] exactly when min(y, 1 - y) >= 0 (1 - y rounds to < 0 for any y > 1; a
        # NaN gives NaN, and NaN >= 0 is false)
        if np.count_nonzero(np.minimum(Y, self.one - Y) >= self.zero) != Y.size:
            return None
        # the body's layers, as their forwards compute
        x, fresh = X, False  # fresh: made here, held by nobody
        for kind, layer in self.steps:
            if kind == _LINEAR:
                if x.shape[1] != layer.in_features:
                    return None  # Linear.forward refuses it: let it say so
                layer.x = x
                x, fresh = x @ layer.W.value.T + layer.b.value, True
            elif kind == _RELU:
                x = np.maximum(x, self.zero, out=x) if fresh else np.maximum(x, self.zero)
                layer.out = x
            else:
                x, fresh = layer.forward(x), False
        if x.shape != Y.shape:
            return None  # the loss refuses it
        # the loss, by its own methods (they keep its gradient for backward)
        value = self.loss.forward_fused(x, Y) if self.fused else self.loss.forward(x, Y)
        value = value + model.penalty() if model.l2 else value
        return value, x, self.body, None

    # -- backward --------------------------------------------------------------------------------
    def backward(self, grad: np.ndarray) -> bool:
        """The body's backward from the loss's gradient ``grad``, as ``_fast.backward`` runs it;
        ``False`` (nothing done) when a layer changed since the cost.

        When every gradient is zero (``zero_grad`` came before), a small model's ``Linear``
        gradients are written instead of added to, and a zero is added to all of them once at
        the end: ``0 + v`` is ``v`` except for ``v = -0.0`` (``0 + -0.0 = 0``), which the
        final addition makes ``0`` too, so the numbers are the textbook's to the bit.
        """
        if list(map(len, self.body_dicts)) != self.body_sizes:
            return False
        storage = self.small_storage
        first = storage is not None and self.holds() and not np.count_nonzero(storage.grads)
        try:
            self._backward(grad, first)
        finally:
            if first:
                np.add(storage.grads, self.zero, out=storage.grads)
        return True

    def _backward(self, grad: np.ndarray, first: bool) -> None:
        fresh = False
        for i, kind, layer in self.backward_steps:
            if kind == _LINEAR:
                x = layer.x
                if grad.shape != (len(x), layer.out_features):
                    _checks.gradient_shape(layer, grad, (len(x), layer.out_features))
                W, b = layer.W, layer.b
                if first:
                    np.matmul(grad.T, x, out=W.grad)
                    np.add.reduce(grad, axis=0, out=b.grad)
                else:
                    add_product(W.grad, grad.T, x)
                    b.grad += np.add.reduce(grad, axis=0)
                if not i:
                    return  # the first layer's input is the data: nobody needs its gradient
                grad, fresh = grad @ W.value, True
            elif kind == _RELU:
                out = layer.out
                if grad.shape != out.shape:
                    _checks.gradient_shape(layer, grad, out.shape)
                grad = np.multiply(grad, out > self.zero, out=grad if fresh else None)
                fresh = True
            else:
                grad, fresh = layer.backward(grad), False

    # -- zero_grad -------------------------------------------------------------------------------
    def zero_grad(self, model) -> bool:
        """``grads.fill(0)`` of the model's flat storage when it holds exactly the model's
        parameters (every ``Linear``'s ``W`` and ``b``, still with their views); ``False``
        (nothing done) if not."""
        storage = self.storage
        if storage is None or self.model() is not model or not self.same_layers(model):
            return False
        if not self.holds():
            return False
        storage.grads.fill(0)
        return True

    def holds(self) -> bool:
        """Are the model's parameters still those of the flat storage, with its gradients?"""
        for layer, W, b, W_grad, b_grad in self.held:
            if layer.W is not W or layer.b is not b or W.grad is not W_grad or b.grad is not b_grad:
                return False
        return True


def plan_of(model, storage) -> Plan | None:
    """A new plan for ``model``, or ``None`` when the accelerator does not know it (a layer or
    a loss it does not know, a layer patched on its instance, a model of mixed dtypes, a
    parameter elsewhere than in a ``Linear``'s ``W`` and ``b``, or no forward yet)."""
    from ..losses import BCELoss, BCEWithLogitsLoss  # here: the losses import the layers

    layers, loss = model.layers, model.loss
    if type(loss) not in (BCELoss, BCEWithLogitsLoss):
        return None
    if any(callable(value) for value in vars(loss).values()):
        return None  # a method patched on the instance
    if loss.reduction not in ("mean", "sum") or model.dtype is None:
        return None
    if model.in_features is None or model.out_features is None:
        return None
    fused = model.fused
    if type(loss) is BCELoss and not fused:
        return None  # BCELoss on probabilities: its own formula, not planned
    for layer in layers:
        if type(layer) not in _KEPT or "forward" in vars(layer) or "backward" in vars(layer):
            return None
    for layer in layers[:-1] if fused else layers:
        if _KEPT[type(layer)] not in vars(layer):
            return None  # no forward yet
    linears = [layer for layer in layers if type(layer) is Linear]
    expected = [p for layer in linears for p in (layer.W, layer.b)]
    found = model.parameters()
    if len(found) != len(expected) or not all(map(_is, found, expected)):
        return None
    if storage is not None and not storage.holds(found):
        storage = None  # zero_grad goes the usual way
    return Plan(model, model.body, fused, storage)


def _is(a, b) -> bool:
    return a is b
