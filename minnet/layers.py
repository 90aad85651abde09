"""Layers: each knows its own forward and backward, and nothing else.

Data is batch-first: an input ``x`` has shape ``(batch, features)``. ``backward(grad_output)``
takes the gradient of the loss with respect to the layer's output, *adds* the gradients of its
parameters into their ``.grad`` (``self.W.accumulate(dW)``), and returns the gradient with
respect to its input. A layer whose input gradient is costly may also accept
``needs_input_grad=True``: a model passes ``False`` where nobody uses that gradient (its first
layer, whose input is the data), and the layer may then return ``None``.

A new layer is one class in this module: subclass :class:`Layer`, implement ``forward`` and
``backward``, and the every-layer gradient-check test picks it up (see ``docs/layers.md``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from attrs import define, field, fields
from attrs.setters import NO_OP

from .parameter import Parameter

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport


def _count(value: Any, name: str = "the value") -> int:
    """An int from an int-like value (numpy ints too); refuses floats and bools."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a whole number, got {value!r} ({type(value).__name__})"
        ) from None


def _count_of(name: str) -> Any:
    return lambda value: _count(value, name)


def real_number(name: str) -> Any:
    """An attrs converter: ``float(value)``, or a ``TypeError`` naming the argument (a bool, a
    string, a complex number, an array are not numbers here)."""

    def convert(value: Any) -> float:
        if isinstance(value, bool | str | bytes | complex) or np.iscomplexobj(value):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a real number, got {value!r} ({type(value).__name__})"
            ) from None

    return convert


def in_range(
    low: float, high: float = np.inf, *, low_open: bool = False, high_open: bool = True
) -> Any:
    """An attrs validator: a finite number in the interval (NaN and infinities refused), else a
    ``ValueError`` naming the argument, the interval and the value."""

    def check(instance: Any, attribute: Any, value: float) -> None:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (np.isfinite(value) and above and below):
            if high == np.inf and isinstance(value, int):
                wanted = f"a whole number >= {low:g}"
            elif high == np.inf:
                wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
            else:
                left, right = "(" if low_open else "[", ")" if high_open else "]"
                wanted = f"a number in {left}{low:g}, {high:g}{right}"
            raise ValueError(f"{attribute.alias} must be {wanted}, got {value!r}")

    return check


def as_array(value: Any, name: str) -> np.ndarray:
    """``np.asarray(value)``, with numpy's error for ragged nested lists naming ``name``."""
    try:
        return np.asarray(value)
    except ValueError as err:
        raise ValueError(
            f"{name} must be a rectangular array of numbers, got a ragged "
            f"{type(value).__name__} ({err})"
        ) from None


