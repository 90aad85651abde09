"""Adagrad: each step divided by the root of the sum of all past squared gradients."""

from __future__ import annotations

import numpy as np
from attrs import define

from .optimizer import Optimizer, hyperparameter


@define(eq=False)
class Adagrad(Optimizer):
    """Adagrad (as ``torch.optim.Adagrad``).

    With gradient ``g`` of each parameter ``p``, the sum of its squares ``s`` (starting at
    ``initial_accumulator_value``) and step count ``t = 1, 2, ...``::

        g = g + weight_decay * p                  # if weight_decay: an L2 penalty's gradient
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - lr_t * g / (sqrt(s) + eps)

    Parameters
    ----------
    params
        Any iterable of :class:`~minnet.Parameter`.
    lr
        The learning rate, ``>= 0``; default ``1e-2``.
    lr_decay
        ``>= 0``: the learning rate of step ``t`` is ``lr / (1 + (t - 1) * lr_decay)``.
    weight_decay
        ``>= 0``: adds ``weight_decay * p`` to the gradient (an L2 penalty).
    initial_accumulator_value
        ``>= 0``: where the sums of squares start. Fixed when made.
    eps
        Added to the root, ``> 0``; default ``1e-10``.
    """

    lr: float = hyperparameter("lr", 1e-2)
    lr_decay: float = hyperparameter("lr_decay", 0.0)
    weight_decay: float = hyperparameter("weight_decay", 0.0)
    initial_accumulator_value: float = hyperparameter("initial_accumulator_value", 0.0, frozen=True)
    eps: float = hyperparameter("eps", 1e-10, low_open=True)

    threaded = True  # (update writes only its block's arrays; its temporaries are its own)

    def new_state(self, value: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.full_like(value, self.initial_accumulator_value),)  # the sum of squares s

    def update(self, p: np.ndarray, g: np.ndarray, s: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        lr_t = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        s += g * g
        std = np.sqrt(s)
        std += self.eps
        p -= lr_t * (g / std)


__all__ = ["Adagrad"]
