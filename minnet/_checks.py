"""Argument checks shared by every module: one copy of each.

Each check returns the value converted (``whole_number`` gives an ``int``, ``real_number`` a
``float``) or raises an error that names the argument, what was expected and what came:
a ``TypeError`` for a value of the wrong kind (a string for a count), a ``ValueError`` for a
value of the right kind out of range.

The attrs adapters at the end (:func:`converter`, :func:`in_range`) let attrs classes
(losses, optimizers) use the same checks as fields.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


# -- numbers ------------------------------------------------------------------------------------
def is_boolean(value: Any) -> bool:
    """Is ``value`` a boolean: ``True``/``False``, a numpy bool (``np.True_``, what ``x > 0``
    gives) or an array of them? Not a number here, though Python and numpy count it as one."""
    return isinstance(value, bool | np.bool_) or getattr(value, "dtype", None) == np.bool_


def whole_number(name: str, value: Any, low: int | None = None) -> int:
    """``value`` as an ``int`` (numpy ints too; not floats or bools), at least ``low`` if given."""
    if is_boolean(value):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a whole number, got {value!r} ({type(value).__name__})"
        ) from None
    if low is not None and number < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {number}")
    return number


def positive_int(name: str, value: Any) -> int:
    """A count such as ``epochs``: an ``int`` >= 1, else a ``ValueError`` (a float, a bool and a
    string are not counts)."""
    if is_boolean(value):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int, got {number}")
    return number


def real_number(
    name: str,
    value: Any,
    low: float = -np.inf,
    high: float = np.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
    finite: bool = True,
) -> float:
    """``float(value)``, finite and in the interval from ``low`` to ``high`` (closed at ``low``
    and open at ``high`` unless said otherwise). A bool, a string, a complex number or an array
    is not a real number here (``TypeError``); NaN, infinities and values outside the interval
    are a ``ValueError`` (with ``finite=False``, only the conversion is checked)."""
    if isinstance(value, str | bytes | complex) or is_boolean(value) or np.iscomplexobj(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a real number, got {value!r} ({type(value).__name__})"
        ) from None
    if not finite:
        return number
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (np.isfinite(number) and above and below):
        raise ValueError(
            f"{name} must be {_interval(low, high, low_open, high_open)}, got {value!r}"
        )
    return number


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if low == -np.inf and high == np.inf:
        return "a finite number"
    if high == np.inf:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return f"a number in {left}{low:g}, {high:g}{right}"


def flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` (numpy bools too), else a ``TypeError``."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def one_of(name: str, value: Any, choices: Any) -> Any:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def float_dtype(name: str, value: Any) -> np.dtype:
    """``np.dtype(value)``, a floating-point type (float16, float32, float64)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a numpy floating-point type such as np.float32, got {value!r}"
        ) from None
    if dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point type, got {dtype}")
    return dtype


def generator(name: str, seed: Any) -> np.random.Generator:
    """``np.random.default_rng(seed)`` (a Generator is used as it is), errors naming ``name``."""
    if isinstance(seed, np.random.Generator):
        return seed
    wanted = f"{name} must be None, a non-negative int or a numpy Generator"
    if is_boolean(seed):
        raise TypeError(f"{wanted}, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except TypeError:
        raise TypeError(f"{wanted}, got {seed!r} ({type(seed).__name__})") from None
    except ValueError:
        raise ValueError(f"{wanted}, got {seed!r}") from None


# -- arrays -------------------------------------------------------------------------------------
def real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an array of real numbers (ints or floats, as given), else a ``TypeError``
    naming ``name``: booleans (``[True, False]``, a numpy bool array) are not numbers here, as
    ``True`` is not one for :func:`real_number`; neither are strings, complex numbers, objects."""
    array = as_array(value, name)
    if array.dtype.kind not in "iuf":
        if array.dtype.kind == "b":
            raise TypeError(
                f"{name} must hold real numbers, got booleans (dtype bool); for 0/1 weights, "
                f"write {name}=np.asarray(mask, dtype=float)"
            )
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def as_array(value: Any, name: str) -> np.ndarray:
    """``np.asarray(value)``, with numpy's error for ragged nested lists naming ``name``."""
    try:
        return np.asarray(value)
    except ValueError as err:
        raise ValueError(
            f"{name} must be a rectangular array of numbers, got a ragged "
            f"{type(value).__name__} ({err})"
        ) from None


def float_input(layer: Any, x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a float array for ``layer``'s forward: floats as they are (no copy), integers
    and bools as float64; anything else (strings, complex, objects) a ``TypeError``."""
    if type(x) is np.ndarray and x.dtype.kind == "f":  # every training step: nothing to do
        return x
    x = as_array(x, name)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype.kind != "f":
        raise TypeError(
            f"{layer!r} takes real numbers (a float, int or bool array) as {name}, got dtype "
            f"{x.dtype}"
        )
    return x


def features_input(layer: Any, x: Any, features: int) -> np.ndarray:
    """:func:`float_input`, of shape ``(batch, features)``, else a ``ValueError``."""
    x = float_input(layer, x)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{layer!r} expects input of shape (batch, {features}), got {x.shape}")
    return x


def gradient_shape(layer: Any, grad_output: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``grad_output`` as a float array (a list too, as :func:`float_input` takes ``x``) of
    ``shape``, the layer's last output's, else a ``ValueError`` (a ``TypeError`` for what is
    not real numbers)."""
    grad_output = float_input(layer, grad_output, "grad_output")
    if grad_output.shape != shape:
        raise ValueError(
            f"{layer!r} expects grad_output of shape {shape} (its last output's), got "
            f"{grad_output.shape}"
        )
    return grad_output


def finite(name: str, array: np.ndarray) -> None:
    """A ``ValueError`` counting the NaN and infinite entries of ``array``, if it has any."""
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, but {bad} entries are NaN or infinite")


def cast_finite(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` (no copy if it already is), refusing NaN and infinities, and finite
    values too large for ``dtype`` (``1e300`` into float32), each with its own message."""
    if array.dtype == dtype:  # no conversion: nothing can overflow
        finite(name, array)
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    if np.isfinite(converted).all():
        return converted
    finite(name, array)  # NaN or infinite already, before the conversion
    largest = float(np.max(np.abs(array)))
    raise ValueError(
        f"{name} overflows the model's dtype {np.dtype(dtype)}: it holds values up to "
        f"{largest:.3g} in magnitude, and the largest {np.dtype(dtype)} is "
        f"{float(np.finfo(dtype).max):.3g}. Scale the data down (or use a model of a wider "
        "dtype)"
    )


# -- the same checks as attrs converters and validators ----------------------------------------
def converter(check: Any, name: str) -> Any:
    """An attrs converter: ``check(name, value, finite=False)`` (the conversion; the range is
    the validator's, :func:`in_range`)."""
    return lambda value: check(name, value, finite=False)


def in_range(
    low: float, high: float = np.inf, *, low_open: bool = False, high_open: bool = True
) -> Any:
    """An attrs validator: a finite number in the interval, else a ``ValueError`` naming the
    argument, the interval and the value."""

    def check(instance: Any, attribute: Any, value: float) -> None:
        real_number(attribute.alias, value, low, high, low_open=low_open, high_open=high_open)

    return check
