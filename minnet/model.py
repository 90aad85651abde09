"""Sequential: layers applied one after another, and a loss on top.

Its public methods are all that :mod:`minnet.training`, :mod:`minnet.gradcheck` and
:mod:`minnet.io` use: checking data (:meth:`Sequential.check_inputs`,
:meth:`~Sequential.check_targets`), running the layers (:meth:`~Sequential.run`), the loss
(:meth:`~Sequential.loss_value`, :meth:`~Sequential.loss_per_example`) and one training step's
cost and backward (:meth:`~Sequential.cost_prepared`, :meth:`~Sequential.backward`).
"""

from __future__ import annotations

import inspect
import os
import weakref
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import define, field
from attrs.setters import NO_OP

from ._fast import FlatStorage
from .layers import Layer, as_array, parameter_getter
from .losses import BCELoss, Loss, per_example_matches_forward
from .parameter import Parameter

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport
    from .optim import Optimizer
    from .training import Evaluation, History, RegressionEvaluation


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, but {bad} entries are NaN or infinite")


def _cast_checked(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` (no copy if it already is), refusing NaN and infinities, and finite
    values too large for ``dtype`` (``1e300`` into float32), each with its own message."""
    if array.dtype == dtype:  # no conversion: nothing can overflow (the common case)
        _check_finite(name, array)
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    if np.isfinite(converted).all():
        return converted
    _check_finite(name, array)  # NaN or infinite already, before the conversion
    largest = float(np.max(np.abs(array)))
    raise ValueError(
        f"{name} overflows the model's dtype {np.dtype(dtype)}: it holds values up to "
        f"{largest:.3g} in magnitude, and the largest {np.dtype(dtype)} is "
        f"{float(np.finfo(dtype).max):.3g}. Scale the data down (or use a model of a wider "
        "dtype)"
    )


def _as_layer_list(layers: Any) -> list[Layer]:
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
    return list(layers)


def _as_dtype(value: Any) -> np.dtype | None:
    if value is None:
        return None
    try:
        return np.dtype(value)
    except TypeError:
        raise TypeError(
            f"dtype must be a numpy floating-point type such as np.float32, got {value!r}"
        ) from None


def _check_loss(model: Any, attribute: Any, loss: Any) -> None:
    if isinstance(loss, Loss):
        return
    if isinstance(loss, type) and issubclass(loss, Loss):
        raise TypeError(
            f"loss must be a Loss object, got the class {loss.__name__}: write "
            f"loss={loss.__name__}()"
        )
    raise TypeError(
        "loss must be a minnet Loss such as minnet.BCELoss() (or your own subclass of "
        f"minnet.Loss), got {type(loss).__name__}"
    )


@cache
def _takes_needs_input_grad(layer_class: type) -> bool:
    """Does ``layer_class.backward`` accept the ``needs_input_grad`` hint? Looked up once."""
    return "needs_input_grad" in inspect.signature(layer_class.backward).parameters


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


@define(eq=False, on_setattr=NO_OP)
class Sequential:
    """Layers applied in order, with a loss on the output.

    ``Sequential([Linear(2, 16), ReLU(), Linear(16, 1), Sigmoid()])``, with ``loss=BCELoss()``
    by default. Parameters are named ``"<layer index>.<parameter name>"``: ``"0.W"``, ``"0.b"``,
    ``"2.W"``...

    - When the loss fuses with the last layer (``loss.fuses_with(layers[-1])``: ``BCELoss``
      with a final ``Sigmoid``), :meth:`cost` hands the loss that layer's input (the logits),
      which is exact and finite for any logits. :attr:`body` is the layers ``cost`` runs.
    - Building a model never changes a parameter's value. It moves the parameters into one flat
      vector (same values; see :mod:`minnet._fast`), converted to ``dtype`` if given.
    - A layer belongs to one model at a time: it keeps what its last forward saw for its
      backward. Building a model from a layer of another live model is refused (share
      parameters instead: ``new_layer.W = old_layer.W``).
    """

    layers: list[Layer] = field(converter=_as_layer_list)
    loss: Loss = field(factory=BCELoss, kw_only=True, validator=_check_loss)
    dtype: np.dtype | None = field(default=None, converter=_as_dtype, kw_only=True)
    in_features: int | None = field(init=False, default=None)
    out_features: int | None = field(init=False, default=None)
    _pending: list[Layer] | None = field(default=None, init=False, repr=False)
    _outputs: np.ndarray | None = field(default=None, init=False, repr=False)
    # (ids of the layers, the layers, and each parameter's layer and field name): see
    # _hot_parameters.
    _slots: tuple[tuple, tuple, tuple, tuple] | None = field(default=None, init=False, repr=False)
    _storage: FlatStorage | None = field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("Sequential needs at least one layer, got none")
        if self.dtype is not None and self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point type, got {self.dtype}")
        features: int | None = None
        previous = "the input"
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a minnet Layer, got {type(layer).__name__}")
            if any(layer is other for other in self.layers[:i]):
                j = next(j for j, other in enumerate(self.layers) if other is layer)
                raise ValueError(
                    f"layer {i} is the same object as layer {j} ({layer!r}): a layer keeps "
                    "the input of its last forward, so each position needs its own layer"
                )
            if _owner(layer) is not None:
                raise ValueError(
                    f"layer {i} ({layer!r}) already belongs to another Sequential that is "
                    "still alive: a layer keeps what its last forward saw for its backward, so "
                    "two models sharing it would silently mix up their gradients. Give this "
                    "model layers of its own (to tie weights, share the parameters: "
                    "new_layer.W = old_layer.W), or delete the other model first"
                )
            try:
                features = layer.output_features(features)
            except ValueError as err:
                raise ValueError(
                    f"layers do not chain: layer {i} ({layer!r}) cannot follow {previous}, "
                    f"which gives {features} features ({err})"
                ) from None
            if self.in_features is None and features is not None:
                self.in_features = getattr(layer, "in_features", None)
            previous = f"layer {i} ({layer!r})"
        self.out_features = features
        self._place_parameters()
        for layer in self.layers:
            _claim(layer, self)

    def _place_parameters(self) -> None:
        """All parameters in two flat vectors (values, gradients), in ``dtype`` if given:
        ``zero_grad`` and an optimizer step are then a few numpy calls for the whole model."""
        parameters = self.parameters()
        storage = FlatStorage.find(parameters)  # a model built again from the same layers
        if storage is None or (self.dtype is not None and storage.values.dtype != self.dtype):
            storage = FlatStorage.create(parameters, self.dtype)
        self._storage = storage
        if self.dtype is None:
            self.dtype = storage.values.dtype if storage is not None else None
            return
        if any(p.dtype != self.dtype for p in parameters):
            named = list(self.named_parameters())
            shared = [
                name
                for name, p in named
                if p.value.base is not None or sum(q is p for _, q in named) > 1
            ]
            raise ValueError(
                f"dtype={self.dtype} cannot be given to parameters {shared}: they are shared "
                "(with another model, another layer, or an array of yours), and converting them "
                "would change the others too, so nothing was converted. Make the layers in that "
                f"dtype instead, e.g. Linear(..., dtype=np.{self.dtype})"
            )
        for layer in self.layers:  # a layer that records its dtype now has this one
            if isinstance(getattr(layer, "dtype", None), np.dtype):
                layer.dtype = self.dtype

    # -- parameters -----------------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``("<layer index>.<name>", parameter)`` for every parameter."""
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"{i}.{name}", p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place."""
        for p in self._hot_parameters():
            p.zero_grad()

    def _hot_parameters(self) -> list[Parameter]:
        """:meth:`parameters`, cheaply, for every training step: the (layer, field) places of the
        parameters are found once, and again only when the list of layers has changed."""
        layer_ids = tuple(map(id, self.layers))
        if self._slots is None or self._slots[0] != layer_ids:
            places = [
                (layer, name) for layer in self.layers for name, _ in layer.named_parameters()
            ]
            # _slots holds the layers too, so that no other object can take one of their ids.
            self._slots = (
                layer_ids,
                tuple(self.layers),
                tuple(layer for layer, _ in places),
                tuple(parameter_getter(name) for _, name in places),
            )
        return [get(layer) for layer, get in zip(self._slots[2], self._slots[3], strict=True)]

    def train(self, mode: bool = True) -> Sequential:
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # -- computing ------------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """Predictions for ``X: (batch, in_features)``, shape ``(batch, out_features)``.

        Runs every layer (the final activation too). No :meth:`backward` may follow it.
        """
        X = self.check_inputs(X)
        self._pending = None  # the layers' caches now belong to this forward, not to a cost()
        for layer in self.layers:
            X = layer.forward(X)
        return X

    __call__ = forward

    def cost(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Mean loss of the predictions for ``X: (m, in_features)`` against targets ``Y``.

        ``Y`` has shape ``(m,)`` or ``(m, out_features)``, with the values the loss accepts
        (``BCELoss``: in [0, 1]). Keeps what :meth:`backward` needs.
        """
        X = self.check_inputs(X)
        if len(X) == 0:
            raise ValueError(
                f"X must have at least one row to take a mean loss, got shape {X.shape}"
            )
        Y = self.check_targets(Y, len(X), dtype=X.dtype)
        return self.cost_prepared(X, Y)

    def backward(self) -> None:
        """Add the gradient of the last :meth:`cost` to every parameter's ``.grad``.

        The first layer's input is the data: its backward is told ``needs_input_grad=False``
        when it accepts that argument (a ``Linear`` then skips a product as large as its
        forward).
        """
        if self._pending is None:
            raise RuntimeError("backward() needs a cost() first (and one backward() per cost())")
        body = self._pending
        self._pending = None
        grad = self.loss.backward()
        for layer in reversed(body[1:]):
            grad = layer.backward(grad)
        if not body:  # a model of a single fused activation: the loss took its input itself
            return
        first = body[0]
        if _takes_needs_input_grad(type(first)):
            first.backward(grad, needs_input_grad=False)
        else:
            first.backward(grad)

    def gradcheck(self, X: np.ndarray, Y: np.ndarray, **options: Any) -> GradcheckReport:
        """Check the gradient of :meth:`cost` against every parameter numerically.

        See :func:`minnet.gradcheck.check_model` for the options.
        """
        from .gradcheck import check_model

        return check_model(self, X, Y, **options)

    # -- the pieces of cost(), for training loops and gradient checks ------------------------
    @property
    def fused(self) -> bool:
        """Does the loss take the input of the final activation (``loss.fuses_with``)?"""
        return self.loss.fuses_with(self.layers[-1])

    @property
    def body(self) -> list[Layer]:
        """The layers :meth:`cost` runs: all of them, or all but the final activation when the
        loss fuses with it (:attr:`fused`). A new list each time."""
        return self.layers[:-1] if self.fused else list(self.layers)

    def check_inputs(self, X: Any, dtype: np.dtype | None = None) -> np.ndarray:
        """``X`` as a finite ``(m, in_features)`` float array, else a ``ValueError``.

        Of the model's dtype (or ``dtype`` if given; ``X``'s own if the model has none). No copy
        when ``X`` already is one.
        """
        X = as_array(X, "X")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"X must have shape (batch, features), got shape {X.shape}")
        if self.in_features is not None and X.shape[1] != self.in_features:
            raise ValueError(
                f"X has {X.shape[1]} features but layer 0 ({self.layers[0]!r}) expects "
                f"{self.in_features}"
            )
        if dtype is None:
            dtype = self.dtype if self.dtype is not None else X.dtype
        return _cast_checked("X", X, dtype if dtype.kind == "f" else np.float64)

    def check_targets(self, Y: Any, m: int, dtype: np.dtype | None = None) -> np.ndarray:
        """``Y`` as an ``(m, out_features)`` array the loss accepts, else a ``ValueError``.

        The loss decides (``loss.check_targets``): ``BCELoss`` takes numbers in [0, 1], of shape
        ``(m,)`` or ``(m, out_features)``. Converted to ``dtype`` if given; no copy when ``Y``
        already fits.
        """
        shape = (m, self.out_features or 1)
        try:
            Y = self.loss.check_targets(Y, shape)
        except ValueError as err:
            raise ValueError(f"Y: {err}") from None
        # Targets of the outputs' shape take their dtype; class indices stay integers.
        if dtype is None or Y.shape != shape:
            return Y
        return _cast_checked("Y", Y, dtype)

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
        :attr:`fused`) against checked ``targets: (m, k)``; the loss keeps what its own
        ``backward`` needs. No model :meth:`backward` may follow: use :meth:`cost_prepared`."""
        self._pending = None
        return self._loss_forward(outputs, targets, self.fused)

    def loss_per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """Each example's loss, shape ``(m,)``, for the body's ``outputs: (m, k)``; their mean is
        :meth:`loss_value`. ``None`` when the loss does not provide them (``per_example``)."""
        fused = self.fused
        if not per_example_matches_forward(self.loss, fused):
            return None
        if fused:
            return self.loss.per_example_fused(outputs, targets)
        return self.loss.per_example(outputs, targets)

    def cost_prepared(self, X: np.ndarray, Y: np.ndarray) -> float:
        """:meth:`cost` for ``X`` and ``Y`` that went through :meth:`check_inputs` and
        :meth:`check_targets` (``Y: (m, out_features)``): no checks, no copies. Keeps what
        :meth:`backward` needs, and the body's outputs in :attr:`last_outputs`."""
        fused = self.loss.fuses_with(self.layers[-1])
        body = self.layers[:-1] if fused else self.layers
        x = X
        for layer in body:
            x = layer.forward(x)
        value = self._loss_forward(x, Y, fused)
        self._outputs = x
        self._pending = body
        return value

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
        if fused:
            return self.loss.forward_fused(outputs, targets)
        return self.loss.forward(outputs, targets)

    # -- training, and using the trained model (the loop is in minnet.training) -------------
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        *,
        optimizer: Optimizer | None = None,
        epochs: int = 10,
        batch_size: int | None = 32,
        shuffle: bool = True,
        seed: int | np.random.Generator | None = None,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        progress: bool = True,
    ) -> History:
        """Train on ``X: (m, in_features)`` and the targets ``Y`` the loss takes.

        Each epoch shuffles the rows (with ``np.random.default_rng(seed)``; ``shuffle=False``
        keeps their order) and takes one optimizer step per mini-batch of ``batch_size`` rows,
        the last batch holding what is left over (``batch_size=None``: the whole set at once).

        Parameters
        ----------
        optimizer
            A minnet :class:`~minnet.Optimizer` over this model's parameters (parameters it
            does not hold stay fixed). Default: a new ``Adam(model.parameters(), lr=1e-2)``
            on every call; pass your own to keep its state across calls.
        epochs
            Passes over the data, a positive int.
        validation_data
            ``(X_val, Y_val)``, evaluated after each epoch into ``val_loss`` and
            ``val_accuracy`` (``val_r2`` for regression).
        progress
            Show a tqdm progress bar on stderr with the loss and the metric, only when stderr is a
            terminal; ``False`` never shows it.

        Returns a :class:`~minnet.training.History` with one entry per epoch. Leaves the model
        in training mode. The data are checked once, up front (``ValueError`` naming what was
        expected and what was given). If the loss becomes NaN or infinite, or numpy overflows,
        training stops with a :class:`~minnet.training.DivergenceError` naming the epoch and
        the batch. When that happens before any update of the weights (the first batch's
        forward or backward, or ``validation_data`` evaluated once before training), the
        learning rate cannot be the cause: it is a ``ValueError`` saying how large the data and
        the weights are. NaN or infinite parameters are refused before training.
        """
        from .training import fit

        return fit(
            self,
            X,
            Y,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            validation_data=validation_data,
            progress=progress,
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for ``X: (m, in_features)``, by the loss's task.

        Binary (``BCELoss``, ``BCEWithLogitsLoss``): ``(m,)`` for a one-output model (the shape
        of :mod:`minnet.datasets`' labels), else ``(m, out_features)``, each entry the
        probability of label 1. Multi-class (``CrossEntropyLoss``): ``(m, C)``, rows summing to
        1. Regression: a ``ValueError`` (use :meth:`predict`). Runs in evaluation mode; each
        layer's mode is restored afterwards.
        """
        from .training import predict_proba

        return predict_proba(self, X)

    def predict(self, X: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Predictions for ``X``, by the loss's task: 0/1 labels (ints, 1 where
        :meth:`predict_proba` is above ``threshold``, default 0.5) for a binary model, class
        indices ``(m,)`` (ints) for a multi-class one, the outputs (``(m,)`` for one output) for
        regression; ``threshold`` is refused for a model that is not binary."""
        from .training import predict

        return predict(self, X, threshold)

    def evaluate(self, X: np.ndarray, Y: np.ndarray) -> Evaluation | RegressionEvaluation:
        """``(loss, accuracy)`` of a classifier, ``(loss, r2)`` of a regression model, on
        ``X: (m, in_features)`` and targets ``Y`` (those the loss takes).

        Binary: the fraction of :meth:`predict` labels equal to the labels' classes (a label
        above 0.5 is class 1), over all ``m * k`` labels of a ``k``-output (multi-label) model.
        Multi-class: top-1 accuracy. Regression: R^2 over all outputs. Runs in evaluation mode,
        like :meth:`predict_proba`.
        """
        from .training import evaluate

        return evaluate(self, X, Y)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to an ``.npz`` file (see :mod:`minnet.io`); returns the path written.

        ``.npz`` is appended to ``path`` if missing. :func:`minnet.load` reads it back.
        """
        from .io import save

        return save(self, path)

    # -- seeing it --------------------------------------------------------------------------
    def summary(self) -> str:
        """A table of the layers, their output shapes and parameter counts, with the totals.

        Output shapes are ``(None, features)``: ``None`` stands for any number of rows (and,
        for features, any number, when no layer fixes it).
        """
        rows = [("Layer", "Output shape", "Params")]
        features = self.in_features
        for i, layer in enumerate(self.layers):
            features = layer.output_features(features)
            count = sum(p.size for p in layer.parameters())
            rows.append((f"{i} {type(layer).__name__}", f"(None, {features})", f"{count:,}"))
        widths = [max(len(row[k]) for row in rows) + 3 for k in range(2)]
        lines = [f"{a:<{widths[0]}}{b:<{widths[1]}}{c}" for a, b, c in rows]
        rule = "=" * max(len(line) for line in lines)
        total = sum(p.size for p in self.parameters())
        loss = type(self.loss).__name__
        if self.fused:
            final = type(self.layers[-1]).__name__
            loss += f" (computed from the logits, the input of the final {final})"
        return "\n".join(
            [lines[0], rule, *lines[1:], rule, f"Total params: {total:,}", f"Loss: {loss}"]
        )

    def __str__(self) -> str:
        """One line per layer, PyTorch-style: ``(0): Linear(in_features=2, ...)``."""
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "\n".join(["Sequential(", *lines, f"  loss: {self.loss!r}", ")"])
