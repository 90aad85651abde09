"""The accelerator: all of a model's parameters in two flat vectors, updated a block at a time.

Nothing here changes a number: it changes how many numpy calls a training step takes. A
:class:`~minnet.Sequential` moves its parameters into a :class:`FlatStorage` when it is built
(each ``p.value`` and ``p.grad`` becomes a view into one of two flat vectors, with the same
values), so that ``zero_grad`` is one ``fill`` and an optimizer step is a few numpy calls for
the whole model instead of a few per parameter.

The optimizers' update rules are written once, per parameter, in :mod:`minnet.optim`;
:meth:`FlatStorage.blocks` hands them the flat vectors instead, cut into blocks of at most
``BLOCK`` entries so that their temporaries stay small. The two paths compute the same numbers
(``tests/test_optim.py`` checks it), because every update is elementwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from attrs import define, field

from .parameter import FlatLayout, Parameter

BLOCK = 1 << 16  # entries updated at once: temporaries of at most 512 KiB in float64


@define(eq=False)
class FlatStorage:
    """Parameters whose values and gradients are views into two flat vectors.

    ``values`` and ``grads`` have shape ``(total size,)``, laid out by ``layout`` (parameter
    ``i`` is named ``str(i)``). The parameters themselves are unchanged to their users: ``p.value``
    and ``p.grad`` are still arrays of their own shapes and values, updated in place.
    """

    parameters: tuple[Parameter, ...]
    values: np.ndarray
    grads: np.ndarray
    layout: FlatLayout
    _views: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False)

    @classmethod
    def create(cls, parameters: Sequence[Parameter], dtype=None) -> FlatStorage | None:
        """Move the parameters into new flat vectors (converted to ``dtype`` if given).

        Returns ``None``, and changes nothing, when there are no parameters, when one appears
        twice (shared by two layers), when their dtypes differ and no ``dtype`` is given, or when
        a value or gradient is a view of another array (another model's flat storage, or an
        array the user shares with it): moving it would cut that link. (Parameters that are
        exactly one whole storage, in order, may move to a new one, e.g. of another dtype.)
        """
        parameters = tuple(parameters)
        dtypes = {p.value.dtype for p in parameters}
        if not parameters or (dtype is None and len(dtypes) != 1):
            return None
        if len({id(p) for p in parameters}) != len(parameters):
            return None  # a parameter shared by two layers: it cannot sit in two places
        views = any(p.value.base is not None or p.grad.base is not None for p in parameters)
        if views and cls.find(parameters) is None:
            return None  # views of arrays other than one whole storage of these parameters
        dtype = np.dtype(dtype) if dtype is not None else dtypes.pop()
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        values = layout.to_vector([p.value for p in parameters], dtype=dtype)
        grads = layout.to_vector([p.grad for p in parameters], dtype=dtype)
        value_views, grad_views = layout.to_arrays(values), layout.to_arrays(grads)
        for i, p in enumerate(parameters):
            p.value, p.grad = value_views[str(i)], grad_views[str(i)]
        return cls.find(parameters)

    @classmethod
    def find(cls, parameters: Sequence[Parameter]) -> FlatStorage | None:
        """The flat storage the parameters already live in, in this order, or ``None``."""
        parameters = tuple(parameters)
        if not parameters:
            return None
        values, grads = parameters[0].value.base, parameters[0].grad.base
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        for flat in (values, grads):
            if not isinstance(flat, np.ndarray) or flat.shape != (layout.size,):
                return None
        value_views, grad_views = layout.to_arrays(values), layout.to_arrays(grads)
        for i, p in enumerate(parameters):
            if not (
                _same_view(p.value, value_views[str(i)]) and _same_view(p.grad, grad_views[str(i)])
            ):
                return None
        views = tuple((p.value, p.grad) for p in parameters)
        return cls(parameters, values, grads, layout, views)

    def intact(self) -> bool:
        """Do all the parameters still hold their views (no ``p.value = ...`` elsewhere)?"""
        for p, (value, grad) in zip(self.parameters, self._views, strict=True):
            if p.value is not value or p.grad is not grad:
                return False
        return True

    def holds(self, parameters: Sequence[Parameter]) -> bool:
        """Are these exactly the storage's parameters, in its order, all still in place?"""
        if len(parameters) != len(self.parameters):
            return False
        for p, mine, (value, grad) in zip(parameters, self.parameters, self._views, strict=True):
            if p is not mine or p.value is not value or p.grad is not grad:
                return False
        return True

    def zero_grad(self) -> None:
        """Every parameter's gradient to zero, in one call."""
        self.grads.fill(0)

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """Views of a vector laid out like ``values``, one per parameter, of its shape."""
        return list(self.layout.to_arrays(vector).values())

    def blocks(self, states: Sequence[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
        """``(values, grads, *states)`` cut into blocks of at most ``BLOCK`` entries: views.

        ``states`` are vectors laid out like ``values`` (an optimizer's momentum or moments).
        """
        flat = (self.values, self.grads, *states)
        return [
            tuple(vector[start : start + BLOCK] for vector in flat)
            for start in range(0, self.values.size, BLOCK)
        ]


def _same_view(array: np.ndarray, view: np.ndarray) -> bool:
    return (
        array.shape == view.shape
        and array.dtype == view.dtype
        and array.__array_interface__["data"][0] == view.__array_interface__["data"][0]
        and array.flags.c_contiguous
    )


__all__ = ["BLOCK", "FlatStorage"]
