"""Callbacks for :func:`~minnet.training.fit`: code that runs at the end of each epoch.

A callback is any object with some of these methods (each optional, Keras' names)::

    set_model(model)                # before training: the model being trained
    on_train_begin(logs)            # logs: {}
    on_train_batch_begin(batch, logs)   # before each step; logs: {"batch": i, "size": rows}
    on_epoch_end(epoch, logs)       # epoch: 0, 1, ...; logs: this epoch's metrics
    on_train_end(logs)              # logs: the last epoch's metrics

``logs`` holds the epoch's ``loss``, ``accuracy`` or ``r2``, ``val_loss`` and ``val_accuracy``
or ``val_r2`` (with validation data) and ``lr`` (the learning rate used in the epoch), as
floats. Setting ``model.stop_training = True`` in ``on_epoch_end`` ends training after that
epoch. :class:`Callback` is a base class with all of them doing nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._checks import flag, one_of, real_number, whole_number


class Callback:
    """A callback that does nothing: subclass it and override what you need."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float]) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: dict[str, int]) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, logs: dict[str, float]) -> None:
        pass


def snapshot(model: Any) -> list[np.ndarray]:
    """Copies of every parameter's value and every buffer (a batch norm's running
    statistics) of ``model``, in the order :func:`restore` takes them."""
    arrays = [p.value for p in model.parameters()]
    arrays += [array for layer in model.layers for _, array in layer.named_buffers()]
    return [np.array(array, copy=True) for array in arrays]


def restore(model: Any, saved: list[np.ndarray]) -> None:
    """Write a :func:`snapshot` back into ``model``'s parameters and buffers, in place."""
    arrays = [p.value for p in model.parameters()]
    arrays += [array for layer in model.layers for _, array in layer.named_buffers()]
    for array, value in zip(arrays, saved, strict=True):
        array[...] = value


class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving (as Keras' EarlyStopping).

    An epoch *improves* when the metric beats the best so far by more than ``min_delta``
    (below ``best - min_delta`` for a loss; above ``best + min_delta`` for ``"accuracy"`` or
    ``"r2"`` metrics, which should go up). After ``patience`` epochs in a row without
    improvement, training stops. With ``restore_best_weights=True``, the weights and buffers
    of the best epoch are put back when training ends (whether it stopped early or ran all its
    epochs).

    Parameters
    ----------
    monitor
        The name of the metric in the epoch's logs: ``"val_loss"`` (the default; it needs
        validation data), ``"loss"``, ``"val_accuracy"``, ``"r2"``...
    patience
        Epochs without improvement before stopping, an int ``>= 0``; default 5.
    min_delta
        The smallest change that counts as an improvement, ``>= 0``.
    restore_best_weights
        Put back the best epoch's weights at the end.
    mode
        ``"auto"`` (the default: ``"max"`` for accuracy and r2 metrics, else ``"min"``),
        ``"min"`` or ``"max"``.

    Attributes
    ----------
    best, best_epoch, stopped_epoch (``None`` when training ran all its epochs), wait.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        mode: str = "auto",
    ) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric's name, got {monitor!r}")
        self.monitor = monitor
        self.patience = whole_number("patience", patience, 0)
        self.min_delta = real_number("min_delta", min_delta, 0.0)
        self.restore_best_weights = flag("restore_best_weights", restore_best_weights)
        self.mode = one_of("mode", mode, ("auto", "min", "max"))
        if self.mode == "auto":
            upward = monitor.endswith(("accuracy", "acc", "r2"))
            self.mode = "max" if upward else "min"
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0

    def improves(self, value: float) -> bool:
        """Does ``value`` beat :attr:`best` by more than ``min_delta``?"""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self.reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}): the epoch's logs have no such "
                f"metric (they have {sorted(logs)})"
                + ("; val_ metrics need validation data" if self.monitor.startswith("val_") else "")
            )
        value = logs[self.monitor]
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = snapshot(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            restore(self.model, self.best_weights)

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
            f"min_delta={self.min_delta}, restore_best_weights={self.restore_best_weights}, "
            f"mode={self.mode!r})"
        )


__all__ = ["Callback", "EarlyStopping", "restore", "snapshot"]
