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
  model's layers (:func:`compile_source`): no loop over the layers, no test of their kinds,
  no call between the pieces;
- the loss is computed inline, ``BCELoss.forward_fused``'s operations on the same operands,
  and reduced and kept by the loss itself (with ``pos_weight``, and for class indices: by the
  loss's own methods).

The plan leaves the model as the textbook would: each layer keeps what its forward keeps
(``Linear.x``, ``ReLU.out``), the loss its gradient, and ``Sequential.cost`` keeps the body's
outputs and the layers a ``backward`` runs, which the plan returns with the cost; so a
textbook ``backward`` may follow a planned ``cost``, and the planned ``backward`` reads the
layers' state and parameters as the textbook does.

A plan is dropped when the model's layers, loss or ``l2`` change (the model calls
``_fast.forget``), and checked before each use (the written-out ``cost`` tests it first),
rebuilt when it does not fit:
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
from .watch import guard_expression

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
    """The planned ``cost``, ``backward`` and ``zero_grad`` of one model, for its current layers
    and loss: three functions written out for them (:func:`compile_source`, ``plan.source``
    shows the code), bound to the plan as ``plan.cost``, ``plan.backward``, ``plan.zero_grad``:

    - ``cost(model, X, Y)``: ``model.cost(X, Y)`` and what the model keeps for backward,
      ``(cost, the body's outputs, the layers backward runs, None: no sample weights)``;
      ``None`` (nothing done that counts) when ``X`` or ``Y`` is not the common case (then the
      textbook path checks them, and refuses them, itself); :data:`REPLAN` when the plan no
      longer fits the model, tested first: the loss patched (an attribute more or fewer) or
      with another reduction, the model's dtype changed, a layer with an attribute added or
      removed (a ``forward`` set on an instance, a new parameter). (A change of the layers,
      the loss or ``l2`` drops the plan: the model calls ``_fast.forget``.)
    - ``backward(grad)``: the body's backward from the loss's gradient ``grad``, as
      ``_fast.backward`` runs it; ``False`` (nothing done) when a layer changed since the cost;
    - ``zero_grad(model)``: ``grads.fill(0)`` of the model's flat storage when it holds exactly
      the model's parameters (every ``Linear``'s ``W`` and ``b``, still with their views);
      ``False`` (nothing done) if not.

    **Gradients written, not added.** When every gradient is +0.0 (``zero_grad`` came before),
    a small model's ``Linear`` gradients are written instead of added to, and a zero is added to
    all of them once at the end: ``0 + v`` is ``v`` except for ``v = -0.0`` (``0 + -0.0 = 0``),
    which the final addition makes ``0`` too, so the numbers are the textbook's to the bit. (A
    gradient of -0.0 is not zero here: ``-0.0 + -0.0`` is ``-0.0``.) A bias's gradient is
    written so only from a gradient of its own dtype: numpy sums into an ``out=`` of another
    dtype in that dtype, where the textbook sums in the gradient's and rounds once (a float64
    gradient in a float32 model: ``NLLLoss``'s class weights, float64 values put in ``W``).
    """

    def __init__(self, model, body: list, fused: bool, storage, classes: bool = False) -> None:
        self.model = weakref.ref(model)
        self.loss = model.loss
        self.width = model.out_features  # of the targets
        self.classes_bound = np.uint64(self.width)  # (class indices are below it)
        self.body = Body(body)
        self.body.plan = self
        dtype = model.dtype
        # 0 and 1 as arrays of the model's dtype: numpy takes them faster than Python's numbers,
        # and every array they meet here is of that dtype or a wider one (it comes from X,
        # checked of that dtype), so the results are the same
        zero, one = np.zeros((), dtype), np.ones((), dtype)
        # the bits of a float as an unsigned integer of its size grow with the float from +0.0
        # to 1.0, and every other float (negative, -0.0, above 1, NaN) has larger bits: a
        # number is in [0, 1] (and not -0.0) exactly when its bits are <= those of 1.0
        bits = np.dtype(f"u{dtype.itemsize}")
        from ..losses import Terms  # here: the losses import the layers, which import _fast

        kinds = {Linear: _LINEAR, ReLU: _RELU}
        steps = [(kinds.get(type(layer), _OTHER), layer) for layer in body]
        # storage: the flat storage of the model's parameters (None: not all of them are in
        # one); small: a storage small enough that writing the gradients pays (see above)
        small = storage if storage and storage.grads.size <= FIRST_WRITE else None
        names = {f"L{i}": layer for i, (_, layer) in enumerate(steps)}
        names.update({f"A{i}": vars(layer) for i, (_, layer) in enumerate(steps)})
        names.update(_NUMPY, zero=zero, gradient_shape=_checks.gradient_shape)
        names.update(
            MODEL=self.model, LOSS=self.loss, LOSS_DICT=vars(self.loss), BODY=self.body,
            REDUCTION=self.loss.reduction, LOSS_SIZE=len(vars(self.loss)), DTYPE=dtype,
            WIDTH=self.width, BITS=bits, ONE_BITS=one.view(bits), REPLAN=REPLAN,
            class_targets=self.class_targets,
            # Terms(values, gradient, weights) from one tuple, without namedtuple's __new__
            new_terms=partial(tuple.__new__, Terms),
            # the gradients (all, and those of a small storage) and the small one's bits (as
            # unsigned integers, see bits above): all 0 when every gradient is +0.0, as
            # zero_grad leaves them (counting these is also faster)
            GRADS=storage and storage.grads, SMALL_GRADS=small and small.grads,
            GRAD_BITS=small and small.grads.view(f"u{small.grads.dtype.itemsize}"),
            GRAD_DTYPE=small and small.grads.dtype,
        )  # fmt: skip
        # unchanged: has no layer of the model gained or lost an attribute since (a
        # ``forward`` set on an instance, a new parameter)? One comparison of a tuple of the
        # lengths of their dicts. ready: that, and does every Linear still hold the parameters
        # and gradients it had (its dict read as in compile_source)?
        sizes = [(vars(layer), len(vars(layer))) for layer in model.layers]
        triples = [
            triple
            for kind, layer in steps
            if kind == _LINEAR
            for triple in (
                (vars(layer), "W", layer.W),
                (vars(layer), "b", layer.b),
                (layer.W, "grad", layer.W.grad),
                (layer.b, "grad", layer.b.grad),
            )
        ]
        guards = {
            "unchanged": guard_expression((), sizes, names, "U"),
            "ready": guard_expression(triples, sizes, names, "R"),
        }
        # (l2 is not read: a change of it drops the plan)
        self.source = compile_source(
            steps, guards, classes, fused, bool(model.l2), self.width, storage, small
        )
        exec(compile(self.source, f"<minnet plan of {len(body)} layers>", "exec"), names)
        self.cost, self.backward = names["cost"], names["backward"]
        self.zero_grad = names["zero_grad"]

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


