"""Optimizers: update parameters from their gradients, with PyTorch's update rules.

>>> opt = Adam(model.parameters(), lr=1e-3)  # doctest: +SKIP
>>> for X, Y in batches:  # doctest: +SKIP
...     opt.zero_grad()
...     model.cost(X, Y)
...     model.backward()
...     opt.step()

Every optimizer updates ``p.value`` *in place*, so the arrays keep their identity and dtype
(float32 parameters stay float32), and keeps its state (momentum, moments) in the dtype of the
parameter. When the parameters live in one flat vector (a :class:`~minnet.Sequential` keeps
them so, see :class:`~minnet.parameter.FlatStorage`), a step updates that vector with a few
numpy calls instead of a few per parameter. Updates go a block of ``BLOCK`` entries at a time
through one small scratch array, so a step on a model's flat storage allocates nothing and
needs little extra memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from attrs import define, field, setters
from attrs.validators import and_, ge, gt, lt

from .parameter import FlatStorage, Parameter

BLOCK = 1 << 16  # entries updated at once: 512 KiB of scratch in float64


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
    try:
        return tuple(float(beta) for beta in betas)
    except TypeError:
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}") from None


def _check_betas(optimizer: Optimizer, attribute: object, betas: tuple[float, float]) -> None:
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")


@define(eq=False)
class Optimizer:
    """Base class: holds the parameters; subclasses implement :meth:`step`.

    Parameters
    ----------
    params
        The parameters to update, any iterable of :class:`~minnet.Parameter` (for example
        ``model.parameters()``); it is copied into a list, which cannot be reassigned later.
    lr
        The learning rate, ``> 0``.
    """

    params: list[Parameter] = field(
        converter=_as_parameter_list, validator=_check_params, on_setattr=setters.frozen
    )
    lr: float = field(converter=float, validator=gt(0.0))
    _storage: FlatStorage | None = field(init=False, repr=False)
    _flat_blocks: list[tuple[np.ndarray, ...]] = field(init=False, factory=list, repr=False)
    _param_states: list[tuple[np.ndarray, ...]] = field(init=False, repr=False)
    _work: np.ndarray = field(init=False, repr=False)

    @property
    def n_states(self) -> int:
        """How many arrays of the parameters' size the optimizer keeps (velocity, moments)."""
        return 0

    def __attrs_post_init__(self) -> None:
        self._storage = FlatStorage.find(self.params)
        if self._storage is not None:
            flat_states = [np.zeros_like(self._storage.values) for _ in range(self.n_states)]
            flat_group = (self._storage.values, self._storage.grads, *flat_states)
            per_state = [self._storage.split(state) for state in flat_states]
            self._param_states = list(zip(*per_state, strict=True)) or [()] * len(self.params)
        else:
            self._param_states = [
                tuple(np.zeros_like(p.value) for _ in range(self.n_states)) for p in self.params
            ]
        largest = max(p.size for p in self.params)
        size = self._storage.values.size if self._storage is not None else largest
        self._work = np.empty(min(size, BLOCK), dtype=self.params[0].value.dtype)
        if self._storage is not None:  # the same views at every step
            self._flat_blocks = list(self._cut([flat_group]))

    def _blocks(self) -> list[tuple[np.ndarray, ...]]:
        """``(value, grad, *states, work)`` blocks of flat views covering every parameter.

        One flat group when the parameters are in intact flat storage, else one per parameter;
        each cut into blocks of at most ``BLOCK`` entries.
        """
        if self._storage is not None and self._storage.intact():
            self._storage.settle()
            return self._flat_blocks
        groups = [
            (p.value, p.grad, *states)
            for p, states in zip(self.params, self._param_states, strict=True)
        ]
        return list(self._cut(groups))

    def _cut(self, groups) -> Iterator[tuple[np.ndarray, ...]]:
        for group in groups:
            flat = [a.reshape(-1) for a in group]  # views: parameters are contiguous
            n = flat[0].size
            for start in range(0, n, BLOCK):
                stop = min(start + BLOCK, n)
                work = self._work[: stop - start]
                if work.dtype != flat[0].dtype:
                    work = np.empty(stop - start, dtype=flat[0].dtype)
                yield (*(a[start:stop] for a in flat), work)

    def step(self) -> None:
        """Update every parameter from its ``.grad``, in place."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (lazily: see :class:`~minnet.Parameter`)."""
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
        converter=float,
        validator=and_(ge(0.0), lt(1.0)),
        on_setattr=setters.frozen,  # the velocity buffer exists only if momentum is set
    )
    _started: bool = field(init=False, default=False, repr=False)

    @property
    def n_states(self) -> int:
        return 1 if self.momentum != 0 else 0  # the velocity, only with momentum

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        for value, grad, *velocity, work in self._blocks():
            direction = grad
            if velocity:
                (velocity,) = velocity
                if self._started:
                    velocity *= self.momentum
                    velocity += grad
                else:
                    velocity[...] = grad
                direction = velocity
            np.multiply(direction, self.lr, out=work)
            value -= work
        self._started = True


@define(eq=False)
class Adam(Optimizer):
    """Adam (as ``torch.optim.Adam``), with bias-corrected moment estimates.

    With gradient ``g`` of each parameter ``p``, first and second moments ``m`` and ``v``
    (both starting at zero) and step count ``t = 1, 2, ...``::

        m = m + (1 - beta1) * (g - m)        # = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        step_size = lr / (1 - beta1**t)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p = p - step_size * m / denom

    The operations follow PyTorch's formulas, so results agree with it to rounding (in float64,
    relative differences ~1e-15 after 150 steps of a small network).

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

    lr: float = field(default=1e-3, converter=float, validator=gt(0.0))
    betas: tuple[float, float] = field(
        default=(0.9, 0.999), converter=_as_betas, validator=_check_betas
    )
    eps: float = field(default=1e-8, converter=float, validator=gt(0.0))
    t: int = field(init=False, default=0)
    """The number of steps taken so far."""

    @property
    def n_states(self) -> int:
        return 2  # the moments m and v

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        beta1, beta2 = self.betas
        self.t += 1
        step_size = self.lr / (1 - beta1**self.t)
        bias_correction2_sqrt = (1 - beta2**self.t) ** 0.5
        for value, g, m, v, work in self._blocks():
            np.subtract(g, m, out=work)  # m += (1 - beta1) * (g - m)
            work *= 1 - beta1
            m += work
            v *= beta2  # v = beta2 * v + ((1 - beta2) * g) * g
            np.multiply(g, 1 - beta2, out=work)
            work *= g
            v += work
            np.sqrt(v, out=work)  # work = denom
            work /= bias_correction2_sqrt
            work += self.eps
            np.divide(m, work, out=work)  # p -= step_size * (m / denom); torch: (step_size*m)/denom
            work *= step_size
            value -= work


__all__ = ["Adam", "Optimizer", "SGD"]
