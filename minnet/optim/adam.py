"""Adam (with L2 weight decay and AMSGrad) and AdamW (Adam with decoupled weight decay)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import numpy as np
from attrs import define, field, setters

from .._checks import flag, real_number
from .._fast import fused
from .optimizer import Optimizer, hyperparameter, lerp_


def _as_betas(betas: Iterable[float]) -> tuple[float, ...]:
    if isinstance(betas, str | bytes) or not isinstance(betas, Iterable):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    betas = tuple(betas)
    try:
        return tuple(real_number("betas", beta, finite=False) for beta in betas)
    except TypeError:
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}") from None


def _check_betas(optimizer: Optimizer, attribute: object, betas: tuple[float, float]) -> None:
    if len(betas) != 2 or not all(np.isfinite(beta) and 0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")


@define(eq=False)
class Adam(Optimizer):
    """Adam (as ``torch.optim.Adam``), with bias-corrected moment estimates.

    With gradient ``g`` of each parameter ``p``, first and second moments ``m`` and ``v``
    (both starting at zero) and step count ``t = 1, 2, ...``::

        g = g + weight_decay * p              # if weight_decay: an L2 penalty's gradient
        m = m + (1 - beta1) * (g - m)         # = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                 # amsgrad only; then v_max replaces v below
        step_size = lr / (1 - beta1**t)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p = p - step_size * (m / denom)

    The operations follow PyTorch's formulas, in its order, so results agree with it to rounding
    (in float64, relative differences ~1e-15 after 150 steps of a small network).

    Parameters
    ----------
    params
        Any iterable of :class:`~minnet.Parameter`.
    lr
        The learning rate, ``>= 0``; default ``1e-3``.
    betas
        ``(beta1, beta2)``, the decay rates of the two moments, each in ``[0, 1)``.
    eps
        Added to the denominator for numerical stability, ``> 0``.
    weight_decay
        ``>= 0``: adds ``weight_decay * p`` to the gradient before the moments (an L2 penalty;
        :class:`AdamW` decouples it instead).
    amsgrad
        Divide by the largest second moment so far (AMSGrad); fixed when made.
    """

    lr: float = hyperparameter("lr", 1e-3)
    betas: tuple[float, float] = field(
        default=(0.9, 0.999), converter=_as_betas, validator=_check_betas
    )
    eps: float = hyperparameter("eps", 1e-8, low_open=True)
    weight_decay: float = hyperparameter("weight_decay", 0.0)
    amsgrad: bool = field(
        default=False, converter=lambda value: flag("amsgrad", value), on_setattr=setters.frozen
    )

    @property
    def t(self) -> int:
        """The step count of the formulas (:attr:`steps`)."""
        return self.steps

    threaded = True  # (update_block writes only its block and its thread's scratch)

    def new_state(self, value: np.ndarray) -> tuple[np.ndarray, ...]:
        count = 3 if self.amsgrad else 2  # m, v, and v_max for amsgrad
        return tuple(np.zeros_like(value) for _ in range(count))

    def update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *v_max) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        self.adam_step(p, g, m, v, *v_max)

    rule_methods: ClassVar[tuple[str, ...]] = ("update", "adam_step")
    decoupled: ClassVar[bool] = False  # (AdamW's weight decay: fused.adam_update's twin of it)

    def update_block(self, block: tuple[np.ndarray, ...], scratch: list[np.ndarray]) -> None:
        fused.adam_update(  # update's steps, in scratch blocks instead of temporaries
            block, scratch, self.lr, self.betas, self.eps, self.weight_decay, self.decoupled,
            self.steps,
        )  # fmt: skip

    def adam_step(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *v_max):
        """The moments and the step, from the gradient ``g`` (weight decay already applied)."""
        beta1, beta2 = self.betas
        lerp_(m, g, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * g * g
        if v_max:
            np.maximum(v_max[0], v, out=v_max[0])
            v = v_max[0]
        step_size = self.lr / (1 - beta1**self.steps)
        denom = np.sqrt(v) / (1 - beta2**self.steps) ** 0.5 + self.eps
        p -= step_size * (m / denom)


@define(eq=False)
class AdamW(Adam):
    """Adam with decoupled weight decay (as ``torch.optim.AdamW``): before :class:`Adam`'s
    step (without its L2 term), each parameter shrinks by ``lr * weight_decay``::

        p = p * (1 - lr * weight_decay)
        (then Adam's moments and step from the gradient g itself)

    Unlike an L2 penalty, the decay is not divided by Adam's ``sqrt(v)``: every weight decays
    at the same rate. The arguments are :class:`Adam`'s; ``weight_decay`` defaults to ``1e-2``.
    """

    weight_decay: float = hyperparameter("weight_decay", 1e-2)
    # Redefined after weight_decay so that the positional order stays torch's (attrs puts a
    # redefined field last): params, lr, betas, eps, weight_decay, amsgrad.
    amsgrad: bool = field(
        default=False, converter=lambda value: flag("amsgrad", value), on_setattr=setters.frozen
    )

    decoupled: ClassVar[bool] = True
    update_block = Adam.update_block  # (its own update: the fused twin, decoupled)
    threaded = True  # (that update_block: only its block and its thread's scratch)

    def update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *v_max) -> None:
        if self.weight_decay != 0:
            p *= 1 - self.lr * self.weight_decay
        self.adam_step(p, g, m, v, *v_max)


__all__ = ["Adam", "AdamW"]