#: What a plan's ``cost`` returns when the plan no longer fits its model (see Plan).
REPLAN = object()

# The numpy functions the written-out code calls, by short names.
_NUMPY = dict(matmul=np.matmul, maximum=np.maximum, multiply=np.multiply, reduce=np.add.reduce)
_NUMPY.update(add=np.add, subtract=np.subtract, exp=np.exp, logaddexp=np.logaddexp)
_NUMPY.update(isfinite=np.isfinite, count_nonzero=count_nonzero, ndarray=np.ndarray)
_NUMPY["add_product"] = add_product


def compile_source(
    steps: list[tuple[int, object]],
    guards: dict[str, str],
    classes: bool,
    fused: bool,
    l2: bool,
    width: int,
    storage,
    small,
) -> str:
    """The Python source of a plan's ``cost(model, X, Y)``, ``backward(grad)`` and
    ``zero_grad(model)`` (see :class:`Plan`), for the body's layers ``steps`` (``(kind,
    layer)``, layer ``i`` named ``L{i}`` and its attribute dict ``A{i}``), the guards' expressions
    ``guards["unchanged"]`` and ``guards["ready"]`` (see :mod:`.watch`), targets that are class
    indices (``classes``) or numbers in [0, 1], a loss ``fused`` with the final activation or
    not, an ``l2`` penalty or not, ``width`` outputs, a flat ``storage`` of the parameters (or
    ``None``) and a ``small`` one whose gradients are written, not added (or ``None``).

    - ``cost``: the plan's fit, then the textbook's checks of the data for the common case,
      then each layer's forward in turn, as the loop of ``Sequential.cost`` runs it, ``Linear``
      and ``ReLU`` inline (a ``ReLU`` in place on the fresh output of the layer before it,
      which nobody else holds), others by their ``forward``, then the loss (BCE from the
      logits inline: ``BCELoss.forward_fused``'s operations on the same operands, reduced and
      kept by the loss itself; with ``pos_weight`` and for class indices, by its own methods);
      a ``Linear`` whose input is not ``in_features`` wide (the textbook's check: a ``W``
      replaced by a wider one would still multiply), whose bias is of a wider dtype than
      the product, whose sum the textbook widens, or of another shape, or whose product
      fails, gives ``None`` before its state is written, so that the textbook's forward,
      run from the start, leaves every layer as it would alone;
    - ``backward``: each layer's backward in reverse order, ``Linear`` and ``ReLU`` inline,
      the first layer's input gradient not computed; ``first``: the gradients are all zero,
      so a ``Linear``'s are written (``out=``) instead of added;
    - ``zero_grad``: the guard, then one ``fill``.

    Written out, one line per operation, so that no step pays for a loop over the layers, a
    test of each layer's kind, or a call between the pieces (together about a fifth of a
    small model's step). A layer's attributes are read and written as items of its dict,
    ``A0['W']`` for ``L0.W``: the same object for these layers, whose classes define no
    descriptor of those names, and a dict item is found in a tenth of the time of an attribute
    of a class with a ``__getattr__`` (``Layer``'s), which Python cannot look up by its fast
    paths (about 30 of them a step; it is assumed that nobody replaces a layer's ``__dict__``
    itself)."""
    cost = [
        "def cost(model, X, Y):",
        "    # the plan still fits the model (see Plan)",
        "    if not (",
        "        LOSS.reduction == REDUCTION and len(LOSS_DICT) == LOSS_SIZE",
        f"        and model.dtype == DTYPE and {guards['unchanged']}",
        "    ):",
        "        return REPLAN",
        "    if type(X) is not ndarray or type(Y) is not ndarray:",
        "        return None",
        "    # X.shape[1:] is the example shape the textbook checked last: X is 2-D, of the first",
        "    # Linear's width",
        "    if X.dtype != DTYPE or X.shape[1:] != model.input_shape:",
        "        return None",
        "    m = len(X)",
    ]
    if classes:
        cost += ["    Y = class_targets(Y, m)", "    if Y is None:", "        return None"]
    else:  # Y as BCELoss.check_targets leaves it, (m, width), of the model's dtype
        cost += [
            "    if Y.dtype != DTYPE:",
            "        return None",
            f"    if Y.shape != (m, {width}):",
        ]
        if width == 1:  # (m,) too
            cost += [
                "        if Y.shape != (m,):",
                "            return None",
                "        Y = Y.reshape(-1, 1)  # as BCELoss.check_targets shapes it",
            ]
        else:
            cost.append("        return None")
        cost += [
            "    # in [0, 1] by one comparison of the bits (a -0.0 target, which is in [0, 1],",
            "    # goes the textbook way)",
            "    if count_nonzero(Y.view(BITS) <= ONE_BITS) != Y.size:",
            "        return None",
        ]
    cost += [
        "    # the textbook's checks: X finite (and the targets, above)",
        "    if not m or count_nonzero(isfinite(X)) != X.size:",
        "        return None",
        "    x = X",
    ]
    fresh = False  # the current x made here, held by nobody
    for i, (kind, _) in enumerate(steps):
        layer, attrs = f"L{i}", f"A{i}"
        if kind == _LINEAR:
            cost += [
                "    try:  # x @ W.T + b, the sum in place (y is fresh) when b is of y's dtype",
                # the textbook Linear's check of its input (x is 2-D here): a W as wide as x
                # but not as in_features (parameters replaced) would multiply
                f"        if x.shape[1] != {attrs}['in_features']:",
                "            return None",
                f"        y = matmul(x, {attrs}['W'].value.T)",
                f"        add(y, {attrs}['b'].value, out=y, casting='no')",
                "    except Exception:  # (another b or W: the textbook's forward, from the start)",
                "        return None",
                f"    {attrs}['x'] = x  # {layer}.x = x",
                "    x = y",
            ]
            fresh = True
        elif kind == _RELU:
            cost.append("    maximum(x, zero, out=x)" if fresh else "    x = maximum(x, zero)")
            cost.append(f"    {attrs}['out'] = x")
            fresh = False  # (held now: a ReLU after it makes its own out, as the textbook's)
        else:
            cost.append(f"    x = {layer}.forward(x)")
            fresh = False
    by_loss = "LOSS.forward_fused(x, Y)" if fused else "LOSS.forward(x, Y)"
    if classes:
        cost.append(f"    value = {by_loss}")
    else:
        cost += [
            "    if LOSS.pos_weight is None:  # (read at each cost, as the loss reads it)",
            "        softplus = logaddexp(0, x)",
            "        values = Y * x",
            "        subtract(softplus, values, out=values)  # softplus(z) - y*z",
            "        grad = subtract(x, softplus, out=softplus)",
            "        exp(grad, out=grad)",
            "        grad -= Y  # sigmoid(z) - y",
            "        value = LOSS.reduce(new_terms((values, grad, None)), x.shape)",
            "    else:",
            f"        value = {by_loss}",
        ]
    if l2:
        cost.append("    value = value + model.penalty()")
    cost.append("    return value, x, BODY, None")

    backward = ["def backward(grad):", "    first = False"]
    if small is not None:
        backward += [
            "    try:  # every gradient +0.0 (a zero_grad came before) and in the small storage",
            f"        first = {guards['ready']} and not count_nonzero(GRAD_BITS)",
            "    except KeyError:",
            "        pass",
        ]
    backward += [
        f"    if not first and not ({guards['unchanged']}):  # (a layer patched since the cost)",
        "        return False",
        "    try:",
    ]
    lines, fresh = [], False
    for i in range(len(steps) - 1, -1, -1):
        kind, layer, attrs = steps[i][0], f"L{i}", f"A{i}"
        if kind == _LINEAR:
            lines += [
                "try:",
                f"    x, k = {attrs}['x'], {attrs}['out_features']",
                f"    W, b = {attrs}['W'], {attrs}['b']",
                "except KeyError:  # (deleted since the cost: the textbook's backward's error)",
                f"    {layer}.backward(grad)",
                "    raise",
                "if grad.shape != (len(x), k):",
                f"    gradient_shape({layer}, grad, (len(x), {layer}.out_features))",
                "if first:",
                "    try:",
                "        matmul(grad.T, x, out=W.grad)",
                "    except (TypeError, ValueError):  # (an x of another width since the cost)",
                "        W.grad += grad.T @ x  # (the textbook's 0 + v, broadcast, or error)",
                # numpy sums into an out= of another dtype in that dtype (by blocks); the
                # textbook sums in grad's dtype and rounds once (a wider grad: NLLLoss's
                # float64 class weights in a float32 model, float64 values put in W)
                "    if grad.dtype is GRAD_DTYPE:",
                "        reduce(grad, axis=0, out=b.grad)",
                "    else:",
                "        b.grad += reduce(grad, axis=0)",
                "else:",
                "    add_product(W.grad, grad.T, x)",
                "    b.grad += reduce(grad, axis=0)",
            ]
            if not i:
                break  # the first layer's input is the data: nobody needs its gradient
            lines.append("grad = matmul(grad, W.value)")
            fresh = True
        elif kind == _RELU:
            lines += [
                "try:",
                f"    out = {attrs}['out']",
                "except KeyError:  # (deleted since the cost: the textbook's backward's error)",
                f"    {layer}.backward(grad)",
                "    raise",
                "if grad.shape != out.shape:",
                f"    gradient_shape({layer}, grad, out.shape)",
                f"grad = multiply(grad, out > zero{', out=grad' if fresh else ''})",
            ]
            fresh = True
        else:
            lines.append(f"grad = {layer}.backward(grad)")
            fresh = False
    backward += [f"        {line}" for line in lines] or ["        pass"]
    backward += [
        "    finally:",
        "        if first:  # 0 + v, for every v written",
        "            add(SMALL_GRADS, zero, out=SMALL_GRADS)",
        "    return True",
    ]

    zero_grad = ["def zero_grad(model):"]
    if storage is None:
        zero_grad.append("    return False")
    else:
        zero_grad += [
            "    if MODEL() is not model:",
            "        return False",
            "    try:",
            f"        if not ({guards['ready']}):",
            "            return False",
            "    except KeyError:  # (a W or b deleted)",
            "        return False",
            "    GRADS.fill(0)",
            "    return True",
        ]
    return "\n".join(cost + [""] + backward + [""] + zero_grad) + "\n"


def plan_of(model, storage) -> Plan | None:
    """A new plan for ``model``, or ``None`` when the accelerator does not know it (a layer or
    a loss it does not know, a layer patched on its instance, a model of mixed dtypes, a
    parameter elsewhere than in a ``Linear``'s ``W`` and ``b``, or no forward yet)."""
    # here: the losses import the layers
    from ..losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
    from . import may_gain_parameters

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
        if may_gain_parameters(layer):
            return None  # (zero_grad's guard watches the number of attributes, not a list's)
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
