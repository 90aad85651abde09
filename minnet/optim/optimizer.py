"""The base class of the optimizers: the parameters, their state, and the two ways to step.

Each optimizer writes its rule once, as :meth:`~Optimizer.update` of one parameter's arrays,
the formula of its docstring line by line. Every update is in place, so the arrays keep their
identity and dtype (float32 parameters stay float32), and the state (momentum, moments) is kept
in the parameter's dtype.

:meth:`~Optimizer.step` counts the step (:attr:`~Optimizer.steps`, from 1 on the first) and
applies ``update`` to each parameter in turn. When the parameters live in one flat vector (a
:class:`~minnet.Sequential` keeps them so, see :mod:`minnet._fast`), it applies the same
``update`` to blocks of that vector instead (through :meth:`~Optimizer.update_block`, where an
optimizer may use a fused twin of its rule from :mod:`minnet._fast.fused`): a few numpy calls for
the whole model. Both paths give the same numbers: every update is elementwise. An optimizer
whose ``update_block`` touches only its block and the scratch it is given (``threaded = True``:
minnet's own; a subclass of yours stays on one thread unless it says so) has its blocks updated on
two threads at once (:mod:`minnet._fast.parallel`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import numpy as np
from attrs import define, field, setters

from .. import _fast
from .._checks import converter, in_range, real_number
from .._fast import FlatStorage, parallel
from ..parameter import Parameter


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


def hyperparameter(name: str, default: float, low: float = 0.0, high: float = np.inf, **bounds):
    """An attrs field for a number in ``[low, high)`` (``bounds``: ``low_open``, ``high_open``,
    and ``frozen=True`` for a setting that decides which state arrays exist)."""
    frozen = bounds.pop("frozen", False)
    return field(
        default=default,
        converter=converter(real_number, name),
        validator=in_range(low, high, **bounds),
        on_setattr=setters.frozen if frozen else setters.pipe(setters.convert, setters.validate),
    )


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start += weight * (end - start)`` in place, as ``torch.lerp`` computes it (from the
    nearer end, so that ``weight`` near 1 loses no precision)."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


@define(eq=False)
class Optimizer:
    """Base class: holds the parameters and their state; subclasses implement :meth:`update`.

    Parameters
    ----------
    params
        The parameters to update, any iterable of :class:`~minnet.Parameter` (for example
        ``model.parameters()``); it is copied into a list, which cannot be reassigned later.
    lr
        The learning rate, ``>= 0`` (as PyTorch's: a schedule may bring it to 0, which leaves
        the parameters where they are). It may be changed between steps (``opt.lr = 0.01``);
        :mod:`minnet.optim.schedules` does so.
    flat
        Update the parameters through their flat storage when they have one (``True``, the
        default; see :mod:`minnet._fast`), or always one parameter at a time (``False``). The
        numbers are the same; only the speed differs.
    """

    params: list[Parameter] = field(
        converter=_as_parameter_list, validator=_check_params, on_setattr=setters.frozen
    )
    lr: float = field(converter=converter(real_number, "lr"), validator=in_range(0.0))
    flat: bool = field(default=True, kw_only=True, on_setattr=setters.frozen)
    #: The number of steps taken: 1 during the first :meth:`step` (as PyTorch's ``"step"``).
    steps: int = field(init=False, default=0)
    #: One tuple of state arrays per parameter (:meth:`new_state` of its shape).
    state: list[tuple[np.ndarray, ...]] = field(init=False, repr=False)
    _storage: FlatStorage | None = field(init=False, default=None, repr=False)
    _flat_blocks: list[tuple[np.ndarray, ...]] = field(init=False, factory=list, repr=False)
    # update_block's scratch blocks: a list for each of the flat path's two threads
    _scratch: tuple[list[np.ndarray], ...] = field(init=False, factory=lambda: ([], []), repr=False)
    #: May the flat path run :meth:`update_block` on two blocks at once, from two threads (it
    #: touches nothing but its block's arrays and the ``scratch`` it is given)?
    threaded: ClassVar[bool] = False
    #: The methods that make up the update rule: a subclass that writes any of them anew (and
    #: no ``update_block`` of its own) has its rule applied to the flat blocks as written, not
    #: its parent's fused twin, which mirrors the parent's rule (see ``__init_subclass__``).
    rule_methods: ClassVar[tuple[str, ...]] = ("update",)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        writes_rule = any(name in own for name in cls.rule_methods)
        if "update_block" not in own and writes_rule:
            cls.update_block = Optimizer.update_block
        if "threaded" not in own and (writes_rule or "update_block" in own):
            # (the parent's promise was about its own rule: a rule or an update_block written
            # anew, which may keep Python state, runs on one thread unless it says so)
            cls.threaded = False

    def __reduce_ex__(self, protocol: int) -> tuple:
        """A copy (``copy.deepcopy``) or a pickle of the optimizer updates its parameters one at
        a time, from their own state arrays: copied or unpickled, the flat vectors' views (the
        parameters' arrays, the blocks, the state) come back as separate arrays, and blocks of
        the old flat vectors would no longer be the copied parameters' (the copy's steps would
        change nothing that it trains). The numbers are the same on both paths."""
        function, arguments, state, *rest = super().__reduce_ex__(protocol)
        state = dict(state, _storage=None, _flat_blocks=[], _scratch=([], []))
        return (function, arguments, state, *rest)

    def new_state(self, value: np.ndarray) -> tuple[np.ndarray, ...]:
        """The state arrays of a parameter (or of the flat vector) ``value``, before any step:
        none here; an optimizer with state (velocity, moments) returns arrays of its shape."""
        return ()

    def __attrs_post_init__(self) -> None:
        self._check_eps()
        storage = FlatStorage.find(self.params) if self.flat and _fast.fast_path_enabled() else None
        if storage is None:
            self.state = [self.new_state(p.value) for p in self.params]
            return
        # The state in flat vectors too, each parameter's state a view into them: the flat
        # path and the per-parameter path (if the storage is broken later) share it.
        flat_states = self.new_state(storage.values)
        per_state = [storage.split(state) for state in flat_states]
        self.state = list(zip(*per_state, strict=True)) or [()] * len(self.params)
        self._storage = storage
        size = parallel.block_entries(storage.values.dtype) if self.threaded else None
        self._flat_blocks = storage.blocks(flat_states, size)

    def _check_eps(self) -> None:
        """An ``eps`` that rounds to 0 in a parameter's dtype (``1e-8`` in float16) would divide
        by zero at the first step: refused here, with what to give instead."""
        eps = getattr(self, "eps", None)
        if eps is None:
            return
        for dtype in sorted({p.dtype for p in self.params}, key=str):
            if np.asarray(eps, dtype=dtype) == 0:
                smallest = float(np.finfo(dtype).smallest_normal)
                raise ValueError(
                    f"{type(self).__name__}: eps={eps:g} rounds to 0 in {dtype}, the dtype of "
                    f"some parameters, and the first step would divide by zero: give eps of at "
                    f"least {smallest:.3g} (the smallest normal {dtype}), or train in float32"
                )

    def step(self) -> None:
        """Update every parameter from its ``.grad``, in place (see :meth:`update`)."""
        # self.steps += 1, past attrs' checks of a setting (a count needs none; they cost a
        # small model's step a tenth of its time)
        object.__setattr__(self, "steps", self.steps + 1)
        storage = self._storage
        if storage is not None and storage.intact():
            blocks = self._flat_blocks
            if len(blocks) >= parallel.MIN_BLOCKS and self.threaded:  # (fewer: not worth it)
                parallel.for_each_block(self.update_block, blocks, self._scratch)
            else:
                scratch = self._scratch[0]
                for block in blocks:
                    self.update_block(block, scratch)
            return
        for p, state in zip(self.params, self.state, strict=True):
            self.update(p.value, p.grad, *state)

    def update(self, value: np.ndarray, grad: np.ndarray, *state: np.ndarray) -> None:
        """Update one parameter's ``value`` in place from its ``grad`` and its ``state`` arrays.

        All arrays have one shape: a parameter's, or a block of the flat vectors. ``grad`` is
        read, never written.
        """
        raise NotImplementedError

    def update_block(self, block: tuple[np.ndarray, ...], scratch: list[np.ndarray]) -> None:
        """:meth:`update` of one block ``(value, grad, *state)`` of the flat vectors (the flat
        path). An optimizer may hand it to a fused twin in :mod:`minnet._fast.fused`, which must
        give the same bits, with ``scratch``, a list of reusable blocks for the calling thread.
        (One tuple, not ``*block``: a call with ``*`` costs a small model's step a tenth.) A
        subclass that writes its own rule gets this one back (see :attr:`rule_methods`)."""
        self.update(*block)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place."""
        if self._storage is not None and self._storage.intact():
            self._storage.grads.fill(0)  # (the flat path: the gradients of exactly these)
            return
        for p in self.params:
            p.zero_grad()


__all__ = ["Optimizer", "hyperparameter", "lerp_"]
