"""Training a :class:`~minnet.Sequential`: the mini-batch loop, its History, and evaluation.

:meth:`Sequential.fit <minnet.Sequential.fit>`, :meth:`~minnet.Sequential.evaluate`,
:meth:`~minnet.Sequential.predict_proba` and :meth:`~minnet.Sequential.predict` are the
functions of this module. One training step is what you would write by hand::

    optimizer.zero_grad()
    loss = model.cost(X_batch, Y_batch)
    model.backward()
    optimizer.step()

:func:`fit` checks the data once, up front, and then runs exactly these steps (through the
model's :meth:`~minnet.Sequential.cost_prepared`, so no batch is checked or copied again),
over mini-batches of a freshly shuffled copy of the data each epoch.

What a model predicts and how it is scored is decided by its loss (``loss.task``):

- ``"binary"`` (:class:`~minnet.BCELoss`, :class:`~minnet.BCEWithLogitsLoss`): ``predict`` gives
  0/1 labels, 1 where the probability is above 0.5 (the logit above 0); accuracy compares them
  with the labels' classes (a label above 0.5 is class 1). With ``k`` outputs (multi-label), each
  output is a label of its own, and the accuracy is the fraction of the ``m * k`` labels right.
- ``"multiclass"`` (:class:`~minnet.CrossEntropyLoss`): ``predict`` gives the class of the
  largest output, ``predict_proba`` rows summing to 1; accuracy is top-1, against class indices
  (or the most probable class of probability targets).
  :class:`~minnet.NLLLoss` and :class:`~minnet.MultiMarginLoss` too (which gives scores, not
  probabilities: no ``predict_proba``).
- ``"regression"`` (:class:`~minnet.MSELoss`, :class:`~minnet.L1Loss`,
  :class:`~minnet.HuberLoss`, and any loss that does not say otherwise: the documented default):
  ``predict`` gives the outputs, and the metric is R^2, the coefficient of determination
  ``1 - sum((y - y_hat)^2) / sum((y - mean(y))^2)`` (1 is perfect, 0 is no better than
  predicting the mean), over all outputs.

The progress bar is tqdm's, one tick per epoch, on stderr, and only when stderr is a terminal (a
log file or CI output stays clean). During :func:`fit`, numpy's overflow, invalid-value and
divide-by-zero warnings are raised as errors, so that a diverging run stops at the batch where
it went wrong, with a :class:`DivergenceError` saying where, instead of running on with NaNs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Real
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from attrs import define, field
from tqdm import tqdm

from . import _checks
from .layers import BatchNorm1d
from .losses import Loss, check_task
from .optim import Adam, Optimizer

if TYPE_CHECKING:
    from .model import Sequential

#: The learning rate of the Adam optimizer :func:`fit` makes when given none.
DEFAULT_LR = 1e-2


class DivergenceError(RuntimeError):
    """Training stopped because the loss (or a value computed on the way) became NaN or infinite.

    ``epoch`` and ``batch`` (both counted from 1) say where (``batch`` is ``None`` when it was
    while evaluating ``validation_data``); ``history`` holds the epochs that finished before.
    """

    def __init__(self, message: str, *, epoch: int, batch: int | None, history: History) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


class Evaluation(NamedTuple):
    """What :func:`evaluate` returns for a classifier: ``loss, accuracy = model.evaluate(X, Y)``."""

    loss: float
    accuracy: float


class RegressionEvaluation(NamedTuple):
    """What :func:`evaluate` returns for a regression model: ``loss, r2 = model.evaluate(X, Y)``
    (``r2``: the coefficient of determination, see the module's docstring)."""

    loss: float
    r2: float


@define(eq=False)
class History:
    """The metrics of each epoch of :func:`fit`, one list entry per epoch.

    - ``loss``: mean training loss over the epoch's batches, weighted by batch size;
    - ``accuracy`` (classifiers): fraction of training predictions that were right, over the
      epoch's batches (each batch predicted just before its update step, as Keras reports it);
    - ``r2`` (regression): R^2 of the epoch's predictions, made the same way;
    - ``val_loss``, ``val_accuracy`` / ``val_r2``: on ``validation_data`` after each epoch;
    - ``seconds``: wall-clock time of the whole loop, validation included.

    ``metric`` names the one that applies (``"accuracy"`` or ``"r2"``); the other stays empty.
    """

    loss: list[float] = field(factory=list)
    accuracy: list[float] = field(factory=list)
    val_loss: list[float] = field(factory=list)
    val_accuracy: list[float] = field(factory=list)
    r2: list[float] = field(factory=list)
    val_r2: list[float] = field(factory=list)
    seconds: float = 0.0
    metric: str = "accuracy"

    @property
    def epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.loss)

    def __str__(self) -> str:
        if not self.loss:
            return "History(no epochs)"
        parts = [f"{self.epochs} epochs in {self.seconds:.3g} s"]
        for name in ("loss", self.metric, "val_loss", f"val_{self.metric}"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name} {values[0]:.4g} -> {values[-1]:.4g}")
        return "History(" + ", ".join(parts) + ")"


