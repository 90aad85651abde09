"""Sequential: layers applied one after another, and a loss on top.

The textbook part is :meth:`Sequential.forward`, :meth:`~Sequential.cost` and
:meth:`~Sequential.backward`: run the layers in order, take the loss, then run their backwards
in reverse order. Training (:mod:`minnet.training`), the gradient checks (:mod:`minnet.gradcheck`)
and files (:mod:`minnet.io`) use only the public methods here; ``fit``, ``predict``,
``evaluate``, ``save`` and ``gradcheck`` are one-line delegations to them.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _checks, _fast
from .layers import Layer
from .layers.base import Shape
from .losses import BCELoss, Loss, per_example_matches_forward
from .parameter import Parameter

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport
    from .training import Evaluation, History, RegressionEvaluation


def _described(shape: tuple[int | None, ...]) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else f"examples of shape {shape}"


def _example(input_shape: Any) -> Shape:
    """One example's shape from ``input_shape`` (``None``: not known): a tuple (or list) of
    sizes, or an int ``n`` for rows of ``n`` features; else a ``TypeError``/``ValueError``."""
    if input_shape is None:
        return None
    if isinstance(input_shape, tuple | list):
        return tuple(
            _checks.whole_number(f"input_shape[{i}]", size, low=1)
            for i, size in enumerate(input_shape)
        )
    if isinstance(input_shape, int | np.integer) and not isinstance(input_shape, bool):
        return (_checks.whole_number("input_shape", input_shape, low=1),)
    raise TypeError(
        "input_shape must be one example's shape, a tuple such as (1, 28, 28) for images or "
        f"(4,) for rows (an int n: rows of n features), got {input_shape!r}"
    )


def _as_layer_list(
    layers: Any, model: Sequential | None = None, *, may_be_empty: bool = False, more: Any = ()
) -> list[Layer]:
    """``layers`` as a list of layers ``model`` may hold, else a ``TypeError``/``ValueError``
    naming the layer: each a ``Layer``, none twice, none in another live model. ``more``: the
    constructor's other positional arguments, refused (torch's ``nn.Sequential(a, b, c)``)."""
    if more:
        raise TypeError(
            f"Sequential takes one list of layers, got {1 + len(more)} arguments: write "
            f"Sequential([{', '.join(type(x).__name__ + '(...)' for x in (layers, *more))}])"
            " (torch's nn.Sequential takes them one by one; minnet's, one list)"
        )
    if isinstance(layers, Layer):
        raise TypeError(
            f"Sequential takes a list of layers, got a single {type(layers).__name__}: "
            f"write Sequential([{type(layers).__name__}(...), ...])"
        )
    if isinstance(layers, str | bytes) or not hasattr(layers, "__iter__"):
        raise TypeError(
            "Sequential takes a list of layers, e.g. Sequential([Linear(2, 1), Sigmoid()]), "
            f"got {type(layers).__name__}"
        )
    layers = list(layers)
    if not layers and not may_be_empty:
        raise ValueError("Sequential needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer {i} must be a minnet Layer, got {type(layer).__name__}")
        if any(layer is other for other in layers[:i]):
            j = next(j for j, other in enumerate(layers) if other is layer)
            raise ValueError(
                f"layer {i} is the same object as layer {j} ({layer!r}): a layer keeps "
                "the input of its last forward, so each position needs its own layer"
            )
        if _owner(layer) not in (None, model):
            raise ValueError(
                f"layer {i} ({layer!r}) already belongs to another Sequential that is "
                "still alive: a layer keeps what its last forward saw for its backward, so "
                "two models sharing it would silently mix up their gradients. Give this "
                "model layers of its own (to tie weights, share the parameters: "
                "new_layer.W = old_layer.W), or delete the other model first"
            )
    return layers


def _check_loss(loss: Any) -> Loss:
    if isinstance(loss, Loss):
        return _one_number(loss)
    if isinstance(loss, type) and issubclass(loss, Loss):
        raise TypeError(
            f"loss must be a Loss object, got the class {loss.__name__}: write "
            f"loss={loss.__name__}()"
        )
    raise TypeError(
        "loss must be a minnet Loss such as minnet.BCELoss() (or your own subclass of "
        f"minnet.Loss), got {type(loss).__name__}"
    )


def _one_number(loss: Loss) -> Loss:
    """``loss``, if it gives one number (its cost): not a loss with ``reduction="none"``."""
    if getattr(loss, "reduction", "mean") == "none":
        raise ValueError(
            f"{loss!r}: a model's cost is one number, and reduction='none' gives one loss per "
            "example (or per entry); use reduction='mean' or 'sum' in the model, and call "
            "the loss itself for the unreduced losses"
        )
    return loss


_DEFAULT_LOSS: Any = object()  # loss=None is refused, not taken for the default

# The model each layer belongs to, while both live: id(layer) -> (ref to layer, ref to model).
# A layer keeps what its last forward saw, for its backward: two live models sharing it would
# overwrite each other's, so a second model is refused instead.
_OWNERS: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def _owner(layer: Layer) -> Sequential | None:
    entry = _OWNERS.get(id(layer))
    if entry is None or entry[0]() is not layer:
        return None
    return entry[1]()


def _claim(layer: Layer, model: Sequential) -> None:
    key = id(layer)
    _OWNERS[key] = (weakref.ref(layer, lambda _: _OWNERS.pop(key, None)), weakref.ref(model))


class Sequential:
    """Layers applied in order, with a loss on the output.

    ``Sequential([Linear(2, 16), ReLU(), Linear(16, 1), Sigmoid()], loss=BCELoss())``
    (``BCELoss()`` is the default). Parameters are named ``"<layer index>.<name>"``: ``"0.W"``,
    ``"0.b"``, ``"2.W"``...

    - When the loss fuses with the last layer (``loss.fuses_with(layers[-1])``: ``BCELoss``
      with a final ``Sigmoid``), :meth:`cost` hands the loss that layer's input (the logits),
      which is exact and finite for any logits. :attr:`body` is the layers ``cost`` runs.
    - Building a model never changes a parameter's value (only its dtype, to ``dtype`` if
      given; the accelerator may move the values into one flat vector, see :mod:`minnet._fast`).
    - A layer belongs to one model at a time: it keeps what its last forward saw for its
      backward. Building a model from a layer of another live model is refused (share
      parameters instead: ``new_layer.W = old_layer.W``).
    - It is a container of its layers, as ``torch.nn.Sequential``: ``len(model)``,
      ``model[i]`` (``model[-1]`` the last), ``for layer in model``, ``model.layers``; a slice
      ``model[i:j]`` is a plain list of those layers, not a new model (see the point above).
    - A loss with ``reduction="none"`` is refused: the cost is one number.
    - ``l2=lam`` (``>= 0``, default 0) adds an L2 penalty to the cost, ``lam / 2 * sum(||W||^2)``
      over the weight matrices (the parameters named ``W``, see :meth:`weights`; not biases,
      not normalization parameters), and ``lam * W`` to their gradients in :meth:`backward`.
      Every value of the cost includes it (:meth:`cost`, :meth:`loss_value`, so ``fit``'s and
      ``evaluate``'s losses and the gradient check too).
    """

    #: One example's shape in the last data the model checked (``None`` before any).
    input_shape: tuple[int, ...] | None = None

    def __init__(
        self,
        layers: list[Layer],
        *more: Any,
        loss: Loss = _DEFAULT_LOSS,
        dtype=None,
        l2: float = 0.0,
    ) -> None:
        layers = _as_layer_list(layers, more=more)
        self.loss = BCELoss() if loss is _DEFAULT_LOSS else loss  # checked: see loss below
        self.dtype = None if dtype is None else _checks.float_dtype("dtype", dtype)
        self.l2 = l2
        self._layers: tuple[Layer, ...] = ()
        self._set_layers(layers)

    # -- the layers and the loss: checked, and the state they fix re-derived ----------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, in order: a tuple. Change them with :meth:`append`, :meth:`extend` or
        :meth:`insert`, which check them and re-derive what the model knows of them."""
        return self._layers

    @layers.setter
    def layers(self, value: Any) -> None:
        raise AttributeError(
            "model.layers cannot be assigned: use model.append(layer), model.extend(layers) or "
            "model.insert(index, layer), which check the layers as Sequential(...) does, or "
            "build a new Sequential"
        )

    def append(self, layer: Layer) -> Sequential:
        """Add ``layer`` at the end (as ``torch.nn.Sequential.append``); returns the model.
        Checked as the constructor checks its layers; a refusal changes nothing."""
        return self._set_layers([*self._layers, layer])

    def extend(self, layers: Any) -> Sequential:
        """Add ``layers`` (a list of layers) at the end, in order; returns the model."""
        if isinstance(layers, Layer):
            raise TypeError(
                f"extend takes a list of layers, got a single {type(layers).__name__}: "
                "use append(layer)"
            )
        return self._set_layers([*self._layers, *_as_layer_list(layers, self, may_be_empty=True)])

    def insert(self, index: int, layer: Layer) -> Sequential:
        """Put ``layer`` before layer ``index`` (``-1``: before the last; ``len(model)``: at the
        end), as ``list.insert`` and ``torch.nn.Sequential.insert``; returns the model."""
        n = len(self._layers)
        index = _checks.whole_number("index", index)
        if not -n <= index <= n:
            raise IndexError(f"insert index {index} is out of range for a model of {n} layers")
        layers = list(self._layers)
        layers.insert(index, layer)
        return self._set_layers(layers)

    def _set_layers(self, layers: list[Layer]) -> Sequential:
        """Hold ``layers`` and re-derive what depends on them: the chain of shapes and widths,
        the parameters' dtype and storage, the layers' owner; forget the last cost and data
        shape. A refusal (``TypeError``/``ValueError``) changes nothing."""
        layers = _as_layer_list(layers, self)
        old = self._layers
        self._layers = tuple(layers)
        try:
            widths = self._widths(self._chain())
            self._place_parameters()
        except (TypeError, ValueError):
            self._layers = old
            raise
        self.in_features, self.out_features = widths
        self.input_shape = None
        self._forget_cost()
        for layer in layers:
            _claim(layer, self)
        return self

    def _forget_cost(self) -> None:
        _fast.forget(self)  # the accelerator's plan of the layers and loss, if it has one
        self._pending: list[Layer] | None = None  # the layers a backward() may run
        self._row_scale: np.ndarray | None = None  # sample weights, as factors of the gradient
        self._outputs: np.ndarray | None = None

    @property
    def loss(self) -> Loss:
        """The loss (a :class:`~minnet.Loss` object, reduced to one number); it may be changed,
        checked as the constructor checks it. A change forgets the last :meth:`cost`."""
        return self._loss

    @loss.setter
    def loss(self, value: Loss) -> None:
        self._loss = _check_loss(value)
        self._forget_cost()

    def _chain(self, input_shape: Shape = None) -> list[Shape]:
        """One example's shape after each layer (``None`` for what is not known yet), for one
        example's ``input_shape`` (``None``: not known), asking each layer what it makes of
        its input (``Layer.output_shape``); a ``ValueError`` where a layer cannot take it."""
        shapes: list[Shape] = []
        shape, previous = input_shape, "the input"
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as err:
                gives = "" if shape is None else f", which gives {_described(shape)}"
                raise ValueError(
                    f"layers do not chain: layer {i} ({layer!r}) cannot follow {previous}"
                    f"{gives} ({err})"
                ) from None
            shapes.append(shape)
            previous = f"layer {i} ({layer!r})"
        return shapes

    def _widths(self, shapes: list[Shape]) -> tuple[int | None, int | None]:
        """The input width the first shape-fixing layer takes, and the output width (``None``
        when not known, or when the outputs are not rows of features)."""
        first = next((i for i, shape in enumerate(shapes) if shape is not None), None)
        in_features = None if first is None else getattr(self.layers[first], "in_features", None)
        last = shapes[-1]
        return in_features, (last[0] if last is not None and len(last) == 1 else None)

    def output_width(self, input_shape: int | tuple[int, ...] | None = None) -> int:
        """The number of outputs for examples of ``input_shape`` (one example's shape: ``(1, 28,
        28)`` for images; an int ``n`` for rows of ``n`` features): :attr:`out_features` when the
        layers fix it, else what they make of that shape (1 if not given). A ``ValueError`` when
        the outputs are not rows (images: a ``Flatten()`` at the end makes rows)."""
        if self.out_features is not None:
            return self.out_features
        example = _example(input_shape)
        width = self._width_from(example)
        if width is not None:
            return width
        return example[0] if example is not None and len(example) == 1 else 1

    def _width_from(self, example: Shape) -> int | None:
        """The output width the layers make of examples of shape ``example``; ``None`` when no
        layer fixes it (each keeps its input's shape, or a size is not known)."""
        if example is None:
            return None
        shapes = self._chain(example)
        out = shapes[-1]
        if out is not None and len(out) != 1:
            raise ValueError(
                f"the model's outputs are not rows: examples of shape {example} give outputs of "
                f"shape (batch, {', '.join(map(str, out))}), and a loss takes (batch, outputs); "
                "end the model with a Flatten() (or a layer that makes rows)"
            )
        if out is None or out[0] is None or all(shape == example for shape in shapes):
            return None
        return out[0]

    def _place_parameters(self) -> None:
        """Give every parameter the model's dtype, and hand them to the accelerator."""
        parameters = self.parameters()
        # the accelerator: the same values, moved into one flat vector
        placed = _fast.place(self, parameters, self.dtype)
        if self.dtype is None:
            dtypes = {p.dtype for p in parameters}
            self.dtype = dtypes.pop() if len(dtypes) == 1 else None
            return
        if not placed and any(p.dtype != self.dtype for p in parameters):
            self._convert()
        for layer in self.layers:  # a layer that records its dtype now has this one
            if isinstance(getattr(layer, "dtype", None), np.dtype):
                layer.dtype = self.dtype
            for name, buffer in list(layer.named_buffers()):  # float buffers too (running stats)
                if buffer.dtype.kind == "f" and buffer.dtype != self.dtype and name in vars(layer):
                    setattr(layer, name, buffer.astype(self.dtype))

    def _convert(self) -> None:
        named = [(name, p) for name, p in self.named_parameters() if p.dtype != self.dtype]
        shared = [name for name, p in named if p.value.base is not None]
        if shared:
            raise ValueError(
                f"dtype={self.dtype} cannot be given to parameters {shared}: they are shared "
                "(with another model, another layer, or an array of yours), and converting them "
                "would change the others too, so nothing was converted. Make the layers in that "
                f"dtype instead, e.g. Linear(..., dtype=np.{self.dtype})"
            )
        for _, p in named:
            p.value = p.value.astype(self.dtype)
            p.grad = np.zeros_like(p.value)

    # -- a container of layers, as torch.nn.Sequential ---------------------------------------
    def __len__(self) -> int:
        """The number of layers."""
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        """The layers, in order."""
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Layer | list[Layer]:
        """``model[i]``: layer ``i`` (``model[-1]`` the last). ``model[i:j]``: a *list* of those
        layers, not a new model: a layer belongs to one model at a time (build a new model from
        new layers, or share parameters: ``new_layer.W = old_layer.W``)."""
        if isinstance(index, slice):
            return list(self.layers[index])
        if isinstance(index, bool) or not hasattr(index, "__index__"):
            raise TypeError(
                f"Sequential indices must be integers or slices, got {type(index).__name__}"
            )
        n = len(self.layers)
        if not -n <= index < n:
            raise IndexError(
                f"layer index {index} is out of range: the model has {n} layers (0 to {n - 1}, "
                f"or -1 to -{n} from the end)"
            )
        return self.layers[index]

    # -- parameters -----------------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``("<layer index>.<name>", parameter)`` for every parameter; a parameter shared
        by several layers (tied weights) once, under its first name."""
        seen = set()
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield f"{i}.{name}", p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place (through the accelerator, which does
        it in one call when it can)."""
        _fast.zero_grad(self)

    def train(self, mode: bool = True) -> Sequential:
        """Switch every layer to training (``True``) or evaluation (``False``) behaviour."""
        mode = _checks.flag("mode", mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # -- the textbook part: forward, cost, backward ------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """Predictions for ``X: (batch, in_features)``, shape ``(batch, out_features)``.

        Runs every layer (the final activation too). No :meth:`backward` may follow it.
        """
        X = self.check_inputs(X)
        self._pending = None
        for layer in self.layers:
            X = layer.forward(X)
        return X

    __call__ = forward

    def cost(self, X: np.ndarray, Y: np.ndarray, sample_weight: Any = None) -> float:
        """Mean loss of the predictions for ``X: (m, in_features)`` against targets ``Y``.

        ``Y`` has shape ``(m,)`` or ``(m, out_features)``, with the values the loss accepts
        (``BCELoss``: in [0, 1]). With ``l2``, plus the L2 :meth:`penalty`. With
        ``sample_weight: (m,)`` (see :meth:`check_sample_weight`), row ``i`` counted ``w_i``
        times (``loss.weighted``: ``sum(w * loss_i) / sum(w)`` for a plain mean). Keeps what
        :meth:`backward` needs.
        """
        planned = _fast.cost(self, X, Y, sample_weight)  # the accelerator's step, when it can
        if planned is not None:  # the cost, and what backward needs, as cost_prepared keeps it
            value, self._outputs, self._pending, self._row_scale = planned
            return value
        X = self.check_inputs(X)
        if len(X) == 0:
            raise ValueError(
                f"X must have at least one row to take a mean loss, got shape {X.shape}"
            )
        Y = self.check_targets(Y, len(X), dtype=X.dtype, in_features=X.shape[1])
        if sample_weight is not None:
            sample_weight = self.check_sample_weight(sample_weight, len(X), X.dtype)
        return self.cost_prepared(X, Y, sample_weight)

    def cost_prepared(
        self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> float:
        """:meth:`cost` for ``X``, ``Y`` (and ``sample_weight``) already checked
        (:meth:`check_inputs`, :meth:`check_targets`, :meth:`check_sample_weight`): run the
        body's layers, then the loss."""
        body = self.body
        x = X
        for layer in body:
            x = layer.forward(x)
        value = self._loss_forward(x, Y, self.fused)
        self._row_scale = None
        if sample_weight is not None:
            # The loss with row i counted w_i times, and the factors that scale the rows of
            # the loss's gradient into that loss's gradient (see Loss.weighted).
            value, self._row_scale = self.loss.weighted(x, Y, sample_weight, fused=self.fused)
            value += self.penalty()
        self._outputs = x
        self._pending = body
        return value

    def backward(self) -> None:
        """Add the gradient of the last :meth:`cost` to every parameter's ``.grad``: the loss's
        gradient, then each layer's backward in reverse order (the chain rule)."""
        if self._pending is None:
            raise RuntimeError("backward() needs a cost() first (and one backward() per cost())")
        body, self._pending = self._pending, None
        grad = self.loss.backward()
        if self._row_scale is not None:  # sample weights
            grad = grad * self._row_scale.reshape(-1, *[1] * (grad.ndim - 1))
        if not _fast.backward(body, grad):  # the accelerator's twin of this loop, when on
            for layer in reversed(body):
                grad = layer.backward(grad)
        if self.l2:
            for W in self.weights():  # the penalty's gradient
                W.accumulate(self.l2 * W.value)

    # -- the L2 penalty ---------------------------------------------------------------------
    @property
    def l2(self) -> float:
        """The L2 penalty's factor ``lam >= 0`` (0: none); it may be changed."""
        return self._l2

    @l2.setter
    def l2(self, value: float) -> None:
        self._l2 = _checks.real_number("l2", value, 0.0)
        _fast.forget(self)

    def weights(self) -> list[Parameter]:
        """The parameters the L2 penalty covers: those named ``W`` (the weight matrix of a
        ``Linear``, a convolution's kernel, ``"W"`` in any layer of yours), each once."""
        found: dict[int, Parameter] = {}
        for name, p in self.named_parameters():
            if name.rsplit(".", 1)[-1] == "W":
                found.setdefault(id(p), p)
        return list(found.values())

    def penalty(self) -> float:
        """``l2 / 2 * sum(||W||^2)`` over :meth:`weights`: what :meth:`cost` adds to the loss."""
        if not self.l2:
            return 0.0
        return self.l2 / 2 * sum(float(np.vdot(W.value, W.value)) for W in self.weights())

    # -- the pieces of cost(), for training loops and gradient checks ------------------------
    @property
    def fused(self) -> bool:
        """Does the loss take the input of the final activation (``loss.fuses_with``)?"""
        return self.loss.fuses_with(self.layers[-1])

    @property
    def body(self) -> list[Layer]:
        """The layers :meth:`cost` runs: all of them, or all but the final activation when the
        loss fuses with it (:attr:`fused`). A new list each time."""
        return list(self.layers[:-1] if self.fused else self.layers)

    def check_inputs(self, X: Any, dtype: np.dtype | None = None) -> np.ndarray:
        """``X`` as a finite ``(m, in_features)`` (or ``(m, C, H, W)``...) float array, else a
        ``ValueError``.

        Of the model's dtype (or ``dtype`` if given; ``X``'s own if the model has none). No copy
        when ``X`` already is one.
        """
        X = _checks.as_array(X, "X")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim < 2:
            raise ValueError(f"X must have shape (batch, features), got shape {X.shape}")
        if X.ndim == 2 and self.in_features is not None and X.shape[1] != self.in_features:
            raise ValueError(
                f"X has {X.shape[1]} features but layer 0 ({self.layers[0]!r}) expects "
                f"{self.in_features}"
            )
        if X.shape[1:] != self.input_shape:  # images: each layer checks the shape it gets
            try:
                self._chain(X.shape[1:])
            except ValueError as err:
                raise ValueError(f"X of shape {X.shape} does not fit the model: {err}") from None
            self.input_shape = X.shape[1:]
        if dtype is None:
            dtype = self.dtype if self.dtype is not None else X.dtype
        return _checks.cast_finite("X", X, dtype if dtype.kind == "f" else np.float64)

    def check_targets(
        self, Y: Any, m: int, dtype: np.dtype | None = None, *, in_features: int | None = None
    ) -> np.ndarray:
        """``Y`` as an ``(m, out_features)`` array the loss accepts, else a ``ValueError``.

        The loss decides (``loss.check_targets``): ``BCELoss`` takes numbers in [0, 1], of shape
        ``(m,)`` or ``(m, out_features)``. Converted to ``dtype`` if given; no copy when ``Y``
        already fits. When no layer fixes the output width for every input (a convolution's
        depends on the image size), it is the one the layers make of the last inputs
        :meth:`check_inputs` saw (:attr:`input_shape`; rows of ``in_features`` features if
        given and different). When no layer fixes it at all (``Sequential([Softmax()])``), it is
        the targets' own for ``(m, k)`` targets, else the inputs' width.
        """
        example = self.input_shape
        if in_features is not None and (example is None or example[0] != in_features):
            example = (in_features,)
        width = self.output_width(example)
        if self.out_features is None and self._width_from(example) is None:
            if np.ndim(Y) == 2 or self.loss.task != "multiclass":
                # No layer fixes the width, and a layer that changes it without saying so
                # (output_shape) is possible: (m, k) targets give the width, and (m,) targets
                # one output, unless they are class indices (then the inputs' width).
                width = np.shape(Y)[1] if np.ndim(Y) == 2 else 1
        shape = (m, width)
        try:
            Y = self.loss.check_targets(Y, shape)
        except ValueError as err:
            raise ValueError(f"Y: {err}") from None
        # Targets of the outputs' shape take their dtype; class indices stay integers.
        if dtype is None or Y.shape != shape:
            return Y
        return _checks.cast_finite("Y", Y, dtype)

    def check_sample_weight(self, sample_weight: Any, m: int, dtype=np.float64) -> np.ndarray:
        """``sample_weight`` as a ``(m,)`` array of ``dtype``: finite, non-negative, not all
        zero, for a loss that gives each example's loss (``per_example``), else a
        ``ValueError`` (or ``TypeError``) naming it."""
        if not per_example_matches_forward(self.loss, self.fused):
            raise ValueError(
                f"sample_weight needs each example's loss, which {type(self.loss).__name__} "
                "does not give (per_example)"
            )
        w = _checks.real_array("sample_weight", sample_weight)
        if w.shape != (m,):
            raise ValueError(f"sample_weight must have shape ({m},), one per row, got {w.shape}")
        w = _checks.cast_finite("sample_weight", w, np.dtype(dtype))
        if np.any(w < 0):
            raise ValueError(
                f"sample_weight must be >= 0, got {int(np.sum(w < 0))} negative entries "
                f"(the smallest {w.min():g})"
            )
        if not np.any(w > 0):
            raise ValueError("sample_weight must not be all zero: the mean loss would be 0/0")
        return w

    def run(self, x: np.ndarray, start: int = 0) -> np.ndarray:
        """Run ``body[start:]`` forward on ``x``: ``(batch, features in)`` -> ``(batch, out)``.

        ``x`` is what ``body[start]`` takes; nothing is checked. No :meth:`backward` may follow.
        """
        self._pending = None
        for layer in self.body[start:]:
            x = layer.forward(x)
        return x

    def loss_value(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The loss of the body's ``outputs: (m, k)`` (the fused activation's input when
        :attr:`fused`) against checked ``targets: (m, k)``, plus the L2 :meth:`penalty` at the
        current weights. No model :meth:`backward` may follow: use :meth:`cost_prepared`."""
        self._pending = None
        return self._loss_forward(outputs, targets, self.fused)

    def loss_per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """Each example's loss, shape ``(m,)``, for the body's ``outputs: (m, k)``; their mean is
        :meth:`loss_value` (without the L2 :meth:`penalty`). ``None`` when the loss does not
        provide them (``per_example``)."""
        fused = self.fused
        if not per_example_matches_forward(self.loss, fused):
            return None
        if fused:
            return self.loss.per_example_fused(outputs, targets)
        return self.loss.per_example(outputs, targets)

    @property
    def last_outputs(self) -> np.ndarray | None:
        """The body's outputs ``(m, out_features)`` in the last :meth:`cost` (the logits when
        :attr:`fused`), or ``None`` before any."""
        return self._outputs

    def _loss_forward(self, outputs: np.ndarray, targets: np.ndarray, fused: bool) -> float:
        if len(outputs) != len(targets):
            raise ValueError(
                f"the model gives outputs of shape {outputs.shape}, targets are {targets.shape}"
            )
        _one_number(self.loss)
        if fused:
            value = self.loss.forward_fused(outputs, targets)
        else:
            value = self.loss.forward(outputs, targets)
        return value + self.penalty() if self.l2 else value

    # -- one-line delegations: the code is in training, gradcheck and io -----------------------
    def fit(self, X: np.ndarray, Y: np.ndarray, **options: Any) -> History:
        """Train on ``X`` and ``Y``: see :func:`minnet.training.fit` for the options."""
        from .training import fit

        return fit(self, X, Y, **options)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for ``X``: see :func:`minnet.training.predict_proba`."""
        from .training import predict_proba

        return predict_proba(self, X)

    def predict(self, X: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Labels, classes or values for ``X``: see :func:`minnet.training.predict`."""
        from .training import predict

        return predict(self, X, threshold)

    def evaluate(
        self, X: np.ndarray, Y: np.ndarray, **options: Any
    ) -> Evaluation | RegressionEvaluation:
        """``(loss, accuracy)`` or ``(loss, r2)``: see :func:`minnet.training.evaluate`."""
        from .training import evaluate

        return evaluate(self, X, Y, **options)

    def gradcheck(self, X: np.ndarray, Y: np.ndarray, **options: Any) -> GradcheckReport:
        """Check the gradient of :meth:`cost`: see :func:`minnet.gradcheck.check_model`."""
        from .gradcheck import check_model

        return check_model(self, X, Y, **options)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to a ``.safetensors`` file (weights, buffers, architecture, modes):
        see :func:`minnet.io.save`; :func:`minnet.load` reads it back."""
        from .io import save

        return save(self, path)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer by name: see :func:`minnet.io.state_dict`."""
        from .io import state_dict

        return state_dict(self)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers: see :func:`minnet.io.load_state_dict`."""
        from .io import load_state_dict

        load_state_dict(self, state)

    # -- seeing it --------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of the layers, their output shapes and parameter counts, with the totals.

        Output shapes are ``(None, ...)``: ``None`` first stands for any number of examples, and
        elsewhere for a size not known. ``input_shape`` is one example's shape, such as ``(1,
        28, 28)`` for images (an int ``n``: rows of ``n`` features); by default, that of the last
        data the model saw (if any).
        """
        input_shape = self.input_shape if input_shape is None else _example(input_shape)
        rows = [("Layer", "Output shape", "Params")]
        for i, (layer, shape) in enumerate(zip(self.layers, self._chain(input_shape), strict=True)):
            count = sum(p.size for p in layer.parameters())
            shown = "(None, None)" if shape is None else str((None, *shape))
            rows.append((f"{i} {type(layer).__name__}", shown, f"{count:,}"))
        widths = [max(len(row[k]) for row in rows) + 3 for k in range(2)]
        lines = [f"{a:<{widths[0]}}{b:<{widths[1]}}{c}" for a, b, c in rows]
        rule = "=" * max(len(line) for line in lines)
        total = sum(p.size for p in self.parameters())
        loss = type(self.loss).__name__
        if self.fused:
            final = type(self.layers[-1]).__name__
            loss += f" (computed from the logits, the input of the final {final})"
        footer = [f"Total params: {total:,}", f"Loss: {loss}"]
        if self.l2:
            count = sum(W.size for W in self.weights())
            footer.append(
                f"L2 penalty: {self.l2:g} / 2 * sum(||W||^2) over {len(self.weights())} weight "
                f"matrices ({count:,} weights)"
            )
        return "\n".join([lines[0], rule, *lines[1:], rule, *footer])

    def __str__(self) -> str:
        """One line per layer, PyTorch-style: ``(0): Linear(in_features=2, ...)``."""
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "\n".join(["Sequential(", *lines, f"  loss: {self.loss!r}", ")"])

    def __repr__(self) -> str:
        l2 = f", l2={self.l2!r}" if self.l2 else ""
        return f"Sequential({list(self.layers)!r}, loss={self.loss!r}{l2})"
