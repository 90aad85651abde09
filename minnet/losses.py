"""Losses: a scalar cost from predictions and targets, and its gradient."""

from __future__ import annotations

import numpy as np
from attrs import define, field
from attrs.setters import NO_OP


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow, exact for large ``|z|``.

    ``np.logaddexp(0, z)`` computes ``max(z, 0) + log1p(exp(-|z|))`` in one pass.
    """
    return np.logaddexp(0, z)


def _check_shapes(predictions: np.ndarray, targets: np.ndarray) -> None:
    if np.shape(predictions) != np.shape(targets):
        raise ValueError(
            f"BCELoss needs predictions and targets of one shape, got {np.shape(predictions)} "
            f"and {np.shape(targets)}"
        )


@define(eq=False, on_setattr=NO_OP)
class BCELoss:
    """Mean binary cross-entropy over all entries.

    Two entry points, both taking ``targets`` of the same shape as the predictions:

    - :meth:`forward_logits` takes the logits ``z`` (the input of a final ``Sigmoid``) and
      computes ``mean(softplus(z) - y*z)``: exact and finite for any finite ``z``, with gradient
      ``(sigmoid(z) - y) / n``. :class:`~minnet.Sequential` uses it whenever its last layer is a
      ``Sigmoid``.
    - :meth:`forward` takes probabilities ``p`` in ``[0, 1]`` and computes
      ``-mean(y*log(p) + (1-y)*log(1-p))`` with each log clamped at -100, as PyTorch does.

    :meth:`backward` returns the gradient with respect to whichever input the last forward took.
    """

    _grad: np.ndarray | None = field(default=None, init=False, repr=False)

    def forward_logits(self, logits: np.ndarray, targets: np.ndarray) -> float:
        _check_shapes(logits, targets)
        n = targets.size
        log_one_plus_exp = softplus(logits)
        loss = np.add.reduce(log_one_plus_exp - targets * logits, axis=None) / n
        # sigmoid(z) = exp(z - softplus(z)): the exponent is <= 0, so exp never overflows.
        grad = np.subtract(logits, log_one_plus_exp, out=log_one_plus_exp)
        np.exp(grad, out=grad)
        grad -= targets
        grad *= 1 / n
        self._grad = grad
        return float(loss)

    def per_example_logits(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Unreduced loss for each entry, same shape as ``logits``: ``softplus(z) - y*z``."""
        return softplus(logits) - targets * logits

    def forward(self, probabilities: np.ndarray, targets: np.ndarray) -> float:
        _check_shapes(probabilities, targets)
        p = probabilities
        if np.any((p < 0) | (p > 1)):
            raise ValueError(
                "BCELoss.forward expects probabilities in [0, 1], got values from "
                f"{p.min()} to {p.max()}; end the model with a Sigmoid layer"
            )
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100.0)
            log_not_p = np.maximum(np.log1p(-p), -100.0)
        loss = -(targets * log_p + (1 - targets) * log_not_p)
        self._grad = (p - targets) / np.maximum(p * (1 - p), 1e-12) / targets.size
        return float(loss.mean())

    def backward(self) -> np.ndarray:
        """Gradient of the last computed loss with respect to its input."""
        if self._grad is None:
            raise RuntimeError("BCELoss.backward() called before forward()")
        return self._grad
