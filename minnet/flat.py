"""The one utility that turns named arrays into a flat vector and back.

Everything in minnet that needs "all the parameters as one vector" (the gradient checks, the
flat storage of :mod:`minnet._fast`, tests) goes through :class:`FlatLayout`, so no code anywhere
hard-codes a shape or an offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from attrs import define

from .parameter import Parameter


@define(frozen=True)
class FlatLayout:
    """Where each named array sits inside one flat vector.

    Built from ``(name, array)`` pairs (or ``(name, Parameter)`` pairs); the order of the pairs
    is the order in the vector, and each array is laid out in C order.

    >>> layout = FlatLayout.of([("W", np.zeros((2, 3))), ("b", np.zeros(2))])
    >>> layout.size, layout.slices["b"]
    (8, slice(6, 8, None))
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, named: Iterable[tuple[str, np.ndarray | Parameter]]) -> FlatLayout:
        names, shapes = [], []
        for name, array in named:
            if name in names:
                raise ValueError(f"duplicate parameter name {name!r}")
            names.append(name)
            shapes.append(tuple(np.shape(array.value if isinstance(array, Parameter) else array)))
        return cls(tuple(names), tuple(shapes))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(shape, dtype=np.int64)) for shape in self.shapes)

    @property
    def size(self) -> int:
        """Length of the flat vector."""
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        """Name -> the slice of the flat vector that holds that array."""
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            out[name] = slice(start, start + size)
            start += size
        return out

    def to_vector(
        self, arrays: Mapping[str, np.ndarray] | Sequence[np.ndarray], dtype=np.float64
    ) -> np.ndarray:
        """Concatenate arrays (a name -> array mapping, or a sequence in layout order).

        Returns a new vector of shape ``(size,)``; the arrays are not modified.
        """
        if isinstance(arrays, Mapping):
            missing = set(self.names) - set(arrays)
            if missing:
                raise ValueError(f"missing arrays for {sorted(missing)}")
            arrays = [arrays[name] for name in self.names]
        if len(arrays) != len(self.names):
            raise ValueError(f"expected {len(self.names)} arrays, got {len(arrays)}")
        vector = np.empty(self.size, dtype=dtype)
        for name, shape, where, array in zip(
            self.names, self.shapes, self.slices.values(), arrays, strict=True
        ):
            if np.shape(array) != shape:
                raise ValueError(f"{name!r}: expected shape {shape}, got {np.shape(array)}")
            vector[where] = np.ravel(array)
        return vector

    def to_arrays(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """Split a flat vector into ``{name: array}``; the arrays are views of ``vector``."""
        vector = np.asarray(vector)
        if vector.shape != (self.size,):
            raise ValueError(f"expected a vector of shape ({self.size},), got {vector.shape}")
        return {
            name: vector[where].reshape(shape)
            for (name, where), shape in zip(self.slices.items(), self.shapes, strict=True)
        }

    def locate(self, flat_index: int) -> tuple[str, tuple[int, ...]]:
        """Which array, and which index inside it, a position of the flat vector belongs to."""
        if not 0 <= flat_index < self.size:
            raise IndexError(f"flat index {flat_index} outside a vector of size {self.size}")
        for (name, where), shape in zip(self.slices.items(), self.shapes, strict=True):
            if flat_index < where.stop:
                index = np.unravel_index(flat_index - where.start, shape)
                return name, tuple(int(i) for i in index)
        raise AssertionError("unreachable")


Parameters = Iterable[Parameter] | Iterable[tuple[str, Parameter]]


def _named(parameters: Parameters) -> list[tuple[str, Parameter]]:
    """``(name, Parameter)`` pairs, as ``model.named_parameters()`` gives, or bare Parameters,
    as ``model.parameters()`` gives (PyTorch's convention), named by their position."""
    named = []
    for i, item in enumerate(parameters):
        if isinstance(item, Parameter):
            item = (str(i), item)
        elif not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter)):
            raise TypeError(
                "expected Parameters (model.parameters()) or (name, Parameter) pairs "
                f"(model.named_parameters()), got {type(item).__name__} at position {i}"
            )
        named.append(item)
    return named


def parameters_to_vector(parameters: Parameters) -> np.ndarray:
    """The values of the parameters as one float64 vector (a copy). ``parameters``:
    ``model.parameters()`` or ``model.named_parameters()``."""
    named = _named(parameters)
    return FlatLayout.of(named).to_vector([p.value for _, p in named])


def gradients_to_vector(parameters: Parameters) -> np.ndarray:
    """The gradients of the parameters as one float64 vector, in the same order as the values."""
    named = _named(parameters)
    return FlatLayout.of(named).to_vector([p.grad for _, p in named])


def vector_to_parameters(vector: np.ndarray, parameters: Parameters) -> None:
    """Write a flat vector back into the parameters' values, in place, keeping their dtypes
    (PyTorch's argument order: the vector first)."""
    named = _named(parameters)
    arrays = FlatLayout.of(named).to_arrays(vector)
    for name, p in named:
        p.value[...] = arrays[name]
