"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

import numpy as np
from attrs import define, field, setters

from .._checks import flag
from .._fast import fused
from .optimizer import Optimizer, hyperparameter


@define(eq=False)
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    With gradient ``g`` of each parameter ``p`` and its velocity ``b``::

        g = g + weight_decay * p                     # if weight_decay: an L2 penalty's gradient
        b = g                                        # on the first step
        b = momentum * b + (1 - dampening) * g       # on later steps
        g = g + momentum * b   if nesterov,   else   g = b          # (with momentum only)
        p = p - lr * g

    With the defaults this is plain ``p = p - lr * g``.

    Parameters
    ----------
    params
        Any iterable of :class:`~minnet.Parameter`.
    lr
        The learning rate, ``>= 0``; default ``1e-3`` (PyTorch's).
    momentum
        In ``[0, 1)``; ``0`` (the default) keeps no velocity. Fixed when made.
    dampening
        In ``[0, 1]``: the fraction of each new gradient left out of the velocity.
    weight_decay
        ``>= 0``: adds ``weight_decay * p`` to each gradient (the gradient of
        ``weight_decay / 2 * ||p||^2``), on every parameter given.
    nesterov
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``, as PyTorch).
    """

    lr: float = hyperparameter("lr", 1e-3)  # torch's default since 2.6
    # the velocity buffer exists only if momentum is set
    momentum: float = hyperparameter("momentum", 0.0, 0.0, 1.0, frozen=True)
    dampening: float = hyperparameter("dampening", 0.0, 0.0, 1.0, high_open=False)
    weight_decay: float = hyperparameter("weight_decay", 0.0)
    nesterov: bool = field(
        default=False, converter=lambda value: flag("nesterov", value), on_setattr=setters.frozen
    )

    def __attrs_post_init__(self) -> None:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={self.momentum}, dampening={self.dampening}"
            )
        super().__attrs_post_init__()

    def new_state(self, value: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.zeros_like(value),) if self.momentum != 0 else ()  # the velocity b

    def update(self, p: np.ndarray, g: np.ndarray, *velocity: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if velocity:
            (b,) = velocity
            if self.steps == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g if self.dampening else g  # (1 - 0) * g is g
            g = g + self.momentum * b if self.nesterov else b
        p -= self.lr * g

    threaded = True  # (update_block writes only its block and its thread's scratch)

    def update_block(self, block: tuple[np.ndarray, ...], scratch: list[np.ndarray]) -> None:
        fused.sgd_update(  # update's steps, in scratch blocks instead of temporaries
            block, scratch, self.lr, self.momentum, self.dampening, self.weight_decay,
            self.nesterov, self.steps == 1,
        )  # fmt: skip


__all__ = ["SGD"]
