"""Losses: a cost from a model's outputs and the targets, and its gradient.

A loss is an object with a contract, like a layer (see ``docs/losses.md``):

- ``forward(outputs, targets) -> float``: the loss, ``outputs`` of shape ``(m, k)`` and targets
  the loss accepts; keeps what ``backward`` needs;
- ``backward() -> ndarray``: the gradient of that value with respect to ``outputs``, ``(m, k)``;
- ``check_targets(targets, outputs_shape) -> ndarray``: the targets, checked and shaped
  (``(m, k)`` numbers, or ``(m,)`` class indices), or a ``ValueError`` saying what was expected
  and what came;
- ``task``, a class attribute: ``"binary"``, ``"multiclass"`` or ``"regression"`` (the
  default), which decides what ``predict``, ``evaluate`` and ``fit`` report.

Optionally, for speed, ``per_example(outputs, targets) -> (m,)``: one value per row, whose mean
is ``forward``'s value (the gradient check evaluates many perturbations at once with it).

A loss may also **fuse** with the model's final activation: when ``fuses`` names a layer class
and the model ends in exactly that class, the model hands the loss that layer's *input* through
``forward_fused`` (and ``per_example_fused``) and never runs the layer. :class:`BCELoss` fuses
with :class:`~minnet.Sigmoid`, :class:`CrossEntropyLoss` with :class:`~minnet.Softmax`,
:class:`NLLLoss` with :class:`~minnet.LogSoftmax`.

minnet's own losses are :class:`ReducedLoss` es, as PyTorch's are: a *term* per entry
(:class:`MSELoss`, :class:`L1Loss`, :class:`HuberLoss`, :class:`BCELoss`,
:class:`BCEWithLogitsLoss`) or per example (:class:`CrossEntropyLoss`, :class:`NLLLoss`,
:class:`MultiMarginLoss`), then a ``reduction``: ``"mean"`` (the default; with class weights,
PyTorch's weighted mean), ``"sum"`` or ``"none"`` (the terms themselves, an array).
"""

from __future__ import annotations

import inspect
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from . import _checks
from ._checks import as_array
from .layers import Layer, LogSoftmax, Sigmoid, Softmax, sigmoid
from .layers.activations import log_softmax
from .layers.base import constructor_arguments

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport

#: What a loss's outputs can be for (``Loss.task``).
TASKS = ("binary", "multiclass", "regression")
#: How a :class:`ReducedLoss` turns its terms into the loss (``reduction=``), as in PyTorch.
REDUCTIONS = ("mean", "sum", "none")
#: How far a probability target of :class:`CrossEntropyLoss` may be from the rules, for
#: rounding: each entry >= ``-PROBABILITY_TOLERANCE``, each row's sum within it of 1.
PROBABILITY_TOLERANCE = 1e-5


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow, exact for large ``|z|``.

    ``np.logaddexp(0, z)`` computes ``max(z, 0) + log1p(exp(-|z|))`` in one pass.
    """
    return np.logaddexp(0, z)


def _is_number(value: Any) -> bool:
    """Is ``value`` one real number (not a bool)? For the hints about PyTorch's argument order."""
    return isinstance(value, int | float | np.integer | np.floating) and not _checks.is_boolean(
        value
    )


def _pos_weights(pos_weight: Any) -> np.ndarray | None:
    """``pos_weight`` (``None``, a number or a 1-D array of numbers, each >= 0) as a float64
    array ``(1,)`` or ``(k,)``, else an error naming ``pos_weight``."""
    return _weights(
        "pos_weight",
        pos_weight,
        numbers="numbers",
        expected="None, a number or a 1-D array of numbers (one per output)",
        each="",
        scalar=True,
    )


