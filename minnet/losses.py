"""Losses: a scalar cost from a model's outputs and the targets, and its gradient.

A loss is an object with a contract, like a layer (see ``docs/losses.md``):

- ``forward(outputs, targets) -> float``: the mean loss, ``outputs`` and ``targets`` of one shape
  ``(m, k)``; keeps what ``backward`` needs;
- ``backward() -> ndarray``: the gradient of that value with respect to ``outputs``, ``(m, k)``;
- ``check_targets(targets, outputs_shape) -> ndarray``: the targets, checked and shaped
  ``(m, k)``, or a ``ValueError`` saying what was expected and what came.

Optionally, for speed, ``per_example(outputs, targets) -> (m,)``: one value per row, whose mean
is ``forward``'s value (the gradient check evaluates many perturbations at once with it).

A loss may also **fuse** with the model's final activation: when ``fuses`` names a layer class
and the model ends in exactly that class, the model hands the loss that layer's *input* through
``forward_fused`` (and ``per_example_fused``) and never runs the layer. :class:`BCELoss` fuses
with :class:`~minnet.Sigmoid`: binary cross-entropy from the logits is exact where the
sigmoid's output would round to 0 or 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _checks
from ._checks import as_array
from .layers import Layer, Sigmoid, Softmax, sigmoid
from .layers.base import constructor_arguments, described

if TYPE_CHECKING:
    from .gradcheck import GradcheckReport


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow, exact for large ``|z|``.

    ``np.logaddexp(0, z)`` computes ``max(z, 0) + log1p(exp(-|z|))`` in one pass.
    """
    return np.logaddexp(0, z)


def _same_shape(loss: Loss, outputs: np.ndarray, targets: np.ndarray) -> None:
    if np.shape(outputs) != np.shape(targets):
        raise ValueError(
            f"{type(loss).__name__} needs predictions and targets of one shape, got "
            f"{np.shape(outputs)} and {np.shape(targets)}"
        )
    if np.ndim(outputs) and np.shape(outputs)[0] == 0:
        raise ValueError(
            f"{type(loss).__name__} needs at least one row to take a mean, got shape "
            f"{np.shape(outputs)}"
        )


class Loss:
    """Base class of all losses: subclasses implement :meth:`forward` and :meth:`backward`.

    ``outputs`` and ``targets`` are ``(m, k)`` arrays: ``m`` examples, ``k`` outputs each.
    A loss is the *mean* over the examples, so that its value does not grow with the batch.
    """

    #: The final activation this loss computes together with itself, or ``None``. A model ending
    #: in exactly this class (not a subclass: it may compute something else) passes the
    #: activation's input to :meth:`forward_fused` and never runs the activation.
    fuses: ClassVar[type[Layer] | None] = None
    #: What the model's outputs are for, which decides ``predict``, ``evaluate``'s metric and
    #: what ``fit`` reports: ``"binary"`` (0/1 labels per output, accuracy), ``"multiclass"``
    #: (one class per row, top-1 accuracy) or ``"regression"`` (numbers, R^2).
    task: ClassVar[str] = "regression"

    _grad: np.ndarray | None = None  # the gradient the last forward computed, for backward

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this loss (see ``Layer.arguments``)."""
        return constructor_arguments(self)

    def __repr__(self) -> str:
        return described(self)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The model's ``outputs: (m, k)`` as probabilities, for a model that does *not* end in
        the fused activation (which computes them itself). This version: the outputs as they
        are; a loss that takes logits applies its link (sigmoid, softmax)."""
        return outputs

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The mean loss of ``outputs: (m, k)`` against ``targets: (m, k)``; keeps what
        :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """The gradient of the last forward's value with respect to its first argument,
        of that argument's shape ``(m, k)``."""
        raise NotImplementedError

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return self.forward(outputs, targets)

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """``targets`` as an array of ``outputs_shape`` ``(m, k)``, else a ``ValueError``.

        This version accepts any finite real numbers, of shape ``(m, k)`` or, when ``k == 1``,
        ``(m,)`` (made a column). The array is returned as it is when it already fits (no copy,
        its own dtype). A loss with more rules (:class:`BCELoss`: numbers in [0, 1]) extends it.
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

        See :func:`minnet.gradcheck.check_loss` for the options.
        """
        from .gradcheck import check_loss

        return check_loss(self, outputs, targets, fused=fused, **options)


