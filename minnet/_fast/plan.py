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
  else holds it), and ``Sigmoid``/``Tanh`` by their own methods, in code written out for the
  model's layers (:func:`compile_source`): no loop over the layers, no test of their kinds;
- the loss is computed by :meth:`Plan.bce`, ``BCELoss.forward_fused``'s operations on the same
  operands, which keeps what the loss keeps (with ``pos_weight``: by ``forward_fused`` itself).

The plan leaves the model as the textbook would: each layer keeps what its forward keeps
(``Linear.x``, ``ReLU.out``), the loss its gradient, and ``Sequential.cost`` keeps the body's
outputs and the layers a ``backward`` runs, which the plan returns with the cost; so a
textbook ``backward`` may follow a planned ``cost``, and the planned ``backward`` reads the
layers' state and parameters as the textbook does.

A plan is dropped when the model's layers, loss or ``l2`` change (the model calls
``_fast.forget``), and checked before each use (:meth:`Plan.fits`), rebuilt when it does not fit:
a layer's attributes were added to (e.g. a ``forward`` replaced on an instance), the loss changed
its reduction or was patched, the model's dtype changed, or the accelerator was switched off.
Parameters (``layer.W``, ``p.value``) are read anew at each step, as the textbook reads them.
"""

from __future__ import annotations

import weakref
from functools import partial

import numpy as np

from .. import _checks
from ..layers.activations import ReLU, Sigmoid, Tanh
from ..layers.linear import Linear
from .products import add_product
from .watch import same_attributes

try:  # numpy's C function, without the Python wrapper and dispatcher of np.count_nonzero
    from numpy._core.multiarray import count_nonzero
except ImportError:  # pragma: no cover  (a numpy without it: the public one, slower)
    count_nonzero = np.count_nonzero

# What a layer's forward keeps, for its backward: the plan needs it to exist before it plans.
_KEPT = {Linear: "x", ReLU: "out", Sigmoid: "out", Tanh: "out"}
_LINEAR, _RELU, _OTHER = 0, 1, 2
# Up to this many parameters, backward writes the gradients after a zero_grad (one pass over
# them to check they are zero, one to add a zero at the end) instead of adding to them.
FIRST_WRITE = 1 << 16


class Body(list):
    """The layers a planned ``cost`` hands to ``backward`` (``model._pending``), knowing their
    plan: ``backward`` recognises it.

    A copy or a pickle of it is a plain list of the (copied) layers: the plan's written-out code
    holds the original layers, so a deep copy of a model between ``cost`` and ``backward`` would
    otherwise run the original model's backward (and a pickle would fail on the plan)."""

    plan: Plan

    def __reduce__(self):
        return (list, (list(self),))


