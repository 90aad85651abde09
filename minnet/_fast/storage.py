"""The accelerator: all of a model's parameters in two flat vectors, updated a block at a time.

Nothing here changes a number: it changes how many numpy calls a training step takes. A
:class:`~minnet.Sequential` moves its parameters into a :class:`FlatStorage` when it is built
(each ``p.value`` and ``p.grad`` becomes a view into one of two flat vectors, with the same
values), so that an optimizer step is a few numpy calls for the whole model instead of a few
per parameter.

The optimizers' update rules are written once, per parameter, in :mod:`minnet.optim`;
:meth:`FlatStorage.blocks` hands them the flat vectors instead, cut into blocks of at most
``BLOCK`` entries so that their temporaries stay small (an optimizer whose blocks go to two
threads asks for blocks of :data:`~.parallel.THREAD_BLOCK_BYTES`). The two paths compute the
same numbers (``tests/test_optim.py`` checks it), because every update is elementwise.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import numpy as np
from attrs import define, field

from ..flat import FlatLayout
from ..parameter import Parameter
from .watch import same_attributes

BLOCK = 1 << 16  # entries updated at once: temporaries of at most 512 KiB in float64
# Every live storage, by the id of its values vector (which it holds, so the id is its own):
# how find() knows the flat vector a parameter's value is a view of.
_STORAGES: weakref.WeakValueDictionary[int, FlatStorage] = weakref.WeakValueDictionary()
# Every values vector a storage made, alive while a parameter's value is a view of it.
_VECTORS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def _free_to_move(p: Parameter) -> bool:
    """May ``p`` move into a new storage: it owns its arrays, or they are views of a storage
    that is gone (its model was deleted)?"""
    if p.value.base is None and p.grad.base is None:
        return True
    base = p.value.base
    return _VECTORS.get(id(base)) is base and id(base) not in _STORAGES


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
    #: ``intact()``: do all the parameters still hold their views (no ``p.value = ...``
    #: elsewhere)? Written out once (:func:`~.watch.same_attributes`): a loop testing each
    #: parameter cost a small model's step a twentieth.
    intact: Callable[[], bool] = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.intact = same_attributes(
            [
                (p, name, view)
                for p, views in zip(self.parameters, self._views, strict=True)
                for name, view in zip(("value", "grad"), views, strict=True)
            ]
        )

    @classmethod
    def create(cls, parameters: Sequence[Parameter], dtype=None) -> FlatStorage | None:
        """Move the parameters into new flat vectors (converted to ``dtype`` if given).

        Returns ``None``, and changes nothing, when there are no parameters, when one appears
        twice (shared by two layers), when their dtypes differ and no ``dtype`` is given, or when
        a value or gradient is a view of another array (the flat storage of a model still in
        use, or an array the user shares with it): moving it would cut that link. (Views of the
        storage of a model that is gone may move.)
        """
        parameters = tuple(parameters)
        dtypes = {p.dtype for p in parameters}
        if not parameters or (dtype is None and len(dtypes) != 1):
            return None
        if len({id(p) for p in parameters}) != len(parameters):
            return None  # a parameter shared by two layers: it cannot sit in two places
        if not all(map(_free_to_move, parameters)):
            return None
        dtype = np.dtype(dtype) if dtype is not None else dtypes.pop()
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        values, grads = np.empty(layout.size, dtype=dtype), np.empty(layout.size, dtype=dtype)
        value_views, grad_views = layout.to_arrays(values), layout.to_arrays(grads)
        for i, p in enumerate(parameters):
            value_views[str(i)][...] = p.value
            grad_views[str(i)][...] = p.grad
            p.value, p.grad = value_views[str(i)], grad_views[str(i)]
        storage = cls(
            parameters,
            values,
            grads,
            layout,
            tuple(zip(value_views.values(), grad_views.values(), strict=True)),
        )
        _STORAGES[id(values)] = storage
        _VECTORS[id(values)] = values
        return storage

    @classmethod
    def empty(cls, parameters: Sequence[Parameter], dtype) -> FlatStorage | None:
        """New flat vectors for the parameters, their arrays dropped, not copied: the values
        left for the caller to fill (``minnet.load`` reads a file into them), the gradients
        zeros. ``None``, and nothing changed, when there are no parameters or one appears twice.
        """
        parameters = tuple(parameters)
        if not parameters or len({id(p) for p in parameters}) != len(parameters):
            return None
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        values, grads = np.empty(layout.size, dtype=dtype), np.zeros(layout.size, dtype=dtype)
        value_views, grad_views = layout.to_arrays(values), layout.to_arrays(grads)
        views = tuple(zip(value_views.values(), grad_views.values(), strict=True))
        for p, (value, grad) in zip(parameters, views, strict=True):
            p.value, p.grad = value, grad
        storage = cls(parameters, values, grads, layout, views)
        _STORAGES[id(values)] = storage
        _VECTORS[id(values)] = values
        return storage

    @classmethod
    def find(cls, parameters: Sequence[Parameter]) -> FlatStorage | None:
        """The live flat storage that holds exactly these parameters, in this order, or ``None``."""
        parameters = tuple(parameters)
        if not parameters:
            return None
        storage = _STORAGES.get(id(parameters[0].value.base))
        if storage is None or not storage.holds(parameters):
            return None
        return storage

    def holds(self, parameters: Sequence[Parameter]) -> bool:
        """Are these exactly the storage's parameters, in its order, all still in place?"""
        if len(parameters) != len(self.parameters):
            return False
        for p, mine, (value, grad) in zip(parameters, self.parameters, self._views, strict=True):
            if p is not mine or p.value is not value or p.grad is not grad:
                return False
        return True

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """Views of a vector laid out like ``values``, one per parameter, of its shape."""
        return list(self.layout.to_arrays(vector).values())

    def blocks(
        self, states: Sequence[np.ndarray], size: int | None = None
    ) -> list[tuple[np.ndarray, ...]]:
        """``(values, grads, *states)`` cut into blocks of at most ``size`` entries (default
        ``BLOCK``): views.

        ``states`` are vectors laid out like ``values`` (an optimizer's momentum or moments).
        """
        size = BLOCK if size is None else size
        flat = (self.values, self.grads, *states)
        return [
            tuple(vector[start : start + size] for vector in flat)
            for start in range(0, self.values.size, size)
        ]


__all__ = ["BLOCK", "FlatStorage"]
