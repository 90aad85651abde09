"""Parameters, and the one utility that turns named arrays into a flat vector and back.

Everything in minnet that needs "all the parameters as one vector" (the gradient checks,
save/load, tests) goes through :class:`FlatLayout`, so no code anywhere hard-codes a shape
or an offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from attrs import define, field
from attrs.setters import NO_OP

BLOCK = 1 << 18  # entries of the temporary in add_product_to_grad (2 MiB in float64)


def _contiguous(value) -> np.ndarray:
    array = np.asarray(value)
    return array if array.flags.c_contiguous else array.copy()


@define(eq=False, on_setattr=NO_OP)
class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``value`` and ``grad`` always have the same shape and dtype. Backward passes *add* into
    ``grad`` (as in PyTorch), through :meth:`add_to_grad` and :meth:`add_product_to_grad`;
    :meth:`zero_grad` clears it. The value is stored C-contiguous (copied only if needed, also
    when ``p.value`` is assigned; a value of another shape or dtype gets a fresh zero gradient).

    ``zero_grad`` is lazy: it only notes that the gradient is zero, and the first addition then
    *writes* the gradient instead of adding to zeros (a matrix product goes straight into
    ``grad``, with no temporary and no pass to clear it first). Reading ``p.grad`` always gives
    the true gradient: zeros are written on the way if they are still owed.
    """

    _value: np.ndarray = field(converter=_contiguous, alias="value", repr=False)
    _grad: np.ndarray = field(init=False, repr=False)
    _zeros_owed: bool = field(init=False, default=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._grad = np.zeros_like(self._value)

    def __repr__(self) -> str:
        return f"Parameter(shape={self._value.shape}, dtype={self._value.dtype})"

    @property
    def value(self) -> np.ndarray:
        """The parameter's array (C-contiguous)."""
        return self._value

    @value.setter
    def value(self, array: np.ndarray) -> None:
        self._value = _contiguous(array)
        if self._grad.shape != self._value.shape or self._grad.dtype != self._value.dtype:
            self.grad = np.zeros_like(self._value)  # a gradient that fits the new value

    @property
    def grad(self) -> np.ndarray:
        """The gradient, an array of ``value``'s shape and dtype."""
        self.pay_owed_zeros()
        return self._grad

    @grad.setter
    def grad(self, array: np.ndarray) -> None:
        if np.shape(array) != self._value.shape:
            raise ValueError(
                f"a gradient must have the value's shape {self._value.shape}, got {np.shape(array)}"
            )
        self._grad, self._zeros_owed = array, False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    def zero_grad(self) -> None:
        """Set the gradient to zero (lazily: see the class's docstring)."""
        self._zeros_owed = True

    def pay_owed_zeros(self) -> None:
        """Write the zeros a lazy :meth:`zero_grad` still owes into the gradient array."""
        if self._zeros_owed:
            self._grad.fill(0)
            self._zeros_owed = False

    def add_to_grad(self, array: np.ndarray) -> None:
        """``grad += array``."""
        if self._zeros_owed:
            np.copyto(self._grad, array)
            self._zeros_owed = False
        else:
            self._grad += array

    def add_product_to_grad(self, a: np.ndarray, b: np.ndarray) -> None:
        """``grad += a @ b`` without a temporary of ``grad``'s size.

        After :meth:`zero_grad` the product is written straight into ``grad``; otherwise it is
        added a block of rows at a time, so that the temporary stays small.
        """
        if self._zeros_owed:
            np.matmul(a, b, out=self._grad)
            self._zeros_owed = False
            return
        grad = self._grad
        rows = max(1, BLOCK // grad.shape[1])
        for start in range(0, len(grad), rows):
            grad[start : start + rows] += a[start : start + rows] @ b


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


@define(eq=False)
class FlatStorage:
    """Parameters whose values and gradients are views into two flat vectors.

    A :class:`~minnet.Sequential` keeps its parameters this way (laid out by
    :class:`FlatLayout`), so that an optimizer step is a few numpy calls on one vector instead
    of a few per parameter (an optimizer finds the storage with :meth:`find`). The
    parameters themselves are unchanged to their users: ``p.value`` and ``p.grad`` are still
    arrays of their own shapes, updated in place.
    """

    parameters: tuple[Parameter, ...]
    values: np.ndarray
    grads: np.ndarray
    layout: FlatLayout
    _views: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False)

    @classmethod
    def create(cls, parameters: Sequence[Parameter], dtype=None) -> FlatStorage | None:
        """Move the parameters into new flat vectors (converted to ``dtype`` if given).

        Returns ``None`` (and changes nothing) when there are no parameters, when one appears
        twice (shared by two layers), or when their dtypes differ and no ``dtype`` is given.
        """
        parameters = tuple(parameters)
        dtypes = {p.value.dtype for p in parameters}
        if not parameters or (dtype is None and len(dtypes) != 1):
            return None
        if len({id(p) for p in parameters}) != len(parameters):
            return None  # a parameter shared by two layers: it cannot sit in two places
        dtype = np.dtype(dtype) if dtype is not None else dtypes.pop()
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        values = layout.to_vector([p.value for p in parameters], dtype=dtype)
        grads = layout.to_vector([p.grad for p in parameters], dtype=dtype)  # zeros paid
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
        values, grads = parameters[0].value.base, parameters[0]._grad.base
        layout = FlatLayout.of((str(i), p) for i, p in enumerate(parameters))
        for flat in (values, grads):
            if not isinstance(flat, np.ndarray) or flat.shape != (layout.size,):
                return None
        value_views, grad_views = layout.to_arrays(values), layout.to_arrays(grads)
        for i, p in enumerate(parameters):
            if not (
                _same_view(p.value, value_views[str(i)]) and _same_view(p._grad, grad_views[str(i)])
            ):
                return None
        views = tuple((p.value, p._grad) for p in parameters)
        return cls(parameters, values, grads, layout, views)

    def intact(self) -> bool:
        """Do all the parameters still hold their views (no ``p.value = ...`` elsewhere)?"""
        for p, (value, grad) in zip(self.parameters, self._views, strict=True):
            if p.value is not value or p._grad is not grad:
                return False
        return True

    def settle(self) -> None:
        """Write the zeros that lazy ``zero_grad`` calls still owe, before reading ``grads``."""
        for p in self.parameters:
            p.pay_owed_zeros()

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """Views of a vector laid out like ``values``, one per parameter, of its shape."""
        return list(self.layout.to_arrays(vector).values())


def _same_view(array: np.ndarray, view: np.ndarray) -> bool:
    return (
        array.shape == view.shape
        and array.dtype == view.dtype
        and array.__array_interface__["data"][0] == view.__array_interface__["data"][0]
        and array.flags.c_contiguous
    )


def parameters_to_vector(named: Iterable[tuple[str, Parameter]]) -> np.ndarray:
    """The values of named parameters as one float64 vector (a copy)."""
    named = list(named)
    return FlatLayout.of(named).to_vector([p.value for _, p in named])


def gradients_to_vector(named: Iterable[tuple[str, Parameter]]) -> np.ndarray:
    """The gradients of named parameters as one float64 vector, in the same order as the values."""
    named = list(named)
    return FlatLayout.of(named).to_vector([p.grad for _, p in named])


def vector_to_parameters(vector: np.ndarray, named: Iterable[tuple[str, Parameter]]) -> None:
    """Write a flat vector back into the parameters' values, in place, keeping their dtypes."""
    named = list(named)
    arrays = FlatLayout.of(named).to_arrays(vector)
    for name, p in named:
        p.value[...] = arrays[name]
