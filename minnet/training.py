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

Accuracy is that of the 0/1 predictions against the labels' classes: a prediction is 1 where the
probability is above 0.5 (the logit above 0), a label's class is 1 where it is above 0.5.

The progress bar is tqdm's, one tick per epoch, on stderr, and only when stderr is a terminal (a
log file or CI output stays clean). During :func:`fit`, numpy's overflow, invalid-value and
divide-by-zero warnings are raised as errors, so that a diverging run stops at the batch where
it went wrong, with a :class:`DivergenceError` saying where, instead of running on with NaNs.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Real
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from attrs import define, field
from tqdm import tqdm

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
    """What :func:`evaluate` returns: ``loss, accuracy = model.evaluate(X, Y)``."""

    loss: float
    accuracy: float


@define(eq=False)
class History:
    """The metrics of each epoch of :func:`fit`, one list entry per epoch.

    - ``loss``: mean training loss over the epoch's batches, weighted by batch size;
    - ``accuracy``: fraction of training predictions that were right, over the epoch's batches
      (each batch predicted just before its update step, as Keras reports it);
    - ``val_loss``, ``val_accuracy``: on ``validation_data`` after each epoch (empty without it);
    - ``seconds``: wall-clock time of the whole loop, validation included.
    """

    loss: list[float] = field(factory=list)
    accuracy: list[float] = field(factory=list)
    val_loss: list[float] = field(factory=list)
    val_accuracy: list[float] = field(factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.loss)

    def __str__(self) -> str:
        if not self.loss:
            return "History(no epochs)"
        parts = [f"{self.epochs} epochs in {self.seconds:.3g} s"]
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name} {values[0]:.4g} -> {values[-1]:.4g}")
        return "History(" + ", ".join(parts) + ")"


# -- checking the arguments -------------------------------------------------------------------
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int, got {number}")
    return number


def _check_data(model: Sequential, X: Any, Y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as floats ``(m, in_features)`` and ``Y`` as ``(m, out_features)`` of X's dtype."""
    try:
        X = model.check_inputs(X)
        Y = model.check_targets(Y, len(X), dtype=X.dtype)
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
    size = m if batch_size is None else min(_positive_int("batch_size", batch_size), m)
    return [(start, min(start + size, m)) for start in range(0, m, size)]


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


def _class_cut(fused: bool) -> float:
    """Where the body's output says class 1: a fused Sigmoid's input (the logit) above 0, or
    an output (a probability) above 0.5."""
    return 0.0 if fused else 0.5


def _evaluate(model: Sequential, X: np.ndarray, Y: np.ndarray) -> Evaluation:
    with eval_mode(model):
        out = model.run(X)
        loss = model.loss_value(out, Y)
    correct = np.count_nonzero((out > _class_cut(model.fused)) == (Y > 0.5))
    return Evaluation(loss, correct / Y.size)


# -- the public functions ---------------------------------------------------------------------
def evaluate(model: Sequential, X: Any, Y: Any) -> Evaluation:
    """Loss and accuracy of ``model`` on ``X: (m, in_features)``, labels ``Y: (m,)`` or ``(m, 1)``.

    Runs in evaluation mode, leaving each layer's mode as it was.
    """
    X, Y = _check_data(model, X, Y, "evaluate")
    return _evaluate(model, X, Y)


def predict_proba(model: Sequential, X: Any) -> np.ndarray:
    """The model's output for ``X: (m, in_features)``, in evaluation mode.

    Shape ``(m,)`` for a one-output model (the shape of minnet.datasets' labels), else
    ``(m, out_features)``. These are probabilities when the last layer is a Sigmoid.
    """
    with eval_mode(model):
        out = model.forward(X)
    return out[:, 0] if out.shape[1] == 1 else out


def predict(model: Sequential, X: Any, threshold: float = 0.5) -> np.ndarray:
    """0/1 labels (int): 1 where :func:`predict_proba` is above ``threshold``; same shape."""
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    return (predict_proba(model, X) > threshold).astype(np.int64)


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
    """Train ``model`` on ``X: (m, in_features)``, ``Y: (m,)`` or ``(m, 1)``; see Sequential.fit."""
    X, Y = _check_data(model, X, Y, "fit")
    epochs = _positive_int("epochs", epochs)
    bounds = _batch_bounds(len(X), batch_size)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            got = type(validation_data).__name__
            if isinstance(validation_data, tuple | list):
                got += f" of length {len(validation_data)}"
            raise ValueError(f"validation_data must be a pair (X_val, Y_val), got a {got}")
        validation = _check_data(model, *validation_data, "validation_data")
    optimizer = _check_optimizer(model, optimizer)
    covers_model = len(optimizer.params) == len(model.parameters())
    zero_grad = optimizer.zero_grad if covers_model else model.zero_grad
    rng = np.random.default_rng(seed)

    m, n_batches = len(X), len(bounds)
    cut = _class_cut(model.fused)
    labels = Y > 0.5
    predicted = np.empty(Y.shape, dtype=bool)
    history = History()

    def diverged(epoch: int, batch: int | None, what: str) -> DivergenceError:
        history.seconds = time.perf_counter() - start_time
        where = f"epoch {epoch} of {epochs}, " + (
            f"batch {batch} of {n_batches}" if batch else "evaluating validation_data"
        )
        return DivergenceError(
            f"training diverged at {where}: {what}. The learning rate "
            f"({type(optimizer).__name__} lr={optimizer.lr:g}) is probably too large for this "
            "model and data: try a smaller one (or look for a layer whose arithmetic overflows).",
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
                X_epoch, Y_epoch, labels_epoch = X[order], Y[order], labels[order]
            else:
                X_epoch, Y_epoch, labels_epoch = X, Y, labels
            total = 0.0
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
                    optimizer.step()
                except FloatingPointError as err:
                    raise diverged(epoch, batch, f"numpy reports {err} in {phase}") from err
                total += loss * (stop - start)
                np.greater(model.last_outputs, cut, out=predicted[start:stop])
            history.loss.append(total / m)
            history.accuracy.append(np.count_nonzero(predicted == labels_epoch) / predicted.size)
            if validation is not None:
                try:
                    val = _evaluate(model, *validation)
                except FloatingPointError as err:
                    raise diverged(epoch, None, f"numpy reports {err} in the forward pass") from err
                if not math.isfinite(val.loss):
                    raise diverged(epoch, None, f"the validation loss is {val.loss}")
                history.val_loss.append(val.loss)
                history.val_accuracy.append(val.accuracy)
            if not bar.disable:
                bar.set_postfix(_postfix(history), refresh=False)
            bar.update()
    history.seconds = time.perf_counter() - start_time
    return history


def _postfix(history: History) -> dict[str, str]:
    shown = {"loss": f"{history.loss[-1]:.4f}", "acc": f"{history.accuracy[-1]:.3f}"}
    if history.val_loss:
        shown["val_loss"] = f"{history.val_loss[-1]:.4f}"
        shown["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
    return shown


__all__ = [
    "DEFAULT_LR",
    "DivergenceError",
    "Evaluation",
    "History",
    "eval_mode",
    "evaluate",
    "fit",
    "predict",
    "predict_proba",
]