# -- checking the arguments -------------------------------------------------------------------
def _check_weights(model: Sequential) -> None:
    """Refuse to train from NaN or infinite parameters (or buffers): no learning rate helps."""
    for i, layer in enumerate(model.layers):
        named = [(f"parameter '{i}.{name}'", p.value) for name, p in layer.named_parameters()]
        named += [(f"buffer '{i}.{name}'", array) for name, array in layer.named_buffers()]
        for what, array in named:
            bad = np.size(array) - int(np.count_nonzero(np.isfinite(array)))
            if bad:
                raise ValueError(
                    f"fit: {what} holds {bad} NaN or infinite values before training; training "
                    "cannot repair it (it is not a learning-rate problem): set finite values, or "
                    "make the layer again"
                )


def _largest_weight(model: Sequential) -> tuple[float, str]:
    largest, where = 0.0, "none"
    for name, p in model.named_parameters():
        if p.value.size:
            value = float(np.max(np.abs(p.value)))
            if value > largest:
                largest, where = value, name
    return largest, where


def _overflows(what: str, model: Sequential, X: np.ndarray, problem: str) -> ValueError:
    """The error when the model's arithmetic fails on ``X`` with weights no update has touched."""
    weight, name = _largest_weight(model)
    return ValueError(
        f"{what}: the model's arithmetic fails on the data before any update of the weights, so "
        f"the learning rate is not the cause ({problem}). In {X.dtype}, the data reach "
        f"{float(np.max(np.abs(X))):.3g} in magnitude and the weights {weight:.3g} (parameter "
        f"'{name}'): scale the data down (standardize it), or start from smaller weights"
    )


def _check_runs(model: Sequential, data: tuple[np.ndarray, np.ndarray], what: str) -> None:
    """Evaluate ``data`` once with numpy errors raised: a ``ValueError`` if it fails already."""
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss = _evaluate(model, *data).loss
    except FloatingPointError as err:
        raise _overflows(what, model, data[0], f"numpy reports {err}") from err
    if not math.isfinite(loss):
        raise _overflows(what, model, data[0], f"the loss is {loss}")


def _unscaled_note(X: np.ndarray) -> str:
    largest = float(np.max(np.abs(X)))
    if largest <= 1e6:
        return ""
    return (
        f" Note that the data reach {largest:.3g} in magnitude: data this large overflows "
        "easily, whatever the learning rate; standardize it."
    )


def _check_data(model: Sequential, X: Any, Y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as floats ``(m, in_features)`` and ``Y`` as ``(m, out_features)`` of X's dtype."""
    try:
        X = model.check_inputs(X)
        Y = model.check_targets(Y, len(X), dtype=X.dtype, in_features=X.shape[1])
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if len(X) == 0:
        raise ValueError(f"{what}: X must have at least one row, got shape {X.shape}")
    return X, Y


def _check_optimizer(model: Sequential, optimizer: Any) -> Optimizer:
    if optimizer is None:
        if not model.parameters():
            raise ValueError("the model has no parameters to train")
        return Adam(model.parameters(), lr=DEFAULT_LR)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            "optimizer must be a minnet Optimizer such as "
            f"minnet.Adam(model.parameters()), got {type(optimizer).__name__}"
        )
    own = {id(p) for p in model.parameters()}
    foreign = sum(id(p) not in own for p in optimizer.params)
    if foreign:
        raise ValueError(
            f"the optimizer holds {foreign} of {len(optimizer.params)} parameters that are not "
            "this model's: build it from model.parameters() of the model being trained"
        )
    return optimizer