def as_float_input(layer: Any, x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a float array for ``layer``'s forward: floats as they are (no copy), integers
    and bools as float64; anything else (strings, complex, objects) a ``TypeError``."""
    if type(x) is np.ndarray and x.dtype.kind == "f":  # the common case, at every step
        return x
    x = as_array(x, name)
    kind = x.dtype.kind
    if kind == "f":
        return x
    if kind in "biu":
        return x.astype(np.float64)
    raise TypeError(
        f"{layer!r} takes real numbers (a float, int or bool array) as {name}, got dtype {x.dtype}"
    )


#: Standard deviation of each initial-weight scheme, from (in_features, out_features).
INIT_STD = {
    "he": lambda n_in, n_out: np.sqrt(2.0 / n_in),
    "glorot": lambda n_in, n_out: np.sqrt(2.0 / (n_in + n_out)),
}


def _check_init(layer: Any, attribute: Any, init: str) -> None:
    if init not in INIT_STD:
        raise ValueError(f"init must be one of {list(INIT_STD)}, got {init!r}")


def _as_rng(seed: np.random.Generator | int | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@define(eq=False, on_setattr=NO_OP)
class Layer:
    """Base class of all layers.

    Subclasses implement :meth:`forward` and :meth:`backward`; parameters are the
    :class:`~minnet.Parameter` fields of the class, found by :meth:`named_parameters`.
    """

    training: bool = field(default=True, init=False, repr=False)
    #: Input values where the derivative jumps (ReLU: 0). The gradient check uses them as
    #: evidence that a finite difference straddles a kink (see ``docs/gradcheck.md``).
    kink_points: ClassVar[tuple[float, ...]] = ()
    #: Does each output row depend only on the same input row (and the parameters)? Then the
    #: gradient check may stack many perturbed copies of a batch into one. Only a class that
    #: defines ``forward`` can say so (see :func:`is_rowwise`): a subclass with a forward of its
    #: own is not row-wise until it declares it again. A batch norm in training mode is not.
    rowwise: ClassVar[bool] = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, in_features)`` -> ``(batch, out_features)``; keeps what backward needs."""
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, out_features)`` -> input gradient ``(batch, in_features)``.

        Adds the gradient of each parameter into its ``.grad`` (``p.accumulate(delta)``), using
        what the last :meth:`forward` kept. A layer may add a keyword argument
        ``needs_input_grad: bool = True``: a :class:`~minnet.Sequential` then passes ``False``
        when the input gradient is not used (the first layer's input is the data), and the
        layer may skip computing it and return ``None``. It is only a hint for speed: a layer
        without the argument always gets ``backward(grad_output)``.
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(name, parameter)`` for every parameter, however the layer keeps it.

        The attrs fields in declaration order, then attributes set in a plain ``__init__``
        (``self.w = Parameter(...)``) in the order they were set; inside each, a layer held by
        the layer (``self.fc = Linear(...)``: ``"fc.W"``) and lists, tuples and dicts of them
        (``self.ws = [Parameter(...), ...]``: ``"ws.0"``). A parameter reachable twice is
        yielded once, under its first name.
        """
        yield from _named_parameters(self, "", set())

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Layer:
        """Switch to training (``True``) or evaluation (``False``) behaviour; returns ``self``."""
        self.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def output_features(self, in_features: int | None) -> int | None:
        """The number of output features for ``in_features`` inputs (``None``: not known yet).

        Raises ``ValueError`` if the layer cannot take that many. Elementwise layers keep the size.
        """
        return in_features

    def gradcheck(self, x: np.ndarray, **options: Any) -> GradcheckReport:
        """Check every parameter's gradient and the input gradient numerically.

        See :func:`minnet.gradcheck.check_layer` for the options.
        """
        from .gradcheck import check_layer

        return check_layer(self, x, **options)

    def forward_perturbed(
        self, x: np.ndarray, name: str, flat_index: np.ndarray, steps: np.ndarray
    ) -> np.ndarray:
        """Outputs for ``x`` with entry ``flat_index[k]`` of parameter ``name`` moved by
        ``steps[k]``, one output per k: shape ``(len(steps), batch, out_features)``.

        The gradient check evaluates many perturbations at once with it. This version runs
        ``forward`` once per perturbation; a layer may compute the same faster. The parameter
        is left as it was.
        """
        value = parameter_getter(name)(self).value.reshape(-1)  # a view: contiguous
        outputs = []
        for i, step in zip(flat_index, steps, strict=True):
            saved = value[i]
            value[i] = saved + step
            outputs.append(self.forward(x))
            value[i] = saved
        return np.stack(outputs)

    @contextmanager
    def fixed_randomness(self) -> Iterator[None]:
        """Within this block, a random layer repeats its last random draw (see ``Dropout``).

        The gradient check needs the same function at every evaluation. Deterministic layers
        have nothing to hold.
        """
        yield

    def _require_cache(self, cache: Any) -> None:
        if cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")


def _attribute_names(layer: Layer) -> list[str]:
    names = [f.name for f in fields(type(layer))]
    return names + [name for name in getattr(layer, "__dict__", {}) if name not in names]


def _named_parameters(holder: Any, prefix: str, seen: set[int]) -> Iterator[tuple[str, Parameter]]:
    """The parameters inside ``holder`` (a parameter, a layer, a list, tuple or dict of them)."""
    if id(holder) in seen:
        return
    if isinstance(holder, Parameter):
        seen.add(id(holder))
        yield prefix, holder
    elif isinstance(holder, Layer):
        seen.add(id(holder))
        dot = f"{prefix}." if prefix else ""
        for name in _attribute_names(holder):
            yield from _named_parameters(getattr(holder, name, None), dot + name, seen)
    elif isinstance(holder, list | tuple | dict):
        seen.add(id(holder))
        items = holder.items() if isinstance(holder, dict) else enumerate(holder)
        for key, value in items:
            yield from _named_parameters(value, f"{prefix}.{key}", seen)


def parameter_getter(name: str) -> Any:
    """A function ``layer -> parameter`` for a name of ``named_parameters`` (``"W"``,
    ``"fc.W"``, ``"ws.0"``): a model finds its parameters with it at every step."""
    if all(part.isidentifier() for part in name.split(".")):
        return operator.attrgetter(name)

    def walk(layer: Any) -> Any:
        value = layer
        for part in name.split("."):
            if isinstance(value, dict):
                value = value[part] if part in value else value[int(part)]
            elif isinstance(value, list | tuple):
                value = value[int(part)]
            else:
                value = getattr(value, part)
        return value

    return walk


def is_rowwise(layer: Layer) -> bool:
    """Does the class that defines ``layer``'s forward declare it row-wise (``rowwise``)?

    A declaration made on a parent class does not cover a forward the subclass wrote itself.
    """
    for cls in type(layer).__mro__:
        if "forward" in vars(cls):
            return "rowwise" in vars(cls) and bool(layer.rowwise)
    return False


def _check_input(layer: Layer, x: np.ndarray, in_features: int) -> None:
    if getattr(x, "ndim", None) != 2 or x.shape[1] != in_features:
        raise ValueError(
            f"{layer!r} expects input of shape (batch, {in_features}), got {np.shape(x)}"
        )


@define(eq=False, on_setattr=NO_OP)
class Linear(Layer):
    """Affine layer ``y = x @ W.T + b``.

    ``W: (out_features, in_features)``, ``b: (out_features,)``. ``W`` is drawn from ``rng``
    (a numpy ``Generator`` or a seed), normal with the standard deviation ``init`` names:
    ``"he"`` (the default: ``sqrt(2 / in_features)``, suits ReLU-family activations) or
    ``"glorot"`` (``sqrt(2 / (in_features + out_features))``, suits sigmoid and tanh). ``b``
    starts at zero. The scale is chosen here, once: putting the layer in a model never changes
    its weights.
    """

    rowwise: ClassVar[bool] = True

    in_features: int = field(converter=_count_of("in_features"), validator=in_range(1))
    out_features: int = field(converter=_count_of("out_features"), validator=in_range(1))
    init: str = field(default="he", validator=_check_init, kw_only=True)
    rng: np.random.Generator | int | None = field(
        default=None, converter=_as_rng, repr=False, kw_only=True
    )
    dtype: Any = field(default=np.float64, converter=np.dtype, repr=False, kw_only=True)
    W: Parameter = field(init=False, repr=False)
    b: Parameter = field(init=False, repr=False)
    _x: np.ndarray | None = field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"Linear needs a floating-point dtype, got {self.dtype}")
        shape = (self.out_features, self.in_features)
        std = INIT_STD[self.init](self.in_features, self.out_features)
        self.W = Parameter((self.rng.standard_normal(shape) * std).astype(self.dtype))
        self.b = Parameter(np.zeros(self.out_features, dtype=self.dtype))

    @classmethod
    def from_weights(cls, W: np.ndarray, b: np.ndarray) -> Linear:
        """A layer holding float copies of ``W: (out, in)`` and ``b: (out,)``."""
        W, b = np.array(W), np.array(b)
        for name, array in (("W", W), ("b", b)):
            if array.dtype.kind not in "biuf":
                raise TypeError(
                    f"Linear.from_weights needs real numbers for {name}, got dtype {array.dtype}"
                    + (" (an imaginary part would be lost)" if array.dtype.kind == "c" else "")
                )
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"expected W of shape (out, in) and b of shape (out,), got {W.shape} and {b.shape}"
            )
        if not np.issubdtype(W.dtype, np.floating):
            W = W.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            b = b.astype(W.dtype)
        for name, array in (("W", W), ("b", b)):
            bad = array.size - int(np.count_nonzero(np.isfinite(array)))
            if bad:
                raise ValueError(
                    f"Linear.from_weights needs finite {name}, but {bad} of its entries are NaN "
                    f"or infinite in {W.dtype}"
                )
        layer = cls(W.shape[1], W.shape[0], dtype=W.dtype, init="he", rng=0)
        layer.W, layer.b = Parameter(W), Parameter(b)
        return layer

    def output_features(self, in_features: int | None) -> int:
        if in_features is not None and in_features != self.in_features:
            raise ValueError(f"{self!r} takes {self.in_features} input features, got {in_features}")
        return self.out_features

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        _check_input(self, x, self.in_features)
        self._x = x
        out = x @ self.W.value.T
        out += self.b.value
        return out

    def forward_perturbed(
        self, x: np.ndarray, name: str, flat_index: np.ndarray, steps: np.ndarray
    ) -> np.ndarray:
        if type(self).forward is not Linear.forward:  # a subclass with a forward of its own
            return super().forward_perturbed(x, name, flat_index, steps)
        # Moving W[i, j] by s adds s * x[:, j] to output column i; moving b[i] adds s.
        outputs = np.repeat(self.forward(x)[np.newaxis], len(steps), axis=0)
        which = np.arange(len(steps))
        if name == "W":
            rows, cols = np.divmod(flat_index, self.in_features)
            outputs[which, :, rows] += steps[:, np.newaxis] * x[:, cols].T
        else:
            outputs[which, :, flat_index] += steps[:, np.newaxis]
        return outputs

    def backward(self, grad_output: np.ndarray, needs_input_grad: bool = True) -> np.ndarray:
        """``grad_output: (batch, out_features)`` -> ``grad_output @ W``, ``(batch, in_features)``
        (``None`` if not ``needs_input_grad``: a product as large as the forward, skipped)."""
        self._require_cache(self._x)
        if grad_output.shape != (len(self._x), self.out_features):
            raise ValueError(
                f"{self!r} expects grad_output of shape {(len(self._x), self.out_features)} "
                f"(its last output's), got {grad_output.shape}"
            )
        self.W.accumulate_product(grad_output.T, self._x)  # W.grad += grad_output.T @ x
        self.b.accumulate(np.add.reduce(grad_output, axis=0))  # b.grad += grad_output.sum(0)
        if not needs_input_grad:
            return None
        return grad_output @ self.W.value


@define(eq=False, on_setattr=NO_OP)
class ReLU(Layer):
    """``max(x, 0)``. Its derivative at exactly 0 is taken as 0."""

    rowwise: ClassVar[bool] = True

    kink_points: ClassVar[tuple[float, ...]] = (0.0,)

    _out: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._out = np.maximum(x, 0)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._out)
        return grad_output * (self._out > 0)  # the output is positive exactly where x > 0


@define(eq=False, on_setattr=NO_OP)
class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""

    rowwise: ClassVar[bool] = True

    kink_points: ClassVar[tuple[float, ...]] = (0.0,)

    negative_slope: float = field(
        default=0.01, converter=real_number("negative_slope"), validator=in_range(0.0)
    )
    _mask: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._mask = x > 0
        scaled = self.negative_slope * x
        return np.where(self._mask, x, scaled).astype(x.dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._mask)
        scaled = self.negative_slope * grad_output
        return np.where(self._mask, grad_output, scaled).astype(grad_output.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow or warnings for any finite ``x``."""
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


@define(eq=False, on_setattr=NO_OP)
class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``, computed without overflow for any finite input.

    As the last layer of a :class:`~minnet.Sequential` with :class:`~minnet.BCELoss`, it is fused
    with the loss (``BCELoss.fuses``): the model computes the loss from its input (the logits),
    which is exact even for extreme logits.
    """

    rowwise: ClassVar[bool] = True

    _out: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._out = sigmoid(x).astype(x.dtype, copy=False)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._out)
        return grad_output * self._out * (1 - self._out)


@define(eq=False, on_setattr=NO_OP)
class Tanh(Layer):
    """``tanh(x)``; its derivative is ``1 - tanh(x)**2``."""

    rowwise: ClassVar[bool] = True

    _out: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._out = np.tanh(x)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._out)
        return grad_output * (1 - self._out**2)


@define(eq=False, on_setattr=NO_OP)
class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``p`` and scale the rest
    by ``1 / (1 - p)``; in evaluation mode (``model.eval()``), pass the input through unchanged.

    The mask is drawn from ``seed`` (a numpy ``Generator`` or a seed) at every training forward,
    except inside :meth:`fixed_randomness`, where the last mask is reused: that is how the
    gradient check sees one fixed function. ``backward`` applies the mask of the last forward.
    """

    @property
    def rowwise(self) -> bool:  # the mask has the batch's shape: stacking copies changes it
        return not self.training or self.p == 0

    p: float = field(default=0.5, converter=real_number("p"), validator=in_range(0.0, 1.0))
    seed: np.random.Generator | int | None = field(
        default=None, converter=_as_rng, repr=False, kw_only=True
    )
    _scaled_mask: np.ndarray | None = field(default=None, init=False, repr=False)
    _holding: bool = field(default=False, init=False, repr=False)
    _passed_through: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def fixed_randomness(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._passed_through = not self.training or self.p == 0
        if self._passed_through:
            return x
        held = self._holding and self._scaled_mask is not None
        if not held or self._scaled_mask.shape != x.shape:
            keep = self.seed.random(x.shape) >= self.p
            self._scaled_mask = (keep / (1 - self.p)).astype(x.dtype)
        return x * self._scaled_mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self._passed_through:
            return grad_output
        self._require_cache(self._scaled_mask)
        return grad_output * self._scaled_mask


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z) / sum(exp(z))`` over the last axis, computed from ``z - max(z)``: no overflow, and
    exact rows summing to 1 for any finite logits (+-1000 included)."""
    shifted = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


@define(eq=False, on_setattr=NO_OP)
class Softmax(Layer):
    """Softmax over the last axis: ``(batch, classes)`` -> rows of probabilities summing to 1.

    Its backward is ``s * (g - sum(g * s))`` row by row. As the last layer of a model with
    :class:`~minnet.CrossEntropyLoss`, the model computes the loss from its input (the logits),
    exact and finite for any logits.
    """

    rowwise: ClassVar[bool] = True
    _out: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_input(self, x)
        self._out = softmax(x)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._out)
        s = self._out
        return s * (grad_output - np.sum(grad_output * s, axis=-1, keepdims=True))


__all__ = [
    "Dropout",
    "Layer",
    "is_rowwise",
    "Linear",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "sigmoid",
]