def per_example_matches_forward(loss: Loss, fused: bool) -> bool:
    """Are ``loss``'s per-example values those of its forward (fused or not)?

    They are when the per-example method is defined by the class that defines the forward, or
    by a subclass of it: a subclass that changes ``forward`` but not ``per_example`` would give
    its parent's values.
    """
    forward, per_example = (
        ("forward_fused", "per_example_fused")
        if fused
        else (
            "forward",
            "per_example",
        )
    )
    mro = type(loss).__mro__
    forward_owner = next(cls for cls in mro if forward in vars(cls))
    per_example_owner = next(cls for cls in mro if per_example in vars(cls))
    return issubclass(per_example_owner, forward_owner)


class BCELoss(Loss):
    """Mean binary cross-entropy over all entries: ``-mean(y*log(p) + (1-y)*log(1-p))``.

    ``targets`` are numbers in [0, 1] (0/1 labels, or soft labels), of shape ``(m,)`` or
    ``(m, k)`` for ``k`` outputs.

    **It fuses with a final** :class:`~minnet.Sigmoid` (``fuses = Sigmoid``): a model that ends
    in a ``Sigmoid`` gives :meth:`forward_fused` the sigmoid's input, the logits ``z``, and the
    loss is ``mean(softplus(z) - y*z)``: exact and finite for any finite ``z``, with gradient
    ``(sigmoid(z) - y) / n`` with respect to ``z`` (``n`` entries). The model never runs that
    ``Sigmoid`` in :meth:`~minnet.Sequential.cost`, only in ``forward`` and ``predict_proba``.

    Without a final Sigmoid, :meth:`forward` takes probabilities ``p`` in ``[0, 1]``, with each
    log clamped at -100, as PyTorch's ``BCELoss`` does.

    :meth:`backward` returns the gradient with respect to whichever input the last forward took.
    """

    fuses: ClassVar[type[Layer] | None] = Sigmoid
    task: ClassVar[str] = "binary"

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
                f"BCELoss needs targets in [0, 1] (labels or probabilities), got values from "
                f"{low} to {high}"
            )
        return targets

    def forward_fused(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The loss from the logits ``z: (m, k)``, the input of the fused Sigmoid:
        ``mean(softplus(z) - y*z)``, with gradient ``(sigmoid(z) - y) / n``."""
        _same_shape(self, logits, targets)
        n = targets.size
        log_one_plus_exp = softplus(logits)
        # sigmoid(z) = exp(z - softplus(z)): the exponent is <= 0, so exp never overflows
        self._grad = (np.exp(logits - log_one_plus_exp) - targets) / n
        return float((log_one_plus_exp - targets * logits).sum() / n)

    def per_example_fused(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each row's loss from the logits, ``(m,)``: the row mean of ``softplus(z) - y*z``."""
        return np.mean(softplus(logits) - targets * logits, axis=1)

    def forward(self, probabilities: np.ndarray, targets: np.ndarray) -> float:
        """The loss from probabilities ``p: (m, k)`` in [0, 1]."""
        return float(self._clamped_terms(probabilities, targets, keep_grad=True).mean())

    def per_example(self, probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each row's loss from probabilities, ``(m,)``."""
        return np.mean(self._clamped_terms(probabilities, targets, keep_grad=False), axis=1)

    def _clamped_terms(self, p: np.ndarray, targets: np.ndarray, keep_grad: bool) -> np.ndarray:
        _same_shape(self, p, targets)
        if np.any((p < 0) | (p > 1)):
            raise ValueError(
                "BCELoss.forward expects probabilities in [0, 1], got values from "
                f"{p.min()} to {p.max()}; end the model with a Sigmoid layer"
            )
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100.0)
            log_not_p = np.maximum(np.log1p(-p), -100.0)
        if keep_grad:
            self._grad = (p - targets) / np.maximum(p * (1 - p), 1e-12) / targets.size
        return -(targets * log_p + (1 - targets) * log_not_p)

    def backward(self) -> np.ndarray:
        """Gradient of the last computed loss with respect to its input, of its shape."""
        if self._grad is None:
            raise RuntimeError("BCELoss.backward() called before forward()")
        return self._grad


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` over the last axis, from ``z - max(z)``: finite for any finite ``z``."""
    shifted = z - np.max(z, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


class CrossEntropyLoss(Loss):
    """Cross-entropy over ``C`` classes, with PyTorch's semantics and numbers (mean over rows).

    It takes **logits** ``z: (m, C)``, as ``torch.nn.CrossEntropyLoss`` does, and ``targets``
    either as class indices ``(m,)`` (integers in ``[0, C)``) or as probabilities ``(m, C)``
    (rows of non-negative numbers summing to 1). With ``label_smoothing = e``, the target
    distribution is ``(1 - e) * q + e / C``. The loss is ``-mean_rows(sum_c q_c log_softmax(z)_c)``
    and its gradient ``(softmax(z) - q) / m``.

    **It fuses with a final** :class:`~minnet.Softmax` (``fuses = Softmax``): a model that ends in
    a ``Softmax`` (so that ``predict_proba`` gives probabilities) computes the loss from the
    softmax's input, the logits, with ``log_softmax``: exact and finite for any finite logits,
    where ``log`` of a rounded probability would give ``-inf``. A model without a final Softmax
    gives its outputs to :meth:`forward` as logits: the same computation.
    """

    fuses: ClassVar[type[Layer] | None] = Softmax
    task: ClassVar[str] = "multiclass"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = _checks.real_number(
            "label_smoothing", label_smoothing, 0.0, 1.0, high_open=False
        )

    def check_targets(self, targets: Any, outputs_shape: tuple[int, int]) -> np.ndarray:
        """Class indices ``(m,)`` as int64, or probabilities ``(m, C)``; else ValueError."""
        given = as_array(targets, "targets")
        m, classes = outputs_shape
        if given.dtype.kind not in "biuf":
            raise ValueError(
                f"CrossEntropyLoss needs class indices or probabilities, got dtype {given.dtype}"
            )
        if given.shape == (m,):
            _checks.finite("targets", given)
            indices = given.astype(np.int64)
            if given.dtype.kind == "f" and not np.array_equal(indices, given):
                raise ValueError(
                    "CrossEntropyLoss needs class indices that are whole numbers, got "
                    f"{given[indices != given][:3].tolist()}"
                )
            if given.size and not 0 <= indices.min() <= indices.max() < classes:
                raise ValueError(
                    f"CrossEntropyLoss needs class indices in [0, {classes}) for {classes} "
                    f"outputs, got values from {indices.min()} to {indices.max()}"
                )
            return indices
        if given.shape == (m, classes) and (classes > 1 or m != 1):
            _checks.finite("targets", given)
            probabilities = given.astype(np.float64, copy=False)
            if probabilities.size and (
                probabilities.min() < 0 or not np.allclose(probabilities.sum(axis=1), 1.0)
            ):
                raise ValueError(
                    "CrossEntropyLoss needs probability targets: rows of numbers >= 0 summing "
                    f"to 1, got row sums from {probabilities.sum(axis=1).min()} to "
                    f"{probabilities.sum(axis=1).max()} and a smallest entry "
                    f"{probabilities.min()}"
                )
            return probabilities
        raise ValueError(
            f"CrossEntropyLoss needs class indices of shape ({m},) or probabilities of shape "
            f"({m}, {classes}), got {given.shape}"
        )

    def _rows(self, logits: np.ndarray, targets: np.ndarray, keep_grad: bool) -> np.ndarray:
        """Each row's loss ``-sum_c q_c log_softmax(z)_c``, ``(m,)``; with ``keep_grad``, also
        keeps the gradient of their mean, ``(softmax(z) * sum_c q_c - q) / m``.

        ``log_softmax(z) = shifted - log(sum(exp(shifted)))`` with ``shifted = z - max(z)``:
        every exponent is <= 0, so nothing overflows, and the log never sees a rounded 0.
        Class indices are never made one-hot: the row's loss picks its class's entry.
        """
        if logits.ndim != 2 or len(targets) != len(logits):
            raise ValueError(
                f"CrossEntropyLoss needs logits (m, C) and targets for m rows, got "
                f"{np.shape(logits)} and {np.shape(targets)}"
            )
        m, classes = logits.shape
        smoothing = self.label_smoothing
        shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = np.add.reduce(exp, axis=1, keepdims=True)
        log_sums = np.log(sums)
        if targets.ndim == 1:  # class indices: q = (1 - e) * one_hot + e / C
            picked = shifted[np.arange(m), targets]
            rows = log_sums[:, 0] - picked
            if smoothing:
                uniform = log_sums[:, 0] - np.add.reduce(shifted, axis=1) / classes
                rows = (1 - smoothing) * rows + smoothing * uniform
            if keep_grad:
                grad = np.divide(exp, sums, out=exp)  # softmax(z)
                grad[np.arange(m), targets] -= 1 - smoothing
                if smoothing:
                    grad -= smoothing / classes
                grad *= 1 / m
                self._grad = grad
            return rows
        q = targets.astype(logits.dtype, copy=True)  # probabilities: q = (1 - e) * q + e / C
        if smoothing:
            q *= 1 - smoothing
            q += smoothing / classes
        shifted -= log_sums  # log_softmax(z)
        rows = -np.add.reduce(q * shifted, axis=1)
        if keep_grad:
            grad = np.divide(exp, sums, out=exp)
            grad *= np.add.reduce(q, axis=1, keepdims=True)  # 1 up to rounding: exact anyway
            grad -= q
            grad *= 1 / m
            self._grad = grad
        return rows

    def per_example(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each row's loss, ``(m,)``."""
        return self._rows(logits, targets, keep_grad=False)

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The mean loss of ``logits: (m, C)``; keeps the gradient ``(softmax(z) - q) / m``."""
        if len(logits) == 0:
            raise ValueError(
                "CrossEntropyLoss needs at least one row to take a mean, got shape "
                f"{np.shape(logits)}"
            )
        rows = self._rows(logits, targets, keep_grad=True)
        return float(np.add.reduce(rows) / len(rows))

    def forward_fused(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The loss from the fused Softmax's input: the same as :meth:`forward`."""
        return self.forward(logits, targets)

    def per_example_fused(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.per_example(logits, targets)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``softmax(logits)`` row by row."""
        return np.exp(log_softmax(logits))

    def backward(self) -> np.ndarray:
        """Gradient of the last loss with respect to the logits, ``(m, C)``."""
        if self._grad is None:
            raise RuntimeError("CrossEntropyLoss.backward() called before forward()")
        return self._grad


class MSELoss(Loss):
    """Mean squared error over all entries, as ``torch.nn.MSELoss``: ``mean((y_hat - y)**2)``.

    For regression: ``targets`` are any finite numbers, ``(m,)`` or ``(m, 1)`` for a one-output
    model, ``(m, k)`` for ``k`` outputs. The gradient is ``2 (y_hat - y) / n`` (``n`` entries).
    """

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        _same_shape(self, outputs, targets)
        error = outputs - targets
        self._grad = error * (2.0 / error.size)
        return float(np.mean(error * error))

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        _same_shape(self, outputs, targets)
        error = outputs - targets
        return np.mean(error * error, axis=1)

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("MSELoss.backward() called before forward()")
        return self._grad


class BCEWithLogitsLoss(BCELoss):
    """Binary cross-entropy that takes **logits**, as ``torch.nn.BCEWithLogitsLoss``: for a model
    without a final Sigmoid. ``mean(softplus(z) - y*z)``, exact for any finite logits;
    ``targets`` in [0, 1], ``(m,)`` or ``(m, k)``."""

    fuses: ClassVar[type[Layer] | None] = None

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``sigmoid(logits)``."""
        return sigmoid(logits)

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        return self.forward_fused(logits, targets)

    def per_example(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.per_example_fused(logits, targets)


__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Loss",
    "MSELoss",
    "log_softmax",
    "per_example_matches_forward",
    "softplus",
]