def _batch_bounds(m: int, batch_size: int | None) -> list[tuple[int, int]]:
    size = m if batch_size is None else min(_checks.positive_int("batch_size", batch_size), m)
    return [(start, min(start + size, m)) for start in range(0, m, size)]


def _batch_statistics_layer(model: Sequential) -> tuple[int, Any] | None:
    """``(index, layer)`` of the first layer that normalizes with the statistics of its batch
    in training (a ``BatchNorm1d``: one row has no variance), or ``None``."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm1d):
            return i, layer
    return None


def _training_batches(model: Sequential, m: int, batch_size: int | None) -> list[tuple[int, int]]:
    """The ``(start, stop)`` of each training batch, decided before any update: with a layer
    that needs the statistics of a batch (``BatchNorm1d``), a last batch of one row is merged
    into the one before (33 rows with ``batch_size=32``: one batch of 33), and one row in all
    is refused."""
    bounds = _batch_bounds(m, batch_size)
    found = _batch_statistics_layer(model)
    if found is None or bounds[-1][1] - bounds[-1][0] > 1:
        return bounds
    if len(bounds) == 1:
        i, layer = found
        raise ValueError(
            f"fit: layer {i} ({layer!r}) normalizes each batch with its variance, which needs "
            f"at least 2 rows, and X has {m}"
        )
    (start, _), (_, stop) = bounds[-2], bounds[-1]
    return [*bounds[:-2], (start, stop)]


# -- evaluation mode --------------------------------------------------------------------------
@contextmanager
def eval_mode(model: Sequential) -> Iterator[Sequential]:
    """Run the body with every layer in evaluation mode, then restore each layer's own mode."""
    modes = [layer.training for layer in model.layers]
    model.eval()
    try:
        yield model
    finally:
        for layer, mode in zip(model.layers, modes, strict=True):
            layer.train(mode)


