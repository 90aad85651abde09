"""RMSprop: each step divided by a running root mean square of the gradients."""

from __future__ import annotations

import numpy as np
from attrs import define, field, setters

from .._checks import flag
from .._fast import fused
from .optimizer import Optimizer, hyperparameter, lerp_


@define(eq=False)
class RMSprop(Optimizer):
    """RMSprop (as ``torch.optim.RMSprop``; CS231n's ``rmsprop``, with ``alpha`` its
    ``decay_rate``).

    With gradient ``g`` of each parameter ``p`` and the running mean of its squares ``s``
    (starting at zero)::

        g = g + weight_decay * p                  # if weight_decay: an L2 penalty's gradient
        s = alpha * s + (1 - alpha) * g * g
        avg = sqrt(s) + eps
        # centered: also a running mean a of g, and avg = sqrt(s - a * a) + eps
        p = p - lr * g / avg
        # momentum: a velocity b = momentum * b + g / avg, and p = p - lr * b

    Without the options this is CS231n's ``rmsprop``: ``cache = decay_rate * cache + (1 -
    decay_rate) * dw**2``, ``next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    Parameters
    ----------
    params
        Any iterable of :class:`~minnet.Parameter`.
    lr
        The learning rate, ``>= 0``; default ``1e-2``.
    alpha
        The decay rate of the mean of squares, in ``[0, 1]``; default ``0.99``.
    eps
        Added to the root mean square, ``> 0``.
    weight_decay
        ``>= 0``: adds ``weight_decay * p`` to the gradient (an L2 penalty).
    momentum
        In ``[0, 1)``; ``0`` keeps no velocity. Fixed when made.
    centered
        Divide by an estimate of the gradient's standard deviation instead of its root mean
        square (keeps a running mean of the gradient too). Fixed when made.
    """

    lr: float = hyperparameter("lr", 1e-2)
    alpha: float = hyperparameter("alpha", 0.99, 0.0, 1.0, high_open=False)
    eps: float = hyperparameter("eps", 1e-8, low_open=True)
    weight_decay: float = hyperparameter("weight_decay", 0.0)
    momentum: float = hyperparameter("momentum", 0.0, 0.0, 1.0, frozen=True)
    centered: bool = field(
        default=False, converter=lambda value: flag("centered", value), on_setattr=setters.frozen
    )

    threaded = True  # (update_block writes only its block and its thread's scratch)

    def new_state(self, value: np.ndarray) -> tuple[np.ndarray, ...]:
        # s; then the mean gradient a if centered; then the velocity b if momentum
        count = 1 + self.centered + (self.momentum > 0)
        return tuple(np.zeros_like(value) for _ in range(count))

    def update(self, p: np.ndarray, g: np.ndarray, s: np.ndarray, *others: np.ndarray) -> None:
        a = others[0] if self.centered else None
        b = others[-1] if self.momentum > 0 else None
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        if a is not None:
            lerp_(a, g, 1 - self.alpha)
            avg = np.sqrt(s - a * a)
        else:
            avg = np.sqrt(s)
        avg += self.eps
        if b is not None:
            b *= self.momentum
            b += g / avg
            p -= self.lr * b
        else:
            p -= self.lr * (g / avg)

    def update_block(self, block: tuple[np.ndarray, ...], scratch: list[np.ndarray]) -> None:
        fused.rmsprop_update(  # update's steps, in scratch blocks instead of temporaries
            block, scratch, self.lr, self.alpha, self.eps, self.weight_decay, self.momentum,
            self.centered,
        )  # fmt: skip


__all__ = ["RMSprop"]
