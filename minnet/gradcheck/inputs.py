"""What every check refuses before it measures anything: options of the wrong kind, and a point
where the function has no finite value.

A gradient check measures slopes at a point. At a point with a NaN or an infinite coordinate,
or where the function itself is NaN or infinite, there is no slope to measure: any verdict
would be about the data, not about the backward. So the checks refuse such a point with a
``ValueError`` naming the argument, as :meth:`~minnet.Sequential.gradcheck` does for ``X``,
instead of reporting a correct backward as wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks

#: A step this large measures nothing (the largest ``epsilon`` a check takes).
MAX_EPSILON = 1e6


def check_options(
    *, epsilon: Any, threshold: Any, fast: Any, samples: Any, seed: Any
) -> dict[str, Any]:
    """The options every check takes, validated (``TypeError`` for a value of the wrong kind,
    ``ValueError`` for one out of range, each naming the option) and converted: ``epsilon`` a
    float or ``None``, ``threshold`` a float, ``fast`` a bool, ``samples`` an int or ``None``,
    ``seed`` an int or ``None`` (the check derives its own streams from it, so a ``Generator``
    is not a seed here)."""
    if epsilon is not None:
        epsilon = _checks.real_number(
            "epsilon", epsilon, 0.0, MAX_EPSILON, low_open=True, high_open=False
        )
    threshold = _checks.real_number("threshold", threshold, 0.0, 1.0, low_open=True)
    fast = _checks.flag("fast", fast)
    if samples is not None:
        samples = _checks.whole_number("samples", samples, low=1)
    if seed is not None:
        seed = _checks.whole_number("seed", seed, low=0)
    return dict(epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)


def finite_point(name: str, array: np.ndarray) -> None:
    """A ``ValueError`` naming ``name`` if the point has NaN or infinite entries."""
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} must be finite, but {bad} entries are NaN or infinite: a gradient check "
            "measures slopes at a finite point"
        )


def finite_value(what: str, value: Any, name: str) -> None:
    """A ``ValueError`` if ``value`` (the function at the checked point, called ``what``) has
    NaN or infinite entries: there is no slope to compare the claimed gradient with."""
    values = np.asarray(value, dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        shown = f"{bad} of its {values.size} entries are" if values.ndim else "it is"
        raise ValueError(
            f"{what} is not finite at the given {name} ({shown} NaN or infinite): a gradient "
            "check needs a finite value at the point. Check at a point where it is finite (if "
            "it should be finite there, the forward computation has a bug)"
        )


def fused_loss(loss: Any, fused: Any) -> bool:
    """``fused`` as a bool; ``True`` only for a loss that fuses with an activation (its
    ``fuses`` names the activation's class), else a ``ValueError`` listing those that do."""
    fused = _checks.flag("fused", fused)
    if fused and getattr(loss, "fuses", None) is None:
        raise ValueError(
            f"fused=True checks the loss computed from the input of the activation it fuses "
            f"with, and {type(loss).__name__} fuses with no activation. The losses that fuse: "
            f"{_fusing_losses()}; check {type(loss).__name__} with fused=False"
        )
    return fused


def _fusing_losses() -> str:
    """``"BCELoss (with Sigmoid), ..."``: every loss class loaded that fuses."""
    from ..losses import Loss

    found, stack = {}, [Loss]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        fuses = getattr(cls, "fuses", None)
        if fuses is not None and not cls.__name__.startswith("_"):
            found[cls.__name__] = fuses.__name__
    return ", ".join(f"{name} (with {found[name]})" for name in sorted(found)) or "none"


__all__ = ["MAX_EPSILON", "check_options", "finite_point", "finite_value", "fused_loss"]