def task_of(model: Sequential) -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"``: what the model's loss says (its
    ``task``; ``"regression"`` when it says nothing), else a ``ValueError``."""
    return check_task(getattr(model.loss, "task", "regression"), type(model.loss).__name__)


def r2_score(sse: float, sst: float) -> float:
    """``1 - sse / sst``; when the targets do not vary (``sst == 0``), 1 for a perfect fit and
    0 otherwise (scikit-learn's convention)."""
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return 1.0 - sse / sst


def _labels(task: str, Y: np.ndarray) -> np.ndarray:
    """What predictions are compared with: 0/1 label classes, or class indices."""
    if task == "binary":
        return Y > 0.5
    return Y if Y.ndim == 1 else np.argmax(Y, axis=1)


def _predicted(task: str, outputs: np.ndarray, logits: bool) -> np.ndarray:
    """Predicted label classes (binary) or class indices (multiclass) from the body's outputs
    (logits, or probabilities)."""
    if task == "binary":
        return outputs > (0.0 if logits else 0.5)
    return np.argmax(outputs, axis=1)


def _takes_logits(model: Sequential) -> bool:
    """Are the body's outputs logits (a fused activation's input, or a loss of logits)?"""
    return model.fused or type(model.loss).probabilities is not Loss.probabilities


def _score(model: Sequential, outputs: np.ndarray, Y: np.ndarray) -> float:
    task = task_of(model)
    if task == "regression":
        return r2_score(float(np.sum((outputs - Y) ** 2)), float(np.sum((Y - Y.mean(0)) ** 2)))
    predicted = _predicted(task, outputs, _takes_logits(model))
    return int(np.count_nonzero(predicted == _labels(task, Y))) / predicted.size


def _evaluate(model: Sequential, X: np.ndarray, Y: np.ndarray) -> Evaluation | RegressionEvaluation:
    with eval_mode(model):
        out = model.run(X)
        loss = model.loss_value(out, Y)
    score = _score(model, out, Y)
    return (
        RegressionEvaluation(loss, score)
        if task_of(model) == "regression"
        else Evaluation(loss, score)
    )


# -- the public functions ---------------------------------------------------------------------
def evaluate(model: Sequential, X: Any, Y: Any) -> Evaluation | RegressionEvaluation:
    """``(loss, accuracy)`` of a classifier, ``(loss, r2)`` of a regression model, on
    ``X: (m, in_features)`` and targets ``Y`` (see the module's docstring).

    Runs in evaluation mode, leaving each layer's mode as it was.
    """
    X, Y = _check_data(model, X, Y, "evaluate")
    return _evaluate(model, X, Y)


def predict_proba(model: Sequential, X: Any) -> np.ndarray:
    """Probabilities for ``X: (m, in_features)``, in evaluation mode.

    A binary model gives ``(m,)`` for one output (the shape of minnet.datasets' labels), else
    ``(m, k)``, each entry the probability of label 1; a multi-class model ``(m, C)``, rows
    summing to 1. A regression model has none: ``ValueError``.
    """
    if task_of(model) == "regression":
        raise ValueError(
            f"predict_proba: a model trained with {type(model.loss).__name__} (regression) "
            "gives numbers, not probabilities: use predict"
        )
    with eval_mode(model):
        out = model.forward(X)
    # The loss knows its link: the fused activation's outputs (probabilities, or a LogSoftmax's
    # log-probabilities), or, without it, logits or probabilities.
    if model.fused:
        out = model.loss.fused_probabilities(out)
    else:
        out = model.loss.probabilities(out)
    if task_of(model) == "binary" and out.shape[1] == 1:
        return out[:, 0]
    return out


def predict(model: Sequential, X: Any, threshold: float | None = None) -> np.ndarray:
    """Predictions for ``X: (m, in_features)``, in evaluation mode.

    Binary: 0/1 labels (int), 1 where :func:`predict_proba` is above ``threshold`` (default
    0.5), its shape. Multi-class: class indices ``(m,)`` (int), the largest output of each row.
    Regression: the outputs, ``(m,)`` for one output, else ``(m, k)``. A ``threshold`` given to a
    model that is not binary is a ``ValueError`` (it would mean nothing there).
    """
    task = task_of(model)
    if threshold is not None and task != "binary":
        raise ValueError(
            f"threshold applies to binary models only; this one is {task} "
            f"({type(model.loss).__name__}), got threshold={threshold!r}"
        )
    if threshold is None:
        threshold = 0.5
    if task == "binary":
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, Real)
            or not 0 <= threshold <= 1
        ):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        return (predict_proba(model, X) > threshold).astype(np.int64)
    with eval_mode(model):
        out = model.forward(X)
    if task == "multiclass":
        return np.argmax(out, axis=1).astype(np.int64)
    return out[:, 0] if out.shape[1] == 1 else out


