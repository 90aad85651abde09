"""Sequential: layers applied one after another, and a loss on top."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import define, field
from attrs.setters import NO_OP

from . import training
from .layers import Layer, Sigmoid
from .losses import BCELoss
from .parameter import FlatStorage, Parameter

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport
    from .optim import Optimizer


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, but {bad} entries are NaN or infinite")


def _as_layer_list(layers: Any) -> list[Layer]:
    if isinstance(layers, Layer):
        raise TypeError(
            f"Sequential takes a list of layers, got a single {type(layers).__name__}: "
            f"write Sequential([{type(layers).__name__}(...), ...])"
        )
    return list(layers)


@define(eq=False, on_setattr=NO_OP)
class Sequential:
    """Layers applied in order, with a loss on the output.

    ``Sequential([Linear(2, 16), ReLU(), Linear(16, 1), Sigmoid()])``. Parameters are named
    ``"<layer index>.<parameter name>"``: ``"0.W"``, ``"0.b"``, ``"2.W"``...

    When the last layer is a :class:`~minnet.Sigmoid`, :meth:`cost` computes the loss from its
    input (the logits), which is exact and finite for any logits.
    """

    layers: list[Layer] = field(converter=_as_layer_list)
    loss: BCELoss = field(factory=BCELoss, kw_only=True)
    dtype: np.dtype | None = field(
        default=None, converter=lambda d: None if d is None else np.dtype(d), kw_only=True
    )
    in_features: int | None = field(init=False, default=None)
    out_features: int | None = field(init=False, default=None)
    _pending: list[Layer] | None = field(default=None, init=False, repr=False)
    _slots: tuple[list[Layer], list[tuple[Layer, str]]] | None = field(
        default=None, init=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("Sequential needs at least one layer, got none")
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
            try:
                features = layer.output_features(features)
            except ValueError as err:
                raise ValueError(
                    f"layers do not chain: layer {i} ({layer!r}) cannot follow {previous}, "
                    f"which gives {features} features ({err})"
                ) from None
            if i + 1 < len(self.layers) and hasattr(layer, "use_init_for"):
                layer.use_init_for(self.layers[i + 1])
            if self.in_features is None and features is not None:
                self.in_features = getattr(layer, "in_features", None)
            previous = f"layer {i} ({layer!r})"
        self.out_features = features
        if self.dtype is not None and self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point type, got {self.dtype}")
        # All parameters in two flat vectors (values, gradients): zero_grad and an optimizer
        # step are then a few numpy calls for the whole model.
        storage = FlatStorage.create(self.parameters(), self.dtype)
        if storage is not None:
            self.dtype = storage.values.dtype
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
        """Set every parameter's gradient to zero (lazily: see :class:`~minnet.Parameter`)."""
        for p in self._hot_parameters():
            p.zero_grad()

    def _hot_parameters(self) -> list[Parameter]:
        """:meth:`parameters`, cheaply, for every training step: the (layer, field) places of the
        parameters are found once, and again only when the list of layers has changed."""
        if (
            self._slots is None
            or len(self._slots[0]) != len(self.layers)
            or any(a is not b for a, b in zip(self._slots[0], self.layers, strict=True))
        ):
            places = [
                (layer, name) for layer in self.layers for name, _ in layer.named_parameters()
            ]
            self._slots = (list(self.layers), places)
        return [getattr(layer, name) for layer, name in self._slots[1]]

    def train(self, mode: bool = True) -> Sequential:
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # -- computing ------------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """Predictions for ``X: (batch, in_features)``, shape ``(batch, out_features)``."""
        X = self._check_X(X)
        self._pending = None  # the layers' caches now belong to this forward, not to a cost()
        return self._run(self.layers, X)

    __call__ = forward

    def cost(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Mean loss of the predictions for ``X: (m, in_features)`` against labels ``Y``.

        ``Y`` has shape ``(m,)`` or ``(m, 1)`` with values in [0, 1]. Keeps what
        :meth:`backward` needs.
        """
        X = self._check_X(X)
        Y = self._check_Y(Y, len(X)).astype(X.dtype, copy=False)
        return self._cost_unchecked(X, Y)[0]

    def backward(self) -> None:
        """Add the gradient of the last :meth:`cost` to every parameter's ``.grad``."""
        if self._pending is None:
            raise RuntimeError("backward() needs a cost() first (and one backward() per cost())")
        body = self._pending
        self._pending = None
        grad = self.loss.backward()
        for layer in reversed(body[1:]):
            grad = layer.backward(grad)
        if not body:  # a model of a single Sigmoid: the loss took the logits itself
            return
        # The first layer's input is the data: no gradient is needed for it (a Linear then
        # skips a matrix product as large as its forward).
        first, wanted = body[0], body[0].input_grad
        first.input_grad = False
        try:
            first.backward(grad)
        finally:
            first.input_grad = wanted

    def gradcheck(self, X: np.ndarray, Y: np.ndarray, **options: Any) -> GradcheckReport:
        """Check the gradient of :meth:`cost` against every parameter numerically.

        See :func:`minnet.gradcheck.check_model` for the options.
        """
        from .gradcheck import check_model

        return check_model(self, X, Y, **options)

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
    ) -> training.History:
        """Train on ``X: (m, in_features)`` and labels ``Y: (m,)`` or ``(m, 1)`` in [0, 1].

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
            ``(X_val, Y_val)``, evaluated after each epoch into ``val_loss`` and ``val_accuracy``.
        progress
            Show a tqdm progress bar on stderr with the loss and accuracy, only when stderr is a
            terminal; ``False`` never shows it.

        Returns a :class:`~minnet.training.History` with one entry per epoch. Leaves the model
        in training mode. The data are checked once, up front (``ValueError`` naming what was
        expected and what was given). If the loss becomes NaN or infinite, or numpy overflows,
        training stops with a :class:`~minnet.training.DivergenceError` naming the epoch and
        the batch.
        """
        return training.fit(
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
        """Probabilities for ``X: (m, in_features)``: shape ``(m,)``, or ``(m, out_features)``.

        A one-output model gives ``(m,)``, the shape of :mod:`minnet.datasets`' labels. Runs in
        evaluation mode; each layer's mode is restored afterwards.
        """
        return training.predict_proba(self, X)

    def predict(self, X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """0/1 labels (ints) for ``X``: 1 where :meth:`predict_proba` is above ``threshold``."""
        return training.predict(self, X, threshold)

    def evaluate(self, X: np.ndarray, Y: np.ndarray) -> training.Evaluation:
        """``(loss, accuracy)`` on ``X: (m, in_features)`` and labels ``Y: (m,)`` or ``(m, 1)``.

        ``accuracy`` is the fraction of :meth:`predict` labels equal to the labels' classes (a
        label above 0.5 is class 1). Runs in evaluation mode, like :meth:`predict_proba`.
        """
        return training.evaluate(self, X, Y)

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
        _, logits = self._split_output()
        loss = type(self.loss).__name__
        if logits:
            loss += " (computed from the logits, the input of the final Sigmoid)"
        return "\n".join(
            [lines[0], rule, *lines[1:], rule, f"Total params: {total:,}", f"Loss: {loss}"]
        )

    def __str__(self) -> str:
        """One line per layer, PyTorch-style: ``(0): Linear(in_features=2, ...)``."""
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "\n".join(["Sequential(", *lines, f"  loss: {self.loss!r}", ")"])

    # -- public seams: what training, the gradient check and io use ------------------------
    def check_inputs(self, X: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """``X`` as a finite float array ``(m, in_features)`` (of ``dtype`` if given)."""
        return self._check_X(X, dtype)

    def check_targets(self, Y: np.ndarray, m: int) -> np.ndarray:
        """``Y`` checked for ``m`` rows and reshaped as the loss wants it."""
        return self._check_Y(Y, m)

    @property
    def body(self) -> list[Layer]:
        """The layers :meth:`cost` runs: all, or all but a final activation the loss fuses."""
        return self._split_output()[0]

    @property
    def fused(self) -> bool:
        """Does the loss take the body's output as the input of the final activation?"""
        return self._split_output()[1]

    def run(self, x: np.ndarray, start: int = 0) -> np.ndarray:
        """``body[start:]`` applied to ``x`` (no checks)."""
        return self._run(self.body[start:], x)

    def loss_value(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The loss of the body's ``outputs`` against checked ``targets``."""
        return self._loss_forward(outputs, targets, self.fused)

    def loss_per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """Per-row losses whose mean is :meth:`loss_value`, or ``None`` if the loss has none."""
        if self.fused and type(self.loss) is BCELoss:
            return self.loss.per_example_logits(outputs, targets).mean(axis=1)
        return None

    def cost_prepared(self, X: np.ndarray, Y: np.ndarray) -> float:
        """:meth:`cost` for data that went through :meth:`check_inputs` and
        :meth:`check_targets`: no checks, no copies; readies :meth:`backward`."""
        return self._cost_unchecked(X, Y)[0]

    # -- pieces shared with the gradient check ---------------------------------------------
    def _cost_unchecked(
        self, X: np.ndarray, Y: np.ndarray, split: tuple[list[Layer], bool] | None = None
    ) -> tuple[float, np.ndarray]:
        """:meth:`cost` for data already checked: ``X`` float, ``Y`` of the output's shape.

        Returns the loss and the output of the layers it ran (the logits when the loss takes
        them). ``split`` is :meth:`_split_output`, which a training loop computes once.
        """
        body, logits = self._split_output() if split is None else split
        out = self._run(body, X)
        value = self._loss_forward(out, Y, logits)
        self._pending = body
        return value, out

    def _split_output(self) -> tuple[list[Layer], bool]:
        """The layers cost() runs, and whether the loss takes logits (last layer a Sigmoid)."""
        if isinstance(self.layers[-1], Sigmoid) and hasattr(self.loss, "forward_logits"):
            return self.layers[:-1], True
        return self.layers, False

    def _loss_forward(self, out: np.ndarray, Y: np.ndarray, logits: bool) -> float:
        if out.shape != Y.shape:
            raise ValueError(f"the model gives outputs of shape {out.shape}, labels are {Y.shape}")
        return self.loss.forward_logits(out, Y) if logits else self.loss.forward(out, Y)

    @staticmethod
    def _run(layers: list[Layer], x: np.ndarray) -> np.ndarray:
        for layer in layers:
            x = layer.forward(x)
        return x

    def _check_X(self, X: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """``X`` as a finite 2-D array of the model's dtype (or ``dtype``), else ValueError."""
        X = np.asarray(X)
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
        X = X.astype(dtype if dtype.kind == "f" else np.float64, copy=False)
        _check_finite("X", X)
        return X

    def _check_Y(self, Y: np.ndarray, m: int) -> np.ndarray:
        """``Y`` as an ``(m, out_features)`` array of labels in [0, 1], else ValueError."""
        given = np.asarray(Y)
        if given.dtype.kind not in "biuf":
            raise ValueError(f"Y must hold numbers (labels in [0, 1]), got dtype {given.dtype}")
        Y = given.reshape(-1, 1) if given.ndim == 1 else given
        if Y.ndim != 2 or Y.shape[0] != m or Y.shape[1] != (self.out_features or 1):
            raise ValueError(
                f"Y must have shape ({m},) or ({m}, {self.out_features or 1}) to match X, "
                f"got {given.shape}"
            )
        if Y.size == 0:
            return Y
        low, high = np.minimum.reduce(Y, axis=None), np.maximum.reduce(Y, axis=None)
        if not 0 <= low <= high <= 1:  # also false for a NaN
            _check_finite("Y", Y)
            raise ValueError(f"labels must lie in [0, 1], got values from {low} to {high}")
        return Y
