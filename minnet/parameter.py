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

BLOCK = 1 << 18  # entries of the temporary in accumulate_product (2 MiB in float64)


def _contiguous(value) -> np.ndarray:
    array = np.asarray(value)
    return array if array.flags.c_contiguous else array.copy()


@define(eq=False, on_setattr=NO_OP)
class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``value`` and ``grad`` always have the same shape and dtype. A layer's backward *adds* into
    ``grad`` (as in PyTorch) with one verb, :meth:`accumulate` (``grad += delta``), or
    :meth:`accumulate_product` (``grad += a @ b``, for a matrix product); :meth:`zero_grad`
    fills ``grad`` with zeros. What you read in ``p.grad``, or in an array you kept from it, is
    always what these plain ``fill(0)`` and ``+=`` give.

    The value is stored C-contiguous (copied only if needed, also when ``p.value`` is assigned;
    a value of another shape or dtype gets a fresh zero gradient). ``p.grad = array`` must give
    an array of the value's shape.
    """

    _value: np.ndarray = field(converter=_contiguous, alias="value", repr=False)
    _grad: np.ndarray = field(init=False, repr=False)
    # The speed tricks, kept where nobody can see them. While the gradient array has never been
    # given out (read as p.grad, or assigned), nobody but this object can look at it or change
    # it, so zero_grad may just note that the gradient is zero (_owed: zeros not written yet),
    # and the first accumulate after it may *write* into the array instead of adding to zeros.
    # Once given out, zero_grad writes its zeros at once and every accumulate adds.
    _is_zero: bool = field(init=False, default=True, repr=False)
    _owed: bool = field(init=False, default=False, repr=False)
    _given_out: bool = field(init=False, default=False, repr=False)

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
            # a fresh zero gradient that fits the value, not given out yet
            self._grad = np.zeros_like(self._value)
            self._given_out, self._is_zero, self._owed = False, True, False

    @property
    def grad(self) -> np.ndarray:
        """The gradient, an array of ``value``'s shape and dtype."""
        self.settle()
        self._given_out = True
        return self._grad

    @grad.setter
    def grad(self, array: np.ndarray) -> None:
        if np.shape(array) != self._value.shape:
            raise ValueError(
                f"a gradient must have the value's shape {self._value.shape}, got {np.shape(array)}"
            )
        self._grad = array
        self._given_out, self._is_zero, self._owed = True, False, False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def zero_grad(self) -> None:
        """``grad[...] = 0``, in place: arrays that share the gradient see the zeros too."""
        if self._given_out:
            self._grad.fill(0)
        else:
            self._owed = True  # nobody else has the array: the zeros can wait (see settle)
        self._is_zero = True

    def accumulate(self, delta: np.ndarray) -> None:
        """``grad += delta``: ``delta`` has ``value``'s shape (or broadcasts to it)."""
        if self._owed:
            np.copyto(self._grad, delta)  # zeros + delta
        else:
            self._grad += delta
        self._is_zero = self._owed = False

    def accumulate_product(self, a: np.ndarray, b: np.ndarray) -> None:
        """``grad += a @ b``, for ``a: (rows, k)`` and ``b: (k, cols)`` with ``grad: (rows, cols)``.

        The same as ``p.accumulate(a @ b)``, but the product is made a block of rows at a time,
        so that the temporary stays small (at most ``BLOCK`` entries) for a large weight matrix.
        """
        grad = self._grad
        if self._is_zero and not self._given_out:
            np.matmul(a, b, out=grad)  # zeros + a @ b, with no temporary
        elif grad.size <= BLOCK:
            grad += a @ b
        else:
            rows = max(1, BLOCK // grad.shape[1])
            for start in range(0, len(grad), rows):
                grad[start : start + rows] += a[start : start + rows] @ b
        self._is_zero = self._owed = False

    # -- for minnet's flat storage (minnet._fast), which reads the gradients without giving
    # -- them out: it never writes them, and settles them before it reads.
    def settle(self) -> None:
        """Write the zeros that :meth:`zero_grad` left owed into the gradient array."""
        if self._owed:
            self._grad.fill(0)
            self._owed = False

    def move_into(self, value: np.ndarray, grad: np.ndarray) -> None:
        """Copy the value and the gradient into ``value`` and ``grad`` (C-contiguous arrays of
        the value's shape, e.g. views of flat vectors) and hold those from now on."""
        self.settle()
        value[...] = self._value
        grad[...] = self._grad
        self._value, self._grad, self._given_out = value, grad, False

    def holds(self, value: np.ndarray, grad: np.ndarray) -> bool:
        """Are ``value`` and ``grad`` this parameter's own arrays (``is``, not ``==``)?"""
        return self._value is value and self._grad is grad

    def is_view(self) -> bool:
        """Is the value or the gradient a view of another array (shared with something else)?"""
        return self._value.base is not None or self._grad.base is not None


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
