"""Optimizers: update parameters from their gradients, with PyTorch's update rules.

>>> opt = Adam(model.parameters(), lr=1e-3)  # doctest: +SKIP
>>> for X, Y in batches:  # doctest: +SKIP
...     opt.zero_grad()
...     model.cost(X, Y)
...     model.backward()
...     opt.step()

Each optimizer writes its rule once, as :meth:`~Optimizer.update` of one parameter's arrays,
the formula of its docstring line by line. Every update is in place, so the arrays keep their
identity and dtype (float32 parameters stay float32), and the state (momentum, moments) is kept
in the parameter's dtype.

:meth:`~Optimizer.step` applies ``update`` to each parameter in turn. When the parameters live
in one flat vector (a :class:`~minnet.Sequential` keeps them so, see :mod:`minnet._fast`), it
applies the same ``update`` to blocks of that vector instead: a few numpy calls for the whole
model. Both paths give the same numbers: every update is elementwise.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from attrs import define, field, setters

from . import _fast
from ._checks import converter, in_range, real_number
from ._fast import FlatStorage
from .parameter import Parameter


def _as_parameter_list(params: Iterable[Parameter]) -> list[Parameter]:
    if isinstance(params, Parameter) or not isinstance(params, Iterable):
        raise TypeError(
            "params must be an iterable of minnet Parameters (e.g. model.parameters()), "
            f"got {type(params).__name__}"
        )
    return list(params)


def _check_params(optimizer: Optimizer, attribute: object, params: list[Parameter]) -> None:
    if not params:
        raise ValueError(f"{type(optimizer).__name__} got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be a minnet Parameter, got {type(p).__name__}")
        if not np.issubdtype(p.value.dtype, np.floating):
            raise TypeError(
                f"params[{i}] must be a Parameter of floating-point values, got {p.value.dtype}"
            )
    if len({id(p) for p in params}) != len(params):
        raise ValueError("params contains the same Parameter more than once")


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
class Optimizer:
    """Base class: holds the parameters and their state; subclasses implement :meth:`update`.

    Parameters
    ----------
    params
        The parameters to update, any iterable of :class:`~minnet.Parameter` (for example
        ``model.parameters()``); it is copied into a list, which cannot be reassigned later.
    lr
        The learning rate, ``> 0``.
    flat
        Update the parameters through their flat storage when they have one (``True``, the
        default; see :mod:`minnet._fast`), or always one parameter at a time (``False``). The
        numbers are the same; only the speed differs.
    """

    params: list[Parameter] = field(
        converter=_as_parameter_list, validator=_check_params, on_setattr=setters.frozen
    )
    lr: float = field(
        converter=converter(real_number, "lr"), validator=in_range(0.0, low_open=True)
    )
    flat: bool = field(default=True, kw_only=True, on_setattr=setters.frozen)
    #: One tuple of state arrays per parameter (``n_states`` arrays of its shape each).
    state: list[tuple[np.ndarray, ...]] = field(init=False, repr=False)
    _storage: FlatStorage | None = field(init=False, default=None, repr=False)
    _flat_blocks: list[tuple[np.ndarray, ...]] = field(init=False, factory=list, repr=False)

    @property
    def n_states(self) -> int:
        """How many arrays of the parameters' size the optimizer keeps (velocity, moments)."""
        return 0

    def __attrs_post_init__(self) -> None:
        storage = FlatStorage.find(self.params) if self.flat and _fast.fast_path_enabled() else None
        if storage is None:
            self.state = [
                tuple(np.zeros_like(p.value) for _ in range(self.n_states)) for p in self.params
            ]
            return
        # The state in flat vectors too, each parameter's state a view into them: the flat
        # path and the per-parameter path (if the storage is broken later) share it.
        flat_states = [np.zeros_like(storage.values) for _ in range(self.n_states)]
        per_state = [storage.split(state) for state in flat_states]
        self.state = list(zip(*per_state, strict=True)) or [()] * len(self.params)
        self._storage = storage
        self._flat_blocks = storage.blocks(flat_states)

    def step(self) -> None:
        """Update every parameter from its ``.grad``, in place (see :meth:`update`)."""
        if self._storage is not None and self._storage.intact():
            groups = self._flat_blocks
        else:
            groups = [
                (p.value, p.grad, *state) for p, state in zip(self.params, self.state, strict=True)
            ]
        for value, grad, *state in groups:
            self.update(value, grad, *state)

    def update(self, value: np.ndarray, grad: np.ndarray, *state: np.ndarray) -> None:
        """Update one parameter's ``value`` in place from its ``grad`` and its ``state`` arrays.

        All arrays have one shape: a parameter's, or a block of the flat vectors.
        """
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place."""
        for p in self.params:
            p.zero_grad()


@define(eq=False)
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (as ``torch.optim.SGD``).

    With gradient ``g`` and velocity ``b`` of each parameter ``p``::

        b = g                   on the first step
        b = momentum * b + g    on later steps
        p = p - lr * b

    With ``momentum=0`` this is plain ``p = p - lr * g``.

    Parameters
    ----------
    params
        Any iterable of :class:`~minnet.Parameter`.
    lr
        The learning rate, ``> 0``.
    momentum
        In ``[0, 1)``; ``0`` (the default) keeps no velocity.
    """

    momentum: float = field(
        default=0.0,
        converter=converter(real_number, "momentum"),
        validator=in_range(0.0, 1.0),
        on_setattr=setters.frozen,  # the velocity buffer exists only if momentum is set
    )
    steps: int = field(init=False, default=0)
    """The number of steps taken so far."""

    @property
    def n_states(self) -> int:
        return 1 if self.momentum != 0 else 0  # the velocity, only with momentum

    def step(self) -> None:
        super().step()
        self.steps += 1

    def update(self, p: np.ndarray, g: np.ndarray, *velocity: np.ndarray) -> None:
        if not velocity:
            p -= self.lr * g
            return
        (b,) = velocity
        if self.steps == 0:
            b[...] = g
        else:
            b *= self.momentum
            b += g
        p -= self.lr * b


@define(eq=False)
class Adam(Optimizer):
    """Adam (as ``torch.optim.Adam``), with bias-corrected moment estimates.

    With gradient ``g`` of each parameter ``p``, first and second moments ``m`` and ``v``
    (both starting at zero) and step count ``t = 1, 2, ...``::

        m = m + (1 - beta1) * (g - m)        # = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
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
        The learning rate, ``> 0``; default ``1e-3``.
    betas
        ``(beta1, beta2)``, the decay rates of the two moments, each in ``[0, 1)``.
    eps
        Added to the denominator for numerical stability, ``> 0``.
    """

    lr: float = field(
        default=1e-3, converter=converter(real_number, "lr"), validator=in_range(0.0, low_open=True)
    )
    betas: tuple[float, float] = field(
        default=(0.9, 0.999), converter=_as_betas, validator=_check_betas
    )
    eps: float = field(
        default=1e-8,
        converter=converter(real_number, "eps"),
        validator=in_range(0.0, low_open=True),
    )
    t: int = field(init=False, default=0)
    """The number of steps taken so far."""

    @property
    def n_states(self) -> int:
        return 2  # the moments m and v

    def step(self) -> None:
        self.t += 1
        super().step()

    def update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray) -> None:
        beta1, beta2 = self.betas
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = self.lr / (1 - beta1**self.t)
        denom = np.sqrt(v) / (1 - beta2**self.t) ** 0.5 + self.eps
        p -= step_size * (m / denom)


__all__ = ["Adam", "Optimizer", "SGD"]