class Plan:
    """The planned ``cost`` and ``backward`` of one model, for its current layers and loss."""

    def __init__(self, model, body: list, fused: bool, storage, classes: bool = False) -> None:
        self.model = weakref.ref(model)
        self.dicts = [vars(layer) for layer in model.layers]
        self.sizes = [len(attributes) for attributes in self.dicts]
        self.loss = model.loss
        self.loss_size = len(vars(model.loss))
        self.reduction = model.loss.reduction
        self.dtype = model.dtype
        self.l2 = model.l2  # (a change of it drops the plan)
        self.width = model.out_features  # of the targets
        # 0 and 1 as arrays of the model's dtype: numpy takes them faster than Python's numbers,
        # and every array they meet here is of that dtype or a wider one (it comes from X,
        # checked of that dtype), so the results are the same
        self.zero, self.one = np.zeros((), self.dtype), np.ones((), self.dtype)
        # the bits of a float as an unsigned integer of its size grow with the float from +0.0
        # to 1.0, and every other float (negative, -0.0, above 1, NaN) has larger bits: a
        # number is in [0, 1] (and not -0.0) exactly when its bits are <= those of 1.0
        self.bits = np.dtype(f"u{self.dtype.itemsize}")
        self.one_bits = self.one.view(self.bits)
        self.fused = fused
        # targets: class indices (CrossEntropyLoss, NLLLoss) or numbers in [0, 1] (BCE)
        self.classes = classes
        self.classes_bound = np.uint64(self.width)  # (class indices are below it)
        from ..losses import Terms  # here: the losses import the layers, which import _fast

        # Terms(values, gradient, weights) from one tuple, without namedtuple's Python __new__
        self.new_terms = partial(tuple.__new__, Terms)
        self.body = Body(body)
        self.body.plan = self
        kinds = {Linear: _LINEAR, ReLU: _RELU}
        self.steps = [(kinds.get(type(layer), _OTHER), layer) for layer in body]
        # the flat storage of the model's parameters (None: not all of them are in one)
        self.storage = storage
        # a storage small enough that writing the gradients pays (see backward)
        self.small_storage = storage if storage and storage.grads.size <= FIRST_WRITE else None
        # its gradients' bits (as unsigned integers, see bits above): all 0 when every
        # gradient is +0.0, as zero_grad leaves them (counting these is also faster)
        grads = self.small_storage and self.small_storage.grads
        self.grad_bits = None if grads is None else grads.view(f"u{grads.dtype.itemsize}")
        # the body's forward and backward, written out for these layers
        self.source = compile_source(self.steps)
        names = {f"L{i}": layer for i, (_, layer) in enumerate(self.steps)}
        names.update({f"A{i}": vars(layer) for i, (_, layer) in enumerate(self.steps)})
        names.update(_NUMPY, zero=self.zero, gradient_shape=_checks.gradient_shape)
        names["Unplanned"] = Unplanned
        exec(compile(self.source, f"<minnet plan of {len(body)} layers>", "exec"), names)
        self.run_body, self.run_backward = names["run_body"], names["run_backward"]
        # unchanged(): has no layer of the model gained or lost an attribute since (a
        # ``forward`` set on an instance, a new parameter)? One comparison of a tuple of the
        # lengths of their dicts.
        sizes = list(zip(self.dicts, self.sizes, strict=True))
        self.unchanged = same_attributes((), sizes)
        # ready(): unchanged(), and does every Linear still hold the parameters and gradients
        # it had (its dict read as in compile_source)? One expression, for zero_grad and
        # backward.
        self.ready = same_attributes(
            [
                triple
                for kind, layer in self.steps
                if kind == _LINEAR
                for triple in (
                    (vars(layer), "W", layer.W),
                    (vars(layer), "b", layer.b),
                    (layer.W, "grad", layer.W.grad),
                    (layer.b, "grad", layer.b.grad),
                )
            ],
            sizes,
        )

    def fits(self, model) -> bool:
        """Is this still the plan of ``model``: its loss not patched, with the same reduction,
        the model's dtype the same, no layer with an attribute added or removed since (a
        ``forward`` set on an instance, a new parameter)? (A change of the layers, the loss or
        ``l2`` drops the plan: the model calls ``_fast.forget``.)"""
        loss = self.loss
        return (
            loss.reduction == self.reduction
            and len(vars(loss)) == self.loss_size
            and model.dtype == self.dtype
            and self.unchanged()
        )

    # -- cost ------------------------------------------------------------------------------------
    def cost(self, model, X, Y) -> tuple | None:
        """``model.cost(X, Y)`` and what the model keeps for backward, ``(cost, the body's
        outputs, the layers backward runs, None: no sample weights)``; or ``None`` (nothing done
        that counts) when ``X`` or ``Y`` is not the common case: then the textbook path checks
        them (and refuses them) itself."""
        if type(X) is not np.ndarray or type(Y) is not np.ndarray:
            return None
        dtype = self.dtype
        # X.shape[1:] is the example shape the textbook checked last: X is 2-D, of the first
        # Linear's width
        if X.dtype != dtype or X.shape[1:] != model.input_shape:
            return None
        m = len(X)
        Y = self.class_targets(Y, m) if self.classes else self.binary_targets(Y, m)
        # the textbook's checks: X finite, and the targets (above)
        if Y is None or not m or count_nonzero(np.isfinite(X)) != X.size:
            return None
        try:
            x = self.run_body(X)  # the body's layers, as their forwards compute
        except Unplanned:
            return None  # (the textbook's forward runs from the start, see Unplanned)
        # the loss computed here (bce), or by its own methods with pos_weight (read at each
        # cost, as the loss reads it: it may be set later) and for class indices
        if not self.classes and self.loss.pos_weight is None:
            value = self.bce(x, Y)
        else:  # by the loss's own methods, as Sequential.cost runs them
            value = self.loss.forward_fused(x, Y) if self.fused else self.loss.forward(x, Y)
        value = value + model.penalty() if self.l2 else value
        return value, x, self.body, None

    def binary_targets(self, Y: np.ndarray, m: int) -> np.ndarray | None:
        """``Y`` as ``BCELoss.check_targets`` leaves it, ``(m, k)``, when it is of the model's
        dtype with numbers in [0, 1] (so finite), none of them -0.0; else ``None``."""
        if Y.dtype != self.dtype:
            return None
        if Y.shape != (m, self.width):
            if Y.shape != (m,) or self.width != 1:
                return None
            Y = Y.reshape(-1, 1)  # as BCELoss.check_targets shapes it
        # in [0, 1] by one comparison of the bits (above; a -0.0 target, which is in [0, 1],
        # goes the textbook way)
        if count_nonzero(Y.view(self.bits) <= self.one_bits) != Y.size:
            return None
        return Y

    def class_targets(self, Y: np.ndarray, m: int) -> np.ndarray | None:
        """``Y`` as ``class_indices`` gives it to the loss (an int64 copy), when it is ``(m,)``
        int64 indices in ``[0, C)`` and the loss's class weights are one per class; else
        ``None``."""
        if Y.dtype != np.int64 or Y.shape != (m,):
            return None
        weight = self.loss.weight
        if weight is not None and len(weight) != self.width:
            return None  # (the textbook path says what is wrong)
        # in [0, C) by one comparison: a negative int64 read as an unsigned one is >= 2**63
        if count_nonzero(Y.view(np.uint64) < self.classes_bound) != m:
            return None
        return Y.astype(np.int64)

    def bce(self, z: np.ndarray, y: np.ndarray) -> float:
        """``BCELoss.forward_fused(z, y)`` (without ``pos_weight``) for checked ``z`` and ``y`` of
        one shape: its terms by the same operations on the same operands (written into fresh
        arrays, without its checks), reduced and kept by the loss itself."""
        softplus = np.logaddexp(0, z)
        values = y * z
        np.subtract(softplus, values, out=values)  # softplus(z) - y*z
        grad = np.subtract(z, softplus, out=softplus)
        np.exp(grad, out=grad)
        grad -= y  # sigmoid(z) - y
        return self.loss.reduce(self.new_terms((values, grad, None)), z.shape)

    # -- backward --------------------------------------------------------------------------------
    def backward(self, grad: np.ndarray) -> bool:
        """The body's backward from the loss's gradient ``grad``, as ``_fast.backward`` runs it;
        ``False`` (nothing done) when a layer changed since the cost.

        When every gradient is +0.0 (``zero_grad`` came before), a small model's ``Linear``
        gradients are written instead of added to, and a zero is added to all of them once at
        the end: ``0 + v`` is ``v`` except for ``v = -0.0`` (``0 + -0.0 = 0``), which the
        final addition makes ``0`` too, so the numbers are the textbook's to the bit. (A
        gradient of -0.0 is not zero here: ``-0.0 + -0.0`` is ``-0.0``.)
        """
        storage = self.small_storage
        if storage is None or not self.ready() or count_nonzero(self.grad_bits):
            if not self.unchanged():  # (a layer patched since the cost)
                return False
            self.run_backward(grad, False)
            return True
        try:
            self.run_backward(grad, True)
        finally:
            np.add(storage.grads, self.zero, out=storage.grads)
        return True

    # -- zero_grad -------------------------------------------------------------------------------
    def zero_grad(self, model) -> bool:
        """``grads.fill(0)`` of the model's flat storage when it holds exactly the model's
        parameters (every ``Linear``'s ``W`` and ``b``, still with their views); ``False``
        (nothing done) if not."""
        storage = self.storage
        if storage is None or self.model() is not model:
            return False
        if not self.ready():
            return False
        storage.grads.fill(0)
        return True


