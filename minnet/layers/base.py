"""The ``Layer`` contract.

A layer is four ideas (see ``docs/layers.md``):

1. subclass :class:`Layer`;
2. keep its :class:`~minnet.Parameter` objects as attributes (``self.W = Parameter(...)``);
3. ``forward(x)`` computes the output and keeps what backward needs (``self.x = x``);
4. ``backward(grad_output)`` *adds* each parameter's gradient (``self.W.grad += ...``) and
   returns the gradient with respect to the input.

Everything else has a default that works: parameters are found by walking the attributes,
``train()`` / ``eval()`` set :attr:`Layer.training`, a layer has no buffers unless it lists them
in :meth:`Layer.named_buffers`, and its constructor arguments (for ``repr`` and saving) are the
attributes named like the ``__init__`` arguments, scikit-learn's convention.

Data is batch-first: ``x`` has shape ``(batch, features)``, or ``(batch, channels, height,
width)`` for images (:meth:`Layer.output_shape` says what a layer makes of a shape).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _checks
from ..parameter import Parameter

if TYPE_CHECKING:
    from ..gradcheck import GradcheckReport


class MissingForwardError(RuntimeError, AttributeError):
    """An attribute a layer's forward sets was read before any forward (a ``RuntimeError``, and
    an ``AttributeError`` so that ``hasattr`` still works)."""


class Layer:
    """Base class of all layers: subclasses implement :meth:`forward` and :meth:`backward`."""

    #: Training (``True``) or evaluation (``False``) behaviour; set by :meth:`train`.
    training: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (batch, in_features)`` -> ``(batch, out_features)``; keeps what backward needs."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """``grad_output: (batch, out_features)`` -> input gradient ``(batch, in_features)``.

        Adds each parameter's gradient into its ``.grad`` (``p.grad += ...``), using what the
        last :meth:`forward` kept.
        """
        raise NotImplementedError(f"{type(self).__name__} must define backward(grad_output)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __getattr__(self, name: str) -> Any:
        # Only for attributes that do not exist. Read while this layer's backward runs, it is
        # typically what forward keeps, and backward ran first; otherwise a plain typo.
        if name.startswith("__") or not _in_backward(self):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        raise MissingForwardError(
            f"{type(self).__name__} has no attribute {name!r}: if forward() sets it, "
            "backward() was called before forward()"
        )

    # -- what a model and an optimizer need, found for you --------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` for every parameter among the attributes, in the order they
        were set; inside a layer held by this one (``self.fc = Linear(...)``: ``"fc.W"``) and
        inside lists, tuples and dicts (``self.ws = [Parameter(...)]``: ``"ws.0"``). A
        parameter reachable twice is yielded once, under its first name."""
        yield from _named_parameters(self, "", set())

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` for the arrays the layer keeps besides its parameters and that a
        saved model must keep too (a batch norm's running statistics). None by default."""
        return iter(())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Layer:
        """Switch to training (``True``) or evaluation (``False``) behaviour; returns ``self``."""
        self.training = _checks.flag("mode", mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def output_features(self, in_features: int | None) -> int | None:
        """The number of output features for ``in_features`` inputs (``None``: not known).

        Raises ``ValueError`` if the layer cannot take that many. This version keeps the size,
        as an elementwise layer does.
        """
        return in_features

    def output_shape(self, input_shape: Shape) -> Shape:
        """One example's output shape for one example's input shape (the batch axis left out;
        ``None`` for what is not known). ``ValueError`` if the layer cannot take it. This
        version: :func:`rows_output_shape` (image layers such as ``Conv2d`` override it)."""
        return rows_output_shape(self, input_shape)

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer: each ``__init__`` argument that
        the layer keeps as an attribute of the same name (``self.n_in = n_in``)."""
        return constructor_arguments(self)

    def __repr__(self) -> str:
        return described(self)

    def gradcheck(self, x: np.ndarray, **options: Any) -> GradcheckReport:
        """Check every parameter's gradient and the input gradient numerically.

        See :func:`minnet.gradcheck.check_layer` for the options.
        """
        from ..gradcheck import check_layer

        return check_layer(self, x, **options)


Shape = tuple[int | None, ...] | None  # one example's shape (the batch axis left out)


def rows_output_shape(layer: Layer, input_shape: Shape) -> Shape:
    """:meth:`Layer.output_shape` for a layer of rows: for ``(features,)`` it asks
    ``layer.output_features``; a layer that does not override ``output_features`` is
    elementwise and keeps any shape; one that does takes rows only."""
    if input_shape is None:
        features = layer.output_features(None)
        return None if features is None else (features,)
    if len(input_shape) == 1:
        return (layer.output_features(input_shape[0]),)
    if type(layer).output_features is not Layer.output_features:
        raise ValueError(
            f"{layer!r} takes rows of shape (batch, features), got "
            f"(batch, {', '.join(map(str, input_shape))}) (a Flatten() before it makes rows)"
        )
    return tuple(input_shape)


def _in_backward(layer: Layer) -> bool:
    """Is a backward of ``layer`` running: a function named ``...backward`` that holds it,
    anywhere up the call stack?"""
    frame = inspect.currentframe().f_back.f_back  # the caller of __getattr__
    while frame is not None:
        if frame.f_code.co_name.endswith("backward") and any(
            value is layer for value in frame.f_locals.values()
        ):
            return True
        frame = frame.f_back
    return False


def constructor_arguments(obj: Any) -> dict[str, Any]:
    """``{name: obj.name}`` for each argument of ``type(obj).__init__`` that ``obj`` keeps as an
    attribute of the same name (scikit-learn's convention for ``get_params``)."""
    if type(obj).__init__ is object.__init__:
        return {}
    signature = inspect.signature(type(obj).__init__)
    return {
        name: getattr(obj, name)
        for name, parameter in list(signature.parameters.items())[1:]
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and hasattr(obj, name)
    }


def described(obj: Any) -> str:
    """``ClassName(arg=value, ...)`` from :func:`constructor_arguments` (random generators and
    dtypes left out, arrays shown as ``<array>``)."""
    shown = ", ".join(
        f"{name}={'<array>' if isinstance(value, np.ndarray) else repr(value)}"
        for name, value in constructor_arguments(obj).items()
        if not isinstance(value, np.random.Generator | np.dtype)
    )
    return f"{type(obj).__name__}({shown})"


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
        for name, value in list(vars(holder).items()):
            yield from _named_parameters(value, dot + name, seen)
    elif isinstance(holder, list | tuple | dict):
        seen.add(id(holder))
        items = holder.items() if isinstance(holder, dict) else enumerate(holder)
        for key, value in items:
            yield from _named_parameters(value, f"{prefix}.{key}", seen)


__all__ = [
    "Layer",
    "MissingForwardError",
    "Shape",
    "constructor_arguments",
    "described",
    "rows_output_shape",
]
