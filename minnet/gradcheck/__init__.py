"""Numerical gradient checks for functions, losses, layers and models.

Every check compares an *analytic* gradient (what backward claims) with a *numeric* one, the
central difference ``(J(theta + h) - J(theta - h)) / 2h`` of a scalar ``J``, and summarises the
disagreement with the tutorial's formula (2)::

    difference = ||analytic - numeric|| / (||analytic|| + ||numeric||)

The package is four small pieces, each readable on its own:

- :mod:`.reference`: central differences, one entry at a time (start reading here);
- :mod:`.judge`: what a disagreement means: a wrong gradient, a kink, curvature, or rounding
  noise; every excuse needs evidence, and what cannot be decided is *undecided*;
- :mod:`.report`: the report, with three verdicts: passed, failed, inconclusive;
- :mod:`.batched`: the accelerator that evaluates many perturbations of a model at once, used
  only where it computes exactly what the reference does.

:mod:`.targets` says what ``J`` is for a function, a loss, a layer and a model,
:mod:`.inputs` what every check refuses before it measures (bad options, a non-finite point), and
:mod:`.checks` runs the judge over every entry. All checks run in float64 and leave the
caller's parameters, gradients, buffers and data as they were. ``docs/gradcheck.md`` explains
the rules and why no wrong gradient can be excused.
"""

from .checks import (
    DEFAULT_THRESHOLD,
    GradcheckError,
    check_function,
    check_layer,
    check_loss,
    check_model,
)
from .reference import central_difference, numeric_gradient
from .report import Entry, GradcheckReport, relative_difference, verdict

__all__ = [
    "DEFAULT_THRESHOLD",
    "Entry",
    "GradcheckError",
    "GradcheckReport",
    "central_difference",
    "check_function",
    "check_layer",
    "check_loss",
    "check_model",
    "numeric_gradient",
    "relative_difference",
    "verdict",
]