# The numpy functions the written-out code calls, by short names.
_NUMPY = dict(matmul=np.matmul, maximum=np.maximum, multiply=np.multiply, reduce=np.add.reduce)
_NUMPY["add"] = np.add
_NUMPY["add_product"] = add_product


class Unplanned(Exception):
    """Raised by a written-out forward that meets what only the textbook's forward computes
    right (a bias of a wider dtype than the product, whose sum the textbook widens, or of
    another shape), or the error it raises: before that layer's state is written, so that
    the textbook's forward, run from the start, leaves every layer as it would alone."""


def compile_source(steps: list[tuple[int, object]]) -> str:
    """The Python source of two functions for the body's layers ``steps`` (``(kind, layer)``,
    layer ``i`` named ``L{i}`` and its attribute dict ``A{i}``):

    - ``run_body(x)``: each layer's forward in turn, as the loop of ``Sequential.cost`` runs it,
      ``Linear`` and ``ReLU`` inline (a ``ReLU`` in place on the fresh output of the layer
      before it, which nobody else holds), others by their ``forward``;
    - ``run_backward(grad, first)``: each layer's backward in reverse order, ``Linear`` and
      ``ReLU`` inline, the first layer's input gradient not computed; ``first``: the gradients
      are all zero, so a ``Linear``'s are written (``out=``) instead of added.

    Written out, one line per operation, so that no step pays for a loop over the layers and a
    test of each layer's kind (about a tenth of a small model's step). A layer's attributes are
    read and written as items of its dict, ``A0['W']`` for ``L0.W``: the same object for these
    layers, whose classes define no descriptor of those names, and a dict item is found in a
    tenth of the time of an attribute of a class with a ``__getattr__`` (``Layer``'s), which
    Python cannot look up by its fast paths (about 30 of them a step; it is assumed that
    nobody replaces a layer's ``__dict__`` itself)."""
    forward, fresh = ["def run_body(x):"], False  # fresh: made here, held by nobody
    for i, (kind, _) in enumerate(steps):
        layer, attrs = f"L{i}", f"A{i}"
        if kind == _LINEAR:
            forward += [
                "    try:  # x @ W.T + b, the sum in place (y is fresh) when b is of y's dtype",
                f"        y = matmul(x, {attrs}['W'].value.T)",
                f"        add(y, {attrs}['b'].value, out=y, casting='no')",
                "    except Exception:  # (another b or W: the textbook's forward, from the start)",
                "        raise Unplanned from None",
                f"    {attrs}['x'] = x  # {layer}.x = x",
                "    x = y",
            ]
            fresh = True
        elif kind == _RELU:
            forward.append("    maximum(x, zero, out=x)" if fresh else "    x = maximum(x, zero)")
            forward.append(f"    {attrs}['out'] = x")
        else:
            forward.append(f"    x = {layer}.forward(x)")
            fresh = False
    forward.append("    return x")
    backward, fresh = ["def run_backward(grad, first):"], False
    for i in range(len(steps) - 1, -1, -1):
        kind, layer, attrs = steps[i][0], f"L{i}", f"A{i}"
        if kind == _LINEAR:
            backward += [
                "    try:",
                f"        x, k = {attrs}['x'], {attrs}['out_features']",
                f"        W, b = {attrs}['W'], {attrs}['b']",
                "    except KeyError:  # (deleted since the cost: the textbook's backward's error)",
                f"        {layer}.backward(grad)",
                "        raise",
                "    if grad.shape != (len(x), k):",
                f"        gradient_shape({layer}, grad, (len(x), {layer}.out_features))",
                "    if first:",
                "        try:",
                "            matmul(grad.T, x, out=W.grad)",
                "        except (TypeError, ValueError):  # (an x of another width since the cost)",
                "            W.grad += grad.T @ x  # (the textbook's 0 + v, broadcast, or error)",
                "        reduce(grad, axis=0, out=b.grad)",
                "    else:",
                "        add_product(W.grad, grad.T, x)",
                "        b.grad += reduce(grad, axis=0)",
            ]
            if not i:
                break  # the first layer's input is the data: nobody needs its gradient
            backward.append("    grad = matmul(grad, W.value)")
            fresh = True
        elif kind == _RELU:
            backward += [
                "    try:",
                f"        out = {attrs}['out']",
                "    except KeyError:  # (deleted since the cost: the textbook's backward's error)",
                f"        {layer}.backward(grad)",
                "        raise",
                "    if grad.shape != out.shape:",
                f"        gradient_shape({layer}, grad, out.shape)",
                f"    grad = multiply(grad, out > zero{', out=grad' if fresh else ''})",
            ]
            fresh = True
        else:
            backward.append(f"    grad = {layer}.backward(grad)")
            fresh = False
    backward.append("    return None")
    return "\n".join(forward + [""] + backward) + "\n"


