"""The judge: is a claimed derivative right, wrong, at a kink, or impossible to decide here?

A central difference ``n(h) = (J(theta + h) - J(theta - h)) / 2h`` is an *estimate* of the
derivative, with two errors of its own:

- **rounding noise**: ``J`` is computed in floating point, so each value is off by up to about
  ``noise`` (``NOISE_ULPS`` units in the last place of ``J``'s scale), and ``n(h)`` by up to
  ``noise / h``: it *grows* as the step shrinks;
- **truncation**: for a smooth ``J``, ``n(h) = J' + c h^2 + ...``: it *shrinks* as the step
  shrinks, by 16 when the step shrinks by 4. Across a kink (ReLU at 0) there is no derivative at
  all: the slopes on either side differ by a jump that does *not* shrink with the step.

The judge gives each entry one of four verdicts, and each one needs positive evidence:

``agree``
    ``|a - n| <= threshold * (|a| + |n|) + E``, where ``E`` bounds ``n``'s error, *and* that
    error bar is small: ``E <= threshold * (|a| + |n|) + floor``. An agreement that holds only
    because the error bar is wide is not an agreement.
``fail``
    The analytic or numeric value is NaN or infinite; or ``|a - n| > threshold * (|a| + |n|) + E``
    and ``a`` also lies outside the one-sided slopes ``(J(theta) - J(theta - h)) / h`` and
    ``(J(theta + h) - J(theta)) / h``; or ``a`` lies outside those slopes at a kink.
``kink``
    There is evidence of a kink at theta: a declared ``kink_points`` value of some layer is
    still crossed at steps far below the natural one, or the jump between the one-sided slopes
    keeps its size as the step shrinks by 4 (curvature would shrink it 4 times, noise would grow
    it). *And* ``a`` lies between the one-sided slopes, as a right backward's value at a kink
    does. Such entries are left out of the verdict (excused), and reported.
A claimed zero where ``J`` does not move at all at either step is an agreement too: float64 sees
no derivative there (a dead ReLU unit).

``undecided``
    Nothing of the above could be shown: the noise is too large to tell, even after trying a
    larger step (when the disagreement looks like noise) or smaller steps (when it looks like
    truncation or a kink).

Error bars come from pairs of steps: when ``J`` is smooth between steps ``s`` and ``4s`` and the
steps are small enough that the truncation is ``c h^2`` (at most ``ASYMPTOTIC`` natural steps),
``n(4s) - n(s) = 15 c s^2`` up to noise, so the truncation of ``n(s)`` is at most
``(|n(4s) - n(s)| + noise/s + noise/4s) / 15``. A kink in between only makes that bound larger
(more cautious), never smaller. Larger steps (tried when noise is the problem) are used only
while ``n`` at consecutive steps agrees within the noise: the truncation has not shown yet.

This module knows nothing about layers or models: it sees numbers and a way to get more of them
(``measure(step)``), so it is tested on plain functions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from attrs import frozen

EPS = float(np.finfo(np.float64).eps)
CBRT_EPS = EPS ** (1 / 3)
#: Rounding error assumed for one evaluation of J, in units of eps * (J's scale).
NOISE_ULPS = 64
#: Steps go up or down by this factor.
LADDER = 4.0
#: A larger step is tried at most this many times, and never beyond CLIMB_LIMIT * max(1, |theta|).
MAX_CLIMB = 8
CLIMB_LIMIT = 0.1
#: Evidence of a kink *at theta* must hold at steps at most the natural step / KINK_SCALE.
KINK_SCALE = 16
#: Error bars from a pair of steps assume the truncation error is ``c h^2``: the descent trusts
#: pairs only once the larger step is at most ASYMPTOTIC times the natural step.
ASYMPTOTIC = 16
#: The longest descent towards small steps.
MAX_DESCENT = 16
#: A slope jump is a kink only if larger than JUMP_NOISE times its noise, and if it changes by at
#: most JUMP_STABLE (relative) when the step shrinks by LADDER.
JUMP_NOISE = 16.0
JUMP_STABLE = 0.25

AGREE, FAIL, KINK, UNDECIDED = "agree", "fail", "kink", "undecided"

#: What an evaluation crossed: no declared kink; kinks of one layer whose crossing inputs all
#: moved the same way (one kink along the line, as far as the slopes go); or kinks that compose
#: (several layers, or inputs moving both ways), where backprop's value at theta need not lie
#: between the one-sided slopes (each unit takes its own side's convention).
NO_KINK, ONE_KINK, KINKS_MEET = 0, 1, 2


@frozen
class Measurement:
    """``J`` at ``theta + step``, ``theta - step`` and ``theta``.

    ``crossed``: did the input of some layer cross one of its declared ``kink_points`` on the way
    (:data:`NO_KINK` when nobody watched)?
    """

    step: float
    plus: float
    minus: float
    center: float
    crossed: int = NO_KINK

    @property
    def numeric(self) -> float:
        """The central difference ``(J+ - J-) / 2h``."""
        return (self.plus - self.minus) / (2 * self.step)

    @property
    def left(self) -> float:
        """The one-sided slope ``(J(theta) - J(theta - h)) / h``."""
        return (self.center - self.minus) / self.step

    @property
    def right(self) -> float:
        """The one-sided slope ``(J(theta + h) - J(theta)) / h``."""
        return (self.plus - self.center) / self.step

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.plus) and np.isfinite(self.minus))


@frozen
class Verdict:
    """What the judge decided for one entry, and the numeric value the decision rests on."""

    status: str
    numeric: float
    step: float
    error_bar: float
    reason: str = ""


Measure = Callable[[float], Measurement]


@frozen
class Judge:
    """Judges entries of one check.

    ``threshold``: the relative agreement asked for; ``noise``: the rounding error of one value
    of ``J`` (see :data:`NOISE_ULPS`).
    """

    threshold: float
    noise: float

    def tolerance(self, a: float, n: float) -> float:
        return self.threshold * (abs(a) + abs(n))

    def noise_at(self, step: float) -> float:
        """The rounding error of a central difference with this step."""
        return self.noise / step

    def judge(
        self,
        analytic: float,
        first: Measurement,
        measure: Measure,
        *,
        natural_step: float,
        max_step: float,
        floor: float,
    ) -> Verdict:
        """The verdict for one entry.

        ``first``: the measurement at the check's step; ``measure(step)``: a new one (it may
        watch for declared kinks); ``natural_step``: ``cbrt(eps) * max(1, |theta|)``, the step
        that balances noise and truncation; ``max_step``: the largest step worth trying;
        ``floor``: an error bar below ``threshold`` times the tensor's largest gradient decides.
        """
        a = float(analytic)
        if not np.isfinite(a):
            return Verdict(FAIL, first.numeric, first.step, np.inf, "the analytic value is NaN")
        if not np.isfinite(first.center):
            return Verdict(FAIL, np.nan, first.step, np.inf, "J itself is NaN or infinite")
        if a == 0 and first.plus == first.center == first.minus:
            # J did not move at all, either way: the derivative is zero as far as float64 can
            # tell (a dead ReLU unit, an input that is zero), and zero is what was claimed.
            return Verdict(AGREE, 0.0, first.step, 0.0)
        if first.finite:
            n, noise = first.numeric, self.noise_at(first.step)
            if abs(a - n) <= self.tolerance(a, n) + noise:
                if noise <= self.tolerance(a, n) + floor:
                    return Verdict(AGREE, n, first.step, noise)
                # An agreement within the noise only: a larger step may decide it.
                return self._climb(a, first, measure, natural_step, max_step, floor)
        verdict = self._descend(a, first, measure, natural_step, floor)
        if verdict.status == UNDECIDED and first.finite and not first.crossed:
            # Neither a smaller step nor a kink explains the disagreement: is it noise that was
            # underestimated? A larger step, where J is smooth, tells.
            climbed = self._climb(a, first, measure, natural_step, max_step, floor)
            if climbed.status != UNDECIDED:
                return climbed
        return verdict

    # -- the rules ------------------------------------------------------------------------------
    def _decide(
        self, a: float, m: Measurement, witness: Measurement, error_bar: float, floor: float
    ) -> Verdict | None:
        """Agree or fail on measurement ``m``, whose error bar ``error_bar`` was found with
        ``witness`` (another step), or ``None`` when ``m`` cannot tell.

        A disagreement fails when ``a`` is outside the one-sided slopes, or when the gap between
        the slopes shrinks with the step (curvature: the slopes close in on ``n``, not on ``a``).
        Inside the slopes of what may be a kink, it waits for more evidence.
        """
        n = m.numeric
        tol = self.tolerance(a, n)
        if abs(a - n) > tol + error_bar:
            slack = tol + 2 * self.noise_at(m.step)
            if not min(m.left, m.right) - slack <= a <= max(m.left, m.right) + slack:
                return Verdict(FAIL, n, m.step, error_bar)
            if self._curvature(m, witness):
                return Verdict(FAIL, n, m.step, error_bar)
            return None  # within the slopes: a smaller step may still tell
        if error_bar <= tol + floor:
            return Verdict(AGREE, n, m.step, error_bar)
        return None

    def _curvature(self, m: Measurement, other: Measurement) -> bool:
        """Does the jump between the one-sided slopes shrink with the step, as curvature's does
        (and a kink's does not)?"""
        small, large = (m, other) if m.step < other.step else (other, m)
        jump_small, jump_large = small.right - small.left, large.right - large.left
        noise_small, noise_large = 4 * self.noise_at(small.step), 4 * self.noise_at(large.step)
        ratio = large.step / small.step
        return (
            abs(jump_large) > JUMP_NOISE * noise_large
            and abs(jump_small) <= abs(jump_large) * (2 / ratio) + noise_small
        )

    def _error_bar(self, small: Measurement, large: Measurement) -> float:
        """Bound on the error of ``small.numeric``, with ``large`` (a larger step) as witness."""
        ratio = large.step / small.step
        u_small, u_large = self.noise_at(small.step), self.noise_at(large.step)
        truncation = (abs(large.numeric - small.numeric) + u_small + u_large) / (ratio**2 - 1)
        return u_small + truncation

    def _climb(
        self,
        a: float,
        first: Measurement,
        measure: Measure,
        natural_step: float,
        max_step: float,
        floor: float,
    ) -> Verdict:
        """Larger steps, while ``J`` stays smooth and the error bar keeps shrinking."""
        previous, best = first, np.inf
        # From a step far below the natural one (epsilon=1e-12, say), go straight to it.
        step = natural_step / LADDER if first.step * LADDER**2 < natural_step else first.step
        for _ in range(MAX_CLIMB):
            step *= LADDER
            if step > max_step:
                break
            m = measure(step)
            if m.crossed or not m.finite:
                break
            if abs(m.numeric - previous.numeric) > (
                self.noise_at(m.step)
                + self.noise_at(previous.step)
                + self.tolerance(m.numeric, previous.numeric)
            ):
                break  # the truncation error shows: larger steps only make it worse
            error_bar = self._error_bar(previous, m)
            if error_bar >= best:
                break
            best = error_bar
            verdict = self._decide(a, previous, m, error_bar, floor)
            if verdict is not None:
                return verdict
            previous = m
        return Verdict(
            UNDECIDED,
            first.numeric,
            first.step,
            self.noise_at(first.step),
            "agrees only within the rounding noise, also at larger steps",
        )

    def _descend(
        self, a: float, first: Measurement, measure: Measure, natural_step: float, floor: float
    ) -> Verdict:
        """Smaller steps: truncation shrinks, a nearby kink stops being crossed, a kink at theta
        keeps its jump."""
        kink_step = natural_step / KINK_SCALE
        previous = first if first.finite else None
        step = first.step
        for _ in range(MAX_DESCENT):
            step /= LADDER
            m = measure(step)
            if not m.finite:
                previous = None
                continue
            if previous is not None and previous.step <= ASYMPTOTIC * natural_step:
                if not (m.crossed or previous.crossed):
                    verdict = self._decide(a, m, previous, self._error_bar(m, previous), floor)
                    if verdict is not None:
                        return verdict
                if step <= kink_step and self._kink_at_theta(previous, m):
                    return self._at_kink(a, previous, m)
            if step < kink_step / LADDER:
                break
            previous = m
        if previous is None:
            return Verdict(FAIL, np.nan, step, np.inf, "the numeric value is NaN or infinite")
        return Verdict(
            UNDECIDED,
            first.numeric,
            first.step,
            self.noise_at(first.step),
            "disagrees, but neither smaller steps nor a kink settle it",
        )

    def _kink_at_theta(self, larger: Measurement, smaller: Measurement) -> bool:
        if larger.crossed and smaller.crossed:
            return True  # a declared kink, still crossed at a tiny step
        jump = smaller.right - smaller.left
        jump_before = larger.right - larger.left
        noise = 4 * self.noise_at(smaller.step)
        return abs(jump) > JUMP_NOISE * noise and abs(jump - jump_before) <= JUMP_STABLE * abs(jump)

    def _at_kink(self, a: float, larger: Measurement, m: Measurement) -> Verdict:
        low, high = sorted((m.left, m.right))
        slack = (
            self.tolerance(low, high)
            + 4 * self.noise_at(m.step)
            + abs(m.left - larger.left)
            + abs(m.right - larger.right)
        )
        if low - slack <= a <= high + slack:
            return Verdict(KINK, m.numeric, m.step, slack)
        if KINKS_MEET in (m.crossed, larger.crossed):
            return Verdict(
                UNDECIDED, m.numeric, m.step, slack, "outside the one-sided slopes where kinks meet"
            )
        return Verdict(FAIL, m.numeric, m.step, slack, "outside the one-sided slopes of a kink")


def natural_step(theta: np.ndarray | float) -> np.ndarray:
    """``cbrt(eps) * max(1, |theta|)``: the step that balances truncation and rounding."""
    return CBRT_EPS * np.maximum(1.0, np.abs(theta))


def max_step(theta: np.ndarray | float) -> np.ndarray:
    """The largest step the judge tries when noise needs a larger one."""
    return CLIMB_LIMIT * np.maximum(1.0, np.abs(theta))
