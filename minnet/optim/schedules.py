"""Learning-rate schedules: change an optimizer's ``lr`` once per epoch, as PyTorch's.

>>> optimizer = SGD(model.parameters(), lr=0.1)  # doctest: +SKIP
>>> schedule = StepLR(optimizer, step_size=30, gamma=0.1)  # doctest: +SKIP
>>> for epoch in range(100):  # doctest: +SKIP
...     train_one_epoch(model, optimizer)
...     schedule.step()

(or ``model.fit(X, Y, optimizer=optimizer, scheduler=schedule)``, which steps it once per
epoch). Each schedule computes the new rate from the current one (``optimizer.lr``), with
PyTorch's formulas in PyTorch's order, so the sequence of rates is the same as
``torch.optim.lr_scheduler``'s to the last bit. :meth:`LRScheduler.get_last_lr` returns
``[lr]``, a list as PyTorch's (which has one entry per parameter group; a minnet optimizer has
one group).
"""

from __future__ import annotations

import math
from typing import Any

from .._checks import one_of, positive_int, real_number, whole_number
from .optimizer import Optimizer


class LRScheduler:
    """The base class: keeps the optimizer, its initial rate and the epoch count.

    Subclasses implement :meth:`get_lr`, the rate of epoch :attr:`last_epoch` from the current
    one. A schedule made for an optimizer leaves its rate as it is (epoch 0); each
    :meth:`step` moves one epoch on and sets ``optimizer.lr``.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__} needs a minnet Optimizer (such as "
                f"minnet.SGD(model.parameters(), lr=0.1)), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr  # PyTorch's base_lrs[0], its "initial_lr"
        self.last_epoch = 0
        self.last_lr = optimizer.lr

    def get_lr(self) -> float:
        """The learning rate of epoch :attr:`last_epoch`, from the current ``optimizer.lr``."""
        raise NotImplementedError

    def step(self) -> None:
        """Move one epoch on and set the optimizer's learning rate (call it after the epoch's
        optimizer steps)."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()
        self.last_lr = self.optimizer.lr

    def get_last_lr(self) -> list[float]:
        """``[lr]``: the learning rate the last :meth:`step` set (the optimizer's at first)."""
        return [self.last_lr]

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in self.settings().items())
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"

    def settings(self) -> dict[str, Any]:
        """The arguments the schedule was made with, but the optimizer."""
        return {}


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs::

        lr_epoch = base_lr * gamma ** (epoch // step_size)

    Parameters
    ----------
    optimizer
        A minnet :class:`~minnet.optim.Optimizer`.
    step_size
        Epochs between two decays, a positive int.
    gamma
        The factor, ``>= 0``; default ``0.1``.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = positive_int("step_size", step_size)
        self.gamma = real_number("gamma", gamma, 0.0)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        if self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma

    def settings(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch: ``lr_epoch = base_lr * gamma**epoch``.

    Parameters
    ----------
    optimizer
        A minnet :class:`~minnet.optim.Optimizer`.
    gamma
        The factor, ``>= 0``.
    """

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = real_number("gamma", gamma, 0.0)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        return self.optimizer.lr * self.gamma

    def settings(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the initial rate down to ``eta_min`` over ``T_max`` epochs::

        lr_epoch = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    reaching ``eta_min`` (0 by default: the optimizer then stands still) at epoch ``T_max``, and
    rising back over the next ``T_max`` epochs (a cosine, without restarts). As PyTorch, each
    epoch's rate is computed from the previous one (so a rate changed by hand is followed).

    Parameters
    ----------
    optimizer
        A minnet :class:`~minnet.optim.Optimizer`.
    T_max
        Epochs of the half period, a positive int.
    eta_min
        The lowest rate, ``>= 0``.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = positive_int("T_max", T_max)
        self.eta_min = real_number("eta_min", eta_min, 0.0)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        epoch, T_max, lr = self.last_epoch, self.T_max, self.optimizer.lr
        if (epoch - 1 - T_max) % (2 * T_max) == 0:  # leaving the bottom (the ratio is 0/0)
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        return (1 + math.cos(math.pi * epoch / T_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / T_max)
        ) * (lr - self.eta_min) + self.eta_min

    def settings(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when a metric stops improving (as PyTorch's).

    ``step(metric)`` once per epoch, with the metric (a validation loss, say). An epoch is
    *better* when the metric beats the best so far by more than ``threshold``: in ``"min"``
    mode, below ``best * (1 - threshold)`` (``threshold_mode="rel"``) or ``best - threshold``
    (``"abs"``); in ``"max"`` mode, above ``best * (1 + threshold)`` or ``best + threshold``.
    After more than ``patience`` epochs in a row that are not better, the rate becomes
    ``max(lr * factor, min_lr)`` (unless that changes it by ``eps`` or less), and the next
    ``cooldown`` epochs are not counted.

    Parameters
    ----------
    optimizer
        A minnet :class:`~minnet.optim.Optimizer`.
    mode
        ``"min"`` (the metric should go down, the default) or ``"max"``.
    factor
        In ``[0, 1)``; default ``0.1``.
    patience
        Epochs without improvement tolerated, an int ``>= 0``; default 10.
    threshold
        ``>= 0``; default ``1e-4``.
    threshold_mode
        ``"rel"`` (the default) or ``"abs"``.
    cooldown
        Epochs to wait after a reduction before counting again, an int ``>= 0``.
    min_lr
        The lowest rate, ``>= 0``.
    eps
        The smallest change of the rate worth making, ``>= 0``; default ``1e-8``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.mode = one_of("mode", mode, ("min", "max"))
        self.factor = real_number("factor", factor, 0.0, 1.0)
        self.patience = whole_number("patience", patience, 0)
        self.threshold = real_number("threshold", threshold, 0.0)
        self.threshold_mode = one_of("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = whole_number("cooldown", cooldown, 0)
        self.min_lr = real_number("min_lr", min_lr, 0.0)
        self.eps = real_number("eps", eps, 0.0)
        super().__init__(optimizer)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def is_better(self, metric: float) -> bool:
        """Does ``metric`` improve on :attr:`best` by more than the threshold?"""
        if self.mode == "min" and self.threshold_mode == "rel":
            return metric < self.best * (1.0 - self.threshold)
        if self.mode == "min":
            return metric < self.best - self.threshold
        if self.threshold_mode == "rel":
            return metric > self.best * (self.threshold + 1.0)
        return metric > self.best + self.threshold

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Count one epoch with this value of the metric, and reduce the rate if it is time."""
        current = real_number("metric", metric, finite=False)
        self.last_epoch += 1
        if self.is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = self.optimizer.lr

    def settings(self) -> dict[str, Any]:
        names = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown")
        return {name: getattr(self, name) for name in (*names, "min_lr", "eps")}


__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "ReduceLROnPlateau", "StepLR"]