def plan_of(model, storage) -> Plan | None:
    """A new plan for ``model``, or ``None`` when the accelerator does not know it (a layer or
    a loss it does not know, a layer patched on its instance, a model of mixed dtypes, a
    parameter elsewhere than in a ``Linear``'s ``W`` and ``b``, or no forward yet)."""
    # here: the losses import the layers
    from ..losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

    layers, loss = model.layers, model.loss
    if type(loss) not in (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss):
        return None
    if any(callable(value) for value in vars(loss).values()):
        return None  # a method patched on the instance
    if loss.reduction not in ("mean", "sum") or model.dtype is None:
        return None
    if model.dtype.itemsize not in (2, 4, 8):
        return None  # a longdouble: no unsigned integer of its size for binary_targets
    if model.in_features is None or model.out_features is None:
        return None
    fused = model.fused
    if type(loss) in (BCELoss, NLLLoss) and not fused:
        return None  # on probabilities or log-probabilities made by a layer: not planned
    for layer in layers:
        if "forward" in vars(layer) or "backward" in vars(layer):
            return None
    for layer in model.body:  # (the final activation fused with the loss is the loss's)
        if type(layer) not in _KEPT or _KEPT[type(layer)] not in vars(layer):
            return None  # a layer the plan does not know, or no forward yet
    linears = [layer for layer in layers if type(layer) is Linear]
    expected = [p for layer in linears for p in (layer.W, layer.b)]
    found = model.parameters()
    if len(found) != len(expected) or not all(map(_is, found, expected)):
        return None
    if storage is not None and not storage.holds(found):
        storage = None  # zero_grad goes the usual way
    classes = type(loss) in (CrossEntropyLoss, NLLLoss)
    return Plan(model, model.body, fused, storage, classes)


def _is(a, b) -> bool:
    return a is b