def _weights(
    name: str, value: Any, *, numbers: str, expected: str, each: str, scalar: bool
) -> np.ndarray | None:
    """``value``: ``None``, or finite numbers >= 0 (a 1-D array, or with ``scalar`` one number
    too), as a float64 array ``(k,)``; else a TypeError or ValueError naming ``name``, saying
    what is ``expected`` (``numbers``: its short form; ``each``: what the numbers are for)."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be None or {numbers}, got {value!r}")
    array = as_array(value, name)
    if array.dtype.kind == "b":
        _checks.real_array(name, array)  # booleans are not weights: its TypeError
    dimensions = (0, 1) if scalar else (1,)
    if array.dtype.kind not in "iuf" or array.ndim not in dimensions or array.size == 0:
        raise ValueError(
            f"{name} must be {expected}, got "
            f"{'dtype ' + str(array.dtype) if array.dtype.kind not in 'iuf' else array.shape}"
        )
    array = np.array(array, dtype=np.float64).reshape(-1)
    _checks.finite(name, array)
    if np.any(array < 0):
        raise ValueError(f"{name} must be >= 0{each}, got a minimum of {array.min()}")
    return array


def _same_shape(loss: Loss, outputs: np.ndarray, targets: np.ndarray) -> None:
    if np.shape(outputs) != np.shape(targets):
        raise ValueError(
            f"{type(loss).__name__} needs predictions and targets of one shape, got "
            f"{np.shape(outputs)} and {np.shape(targets)}"
        )


class Loss:
    """Base class of all losses: subclasses implement :meth:`forward` and :meth:`backward`.

    ``outputs`` are ``(m, k)`` arrays: ``m`` examples, ``k`` outputs each. A loss written from
    this class returns the *mean* over the examples, so that its value does not grow with the
    batch (minnet's own losses take a ``reduction``: see :class:`ReducedLoss`).

    **The task.** The class attribute ``task`` says what the model's outputs are for, and so
    what ``predict`` gives and what ``evaluate`` and ``fit`` report:

    - ``"binary"``: 0/1 labels, one per output; ``predict`` thresholds, the metric is accuracy;
    - ``"multiclass"``: one class per row; ``predict`` gives the largest output's index, the
      metric is top-1 accuracy;
    - ``"regression"``: numbers; ``predict`` gives the outputs, the metric is R^2.

    A loss that does not set ``task`` is a regression loss: that is the default, and a
    classification loss of your own must say ``task = "binary"`` or ``task = "multiclass"``.
    Any other value is refused when the class is defined (a ``ValueError``).
    """

    #: The final activation this loss computes together with itself, or ``None``. A model ending
    #: in exactly this class (not a subclass: it may compute something else) passes the
    #: activation's input to :meth:`forward_fused` and never runs the activation.
    fuses: ClassVar[type[Layer] | None] = None
    #: What the model's outputs are for: one of ``TASKS`` (see the class docstring).
    task: ClassVar[str] = "regression"

    _grad: np.ndarray | None = None  # the gradient the last forward computed, for backward

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_task(cls.task, cls.__name__)

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this loss (see ``Layer.arguments``), those
        that differ from their defaults; arrays (class weights) as lists of numbers, so that
        ``type(loss)(**loss.arguments())`` is the same loss and a saved file holds plain JSON."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
        }
        given = {}
        for name, value in constructor_arguments(self).items():
            if isinstance(value, np.ndarray):
                given[name] = value.tolist()
            elif name not in defaults or value is not defaults[name] and value != defaults[name]:
                given[name] = value
        return given

    def __repr__(self) -> str:
        """``CrossEntropyLoss(label_smoothing=0.1)``: the class and :meth:`arguments`."""
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments().items())
        return f"{type(self).__name__}({shown})"

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The model's ``outputs: (m, k)`` as probabilities, for a model that does *not* end in
        the fused activation. This version: the outputs as they are; a loss that takes logits
        applies its link (sigmoid, softmax)."""
        return outputs

    def fused_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The fused activation's ``outputs: (m, k)`` as probabilities. This version: as they
        are (a Sigmoid or a Softmax gives probabilities); :class:`NLLLoss`: ``exp`` of the
        LogSoftmax's log-probabilities."""
        return outputs

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The mean loss of ``outputs: (m, k)`` against ``targets``; keeps what
        :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """The gradient of the last forward's value with respect to its first argument,
        of that argument's shape ``(m, k)``."""
        raise NotImplementedError

    def __call__(self, outputs: Any, targets: Any) -> Any:
        """``loss(outputs, targets)``: :meth:`forward` of checked arguments. ``outputs`` must be
        real numbers ``(m, k)``, and ``targets`` pass :meth:`check_targets` (the model's own
        rule for ``Y``), else a ``ValueError`` naming the argument; targets of the outputs'
        shape are taken in the outputs' float dtype.

        A model checks its targets once, in ``cost``/``fit``, and then calls :meth:`forward`
        (or :meth:`forward_fused`) itself: its training steps never check them again.
        """
        outputs, targets = self.check_call(outputs, targets)
        return self.forward(outputs, targets)

    def check_call(self, outputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(outputs, targets)`` checked for :meth:`__call__`: ``outputs`` as a real ``(m,
        k)`` array (floats, integers made float64), ``targets`` through :meth:`check_targets`."""
        outputs = as_array(outputs, "outputs")
        if outputs.dtype.kind not in "biuf":
            raise ValueError(
                f"{type(self).__name__}: outputs must be real numbers, got dtype {outputs.dtype}"
            )
        if outputs.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: outputs must have shape (m, k), one row per example, "
                f"got shape {outputs.shape}"
            )
        if outputs.dtype.kind != "f":
            outputs = outputs.astype(np.float64)
        try:
            targets = self.check_targets(targets, outputs.shape)
        except ValueError as err:
            raise ValueError(f"targets: {err}") from None
        if targets.shape == outputs.shape and targets.dtype != outputs.dtype:
            targets = _checks.cast_finite("targets", targets, outputs.dtype)
        return outputs, targets

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """``targets`` as an array of ``outputs_shape`` ``(m, k)``, else a ``ValueError``.

        This version accepts any finite real numbers, of shape ``(m, k)`` or, when ``k == 1``,
        ``(m,)`` (made a column). The array is returned as it is when it already fits (no copy,
        its own dtype). A loss with more rules (:class:`BCELoss`: numbers in [0, 1]) extends it;
        a loss of class indices uses :func:`class_indices`.
        """
        targets = self.shape_targets(targets, outputs_shape)
        _checks.finite("targets", targets)
        return targets

    def shape_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """Only the dtype and shape part of :meth:`check_targets`: real numbers, ``(m, k)``."""
        given = as_array(targets, "targets")
        name = type(self).__name__
        if given.dtype.kind not in "biuf":
            raise ValueError(f"{name} needs targets that are real numbers, got dtype {given.dtype}")
        m, k = outputs_shape
        shaped = given.reshape(-1, 1) if given.ndim == 1 and k == 1 else given
        if shaped.shape != (m, k):
            expected = f"({m},) or ({m}, 1)" if k == 1 else f"({m}, {k})"
            raise ValueError(
                f"{name} needs targets of shape {expected}, one row per example, got {given.shape}"
            )
        return shaped

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """The loss of each row, shape ``(m,)``, whose mean is :meth:`forward`'s value; or
        ``None``: not available (this version). Optional: only for speed."""
        return None

    def weighted(
        self, outputs: np.ndarray, targets: np.ndarray, sample_weight: np.ndarray, *, fused=False
    ) -> tuple[float, np.ndarray]:
        """After ``forward(outputs, targets)`` (``forward_fused`` with ``fused``): the loss with
        row ``i`` counted ``sample_weight[i]`` times (checked weights ``(m,)``), and ``(m,)``
        factors for the rows of :meth:`backward`'s gradient that make it that loss's gradient.

        A weight of 2 is the row counted twice. This version, for a loss that is a mean over its
        rows: ``sum(w * per_example) / sum(w)``, factors ``m * w / sum(w)``.
        """
        per_example = (self.per_example_fused if fused else self.per_example)(outputs, targets)
        if per_example is None:
            raise ValueError(
                f"sample_weight needs each example's loss, which {type(self).__name__} does not "
                "give (per_example)"
            )
        total = np.sum(sample_weight)
        scale = len(per_example) * sample_weight / total
        return float(np.sum(sample_weight * per_example) / total), scale

    def parts(
        self, value: float, m: int, sample_weight: np.ndarray | None = None
    ) -> tuple[float, float | None]:
        """The last forward's ``value`` (over ``m`` rows, or :meth:`weighted` by
        ``sample_weight``) as ``(total, count)``: ``value == total / count``, or ``count`` is
        ``None`` and ``value == total`` (a sum). The loss of several batches together is then
        ``sum(totals) / sum(counts)`` (``fit``'s epoch loss). This version, for a mean over the
        rows: ``count = m`` (``sum(w)`` with weights)."""
        count = float(m if sample_weight is None else np.sum(sample_weight))
        return value * count, count

    def fuses_with(self, layer: Layer) -> bool:
        """Does this loss take ``layer``'s input instead of its output (see ``fuses``)?"""
        return self.fuses is not None and type(layer) is self.fuses

    def forward_fused(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """``forward(activation(inputs), targets)``, computed from the activation's ``inputs:
        (m, k)``; the following :meth:`backward` gives the gradient with respect to ``inputs``."""
        raise NotImplementedError(f"{type(self).__name__} fuses with no activation")

    def per_example_fused(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """:meth:`per_example` from the fused activation's inputs, or ``None``."""
        return None

    def gradcheck(
        self, outputs: np.ndarray, targets: np.ndarray, *, fused: bool = False, **options: Any
    ) -> GradcheckReport:
        """Check :meth:`backward` against central differences of :meth:`forward` (or of
        :meth:`forward_fused`, with ``fused=True``) at ``outputs: (m, k)``, in float64.

        With ``reduction="none"`` the checked scalar is ``sum(G * forward(outputs, targets))``
        for a fixed random ``G`` (from the ``seed`` option), and the claimed gradient
        ``backward(G)``. See :func:`minnet.gradcheck.check_loss` for the options.
        """
        from .gradcheck import check_function, check_loss, inputs

        if getattr(self, "reduction", "mean") != "none":
            return check_loss(self, outputs, targets, fused=fused, **options)
        fused = inputs.fused_loss(self, fused)
        seed = options.get("seed", 0)
        seed = 0 if seed is None else _checks.whole_number("seed", seed, low=0)
        outputs = np.array(outputs, dtype=np.float64)
        inputs.finite_point("outputs", outputs)
        targets = np.array(self.check_targets(targets, outputs.shape), copy=True)
        if targets.shape == outputs.shape:
            targets = targets.astype(np.float64)
        forward = self.forward_fused if fused else self.forward
        values = forward(outputs, targets)
        G = np.random.default_rng(seed).standard_normal(np.shape(values))
        claimed = self.backward(G)
        return check_function(
            lambda o: float(np.sum(G * forward(o, targets))), outputs, claimed, **options
        )


def check_task(task: Any, owner: str) -> str:
    """``task`` if it is one of :data:`TASKS`, else a ``ValueError`` naming ``owner``."""
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(
            f"{owner}.task must be one of {list(TASKS)} (what predict, evaluate and fit report), "
            f"got {task!r}"
        )
    return task


def per_example_matches_forward(loss: Loss, fused: bool) -> bool:
    """Are ``loss``'s per-example values those of its forward (fused or not)?

    They are when the per-example method is defined by the class that defines the forward, or
    by a subclass of it: a subclass that changes ``forward`` but not ``per_example`` would give
    its parent's values.
    """
    forward, per_example = (
        ("forward_fused", "per_example_fused") if fused else ("forward", "per_example")
    )
    mro = type(loss).__mro__
    forward_owner = next(cls for cls in mro if forward in vars(cls))
    per_example_owner = next(cls for cls in mro if per_example in vars(cls))
    return issubclass(per_example_owner, forward_owner)


# -- losses made of terms and a reduction ------------------------------------------------------
class Terms(NamedTuple):
    """What a :class:`ReducedLoss` computes before its reduction.

    - ``values``: the terms, ``(m, k)`` (one per entry) or ``(m,)`` (one per example);
    - ``gradient``: the gradient of ``sum(values)`` with respect to the outputs, ``(m, k)``
      (``None`` when not asked for); row ``i`` is that of row ``i``'s terms alone;
    - ``weights``: ``(m,)``, the weights whose sum divides the ``"mean"`` (PyTorch's weighted
      mean with class weights), or ``None``: the mean divides by the number of terms.
    """

    values: np.ndarray
    gradient: np.ndarray | None
    weights: np.ndarray | None = None


class ReducedLoss(Loss, metaclass=ABCMeta):
    """A loss made of terms (:meth:`terms`), reduced by ``reduction``, as PyTorch's losses.

    - ``"mean"`` (the default): ``sum(values) / n``, ``n`` the number of terms, or, with class
      weights, the sum of the weights of the examples' classes (PyTorch's weighted mean);
    - ``"sum"``: ``sum(values)``;
    - ``"none"``: the terms themselves, an array of PyTorch's shape: ``(m, k)`` for a loss of
      one term per entry, ``(m,)`` for one per example. A model's ``cost`` is one number, so a
      :class:`~minnet.Sequential` refuses this reduction; use the loss directly.

    A subclass writes :meth:`terms` (and :meth:`fused_terms` if it fuses); this class gives
    :meth:`forward`, :meth:`backward`, :meth:`per_example` and their fused forms.
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _checks.one_of("reduction", reduction, REDUCTIONS)

    @abstractmethod
    def terms(self, outputs: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """The terms of ``outputs: (m, k)`` against checked ``targets``, and (``gradient``)
        the gradient of their sum."""
        raise NotImplementedError

    def fused_terms(self, inputs: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """:meth:`terms` of ``activation(inputs)``, computed from the fused activation's
        ``inputs: (m, k)``; the gradient is with respect to ``inputs``."""
        raise NotImplementedError(f"{type(self).__name__} fuses with no activation")

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> Any:
        """The reduced loss of ``outputs: (m, k)``: a float (``"mean"``, ``"sum"``) or the terms
        (``"none"``); keeps the gradient for :meth:`backward`."""
        return self.reduce(self.terms(outputs, targets), np.shape(outputs))

    def forward_fused(self, inputs: np.ndarray, targets: np.ndarray) -> Any:
        """:meth:`forward` from the fused activation's ``inputs: (m, k)``."""
        return self.reduce(self.fused_terms(inputs, targets), np.shape(inputs))

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """Each row's share of the loss times ``m``, ``(m,)``: their mean is :meth:`forward`'s
        value. ``None`` with ``reduction="none"``."""
        return self._shares(self.terms(outputs, targets, gradient=False), np.shape(outputs))

    def per_example_fused(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """:meth:`per_example` from the fused activation's ``inputs``."""
        return self._shares(self.fused_terms(inputs, targets, gradient=False), np.shape(inputs))

    def backward(self, grad_output: Any = None) -> np.ndarray:
        """The gradient of the last forward's value with respect to its first argument, ``(m,
        k)``. With ``reduction="none"``: of ``sum(grad_output * values)``, ``grad_output`` of the
        values' shape (all ones when not given), as ``values.backward(grad_output)`` in torch."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        if grad_output is None:
            return self._grad
        name = type(self).__name__
        grad_output = np.asarray(grad_output, dtype=self._grad.dtype)
        if self.reduction != "none":
            if grad_output.ndim:
                raise ValueError(
                    f"{name}.backward: the loss is one number, so grad_output must be one too, "
                    f"got shape {grad_output.shape}"
                )
            return self._grad * grad_output
        if grad_output.shape != self._values_shape:
            raise ValueError(
                f"{name}.backward: grad_output must have the shape of the losses, "
                f"{self._values_shape}, got {grad_output.shape}"
            )
        return self._grad * grad_output.reshape(len(grad_output), -1)

    def _denominator(self, terms: Terms, shape: tuple[int, ...]) -> float:
        """What the ``"mean"`` divides by, or a ``ValueError`` when it is 0."""
        if terms.weights is None:
            if terms.values.size == 0:
                name = type(self).__name__
                raise ValueError(f"{name} needs at least one row to take a mean, got shape {shape}")
            return float(terms.values.size)
        total = float(np.sum(terms.weights))
        if total == 0:
            name = type(self).__name__
            ignored = getattr(self, "ignore_index", None)
            raise ValueError(
                f"{name}: the weights of the targets' classes sum to 0"
                + ("" if ignored is None else f" (or every target is ignore_index={ignored})")
                + ", so their weighted mean is undefined (PyTorch gives NaN): give those "
                "classes weights > 0 or use reduction='sum'"
            )
        return total

    def weighted(
        self, outputs: np.ndarray, targets: np.ndarray, sample_weight: np.ndarray, *, fused=False
    ) -> tuple[float, np.ndarray]:
        """After ``forward(outputs, targets)`` (``forward_fused`` with ``fused``), from its
        terms: the reduction with row ``i``'s terms counted ``w_i = sample_weight[i]`` times,
        ``sum_i w_i l_i`` (``"sum"``) or ``sum_i w_i l_i / sum_i w_i n_i`` (``"mean"``, ``n_i``
        what row ``i`` adds to the denominator: its class weight, or its number of terms); and
        the factors of the rows of :meth:`backward`'s gradient that make it this value's."""
        total, count = self.parts(0.0, len(outputs), sample_weight)
        if count is None:
            return total, sample_weight
        return total / count, sample_weight * (
            self._denominator(self._terms, (len(outputs),)) / count
        )

    def parts(
        self, value: float, m: int, sample_weight: np.ndarray | None = None
    ) -> tuple[float, float | None]:
        """The last forward's reduction as ``(total, count)``, from its terms (``value`` and
        ``m`` are not needed): the sum of the terms and, for ``"mean"``, what it divides by
        (``None`` for ``"sum"``); with ``sample_weight``, of row ``i`` counted ``w_i`` times."""
        terms = getattr(self, "_terms", None)
        if terms is None or self.reduction == "none":
            raise ValueError(
                f"{type(self).__name__}.parts needs a forward first, with reduction 'mean' or "
                f"'sum', got reduction={self.reduction!r}"
            )
        if sample_weight is None:
            return self._parts  # kept by the forward
        values = terms.values
        rows = values if values.ndim == 1 else np.add.reduce(values, axis=1)
        total = float(np.dot(sample_weight, rows))
        if self.reduction == "sum":
            return total, None
        per_row = terms.weights
        if per_row is None:  # each row adds its number of terms to the mean's denominator
            per_row = values.size // max(len(values), 1)
        count = float(np.sum(sample_weight * per_row))
        if count == 0:
            raise ValueError(
                f"{type(self).__name__}: the rows of nonzero sample_weight all have classes of "
                "weight 0, so the weighted mean is undefined: give those classes weights > 0 "
                "or use reduction='sum'"
            )
        return total, count

    def reduce(self, terms: Terms, shape: tuple[int, ...]) -> Any:
        """What :meth:`forward` returns for the ``terms`` of outputs of ``shape``: their
        reduction; keeps the gradient for :meth:`backward` and the parts for :meth:`parts`."""
        values, gradient = terms.values, terms.gradient
        self._terms = terms  # for parts() and weighted()
        if self.reduction == "none":
            self._grad, self._values_shape = gradient, values.shape
            return values
        total = float(values.sum())
        if self.reduction == "sum":
            self._grad, self._parts = gradient, (total, None)
            return total
        count = self._denominator(terms, shape)
        self._grad, self._parts = gradient * (1.0 / count), (total, count)
        return total / count

    def _shares(self, terms: Terms, shape: tuple[int, ...]) -> np.ndarray | None:
        if self.reduction == "none":
            return None
        values = terms.values
        rows = values if values.ndim == 1 else np.sum(values, axis=1)
        scale = (
            len(rows) if self.reduction == "sum" else len(rows) / self._denominator(terms, shape)
        )
        return rows * scale


# -- one term per entry -------------------------------------------------------------------------
class MSELoss(ReducedLoss):
    """Squared error, as ``torch.nn.MSELoss``: terms ``(y_hat - y)**2`` with gradient
    ``2 (y_hat - y)``; ``"mean"`` over all ``m * k`` entries.

    For regression: ``targets`` are any finite numbers, ``(m,)`` or ``(m, 1)`` for a one-output
    model, ``(m, k)`` for ``k`` outputs.
    """

    def terms(self, outputs: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        _same_shape(self, outputs, targets)
        error = outputs - targets
        return Terms(error * error, 2.0 * error if gradient else None)


class L1Loss(ReducedLoss):
    """Absolute error (MAE), as ``torch.nn.L1Loss``: terms ``|y_hat - y|`` with gradient
    ``sign(y_hat - y)`` (0 where they are equal, as PyTorch); ``"mean"`` over all entries.

    Targets as :class:`MSELoss`'s: any finite numbers, ``(m,)`` or ``(m, k)``.
    """

    def terms(self, outputs: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        _same_shape(self, outputs, targets)
        error = outputs - targets
        return Terms(np.abs(error), np.sign(error) if gradient else None)


class HuberLoss(ReducedLoss):
    """Huber loss, as ``torch.nn.HuberLoss(reduction, delta)``: each term is ``0.5 d**2`` where
    ``|d| < delta`` and ``delta * (|d| - 0.5 delta)`` elsewhere, ``d = y_hat - y``: squared
    near the target, absolute far from it. Gradient ``clip(d, -delta, delta)``; ``"mean"`` over
    all entries. ``delta > 0``; targets as :class:`MSELoss`'s.

    The arguments are in PyTorch's order, ``reduction`` first: give ``delta`` by name,
    ``HuberLoss(delta=0.5)``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        if _is_number(reduction):
            raise ValueError(
                f"HuberLoss's first argument is reduction, as in PyTorch, got {reduction!r}: "
                f"give delta by name, HuberLoss(delta={reduction!r})"
            )
        super().__init__(reduction)
        self.delta = _checks.real_number("delta", delta, 0.0, low_open=True)

    def terms(self, outputs: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        _same_shape(self, outputs, targets)
        delta, d = self.delta, outputs - targets
        size = np.abs(d)
        values = np.where(size < delta, 0.5 * d * d, delta * (size - 0.5 * delta))
        return Terms(values, np.clip(d, -delta, delta) if gradient else None)


class BCELoss(ReducedLoss):
    """Binary cross-entropy: terms ``-(y*log(p) + (1-y)*log(1-p))``, ``"mean"`` over all entries.

    ``targets`` are numbers in [0, 1] (0/1 labels, or soft labels), of shape ``(m,)`` or
    ``(m, k)`` for ``k`` outputs.

    **It fuses with a final** :class:`~minnet.Sigmoid` (``fuses = Sigmoid``): a model that ends
    in a ``Sigmoid`` gives :meth:`forward_fused` the sigmoid's input, the logits ``z``, and the
    terms are ``softplus(z) - y*z``: exact and finite for any finite ``z``, with gradient
    ``sigmoid(z) - y`` with respect to ``z``. The model never runs that ``Sigmoid`` in
    :meth:`~minnet.Sequential.cost`, only in ``forward`` and ``predict_proba``.

    Without a final Sigmoid, :meth:`forward` takes probabilities ``p`` in ``[0, 1]``, with each
    log clamped at -100, as PyTorch's ``BCELoss`` does.

    ``pos_weight`` (``None``, or numbers >= 0: one, or one per output) weighs the positive part
    of each term, ``-(pos_weight * y * log(p) + (1 - y) * log(1 - p))``, as
    ``torch.nn.BCEWithLogitsLoss(pos_weight=)`` does (torch's ``BCELoss`` has none: minnet's has
    it for the fused form, which *is* a loss of logits); the ``"mean"`` still divides by the
    number of entries.

    :meth:`backward` returns the gradient with respect to whichever input the last forward took.
    """

    fuses: ClassVar[type[Layer] | None] = Sigmoid
    task: ClassVar[str] = "binary"

    def __init__(self, reduction: str = "mean", *, pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.pos_weight = _pos_weights(pos_weight)

    def check_call(self, outputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Loss.check_call`, with ``pos_weight`` checked against the outputs first."""
        if isinstance(outputs, np.ndarray) and outputs.ndim == 2:
            self._positive_weight(outputs.shape)
        return super().check_call(outputs, targets)

    def _positive_weight(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """``pos_weight``, checked to be one number or one per output of ``shape: (m, k)``."""
        if self.pos_weight is not None and len(self.pos_weight) not in (1, shape[-1]):
            raise ValueError(
                f"{type(self).__name__}: pos_weight has {len(self.pos_weight)} entries, but the "
                f"outputs have {shape[-1]} (one pos_weight, or one per output)"
            )
        return self.pos_weight

    def _positive_weight_in(self, outputs: np.ndarray) -> np.ndarray | None:
        """:meth:`_positive_weight` for ``outputs``, in their float dtype (the terms keep it)."""
        pos_weight = self._positive_weight(np.shape(outputs))
        return None if pos_weight is None else pos_weight.astype(outputs.dtype, copy=False)

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """``targets: (m,)`` or ``(m, k)`` as ``(m, k)``, numbers in [0, 1], else ValueError."""
        given = as_array(targets, "targets")
        m, k = outputs_shape
        if k > 1 and given.shape == (m,) and given.dtype.kind in "biuf":
            raise ValueError(
                f"{type(self).__name__} needs one 0/1 label per output, shape ({m}, {k}) for "
                f"{k} outputs, got {given.shape}: for one class per row (indices in [0, {k})), "
                "use loss=CrossEntropyLoss()"
            )
        targets = self.shape_targets(given, outputs_shape)
        if targets.size == 0:
            return targets
        low, high = np.minimum.reduce(targets, axis=None), np.maximum.reduce(targets, axis=None)
        if not 0 <= low <= high <= 1:  # also false for a NaN
            _checks.finite("targets", targets)
            raise ValueError(
                f"{type(self).__name__} needs targets in [0, 1] (labels or probabilities), got "
                f"values from {low} to {high}"
            )
        return targets

    def fused_terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """The terms from the logits ``z: (m, k)``, the input of the fused Sigmoid:
        ``softplus(z) - y*z``, with gradient ``sigmoid(z) - y``."""
        _same_shape(self, logits, targets)
        if self.pos_weight is not None:
            return self._weighted_fused_terms(logits, targets, gradient)
        log_one_plus_exp = softplus(logits)
        values = log_one_plus_exp - targets * logits
        if not gradient:
            return Terms(values, None)
        # sigmoid(z) = exp(z - softplus(z)): the exponent is <= 0, so exp never overflows
        return Terms(values, np.exp(logits - log_one_plus_exp) - targets)

    def _weighted_fused_terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool):
        """:meth:`fused_terms` with ``pos_weight``: ``pw*y*softplus(-z) + (1-y)*softplus(z)``
        (``softplus(-z) = softplus(z) - z``), gradient ``(pw*y + 1-y) * sigmoid(z) - pw*y``."""
        positive = self._positive_weight_in(logits) * targets
        scale = positive + (1 - targets)
        log_one_plus_exp = softplus(logits)
        values = scale * log_one_plus_exp - positive * logits
        if not gradient:
            return Terms(values, None)
        return Terms(values, scale * np.exp(logits - log_one_plus_exp) - positive)

    def terms(self, p: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """The terms from probabilities ``p: (m, k)`` in [0, 1], each log clamped at -100."""
        _same_shape(self, p, targets)
        if np.any((p < 0) | (p > 1)):
            raise ValueError(
                "BCELoss.forward expects probabilities in [0, 1], got values from "
                f"{p.min()} to {p.max()}; end the model with a Sigmoid layer"
            )
        pos_weight = self._positive_weight_in(p)
        positive = targets if pos_weight is None else pos_weight * targets
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100.0)
            log_not_p = np.maximum(np.log1p(-p), -100.0)
        values = -(positive * log_p + (1 - targets) * log_not_p)
        if not gradient:
            return Terms(values, None)
        if pos_weight is None:
            return Terms(values, (p - targets) / np.maximum(p * (1 - p), 1e-12))
        scale = positive + (1 - targets)
        return Terms(values, (scale * p - positive) / np.maximum(p * (1 - p), 1e-12))


class BCEWithLogitsLoss(BCELoss):
    """Binary cross-entropy that takes **logits**, as ``torch.nn.BCEWithLogitsLoss``: for a model
    without a final Sigmoid. Terms ``softplus(z) - y*z``, which never overflow for finite
    logits; each is within a rounding of ``|z|`` of the true value (``z = 40, y = 1``: 0, where
    torch's ``log1p(exp(-z))`` keeps ``4.2e-18``). ``targets`` in [0, 1], ``(m,)`` or
    ``(m, k)``. ``pos_weight`` as torch's (see :class:`BCELoss`): terms
    ``pw*y*softplus(-z) + (1-y)*softplus(z)``."""

    fuses: ClassVar[type[Layer] | None] = None

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``sigmoid(logits)``."""
        return sigmoid(logits)

    def terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        return self.fused_terms(logits, targets, gradient)


# -- one term per example: class indices --------------------------------------------------------
def _picked(targets: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """``targets`` with the ignored ones (``kept`` false) made class 0, for indexing: their
    rows' weights are 0, so what they pick counts for nothing."""
    return targets if kept is None else np.where(kept, targets, 0)


def class_indices(
    targets: Any,
    outputs_shape: tuple[int, int],
    loss_name: str = "the loss",
    ignore_index: int | None = None,
) -> np.ndarray:
    """``targets`` as class indices ``(m,)``, int64, each in ``[0, C)`` for ``outputs_shape ==
    (m, C)`` or equal to ``ignore_index`` (if given); else a ``ValueError`` naming
    ``loss_name``. Whole floats (``2.0``) are accepted.

    The ``check_targets`` of a loss that takes one class per row (write your own with it).
    """
    given = as_array(targets, "targets")
    m, classes = outputs_shape
    if given.dtype.kind not in "biuf":
        raise ValueError(f"{loss_name} needs class indices, got dtype {given.dtype}")
    if given.shape != (m,):
        raise ValueError(
            f"{loss_name} needs class indices of shape ({m},), one per row, got {given.shape}"
        )
    _checks.finite("targets", given)
    indices = given.astype(np.int64)
    if given.dtype.kind == "f" and not np.array_equal(indices, given):
        raise ValueError(
            f"{loss_name} needs class indices that are whole numbers, got "
            f"{given[indices != given][:3].tolist()}"
        )
    checked = indices if ignore_index is None else indices[indices != ignore_index]
    if checked.size and not 0 <= checked.min() <= checked.max() < classes:
        ignored = "" if ignore_index is None else f" (and ignore_index={ignore_index}, left out)"
        raise ValueError(
            f"{loss_name} needs class indices in [0, {classes}) for {classes} outputs, got "
            f"values from {checked.min()} to {checked.max()}{ignored}"
        )
    return indices


def class_weights(weight: Any) -> np.ndarray | None:
    """``weight`` (``None``, or one number >= 0 per class) as a float64 array, else a
    ``ValueError`` naming ``weight``."""
    return _weights(
        "weight",
        weight,
        numbers="one number per class",
        expected="None or a 1-D array of numbers, one per class",
        each=" for every class",
        scalar=False,
    )


class ClassLoss(ReducedLoss):
    """A loss of one term per example, for outputs ``(m, C)`` over ``C`` classes, with optional
    class weights ``weight: (C,)``. ``task = "multiclass"``; targets are class indices ``(m,)``
    (:func:`class_indices`)."""

    task: ClassVar[str] = "multiclass"
    #: The target value whose rows are left out (``NLLLoss`` and ``CrossEntropyLoss`` take it
    #: as an argument, as in PyTorch); ``None``: every target is a class.
    ignore_index: int | None = None

    def __init__(self, weight: Any = None, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = class_weights(weight)

    def check_call(self, outputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Loss.check_call`, with the class weights checked against the outputs'
        classes first (a wrong ``weight`` is not the targets' fault)."""
        shape = np.shape(outputs) if isinstance(outputs, np.ndarray) else None
        if shape is not None and len(shape) == 2:
            self._class_weight(shape)
        return super().check_call(outputs, targets)

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """Class indices ``(m,)`` as int64 (or :attr:`ignore_index`), else ValueError."""
        self._class_weight(outputs_shape)
        return class_indices(targets, outputs_shape, type(self).__name__, self.ignore_index)

    def _class_weight(self, outputs_shape: tuple[int, ...]) -> np.ndarray | None:
        """The weights, checked to be one per class of ``outputs_shape: (m, C)``."""
        if len(outputs_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} needs outputs (m, C), got shape {outputs_shape}"
            )
        if self.weight is not None and len(self.weight) != outputs_shape[1]:
            raise ValueError(
                f"{type(self).__name__}: weight has {len(self.weight)} entries, but the outputs "
                f"have {outputs_shape[1]} classes (one weight per class)"
            )
        return self.weight

    def _indexed(
        self, outputs: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Check ``outputs: (m, C)`` against class indices ``targets: (m,)``; return each
        row's class weight ``(m,)`` (``None`` without weights), 0 for a row whose target is
        :attr:`ignore_index`, and which rows count (:meth:`_kept`)."""
        weight = self._class_weight(np.shape(outputs))
        if targets.shape != (len(outputs),) or targets.dtype.kind not in "iu":
            raise ValueError(
                f"{type(self).__name__} needs class indices of shape ({len(outputs)},), got "
                f"{targets.dtype} of shape {targets.shape}"
            )
        kept = self._kept(targets)
        if kept is None:
            return (None if weight is None else weight[targets]), None
        if weight is None:
            return kept.astype(outputs.dtype), kept
        return np.where(kept, weight[np.where(kept, targets, 0)], 0.0), kept

    def _kept(self, targets: np.ndarray) -> np.ndarray | None:
        """``targets != ignore_index`` for class indices ``(m,)``, or ``None`` when every row
        counts (no ``ignore_index``, or no target equal to it)."""
        if self.ignore_index is None or targets.ndim != 1:
            return None
        kept = targets != self.ignore_index
        return None if kept.all() else kept


class NLLLoss(ClassLoss):
    """Negative log-likelihood, as ``torch.nn.NLLLoss(weight)``: the outputs are
    log-probabilities ``(m, C)`` (after a :class:`~minnet.LogSoftmax`), the targets class
    indices ``(m,)``; the term of row ``i`` is ``-w[y_i] * outputs[i, y_i]``, and ``"mean"``
    divides their sum by ``sum_i w[y_i]`` (the weighted mean; ``m`` without weights).

    A row whose target is ``ignore_index`` (PyTorch's default, -100) counts for nothing: its
    term and gradient are 0, and the ``"mean"`` leaves it out of its denominator.

    **It fuses with a final** :class:`~minnet.LogSoftmax`: the model hands the loss the logits
    ``z``, and the gradient ``w[y] * (softmax(z) - onehot(y))`` is taken with respect to them;
    the same numbers as :class:`CrossEntropyLoss` on those logits.
    """

    fuses: ClassVar[type[Layer] | None] = LogSoftmax

    def __init__(
        self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(weight, reduction=reduction)
        self.ignore_index = _checks.whole_number("ignore_index", ignore_index)

    def terms(self, log_p: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        row_weight, kept = self._indexed(log_p, targets)
        rows = np.arange(len(log_p))
        classes = _picked(targets, kept)
        scale = 1.0 if row_weight is None else row_weight
        values = -scale * log_p[rows, classes]
        grad = None
        if gradient:
            grad = np.zeros_like(log_p)
            grad[rows, classes] = -scale
        return Terms(values, grad, row_weight)

    def fused_terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """The terms of ``log_softmax(logits)``; the gradient with respect to the logits."""
        self._indexed(logits, targets)
        log_p = log_softmax(logits)
        values, grad, row_weight = self.terms(log_p, targets, gradient)
        if gradient:  # d(-w_y log_softmax(z)_y)/dz = w_y (softmax(z) - onehot(y))
            scale = 1.0 if row_weight is None else row_weight[:, None]
            grad = np.exp(log_p) * scale + grad
        return Terms(values, grad, row_weight)

    def probabilities(self, log_p: np.ndarray) -> np.ndarray:
        """``exp(log_p)``: the outputs are log-probabilities."""
        return np.exp(log_p)

    def fused_probabilities(self, log_p: np.ndarray) -> np.ndarray:
        """``exp`` of the LogSoftmax's output."""
        return np.exp(log_p)


class CrossEntropyLoss(ClassLoss):
    """Cross-entropy over ``C`` classes, with PyTorch's semantics and numbers.

    It takes **logits** ``z: (m, C)``, as ``torch.nn.CrossEntropyLoss`` does, and ``targets``
    either as class indices ``(m,)`` (integers in ``[0, C)``) or as probabilities ``(m, C)``
    (rows of non-negative numbers summing to 1, each within :data:`PROBABILITY_TOLERANCE`, for
    rounding; PyTorch checks neither). With ``label_smoothing = e``, the target
    distribution is ``q = (1 - e) * onehot + e / C``. With class weights ``w: (C,)``, the term of
    row ``i`` is ``-sum_c w_c q_ic log_softmax(z_i)_c`` (for class indices: ``(1 - e) w[y_i]
    nll_i + e / C * sum_c w_c nll_ic``), and ``"mean"`` divides by ``sum_i w[y_i]`` for class
    indices (PyTorch's weighted mean), by ``m`` for probabilities. Without weights, ``w = 1``.
    A row whose class index is ``ignore_index`` (PyTorch's default, -100) counts for nothing:
    term and gradient 0, and left out of the ``"mean"``'s denominator.

    **It fuses with a final** :class:`~minnet.Softmax` (``fuses = Softmax``): a model that ends in
    a ``Softmax`` (so that ``predict_proba`` gives probabilities) computes the loss from the
    softmax's input, the logits, with ``log_softmax``: exact and finite for any finite logits,
    where ``log`` of a rounded probability would give ``-inf``. A model without a final Softmax
    gives its outputs to :meth:`forward` as logits: the same computation.
    """

    fuses: ClassVar[type[Layer] | None] = Softmax

    def __init__(
        self,
        weight: Any = None,
        *,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, reduction=reduction)
        self.ignore_index = _checks.whole_number("ignore_index", ignore_index)
        self.label_smoothing = _checks.real_number(
            "label_smoothing", label_smoothing, 0.0, 1.0, high_open=False
        )

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """Class indices ``(m,)`` as int64, or probabilities ``(m, C)``; else ValueError."""
        given = as_array(targets, "targets")
        m, classes = outputs_shape
        if given.dtype.kind not in "biuf":
            raise ValueError(
                f"{type(self).__name__} needs class indices or probabilities, got dtype "
                f"{given.dtype}"
            )
        if given.shape == (m,):
            return super().check_targets(given, outputs_shape)
        self._class_weight(outputs_shape)
        if given.shape == (m, classes) and (classes > 1 or m != 1):
            _checks.finite("targets", given)
            probabilities = given.astype(np.float64, copy=False)
            tol = PROBABILITY_TOLERANCE
            sums = probabilities.sum(axis=1)
            if probabilities.size and (
                probabilities.min() < -tol or np.max(np.abs(sums - 1.0)) > tol
            ):
                raise ValueError(
                    "CrossEntropyLoss needs probability targets: rows of numbers >= 0 summing "
                    f"to 1, got row sums from {sums.min()} to {sums.max()} and a smallest entry "
                    f"{probabilities.min()} (each rule within {tol:g}, for rounding)"
                )
            return probabilities
        raise ValueError(
            f"CrossEntropyLoss needs class indices of shape ({m},) or probabilities of shape "
            f"({m}, {classes}), got {given.shape}"
        )

    def terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """Each row's term, ``(m,)``, and the gradient of their sum, ``softmax(z) * sum_c(w_c
        q_c) - w * q`` row by row.

        ``log_softmax(z) = shifted - log(sum(exp(shifted)))`` with ``shifted = z - max(z)``:
        every exponent is <= 0, so nothing overflows, and the log never sees a rounded 0.
        Class indices are never made one-hot: the row's term picks its class's entry.
        """
        if logits.ndim != 2 or len(targets) != len(logits):
            raise ValueError(
                f"CrossEntropyLoss needs logits (m, C) and targets for m rows, got "
                f"{np.shape(logits)} and {np.shape(targets)}"
            )
        m, classes = logits.shape
        weight = self._class_weight(logits.shape)
        smoothing = self.label_smoothing
        shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = np.add.reduce(exp, axis=1, keepdims=True)
        log_p = shifted - np.log(sums)  # log_softmax(z)
        if targets.ndim == 1:  # class indices
            row_weight, kept = self._indexed(logits, targets)
            targets = _picked(targets, kept)
            rows = np.arange(m)
            w_y = 1.0 if row_weight is None else row_weight
            values = -w_y * log_p[rows, targets]
            if smoothing:
                spread = np.add.reduce(log_p if weight is None else log_p * weight, axis=1)
                if kept is not None:
                    spread *= kept
                values = (1 - smoothing) * values - smoothing / classes * spread
            grad = None
            if gradient:
                grad = np.divide(exp, sums, out=exp)  # softmax(z)
                if smoothing or row_weight is not None:  # (else each row's total is 1)
                    total = (1 - smoothing) * w_y
                    if smoothing:
                        total = total + smoothing / classes * (
                            (classes if weight is None else weight.sum())
                            * (1.0 if kept is None else kept)
                        )
                    grad *= total if np.ndim(total) == 0 else total[:, None]
                grad[rows, targets] -= (1 - smoothing) * w_y
                if smoothing:
                    spread_grad = smoothing / classes * (1.0 if weight is None else weight)
                    grad -= spread_grad if kept is None else np.outer(kept, spread_grad)
            return Terms(values, grad, row_weight)
        q = targets.astype(logits.dtype, copy=True)  # probabilities: q = (1 - e) * q + e / C
        if smoothing:
            q *= 1 - smoothing
            q += smoothing / classes
        if weight is not None:
            q *= weight
        values = -np.add.reduce(q * log_p, axis=1)
        grad = None
        if gradient:
            grad = np.divide(exp, sums, out=exp)
            grad *= np.add.reduce(q, axis=1, keepdims=True)  # 1 without weights, up to rounding
            grad -= q
        return Terms(values, grad)

    def fused_terms(self, logits: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        """The terms from the fused Softmax's input: the same as :meth:`terms`."""
        return self.terms(logits, targets, gradient)

    def forward_fused(self, logits: np.ndarray, targets: np.ndarray) -> Any:
        """The loss from the fused Softmax's input: :meth:`forward` itself."""
        return self.forward(logits, targets)

    def per_example_fused(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        return self.per_example(logits, targets)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``softmax(logits)`` row by row."""
        return np.exp(log_softmax(logits))


class MultiMarginLoss(ClassLoss):
    """The multi-class hinge loss, as ``torch.nn.MultiMarginLoss(p, margin, weight)``: for class
    scores ``x: (m, C)`` and class indices ``y: (m,)``, the term of row ``i`` is

    ``w[y_i] / C * sum_{j != y_i} max(0, margin - x[i, y_i] + x[i, j]) ** p``

    (``p`` 1 or 2; ``w = 1`` without weights), and ``"mean"`` divides by ``m`` (also with
    weights, as PyTorch). CS231n's multi-class SVM loss (its ``delta`` is ``margin``) is this
    loss times ``C``. The scores are not probabilities: ``predict_proba`` is refused.

    The arguments are in PyTorch's order, ``p`` first: give ``margin`` by name,
    ``MultiMarginLoss(margin=0.5)``.
    """

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight: Any = None,
        *,
        reduction: str = "mean",
    ) -> None:
        if _checks.is_boolean(p) or not isinstance(p, int | np.integer) or p not in (1, 2):
            hint = (
                f" (the first argument is p, as in PyTorch: for a margin of {p!r}, write "
                f"MultiMarginLoss(margin={p!r}))"
                if isinstance(p, float | np.floating)
                else ""
            )
            raise ValueError(
                f"p must be 1 or 2 (PyTorch's choices, whole numbers), got {p!r}{hint}"
            )
        super().__init__(weight, reduction=reduction)
        self.p = int(p)
        self.margin = _checks.real_number("margin", margin)

    def terms(self, scores: np.ndarray, targets: np.ndarray, gradient: bool = True) -> Terms:
        row_weight, _ = self._indexed(scores, targets)
        m, classes = scores.shape
        rows = np.arange(m)
        hinge = self.margin - scores[rows, targets][:, None] + scores  # (m, C)
        hinge[rows, targets] = 0.0  # the class itself is not a margin
        active = np.maximum(hinge, 0.0)
        scale = (1.0 if row_weight is None else row_weight[:, None]) / classes
        values = np.sum(active**self.p * scale, axis=1)
        grad = None
        if gradient:
            grad = (active if self.p == 2 else (hinge > 0)) * (self.p * scale)
            grad[rows, targets] -= grad.sum(axis=1)
        return Terms(values, grad)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        raise ValueError(
            "MultiMarginLoss gives class scores, not probabilities: use predict for the classes"
        )


__all__ = [
    "PROBABILITY_TOLERANCE",
    "REDUCTIONS",
    "TASKS",
    "BCELoss",
    "BCEWithLogitsLoss",
    "ClassLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "L1Loss",
    "Loss",
    "MSELoss",
    "MultiMarginLoss",
    "NLLLoss",
    "ReducedLoss",
    "Terms",
    "check_task",
    "class_indices",
    "class_weights",
    "log_softmax",
    "per_example_matches_forward",
    "softplus",
]