def fit(
    model: Sequential,
    X: Any,
    Y: Any,
    *,
    optimizer: Optimizer | None = None,
    epochs: int = 10,
    batch_size: int | None = 32,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    validation_data: tuple[Any, Any] | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``X: (m, in_features)``, ``Y: (m,)`` or ``(m, 1)``; see Sequential.fit.

    Each epoch runs over batches of ``batch_size`` rows (the last one may be smaller). With a
    ``BatchNorm1d``, which needs 2 rows for a batch variance, a last batch of 1 row is merged into
    the one before it (decided before any update)."""
    X, Y = _check_data(model, X, Y, "fit")
    epochs = _checks.positive_int("epochs", epochs)
    bounds = _training_batches(model, len(X), batch_size)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            got = type(validation_data).__name__
            if isinstance(validation_data, tuple | list):
                got += f" of length {len(validation_data)}"
            raise ValueError(f"validation_data must be a pair (X_val, Y_val), got a {got}")
        validation = _check_data(model, *validation_data, "validation_data")
    shuffle = _checks.flag("shuffle", shuffle)
    progress = _checks.flag("progress", progress)
    rng = _checks.generator("seed", seed)
    optimizer = _check_optimizer(model, optimizer)
    _check_weights(model)
    if validation is not None:
        _check_runs(model, validation, "validation_data")
    covers_model = len(optimizer.params) == len(model.parameters())
    zero_grad = optimizer.zero_grad if covers_model else model.zero_grad

    m, n_batches = len(X), len(bounds)
    task = task_of(model)
    regression = task == "regression"
    logits = _takes_logits(model)
    labels = None if regression else _labels(task, Y)
    sst = float(np.sum((Y - Y.mean(0)) ** 2)) if regression else 0.0
    history = History(metric="r2" if regression else "accuracy")

    updated = False  # has an optimizer step begun? Before one, lr cannot be the cause.

    def diverged(epoch: int, batch: int | None, what: str) -> Exception:
        if not updated:
            return _overflows("fit", model, X_epoch[start:stop], what)
        history.seconds = time.perf_counter() - start_time
        where = f"epoch {epoch} of {epochs}, " + (
            f"batch {batch} of {n_batches}" if batch else "evaluating validation_data"
        )
        return DivergenceError(
            f"training diverged at {where}: {what}. The learning rate "
            f"({type(optimizer).__name__} lr={optimizer.lr:g}) is probably too large for this "
            "model and data: try a smaller one (or look for a layer whose arithmetic overflows)."
            + _unscaled_note(X),
            epoch=epoch,
            batch=batch,
            history=history,
        )

    model.train()
    start_time = time.perf_counter()
    bar = tqdm(total=epochs, unit="epoch", disable=None if progress else True, leave=True)
    # Overflow or NaN anywhere in a step raises at once, so the error can say where.
    with bar, np.errstate(over="raise", invalid="raise", divide="raise"):
        for epoch in range(1, epochs + 1):
            if shuffle:
                order = rng.permutation(m)
                X_epoch, Y_epoch = X[order], Y[order]
                labels_epoch = None if regression else labels[order]
            else:
                X_epoch, Y_epoch, labels_epoch = X, Y, labels
            total, right, sse = 0.0, 0, 0.0
            for batch, (start, stop) in enumerate(bounds, 1):
                zero_grad()
                try:
                    phase = "the forward pass"
                    loss = model.cost_prepared(X_epoch[start:stop], Y_epoch[start:stop])
                    if not math.isfinite(loss):
                        raise diverged(epoch, batch, f"the loss is {loss}")
                    phase = "the backward pass"
                    model.backward()
                    phase = "the optimizer step"
                    updated = True  # from here on, the learning rate plays a part
                    optimizer.step()
                except FloatingPointError as err:
                    raise diverged(epoch, batch, f"numpy reports {err} in {phase}") from err
                total += loss * (stop - start)
                outputs = model.last_outputs
                if regression:
                    sse += float(np.sum((outputs - Y_epoch[start:stop]) ** 2))
                else:
                    predicted = _predicted(task, outputs, logits)
                    right += int(np.count_nonzero(predicted == labels_epoch[start:stop]))
            history.loss.append(total / m)
            if regression:
                history.r2.append(r2_score(sse, sst))
            else:
                history.accuracy.append(right / labels.size)
            if validation is not None:
                try:
                    val = _evaluate(model, *validation)
                except FloatingPointError as err:
                    raise diverged(epoch, None, f"numpy reports {err} in the forward pass") from err
                if not math.isfinite(val.loss):
                    raise diverged(epoch, None, f"the validation loss is {val.loss}")
                history.val_loss.append(val.loss)
                getattr(history, f"val_{history.metric}").append(val[1])
            if not bar.disable:
                bar.set_postfix(_postfix(history), refresh=False)
            bar.update()
    history.seconds = time.perf_counter() - start_time
    return history


def _postfix(history: History) -> dict[str, str]:
    short = "acc" if history.metric == "accuracy" else history.metric
    metric = getattr(history, history.metric)
    shown = {"loss": f"{history.loss[-1]:.4f}", short: f"{metric[-1]:.3f}"}
    if history.val_loss:
        shown["val_loss"] = f"{history.val_loss[-1]:.4f}"
        shown[f"val_{short}"] = f"{getattr(history, f'val_{history.metric}')[-1]:.3f}"
    return shown


__all__ = [
    "DEFAULT_LR",
    "DivergenceError",
    "Evaluation",
    "History",
    "RegressionEvaluation",
    "eval_mode",
    "evaluate",
    "fit",
    "predict",
    "predict_proba",
    "r2_score",
    "task_of",
]
