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
from .callbacks import Callback
from .layers import BatchNorm1d
from .losses import Loss, check_task
from .optim import Adam, Optimizer
from .optim.schedules import LRScheduler, ReduceLROnPlateau

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

    - ``loss``: the training loss over the epoch's batches (see below);
    - ``accuracy`` (classifiers): fraction of training predictions that were right, over the
      epoch's batches (each batch predicted just before its update step, as Keras reports it);
    - ``r2`` (regression): R^2 of the epoch's predictions, made the same way;
    - ``val_loss``, ``val_accuracy`` / ``val_r2``: on the validation data after each epoch;
    - ``lr``: the optimizer's learning rate during the epoch (a ``scheduler`` changes it);
    - ``seconds``: wall-clock time of the whole loop, validation included.

    ``loss`` is the loss's own reduction over all the epoch's rows (see :class:`EpochLoss`): a
    mean over them, PyTorch's weighted mean with class weights, their sum with
    ``reduction="sum"``; so with unchanged weights it equals ``val_loss`` on the same data.
    With ``sample_weight``, row ``i`` counts ``w_i`` times in the losses and the metrics. With
    an L2 penalty (``Sequential(..., l2=)``), the losses include it.

    ``metric`` names the one that applies (``"accuracy"`` or ``"r2"``); the other stays empty.
    """

    loss: list[float] = field(factory=list)
    accuracy: list[float] = field(factory=list)
    val_loss: list[float] = field(factory=list)
    val_accuracy: list[float] = field(factory=list)
    r2: list[float] = field(factory=list)
    val_r2: list[float] = field(factory=list)
    lr: list[float] = field(factory=list)
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


def _check_weights_of(model: Sequential, weights: Any, m: int, dtype, what: str) -> np.ndarray:
    """``model.check_sample_weight``, its error prefixed with ``what``."""
    try:
        return model.check_sample_weight(weights, m, dtype)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def _split_at(m: int, validation_split: float) -> int:
    """The first validation row: the last ``validation_split`` of the rows are held out
    (Keras' rule, ``floor(m * (1 - validation_split))`` rows kept for training)."""
    split = math.floor(m * (1.0 - validation_split))
    if split == 0 or split == m:
        raise ValueError(
            f"validation_split={validation_split} of {m} rows leaves "
            f"{'no training' if split == 0 else 'no validation'} rows: give more data or "
            "another validation_split"
        )
    return split


HOOKS = ("set_model", "on_train_begin", "on_train_batch_begin", "on_epoch_end", "on_train_end")


def _check_callbacks(callbacks: Any) -> list[Any]:
    if isinstance(callbacks, Callback) or not hasattr(callbacks, "__iter__"):
        raise TypeError(
            "callbacks must be a list of callbacks, e.g. [minnet.EarlyStopping()], "
            f"got {type(callbacks).__name__}"
        )
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise TypeError(
                f"callbacks[{i}] must be an object with an on_epoch_end(epoch, logs) method (or "
                f"one of {', '.join(HOOKS)}), got {type(callback).__name__}"
            )
    return callbacks


def _check_scheduler(scheduler: Any, optimizer: Any) -> LRScheduler | None:
    if scheduler is None:
        return None
    if not isinstance(scheduler, LRScheduler):
        raise TypeError(
            "scheduler must be a minnet learning-rate schedule such as "
            f"minnet.StepLR(optimizer, step_size=10), got {type(scheduler).__name__}"
        )
    if optimizer is None or scheduler.optimizer is not optimizer:
        raise ValueError(
            "scheduler must schedule the optimizer given to fit (optimizer=...): "
            + (
                "no optimizer was given"
                if optimizer is None
                else "it was made for another optimizer"
            )
        )
    return scheduler


def _check_monitors(callbacks: list[Any], metric: str, validating: bool) -> None:
    """A callback with a ``monitor`` (such as ``EarlyStopping``) must name a metric this fit
    logs: checked before the first step, not discovered after an epoch of updates."""
    names = ["loss", metric, "lr"] + (["val_loss", f"val_{metric}"] if validating else [])
    for i, callback in enumerate(callbacks):
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor not in names:
            hint = ""
            if monitor.startswith("val_") and not validating:
                hint = "; val_ metrics need validation_data or validation_split"
            raise ValueError(
                f"callbacks[{i}] ({type(callback).__name__}) monitors {monitor!r}, which this "
                f"fit does not log: it logs {names}{hint}"
            )


def _call(callback: Any, hook: str, i: int, *args: Any) -> None:
    method = getattr(callback, hook, None)
    if not callable(method):
        return
    try:
        with np.errstate(over="warn", invalid="warn", divide="warn"):  # not fit's own
            method(*args)
    except Exception as err:
        raise RuntimeError(
            f"callbacks[{i}] ({type(callback).__name__}) raised {type(err).__name__} in "
            f"{hook}: {err}"
        ) from err


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


def _row_weighted(values: np.ndarray, weights: np.ndarray | None) -> float:
    """``sum(values)``, each row's entries times its weight (``weights: (m,)``) if given."""
    if weights is None:
        return float(np.sum(values))
    return float(np.sum(weights.reshape(-1, *[1] * (values.ndim - 1)) * values))


def _sst(Y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The (weighted) sum of squares of ``Y`` about its (weighted) mean, column by column."""
    mean = Y.mean(0) if weights is None else np.average(Y, axis=0, weights=weights)
    return _row_weighted((Y - mean) ** 2, weights)


def _ignored(model: Sequential, Y: np.ndarray) -> int | None:
    """The class index whose rows the accuracy leaves out, as the loss does
    (``CrossEntropyLoss(ignore_index=)``, for class indices ``Y: (m,)``), or ``None``."""
    if task_of(model) != "multiclass" or Y.ndim != 1:
        return None
    return getattr(model.loss, "ignore_index", None)


def _rights(
    task: str,
    outputs: np.ndarray,
    labels: np.ndarray,
    logits: bool,
    weights: np.ndarray | None,
    ignore: int | None = None,
) -> tuple[float, float]:
    """The (weighted) number of right predictions, and of predictions; rows whose label is
    ``ignore`` are in neither."""
    right = _predicted(task, outputs, logits) == labels
    if ignore is not None:
        kept = labels != ignore
        if not kept.all():
            weights = kept.astype(np.float64) if weights is None else weights * kept
    count = right.size if weights is None else float(np.sum(weights)) * (right.size // len(right))
    return _row_weighted(right, weights), count


def _score(
    model: Sequential, outputs: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Accuracy or R^2; with ``weights``, row ``i`` counted ``weights[i]`` times."""
    task = task_of(model)
    if task == "regression":
        return r2_score(_row_weighted((outputs - Y) ** 2, weights), _sst(Y, weights))
    labels = _labels(task, Y)
    right, count = _rights(task, outputs, labels, _takes_logits(model), weights, _ignored(model, Y))
    return right / count if count else float("nan")  # nan: every row ignored


def _evaluate(
    model: Sequential, X: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None
) -> Evaluation | RegressionEvaluation:
    with eval_mode(model):
        out = model.run(X)
        loss = model.loss_value(out, Y)
        if weights is not None:
            loss = model.loss.weighted(out, Y, weights, fused=model.fused)[0] + model.penalty()
    score = _score(model, out, Y, weights)
    return (
        RegressionEvaluation(loss, score)
        if task_of(model) == "regression"
        else Evaluation(loss, score)
    )


# -- the public functions ---------------------------------------------------------------------
def evaluate(
    model: Sequential, X: Any, Y: Any, sample_weight: Any = None
) -> Evaluation | RegressionEvaluation:
    """``(loss, accuracy)`` of a classifier, ``(loss, r2)`` of a regression model, on
    ``X: (m, in_features)`` and targets ``Y`` (see the module's docstring).

    The loss is the model's cost (with its L2 penalty, if any); with ``sample_weight: (m,)``
    (non-negative), row ``i`` counts ``w_i`` times, in the loss as in the accuracy or R^2 (as
    scikit-learn's ``score(sample_weight=)``): a weight of 2 is the row given twice. Runs in
    evaluation mode, leaving each layer's mode as it was.
    """
    X, Y = _check_data(model, X, Y, "evaluate")
    weights = None
    if sample_weight is not None:
        weights = _check_weights_of(model, sample_weight, len(X), X.dtype, "evaluate")
    return _evaluate(model, X, Y, weights)


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


class StepFailed(Exception):
    """A training step that overflowed, or whose loss is not finite: ``phase`` says where
    (``"the forward pass"``, ``"the backward pass"``, ``"the optimizer step"``), ``what`` what."""

    def __init__(self, phase: str, what: str) -> None:
        super().__init__(what)
        self.phase, self.what = phase, what


class EpochLoss:
    """The loss of an epoch, from its batches' losses: the loss's own reduction over all the
    epoch's rows (each row's terms as computed at its batch's step), plus the L2 penalty
    averaged over the steps (weighted by their rows, or sample weights).

    Each batch's loss is ``total / count`` (``loss.parts``); the epoch's is ``sum(totals) /
    sum(counts)``: for a mean, the mean over all the rows (with class weights, PyTorch's
    weighted mean of all of them), for ``reduction="sum"`` the sum over all of them. So with
    the weights unchanged (lr=0) it is the loss of the whole training set at once, as
    ``val_loss`` is of the validation data.
    """

    def __init__(self) -> None:
        self.total, self.count, self.penalty, self.rows = 0.0, 0.0, 0.0, 0.0
        self.summed = False

    def add(
        self, loss: Loss, value: float, penalty: float, m: int, weights: np.ndarray | None
    ) -> None:
        """Add a batch of ``m`` rows (``weights``) whose loss was ``value`` (without the
        ``penalty``), right after its forward."""
        total, count = loss.parts(value, m, weights)
        self.total += total
        self.summed = count is None
        self.count += 0.0 if count is None else count
        rows = float(m if weights is None else np.sum(weights))
        self.penalty += penalty * rows
        self.rows += rows

    def value(self) -> float:
        """The epoch's loss."""
        loss = self.total if self.summed else self.total / self.count
        return loss + self.penalty / self.rows


def train_on_batch(model, optimizer, X, Y, sample_weight=None, *, zero_grad=None) -> float:
    """One step of gradient descent on a mini-batch, the heart of :func:`fit`: zero the
    gradients, compute the cost (forward), its gradient (backward), and update the parameters.

    ``X`` and ``Y`` are checked already (``model.check_inputs``, ``model.check_targets``).
    Returns the loss before the update. Numpy's overflow (under ``np.errstate(over="raise")``)
    or a loss that is not finite raise :class:`StepFailed` naming the phase.
    """
    (zero_grad or optimizer.zero_grad)()
    phase = "the forward pass"
    try:
        loss = model.cost_prepared(X, Y, sample_weight)
        if not math.isfinite(loss):
            raise StepFailed(phase, f"the loss is {loss}")
        phase = "the backward pass"
        model.backward()
        phase = "the optimizer step"
        optimizer.step()
    except FloatingPointError as err:
        raise StepFailed(phase, f"numpy reports {err} in {phase}") from err
    return loss


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
    validation_split: float = 0.0,
    callbacks: Any = (),
    scheduler: LRScheduler | None = None,
    sample_weight: Any = None,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``X: (m, in_features)``, ``Y: (m,)`` or ``(m, 1)``; see Sequential.fit.

    - ``validation_split`` in ``[0, 1)``: hold out the last fraction of the rows (before any
      shuffling, Keras' rule) as validation data, instead of giving ``validation_data``.
    - ``callbacks``: objects with ``on_epoch_end(epoch, logs)`` and the other hooks of
      :mod:`minnet.callbacks` (such as :class:`~minnet.EarlyStopping`); a callback that sets
      ``model.stop_training = True`` ends training after that epoch. ``on_train_batch_begin``
      runs before each mini-batch's step.
    - ``scheduler``: a learning-rate schedule of ``optimizer``, stepped once after each epoch
      (a :class:`~minnet.ReduceLROnPlateau` with the epoch's ``val_loss``, or ``loss`` without
      validation data).
    - ``sample_weight: (m,)``, non-negative: row ``i`` counts ``w_i`` times in the loss, its
      gradient and the metrics, in training and for the held-out rows of ``validation_split``
      (a weight of 2 is the row given twice; a batch whose weights are all zero is skipped, as
      is one whose targets are all the loss's ``ignore_index``).

    Each epoch runs over batches of ``batch_size`` rows (the last one may be smaller). With a
    ``BatchNorm1d``, which needs 2 rows for a batch variance, a last batch of 1 row is merged into
    the one before it (decided before any update).

    Everything is checked before training: a refusal leaves the model unchanged.
    """
    X, Y = _check_data(model, X, Y, "fit")
    epochs = _checks.positive_int("epochs", epochs)
    row_weights = val_row_weights = None
    if sample_weight is not None:
        row_weights = _check_weights_of(model, sample_weight, len(X), X.dtype, "fit")
    validation_split = _checks.real_number("validation_split", validation_split, 0.0, 1.0)
    validation = None
    if validation_split:
        if validation_data is not None:
            raise ValueError(
                "give validation_data or validation_split, not both (got validation_split="
                f"{validation_split})"
            )
        split = _split_at(len(X), validation_split)
        validation = (X[split:], Y[split:])
        X, Y = X[:split], Y[:split]
        if row_weights is not None:
            row_weights, val_row_weights = row_weights[:split], row_weights[split:]
            for part, name in ((row_weights, "training"), (val_row_weights, "validation")):
                if not np.any(part > 0):
                    raise ValueError(f"fit: sample_weight is zero on every {name} row")
    bounds = _training_batches(model, len(X), batch_size)
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
    callbacks = _check_callbacks(callbacks)
    scheduler = _check_scheduler(scheduler, optimizer)
    optimizer = _check_optimizer(model, optimizer)
    _check_weights(model)
    if validation is not None:
        _check_runs(model, validation, "validation_data" if validation_split == 0 else
                    "the validation rows (validation_split)")  # fmt: skip
    covers_model = len(optimizer.params) == len(model.parameters())
    zero_grad = optimizer.zero_grad if covers_model else model.zero_grad

    m, n_batches = len(X), len(bounds)
    task = task_of(model)
    regression = task == "regression"
    logits = _takes_logits(model)
    labels = None if regression else _labels(task, Y)
    ignore = None if regression else _ignored(model, Y)
    if ignore is not None and not np.any(labels == ignore):
        ignore = None  # no row to leave out: no batch needs looking at for it
    sst = _sst(Y, row_weights) if regression else 0.0
    history = History(metric="r2" if regression else "accuracy")
    _check_monitors(callbacks, history.metric, validation is not None)

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

    batch_hooks = [
        (i, callback)
        for i, callback in enumerate(callbacks)
        if callable(getattr(callback, "on_train_batch_begin", None))
        and getattr(type(callback), "on_train_batch_begin", None)
        is not Callback.on_train_batch_begin  # the base class's does nothing
    ]
    model.train()
    model.stop_training = False
    logs: dict[str, float] = {}
    for i, callback in enumerate(callbacks):
        _call(callback, "set_model", i, model)
        _call(callback, "on_train_begin", i, logs)
    start_time = time.perf_counter()
    bar = tqdm(total=epochs, unit="epoch", disable=None if progress else True, leave=True)
    # Overflow or NaN anywhere in a step raises at once, so the error can say where.
    with bar, np.errstate(over="raise", invalid="raise", divide="raise"):
        for epoch in range(1, epochs + 1):
            history.lr.append(optimizer.lr)
            w_epoch = row_weights
            if shuffle:
                order = rng.permutation(m)
                X_epoch, Y_epoch = X[order], Y[order]
                labels_epoch = None if regression else labels[order]
                w_epoch = None if row_weights is None else row_weights[order]
            else:
                X_epoch, Y_epoch, labels_epoch = X, Y, labels
            epoch_loss = EpochLoss()
            right, seen, sse = 0.0, 0.0, 0.0
            trained = []  # the (start, stop) of the batches trained on (not skipped)
            for batch, (start, stop) in enumerate(bounds, 1):
                w_batch = None if w_epoch is None else w_epoch[start:stop]
                if w_batch is not None and not np.any(w_batch > 0):
                    continue  # rows of weight 0 are as good as absent
                if ignore is not None and not np.any(
                    (labels_epoch[start:stop] != ignore)
                    & (True if w_batch is None else w_batch > 0)
                ):
                    continue  # and so are rows whose target the loss ignores (ignore_index)
                for i, callback in batch_hooks:
                    batch_logs = {"batch": batch - 1, "size": stop - start}
                    if w_batch is not None:
                        batch_logs["weight"] = float(np.sum(w_batch))
                    _call(callback, "on_train_batch_begin", i, batch - 1, batch_logs)
                penalty = model.penalty() if model.l2 else 0.0  # at the weights of the step
                try:
                    loss = train_on_batch(
                        model, optimizer, X_epoch[start:stop], Y_epoch[start:stop], w_batch,
                        zero_grad=zero_grad,
                    )  # fmt: skip
                except StepFailed as failure:
                    updated = updated or failure.phase == "the optimizer step"
                    raise diverged(epoch, batch, failure.what) from failure.__cause__
                updated = True  # from here on, the learning rate plays a part
                epoch_loss.add(model.loss, loss - penalty, penalty, stop - start, w_batch)
                trained.append((start, stop))
                outputs = model.last_outputs
                if regression:
                    sse += _row_weighted((outputs - Y_epoch[start:stop]) ** 2, w_batch)
                else:
                    batch_labels = labels_epoch[start:stop]
                    r, n = _rights(task, outputs, batch_labels, logits, w_batch, ignore)
                    right, seen = right + r, seen + n
            history.loss.append(epoch_loss.value())
            # The metrics are of the rows trained on: all of them, but the batches skipped.
            if regression:
                sst_seen = sst
                if len(trained) < n_batches:
                    Y_seen = np.concatenate([Y_epoch[start:stop] for start, stop in trained])
                    w_seen = None
                    if w_epoch is not None:
                        w_seen = np.concatenate([w_epoch[start:stop] for start, stop in trained])
                    sst_seen = _sst(Y_seen, w_seen)
                history.r2.append(r2_score(sse, sst_seen))
            else:
                history.accuracy.append(right / seen if seen else float("nan"))
            if validation is not None:
                try:
                    val = _evaluate(model, *validation, val_row_weights)
                except FloatingPointError as err:
                    raise diverged(epoch, None, f"numpy reports {err} in the forward pass") from err
                if not math.isfinite(val.loss):
                    raise diverged(epoch, None, f"the validation loss is {val.loss}")
                history.val_loss.append(val.loss)
                getattr(history, f"val_{history.metric}").append(val[1])
            if not bar.disable:
                bar.set_postfix(_postfix(history), refresh=False)
            bar.update()
            logs = _logs(history)
            for i, callback in enumerate(callbacks):
                _call(callback, "on_epoch_end", i, epoch - 1, dict(logs))
            if scheduler is not None:
                _step(scheduler, logs)
            if model.stop_training:
                break
    history.seconds = time.perf_counter() - start_time
    for i, callback in enumerate(callbacks):
        _call(callback, "on_train_end", i, dict(logs))
    return history


def _logs(history: History) -> dict[str, float]:
    """The last epoch's metrics, by name: what callbacks get."""
    names = ("loss", history.metric, "val_loss", f"val_{history.metric}", "lr")
    return {name: getattr(history, name)[-1] for name in names if getattr(history, name)}


def _step(scheduler: LRScheduler, logs: dict[str, float]) -> None:
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(logs.get("val_loss", logs["loss"]))
    else:
        scheduler.step()


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
    "HOOKS",
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
