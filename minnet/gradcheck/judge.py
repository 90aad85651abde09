"""The judge: is a claimed derivative right, wrong, at a kink, or impossible to decide here?

A central difference ``n(h) = (J(theta + h) - J(theta - h)) / 2h`` is an *estimate* of the
derivative, with errors of its own:

- **rounding noise**: ``J`` is computed in floating point, so each value is off by up to
  ``noise`` (measured by the check with :func:`estimate_noise`, ECnoise; ``NOISE_ULPS`` units in
  the last place of ``J``'s scale where it cannot be measured), and ``n(h)`` by up to
  ``noise / h``: it *grows* as the step shrinks;
- **the step taken**: float64 rounds ``theta + h``; what that does to ``n`` is added to its
  error (``Measurement.step_error``), and a step ``theta`` swallows measures nothing;
- **truncation**: for a smooth ``J``, ``n(h) = J' + c h^2 + ...``: it *shrinks* as the step
  shrinks, by 16 when the step shrinks by 4. Across a kink (ReLU at 0) there is no derivative at
  all: the slopes on either side differ by a jump that does *not* shrink with the step.

The judge gives each entry one of four verdicts, and each one needs positive evidence:

``agree``
    ``|a - n| <= threshold * (|a| + |n|) + E``, where ``E`` bounds ``n``'s error, *and* that
    error bar is small: ``E <= threshold * (|a| + |n|) + floor``. An agreement that holds only
    because the error bar is wide is not an agreement; nor is a claimed 0 where ``J`` did not
    move, unless the noise says a derivative above ``floor`` would have moved it.
``fail``
    The analytic or numeric value is NaN or infinite; or ``|a - n| > threshold * (|a| + |n|) +
    floor + E`` (wrong by docs/gradcheck.md's definition), the central differences it rests on
    are stable, the noise is far below the disagreement, and ``a`` also lies outside the
    one-sided slopes ``(J(theta) - J(theta - h)) / h`` and ``(J(theta + h) - J(theta)) / h``
    (with their own error bar; or their gap shrinks like curvature's); no kink is shown within
    reach of the steps, nor could one hide there that is not far below the disagreement (the
    slope jump extrapolated to a zero step, :meth:`Judge._kink_within_reach`); and the next step
    fails it too (:func:`_settle`). Or ``a`` lies outside the slopes of a kink that one declared
    unit crosses.
``kink``
    There is evidence of a kink at theta: a declared ``kink_points`` value of some layer is
    still crossed at steps far below the natural one. *And* ``a`` lies between the one-sided
    slopes, as a right backward's value at a kink does. Such entries are left out of the
    verdict (excused), and reported. A kink nobody declared (a jump between the one-sided
    slopes that keeps its size as the step shrinks by about 4: curvature would shrink it as
    much, noise would grow it) is never excused: it may lie on either side of theta, closer than
    any step the noise allows, and the entry is undecided; so is one outside the slopes where
    declared kinks meet.
``undecided``
    Nothing of the above could be shown: the noise is too large to tell, even after trying a
    larger step (when the disagreement looks like noise) or smaller steps (when it looks like
    truncation or a kink). The reason says whether the entry agrees within its noise
    (:data:`NOISY`) or disagrees (any other reason: the check cannot pass then).

Error bars come from pairs of steps in the asymptotic regime, shown by three steps whose central
differences change 8 to 32 times less at each step (``c h^2`` gives 17: the steps are
:data:`LADDER` = ``sqrt(17)`` apart): between ``s`` and ``r s``, ``n(rs) - n(s) = (r^2 - 1) c
s^2`` up to noise, so the truncation of ``n(s)`` is at most ``2 (|n(rs) - n(s)| + noise/s +
noise/rs) / (r^2 - 1)``. Larger steps (tried when noise is the problem)
are used only while ``n`` at consecutive steps agrees within the noise.

This module knows nothing about layers or models: it sees numbers and a way to get more of them
(``measure(step)``), so it is tested on plain functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from attrs import frozen

from .reference import difference_quotient, step_rounding

EPS = float(np.finfo(np.float64).eps)
CBRT_EPS = EPS ** (1 / 3)
#: Rounding error assumed for one evaluation of J, in units of eps * (J's scale).
NOISE_ULPS = 64
#: Steps go up or down by this factor: about 4, and irrational (its square is 17, so ``c h^2``
#: changes 17 times a step). A whole factor measures a periodic part of J, or a float32 grid,
#: in the same phase at every step: ``sin(x / s)`` with a natural step of 32.004 pi s gives
#: steps of 32, 8, 2 periods less the same fraction, whose central differences show a perfect
#: ``c h^2`` pattern around a slope that is not J's (the generator's seed 378, case 1279: a
#: zeroed claim agreed), and float32 treads met in one phase look like an exact straight line.
LADDER = 17**0.5
#: A larger step is tried at most this many times, and never beyond CLIMB_LIMIT * max(1, |theta|).
MAX_CLIMB = 8
CLIMB_LIMIT = 0.1
#: Evidence of a kink *at theta* must hold at steps at most the natural step / KINK_SCALE.
KINK_SCALE = 16
#: Error bars from a pair of steps assume the truncation error is ``c h^2``: the descent trusts
#: pairs only once the larger step is at most ASYMPTOTIC times the natural step.
ASYMPTOTIC = 16
#: A failure needs the central differences of the steps it rests on to agree with each other
#: this many times better than they disagree with the claim.
STABLE_FAIL = 8.0
#: The truncation bound from a pair of steps is taken this many times over.
TRUNCATION_SAFETY = 2.0
#: The longest descent towards small steps.
MAX_DESCENT = 16
#: The noise bound is this many standard deviations of J's measured rounding (the check's
#: tables, ECnoise): one value of J is within it but for odds below 1e-15.
NOISE_SIGMAS = 8.0
#: A slope jump is a kink only if larger than JUMP_NOISE times its noise, and if it changes by at
#: most JUMP_STABLE (relative) when the step shrinks by LADDER.
JUMP_NOISE = 16.0
JUMP_STABLE = 0.25

AGREE, FAIL, KINK, UNDECIDED = "agree", "fail", "kink", "undecided"
#: The reason of an entry that agrees, but only within an error bar too wide to decide it.
NOISY = "agrees only within the rounding noise, also at larger steps"
#: The reason of an entry that agreed within the noise at the first step and disagrees at
#: larger ones: a wrong claim, or steps beyond J's own scale of variation.
CLIMBED = "agrees within the noise at the step asked for, disagrees at larger steps"
#: The reason of an entry where declared kinks of several units meet: backprop takes each
#: unit's own convention there, and its value need not lie between J's one-sided slopes.
KINKS_MEET_REASON = "outside the one-sided slopes where kinks meet"
#: The reason of an entry whose larger steps saw J stand exactly still after moving off its
#: value at theta (a piece that changed within the smaller steps and then saturated): no
#: evidence of a derivative there (it keeps a check from passing).
SATURATED = "J moved within the smaller steps and stood still at the larger ones (saturated)"
#: The reason of an entry outside the one-sided slopes of a kink that no layer declared: the
#: kinks of several pieces may meet there (unlike KINKS_MEET_REASON, it keeps a check from
#: passing: nobody showed that they do).
UNDECLARED_KINK_REASON = "outside the one-sided slopes of an undeclared kink"
#: The reason of an entry at a kink whose claim lies within the error bar of a one-sided slope:
#: neither shown between the slopes nor outside them (it keeps a check from passing).
KINK_UNSURE = "at a kink, within the error bar of a one-sided slope"
#: The reason of an entry strictly between the slopes of an undeclared kink: right only if the
#: kink is exactly at theta, which no step the noise allows can show (it keeps a check from
#: passing).
KINK_BESIDE = "between the slopes of an undeclared kink that may lie beside theta"

#: The reason of an entry on one one-sided slope of an undeclared kink: right only if the kink
#: is at theta or on that slope's side of it, which no step the noise allows can show (it keeps
#: a check from passing).
KINK_SIDE = "on one slope of an undeclared kink that may lie on either side of theta"

#: What an evaluation crossed (the largest wins when several are seen):
#: NO_KINK: no declared kink. ONE_KINK: inputs of one layer that sat *exactly* on a kink at theta,
#: all moving the same way: one kink along the line, at theta. KINKS_MEET: inputs exactly on
#: kinks in several layers, or moving both ways: backprop takes each unit's own convention, and
#: its value need not lie between the one-sided slopes of J. NEAR_KINK: some crossing input was
#: not on its kink at theta: the kink is near, not at theta, and a smaller step avoids it.
NO_KINK, ONE_KINK, KINKS_MEET, NEAR_KINK = 0, 1, 2, 3


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
    #: The steps actually taken up and down (``(theta + h) - theta`` and ``theta - (theta -
    #: h)``); ``None``: exactly ``step``.
    up: float | None = None
    down: float | None = None

    @property
    def taken_up(self) -> float:
        return self.step if self.up is None else self.up

    @property
    def taken_down(self) -> float:
        return self.step if self.down is None else self.down

    @property
    def swallowed(self) -> bool:
        """Was the step lost in rounding (``theta + h == theta`` either way)?"""
        return not (self.taken_up > 0 and self.taken_down > 0)

    @property
    def numeric(self) -> float:
        """The central difference ``(J+ - J-) / 2h`` (:mod:`.reference`)."""
        return float(difference_quotient(self.plus, self.minus, self.step))

    @property
    def step_error(self) -> float:
        """What rounding ``theta +- h`` does to :attr:`numeric` (infinite: step swallowed)."""
        up, down = self.taken_up, self.taken_down
        return float(step_rounding(self.plus, self.minus, self.step, up, down))

    @property
    def left(self) -> float:
        """The one-sided slope ``(J(theta) - J(theta - h)) / down`` (NaN: step swallowed)."""
        return (self.center - self.minus) / self.taken_down if self.taken_down > 0 else np.nan

    @property
    def right(self) -> float:
        """The one-sided slope ``(J(theta + h) - J(theta)) / up`` (NaN: step swallowed)."""
        return (self.plus - self.center) / self.taken_up if self.taken_up > 0 else np.nan

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.plus) and np.isfinite(self.minus) and not self.swallowed)


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
    #: The worst-case noise model (``NOISE_ULPS`` units in the last place of J's scale): for an
    #: entry along which J did not move at all, the measured noise says nothing.
    worst: float = 0.0
    #: The largest noise level any of the tensor's tables shows (0: none): above ``noise``,
    #: some entry's resolution may be coarser than the finest level says (a float32 piece).
    coarse: float = 0.0

    def tolerance(self, a: float, n: float) -> float:
        return self.threshold * (abs(a) + abs(n))

    def noise_at(self, step: float) -> float:
        """The rounding error of a central difference with this step."""
        return self.noise / step

    def noise_of(self, m: Measurement) -> float:
        """The rounding error of ``m``'s central difference: J's noise over the step, and the
        rounding of the step itself (:func:`.reference.step_rounding`)."""
        return self.noise / m.step + m.step_error

    def judge(
        self,
        analytic: float,
        first: Measurement,
        measure: Measure,
        *,
        natural_step: float,
        max_step: float,
        floor: float,
        kinked: bool = False,
        curved: bool = False,
    ) -> Verdict:
        """The verdict for one entry.

        ``first``: the measurement at the check's step; ``measure(step)``: a new one (it may
        watch for declared kinks); ``natural_step``: ``cbrt(eps) * max(1, |theta|)``, the step
        that balances noise and truncation; ``max_step``: the largest step worth trying;
        ``floor``: an error bar below ``threshold`` times the tensor's largest gradient decides;
        ``kinked``: the one-sided slopes were seen to jump at ``first`` (a kink, or several): its
        central difference is then no evidence of a derivative, and neither are larger steps,
        which cross the kink too. Only smaller steps are tried. ``curved``: the one-sided slopes
        at ``first`` differ by more than an eighth of the allowance (curvature that shows at the
        allowance's scale): the truncation of ``first``'s central difference may then be of the
        allowance's size too, so an agreement there needs an error bar from more steps.
        """
        a = float(analytic)
        if not np.isfinite(a):
            return Verdict(FAIL, first.numeric, first.step, np.inf, "the analytic value is NaN")
        if not np.isfinite(first.center):
            return Verdict(FAIL, np.nan, first.step, np.inf, "J itself is NaN or infinite")
        if first.swallowed:
            # theta + h == theta: the step measured nothing (epsilon=1e-20, or a theta so large
            # that h is below its last place). Only larger steps can tell.
            return self._climb(a, first, measure, natural_step, max_step, floor)
        if kinked:
            return self._descend(a, first, measure, natural_step, floor)
        if first.finite and a != 0 and first.plus == first.center == first.minus:
            # J did not move at all, against a claim that says it should have: J may be flat
            # here (a dead unit: larger steps stay flat and show it), or its resolution at
            # this entry may be coarser than the step (digits lost to cancellation: larger
            # steps move it, inconsistently). Only larger steps tell which; they may fail the
            # claim only if J should visibly have moved at this step already: by 8 times its
            # noise, as every failure needs (J flat at larger steps may only have saturated, a
            # tanh beyond its scale under an offset that rounds its whole range away).
            # The noise measured on the tensor says nothing about an entry along which J did
            # not move at all: the worst-case model applies.
            unmeasured = max(self.noise, self.worst) / first.step + first.step_error
            visible = abs(a) > self.tolerance(a, 0.0) + STABLE_FAIL * unmeasured
            return self._climb(a, first, measure, natural_step, max_step, floor, visible)
        if first.finite:
            # A claimed 0 where J did not move is no exception: it agrees only when the noise
            # at this step is below threshold x the tensor's scale, so that a derivative that
            # matters would have moved J. Where J did not move at all, that noise is the
            # largest the tensor's tables show (J's resolution along this entry may be a
            # float32 piece's tread); a larger step may still decide, not fail, it.
            n, noise = first.numeric, self.noise_of(first)
            if first.plus == first.center == first.minus:
                noise = max(self.noise, self.worst) / first.step + first.step_error
                if abs(a - n) + noise > self.tolerance(a, n) + floor and not curved:
                    v = self._climb(a, first, measure, natural_step, max_step, floor, False)
                    if v.status == UNDECIDED and v.step == first.step:
                        # Nothing larger decided it: its error bar is the still J's.
                        v = Verdict(UNDECIDED, v.numeric, v.step, max(v.error_bar, noise), v.reason)
                    return v
            if curved and abs(a - n) <= self.tolerance(a, n) + noise + floor:
                # An agreement whose truncation is unknown: smaller steps bound it (the
                # asymptotic triple); where the noise stops them, larger ones may agree.
                verdict = self._descend(a, first, measure, natural_step, floor)
                if verdict.status != UNDECIDED:
                    return verdict
                climbed = self._climb(a, first, measure, natural_step, max_step, floor, False)
                return climbed if climbed.status != UNDECIDED else verdict
            if abs(a - n) <= self.tolerance(a, n) + noise:
                if abs(a - n) + noise <= self.tolerance(a, n) + floor:
                    return Verdict(AGREE, n, first.step, noise)
                # An agreement within the noise only: a larger step may decide it. It may not
                # fail it: the first step agreed, and larger steps that disagree may only have
                # gone beyond J's own scale of variation.
                return self._climb(a, first, measure, natural_step, max_step, floor, False)
        verdict = self._descend(a, first, measure, natural_step, floor)
        if verdict.status == UNDECIDED and first.finite and not first.crossed:
            # Neither a smaller step nor a kink explains the disagreement: is it noise that was
            # underestimated? A larger step, where J is smooth, tells. Where J moved by no more
            # than its noise at the first step, the larger steps are the first to resolve it,
            # and what J does between theta and them is unseen (a piece on a scale of 1e-7
            # whose whole range is below the noise of J under an offset of 1e18, next to a max
            # whose share the larger steps average): as where J did not move at all (above),
            # they may fail the claim only if it says J should visibly have moved already.
            moved = max(abs(first.plus - first.center), abs(first.minus - first.center))
            unmeasured = max(self.noise, self.worst) / first.step + first.step_error
            may_fail = (
                moved > self.noise or abs(a) > self.tolerance(a, 0.0) + STABLE_FAIL * unmeasured
            )
            climbed = self._climb(a, first, measure, natural_step, max_step, floor, may_fail)
            if climbed.status != UNDECIDED:
                return climbed
        return verdict

    # -- the rules ------------------------------------------------------------------------------
    def _decide(
        self,
        a: float,
        m: Measurement,
        witness: Measurement,
        error_bar: float,
        floor: float,
        spread: float | None = None,
    ) -> Verdict | None:
        """Agree or fail on measurement ``m``, whose error bar ``error_bar`` was found with
        ``witness`` (another step), or ``None`` when ``m`` cannot tell.

        A disagreement fails when ``a`` is outside the one-sided slopes, or when the gap between
        the slopes shrinks with the step (curvature: the slopes close in on ``n``, not on ``a``).
        Inside the slopes of what may be a kink, it waits for more evidence.
        """
        n = m.numeric
        tol = self.tolerance(a, n)
        if abs(a - n) > tol + floor + error_bar:
            # Wrong by the definition (docs/gradcheck.md) whatever the error within the bar...
            wobble = abs(witness.numeric - n) if spread is None else spread
            quiet = max(self.noise_of(m), self.noise_of(witness))
            if wobble > abs(a - n) / STABLE_FAIL or wobble > abs(n) / STABLE_FAIL + quiet:
                # ... unless n itself still moves that much from step to step: steps beyond
                # J's own scale of variation (n falling like 1/h) bound nothing.
                return None
            if quiet > abs(a - n) / STABLE_FAIL:
                # ... or the noise is not far below the disagreement: steps that agree only
                # "within the noise" then say nothing about n's truncation (the noise is an
                # upper bound; a larger one must never make a failure easier).
                return None
            jump, jump_noise = self._kink_within_reach(m, witness)
            if abs(jump) > jump_noise or abs(jump) + jump_noise > abs(a - n) / STABLE_FAIL:
                # ... unless a kink lies within reach of the steps (the slope jump extrapolated
                # to a zero step is not 0), or may lie there (the noise that could hide one is
                # not far below the disagreement). n is then the average of two slopes (or of
                # pieces beyond J's scale of variation), no bound resting on J being smooth
                # holds, and where undeclared kinks meet (a ReLU at 0 feeding a tie of a max)
                # a right claim lies outside the slopes, however far. The kink is judged as
                # one (smaller steps, the set of kinks).
                return None
            if abs(a - n) <= tol + floor + error_bar + (abs(jump) + jump_noise) / 2:
                # ... or a kink the noise could hide may explain it: n is the midpoint of a
                # kink's two slopes, half its jump from either.
                return None
            if self._curvature(m, witness):
                # The slopes close in on n as the step shrinks, not on a: J is smooth here.
                return Verdict(FAIL, n, m.step, error_bar)
            slack = tol + self._slope_error(m, witness)
            if min(m.left, m.right) - slack <= a <= max(m.left, m.right) + slack:
                return None  # within the slopes: a smaller step may still tell
            if self._kink_like(m, witness):
                # Outside the one-sided slopes where they keep apart as the step shrinks: a kink
                # at theta, where a backward that takes each unit's own convention (a ReLU at 0
                # feeding a tie of a max) need not lie between J's slopes. Only smaller steps
                # (that show a declared kink crossed by one unit) may fail it.
                return None
            return Verdict(FAIL, n, m.step, error_bar)
        if abs(a - n) + error_bar <= tol + floor:  # |a - g| <= |a - n| + |n - g|: right
            if self._kink_like(m, witness):
                # The slopes keep apart by a jump that does not shrink with the step: n is the
                # average of two slopes across a kink at or near theta, not a derivative, and
                # its steadiness says nothing (|x| at 1e-8 from 0 with steps of 1e-1: n ~ 0 at
                # every step). Smaller steps tell where the kink is.
                return None
            return Verdict(AGREE, n, m.step, error_bar)
        return None

    def _slope_error(self, m: Measurement, witness: Measurement) -> float:
        """Bound on the error of ``m``'s one-sided slopes: their rounding (two values of J over
        the step) and their truncation, which is first order (``c h``): the change of each slope
        between ``m`` and the ``witness`` at another step bounds it, as :meth:`_error_bar` does
        for the central difference."""
        ratio = max(witness.step / m.step, m.step / witness.step)
        factor = TRUNCATION_SAFETY * (ratio if m.step > witness.step else 1.0) / (ratio - 1)
        change = max(abs(m.left - witness.left), abs(m.right - witness.right))
        noise = 2 * (self.noise_of(m) + self.noise_of(witness))
        truncation = factor * (change + noise) if np.isfinite(change) else np.inf
        return 2 * self.noise_of(m) + truncation

    def _kink_within_reach(self, m: Measurement, witness: Measurement) -> tuple[float, float]:
        """The jump between the one-sided slopes at a zero step, and its noise, from the jumps
        ``j(h) = R(h) - L(h)`` at the two steps. For a smooth J, ``j(h) = J'' h + O(h^3)``: the
        Richardson extrapolation ``(r j(h) - j(r h)) / (r - 1)`` removes the curvature and
        leaves about 0; a kink at theta leaves its jump, a kink beside theta within the steps (or
        steps beyond J's scale of variation) leaves what does not shrink like curvature. The
        noise: each jump is off by up to ``4 noise / h``."""
        small, large = (m, witness) if m.step < witness.step else (witness, m)
        ratio = large.step / small.step
        jump_small, jump_large = small.right - small.left, large.right - large.left
        extrapolated = (ratio * jump_small - jump_large) / (ratio - 1) if ratio > 1 else np.inf
        noise = (ratio * 4 * self.noise_of(small) + 4 * self.noise_of(large)) / (ratio - 1)
        if not (np.isfinite(extrapolated) and np.isfinite(noise)):
            return np.inf, 0.0
        return float(extrapolated), float(noise)

    def _kink_like(self, m: Measurement, witness: Measurement) -> bool:
        """Do the one-sided slopes of ``m`` and ``witness`` stay apart by about the same jump,
        far above their noise, as a kink's do (curvature's jump shrinks with the step)?"""
        jumps = [x.right - x.left for x in (m, witness)]
        noise = 4 * max(self.noise_of(m), self.noise_of(witness))
        return bool(
            np.all(np.isfinite(jumps))
            and min(abs(j) for j in jumps) > JUMP_NOISE * noise
            and abs(jumps[0] - jumps[1]) <= JUMP_STABLE * max(abs(j) for j in jumps)
        )

    def _curvature(self, m: Measurement, other: Measurement) -> bool:
        """Does the jump between the one-sided slopes shrink with the step, as curvature's does
        (and a kink's does not)?"""
        small, large = (m, other) if m.step < other.step else (other, m)
        jump_small, jump_large = small.right - small.left, large.right - large.left
        noise_small, noise_large = 4 * self.noise_of(small), 4 * self.noise_of(large)
        ratio = large.step / small.step
        return (
            abs(jump_large) > JUMP_NOISE * noise_large
            and abs(jump_small) <= abs(jump_large) * (2 / ratio) + noise_small
        )

    def _error_bar(self, m: Measurement, witness: Measurement) -> float:
        """Bound on the error of ``m.numeric``: its noise plus its truncation, which the change
        between ``m`` and a ``witness`` at another step bounds (truncation is ``c h^2``: with
        steps ``h`` and ``r h``, ``n(rh) - n(h) = (r^2 - 1) c h^2`` up to noise)."""
        u_m, u_w = self.noise_of(m), self.noise_of(witness)
        gap = abs(witness.numeric - m.numeric) + u_m + u_w
        ratio = witness.step / m.step
        # TRUNCATION_SAFETY covers the higher-order terms (h^4) that make the ratio of the
        # truncations at two steps differ from ratio^2.
        if ratio > 1:
            return u_m + TRUNCATION_SAFETY * gap / (ratio * ratio - 1)
        ratio = 1 / ratio
        return u_m + TRUNCATION_SAFETY * gap * ratio * ratio / (ratio * ratio - 1)

    def _consistent(self, m: Measurement, other: Measurement) -> bool:
        """Do two steps give the same central difference, up to their noise?"""
        return abs(m.numeric - other.numeric) <= (
            self.noise_of(m) + self.noise_of(other) + self.tolerance(m.numeric, 0.0)
        )

    def _climb(
        self,
        a: float,
        first: Measurement,
        measure: Measure,
        natural_step: float,
        max_step: float,
        floor: float,
        may_fail: bool = True,
    ) -> Verdict:
        """Larger steps, while ``J`` stays smooth: each measurement is judged with the next
        larger one as witness, or, when that one crossed a kink or shows truncation, with the
        one below it. Without ``may_fail``, a failure found is reported as undecided (with a
        reason that keeps the check from passing)."""
        verdict = self._climbing(a, first, measure, natural_step, max_step, floor)
        if verdict.status == FAIL and not may_fail:
            return Verdict(UNDECIDED, verdict.numeric, verdict.step, verdict.error_bar, CLIMBED)
        return verdict

    def _climbing(
        self,
        a: float,
        first: Measurement,
        measure: Measure,
        natural_step: float,
        max_step: float,
        floor: float,
    ) -> Verdict:
        ladder = [first] if first.finite else []
        best = Verdict(UNDECIDED, first.numeric, first.step, self.noise_of(first), NOISY)
        pending: Verdict | None = None  # a failure waiting for the next step to confirm it
        step = first.step
        if step * LADDER**2 < natural_step:  # from far below the natural step: start near it
            step = natural_step / LADDER**2
        for _ in range(MAX_CLIMB):
            step *= LADDER
            if step > max_step:
                break
            m = measure(step)
            if not ladder:  # no usable step below this one yet
                if m.finite and not m.crossed:
                    ladder.append(m)
                    continue
                break
            previous = ladder[-1]
            if m.crossed or not m.finite or not self._consistent(previous, m):
                # A kink, overflow or truncation: larger steps cannot help. The last good step
                # may still be judged with the one below it.
                if len(ladder) >= 2 and pending is None:
                    witness = ladder[-2]
                    error_bar = self._error_bar(previous, witness)
                    spread = _spread(ladder[-3:])
                    verdict = self._decide(a, previous, witness, error_bar, floor, spread)
                    saturated = self._saturated(ladder[-3:])
                    if verdict is not None and verdict.status == AGREE:
                        if saturated:
                            return Verdict(
                                UNDECIDED, previous.numeric, previous.step, error_bar, SATURATED
                            )
                        return verdict
                    if not saturated and not self._kink_like(previous, witness):
                        best = self._better(best, previous, error_bar)
                break
            error_bar = self._error_bar(previous, m)
            spread = _spread([*ladder[-2:], m])
            verdict = self._decide(a, previous, m, error_bar, floor, spread)
            if verdict is not None and verdict.status == FAIL and not _linear([*ladder[-2:], m]):
                verdict = None  # no evidence that J is smooth at these steps
            saturated = self._saturated([*ladder[-2:], m])
            if saturated and verdict is not None and verdict.status == AGREE:
                # J moved off J(theta) within the smaller steps and stood exactly still across
                # these: the whole move happened below them, and J is not linear across them
                # (a tanh piece on a scale of 3e-8 whose whole range is 3 units of J's last
                # place: the central differences fall exactly like 1/h, and a zeroed claim
                # agreed "within the noise" on the check's scale, the generator's seed 944
                # case 3573). An agreement there rests on J's rounding alone; no error bar of a
                # derivative at theta comes from these steps.
                if pending is not None:
                    return _unconfirmed(pending)
                return Verdict(UNDECIDED, previous.numeric, previous.step, error_bar, SATURATED)
            if verdict is not None:
                settled = _settle(verdict, pending)
                if settled is not None:
                    return settled
                pending = verdict
            elif pending is not None:
                return _unconfirmed(pending)
            if not saturated and not self._kink_like(previous, m):
                # Steps whose one-sided slopes keep a kink's jump measure the average of two
                # slopes, however steady (|x| 2e-9 from its kink: 0 at every larger step): no
                # error bar of a derivative comes from them (the check's scale would take it,
                # and a zeroed claim agreed: the generator's seed 937 case 3714).
                best = self._better(best, previous, error_bar)
            ladder.append(m)
        return best if pending is None else _unconfirmed(pending)

    def _saturated(self, measurements: list[Measurement]) -> bool:
        """Did J stand *exactly* still on one side across these (three, larger) steps, at a
        value that differs from ``J(theta)`` by at least one standard deviation of its measured
        rounding (an eighth of the noise bound)? Then it moved within the smallest of them and
        not beyond: the central differences fall exactly like ``1/h`` (on that side), J is not
        linear across the steps, and their agreement with a claim rests on J's rounding alone.
        A J linear within its noise moves by ``g h`` plus rounding that differs from point to
        point; one flat on that side (a dead unit) stays at ``J(theta)`` itself; one that does
        not depend on the entry at all (a bias before a batch norm) differs from ``J(theta)``
        by the rounding of one evaluation, the same at every step, far below the tensor's
        noise. (Where a linear J's slope is so small that its resolution is coarser than all
        three steps, it shows the same pattern: the entry is then undecided, never wrongly
        decided.)"""
        if len(measurements) < 3:
            return False
        first = measurements[0]
        sides = (lambda m: m.plus, lambda m: m.minus)
        return any(
            abs(side(first) - first.center) * NOISE_SIGMAS >= self.noise
            and all(side(m) == side(first) for m in measurements[1:])
            for side in sides
        )

    @staticmethod
    def _better(best: Verdict, m: Measurement, error_bar: float) -> Verdict:
        """The undecided verdict with the smaller error bar (the check may still weigh it)."""
        if error_bar < best.error_bar:
            return Verdict(UNDECIDED, m.numeric, m.step, error_bar, NOISY)
        return best

    def _descend(
        self, a: float, first: Measurement, measure: Measure, natural_step: float, floor: float
    ) -> Verdict:
        """Smaller steps: truncation shrinks, a nearby kink stops being crossed, a kink at theta
        keeps its jump."""
        kink_step = natural_step / KINK_SCALE
        # A first step far above the natural one (epsilon=10) was taken unwatched and may
        # have crossed kinks: it is no witness for the truncation of the steps below.
        usable = first.finite and first.step <= ASYMPTOTIC * natural_step
        previous = first if usable else None
        seen: list[Measurement] = [first] if usable else []
        jumping: list[tuple[Measurement, Measurement]] = []  # a slope jump holding so far
        pending: Verdict | None = None  # a failure waiting for the next step to confirm it
        step = first.step
        for _ in range(MAX_DESCENT):
            step /= LADDER
            m = measure(step)
            if m.swallowed:
                break  # theta + step == theta: smaller steps measure nothing either
            if not m.finite:
                previous, seen, jumping = None, [], []
                continue
            if previous is not None and _stalled(previous, m):
                break  # J's resolution is reached: smaller steps show its staircase, not J'
            seen.append(m)
            if previous is not None:
                if self._asymptotic(seen):
                    # Each of the three steps may be judged, with a neighbour as witness: the
                    # one with the smallest error bar first (less noise at the larger steps,
                    # less truncation at the smaller ones).
                    large, middle, small = seen[-3:]
                    pairs = sorted(
                        [(large, middle), (middle, large), (small, middle)],
                        key=lambda pair: self._error_bar(*pair),
                    )
                    decided = None
                    # A kink shown at a larger step, whose jump the smaller ones keep within
                    # their noise, is still there: no failure rests on them being smooth.
                    shown = self._kink_shown(seen)
                    for judged, witness in pairs:
                        bar = self._error_bar(judged, witness)
                        verdict = self._decide(a, judged, witness, bar, floor, _spread(seen[-3:]))
                        if verdict is not None and verdict.status == FAIL and shown:
                            verdict = None
                        if verdict is not None:
                            decided = verdict
                            break
                    if decided is not None:
                        settled = _settle(decided, pending)
                        if settled is not None:
                            return settled
                        pending = decided
                    elif pending is not None:
                        return _unconfirmed(pending)
                if step <= kink_step and self._declared_kink_at_theta(seen):
                    return self._at_kink(a, previous, m, floor)
                # An undeclared kink at theta keeps its jump however small the step: follow it
                # down while the noise lets the jump show, so that a kink merely near theta
                # (whose jump fades once the step no longer reaches it) is not taken for one.
                jumping = [*jumping, (previous, m)] if self._stable_jump(seen) else []
                if jumping and JUMP_NOISE * 4 * self.noise_at(step / LADDER) >= abs(
                    m.right - m.left
                ):
                    return self._along_jump(a, jumping, floor)
            reach = max(self.tolerance(a, m.numeric) + floor, abs(a - m.numeric))
            if self.noise_at(step) > reach and not jumping:
                break  # the noise now swamps anything a smaller step could show
            previous = m
        if jumping:
            return self._along_jump(a, jumping, floor)
        if pending is not None:
            return _unconfirmed(pending)
        if previous is None:
            return Verdict(FAIL, np.nan, step, np.inf, "the numeric value is NaN or infinite")
        return Verdict(
            UNDECIDED,
            first.numeric,
            first.step,
            self.noise_of(first),
            "disagrees, but neither smaller steps nor a kink settle it",
        )

    def _asymptotic(self, seen: list[Measurement]) -> bool:
        """Are the last three steps (each LADDER times the next) in the regime where truncation is
        ``c h^2``, so that a pair of them bounds it? Then the change between the two smaller
        ones is between a 32nd and an eighth of the change between the two larger ones
        (``c h^2`` gives a sixteenth), up to their noise. Without this evidence (steps large
        against J's own scale of variation: sin at theta = 1e6 with a step of 9), no error bar
        is trusted."""
        if len(seen) < 3 or any(m.crossed for m in seen[-3:]):
            return False
        large, middle, small = seen[-3:]
        if not (large.step > middle.step > small.step):
            return False
        first_change = abs(large.numeric - middle.numeric)
        second_change = abs(middle.numeric - small.numeric)
        noise = self.noise_of(middle) + self.noise_of(small)
        if second_change <= noise and first_change <= noise + self.noise_of(large):
            return True  # no truncation shows at all: the noise bounds the error
        # c h^2 shrinks 17 times per step; 8 to 32 times allows for the h^4 term. A ratio far
        # off (the h^4 term cancelling the h^2 term at large steps) is no evidence.
        return first_change / 32 - noise <= second_change <= first_change / 8 + noise

    def _kink_shown(self, seen: list[Measurement]) -> bool:
        """Was a kink shown at two consecutive steps of ``seen`` (a slope jump above its noise,
        ``4 noise / h``, at both, of the same size within :data:`JUMP_STABLE`: curvature's
        jump shrinks about 4 times a step), that the last step still keeps within its own noise
        and JUMP_STABLE? Smaller steps, noisier, may no longer show a jump that is still there;
        a kink *near* theta, which they no longer cross, loses it. Where undeclared kinks meet,
        their jumps may nearly cancel (abs at 0 with a tie of a max: slopes of 7.115e-6 and
        7.295e-6 where a right claim is 1.44e-5, the generator's seed 912 case 3567): a small
        jump, shown, is still where a right claim may lie anywhere. It only stops failures."""
        usable = [m for m in seen if m.finite and not m.crossed]
        if len(usable) < 2 or usable[-1] is not seen[-1]:
            return False
        last = usable[-1]
        jump_last = last.right - last.left
        for larger, smaller in zip(usable[:-1], usable[1:], strict=False):
            jumps = (larger.right - larger.left, smaller.right - smaller.left)
            noises = (4 * self.noise_of(larger), 4 * self.noise_of(smaller))
            if (
                abs(jumps[0]) > noises[0]
                and abs(jumps[1]) > noises[1]
                and abs(jumps[0] - jumps[1]) <= JUMP_STABLE * max(abs(j) for j in jumps)
                and abs(jump_last - jumps[1])
                <= JUMP_STABLE * abs(jumps[1]) + 4 * self.noise_of(last)
            ):
                return True
        return False

    def _declared_kink_at_theta(self, seen: list[Measurement]) -> bool:
        """A declared kink whose inputs sat exactly on it at theta, crossed at the last two
        steps (the smallest last)."""
        exact = (ONE_KINK, KINKS_MEET)
        return len(seen) >= 2 and seen[-1].crossed in exact and seen[-2].crossed in exact

    def _stable_jump(self, seen: list[Measurement]) -> bool:
        """Where no declared kink was crossed: a slope jump far above the noise that kept its
        size (within ``JUMP_STABLE``) over the last three steps. Curvature shrinks the jump with
        the step, noise grows it; only a kink keeps it."""
        if len(seen) < 3 or any(m.crossed for m in seen[-3:]):
            return False
        jumps = [m.right - m.left for m in seen[-3:]]
        noise = 4 * self.noise_of(seen[-1])
        last = jumps[-1]
        return abs(last) > JUMP_NOISE * noise and all(
            abs(jump - last) <= JUMP_STABLE * abs(last) for jump in jumps[:-1]
        )

    def _kink_error(self, larger: Measurement, m: Measurement) -> float:
        """Bound on the error of ``m``'s one-sided slopes at a kink: their noise, and their
        truncation, which their change from the ``larger`` step bounds."""
        return 4 * self.noise_of(m) + max(abs(m.left - larger.left), abs(m.right - larger.right))

    def _along_jump(
        self, a: float, pairs: list[tuple[Measurement, Measurement]], floor: float
    ) -> Verdict:
        """The kink verdict along a slope jump followed down ``pairs`` of steps: taken at the
        pair whose slopes have the smallest error bar (less truncation below, less noise above),
        plus whatever the slopes still moved beyond their noise at the smaller steps (a slope
        that keeps changing, 4 times per step, is a kink beside theta within the steps, not one
        at theta)."""
        errors = [self._kink_error(*pair) for pair in pairs]
        best = int(np.argmin(errors))
        drift = 0.0
        for larger, m in pairs[best + 1 :]:
            moved = max(abs(m.left - larger.left), abs(m.right - larger.right))
            drift = max(drift, moved - 4 * (self.noise_of(m) + self.noise_of(larger)))
        return self._at_kink(a, *pairs[best], floor, drift)

    def _at_kink(
        self, a: float, larger: Measurement, m: Measurement, floor: float, drift: float = 0.0
    ) -> Verdict:
        """Three-valued at a kink: ``a`` between the one-sided slopes beyond their error bar
        (a kink), outside them beyond it (what a kink's kind allows), or neither (undecided:
        the bar is too wide to tell, and the check cannot pass)."""
        low, high = sorted((m.left, m.right))
        error = self._kink_error(larger, m) + drift
        declared = bool({ONE_KINK, KINKS_MEET} & {m.crossed, larger.crossed})
        if declared:
            # A declared kink, crossed exactly at theta: a right backward takes one side's
            # slope exactly, and at the steps far below the natural one that show the kink,
            # the noise bound alone often exceeds the tolerance. A claim within the noise of
            # the slopes is excused (docs/gradcheck.md, Known limits).
            tol = self.tolerance(low, high) + error
            inside, near = low - tol <= a <= high + tol, False
        else:
            tol = self.tolerance(low, high) + floor
            inside = low + error - tol <= a <= high - error + tol
            near = low - error - tol <= a <= high + error + tol
            if inside and min(abs(a - low), abs(a - high)) > error + tol:
                # Strictly between the slopes, a value right only if the kink is exactly at
                # theta: a kink nobody declared may lie beside theta, closer than the smallest
                # step the noise allows (|x| at 1e-12 from 0), where J' is one of the slopes and
                # a zeroed claim sits halfway between them.
                return Verdict(UNDECIDED, m.numeric, m.step, error, KINK_BESIDE)
            if inside:
                # On one slope: right if the kink is at theta or beyond it on that slope's
                # side, wrong (by the whole jump) if it lies on the other side. A kink at a
                # distance d from theta moves the far slope by jump * d / h, below its noise
                # 2 noise / h whenever jump * d < 2 noise, at every step: no step tells the side
                # (|x| at 1.5e-13 from 0 with J's noise 1e-7 and a claim of the wrong sign).
                # Only a declared kink, whose inputs sat exactly on it, is known to be at theta.
                return Verdict(UNDECIDED, m.numeric, m.step, error, KINK_SIDE)
        if inside:
            return Verdict(KINK, m.numeric, m.step, error)
        if near:
            return Verdict(UNDECIDED, m.numeric, m.step, error, KINK_UNSURE)
        if KINKS_MEET in (m.crossed, larger.crossed):
            return Verdict(UNDECIDED, m.numeric, m.step, error, KINKS_MEET_REASON)
        if ONE_KINK not in (m.crossed, larger.crossed):
            # Nobody declared which units kink here: several may, and backprop takes each
            # unit's own convention (a ReLU at 0 feeding a tie of a max), so a right value need
            # not lie between J's one-sided slopes. Undecided, and the check cannot pass.
            return Verdict(UNDECIDED, m.numeric, m.step, error, UNDECLARED_KINK_REASON)
        return Verdict(FAIL, m.numeric, m.step, error, "outside the one-sided slopes of a kink")


#: A noise table whose largest second difference exceeds this many times their median has a
#: kink or jump in it: see :func:`estimate_noise`.
LOCALIZED = 20.0


def estimate_noise(values: np.ndarray) -> float | None:
    """The standard deviation of the rounding noise in ``values``, J at equally spaced points
    along a line (Moré and Wild's ECnoise, 2011), or ``None`` when the points do not show it.

    The ``k``-th differences of a smooth function shrink like ``spacing**k``; those of noise
    of standard deviation ``sigma`` have mean square ``sigma**2 / gamma_k`` with
    ``gamma_k = (k!)**2 / (2k)!``. So ``sqrt(gamma_k * mean(diff_k**2))`` estimates ``sigma``
    once the smooth part has died out: the estimate is accepted at the first level ``k`` where
    it agrees within a factor 4 with the next two, and the ``k``-th differences change sign
    (noise, not a smooth trend). Some level of differences all 0: the noise is 0 as far as
    they show. ``None`` for a staircase (two neighbours exactly equal: J's resolution is
    coarser than the spacing, as with float32 inside) and for a kink inside the table.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    steps = np.diff(values)
    if np.any(steps == 0):
        # A staircase: J's resolution (float32 inside, digits lost to cancellation) is coarser
        # than the spacing, and the few steps seen say nothing about the noise at the
        # (larger) steps of a central difference.
        return None
    curvature = np.abs(np.diff(values, 2))
    if np.max(curvature) > LOCALIZED * np.median(curvature):
        # The second differences sit in one place: a kink or a jump inside the table (a tie
        # at theta), not noise, which spreads over all of them.
        return None
    table, sigmas, signs = values, [], []
    for k in range(1, len(values)):
        table = np.diff(table)
        if k >= 2 and np.all(table == 0):
            return 0.0  # exactly a polynomial of degree < k along the line: no rounding seen
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        sigmas.append(math.sqrt(gamma * float(np.mean(table**2))))
        signs.append(bool(np.any(table > 0) and np.any(table < 0)))
    for k in range(len(sigmas) - 2):
        window = sigmas[k : k + 3]
        if min(window) > 0 and max(window) <= 4 * min(window) and signs[k]:
            return window[0]
    return None


def tread(values: np.ndarray) -> float | None:
    """The height of the treads of a staircase that looks smooth: the second differences of
    ``values`` (J at equally spaced points) are whole multiples of one quantum, far above J's
    own last place, and not all the same multiple (``None`` otherwise). A piece computed in
    float32 along one entry gives such tables at spacings wider than its treads: each value is
    a whole number of float32 units, so the second differences are too ([-q, q, 0, q, -q]),
    where a smooth J gives about ``J'' s^2`` in every place, and noise gives no common quantum.
    Such a J may be off a smooth one by about a tread at every point, although a table at a
    single spacing may look exactly linear."""
    values = np.asarray(values, dtype=np.float64)
    second = np.diff(values, 2)
    if second.size < 3 or not np.all(np.isfinite(second)):
        return None
    rounding = 8 * EPS * float(np.max(np.abs(values)))  # float64's own error in one difference
    seen = np.abs(second) > rounding
    if np.count_nonzero(seen) < 2:
        return None
    quantum = float(np.min(np.abs(second[seen])))
    if quantum <= 16 * rounding:
        return None  # too close to float64's last place to tell multiples apart
    multiples = second / quantum
    whole = np.round(multiples)
    if np.any(np.abs(multiples - whole) * quantum > rounding):
        return None
    return quantum if len(set(whole.tolist())) >= 2 else None


#: The reason of an entry that failed at one step (or triple of steps) and not at the next.
UNCONFIRMED = "disagrees at one step, not confirmed at the next"


def _settle(verdict: Verdict, pending: Verdict | None) -> Verdict | None:
    """A failure stands only when the next step (the next triple, in a descent) fails it too:
    three steps of a J that varies on a scale far below them (sin at x ~ 1e-8 with steps of
    1e-7) may mimic the ``c h^2`` pattern by chance, twice in a row they do not. An agreement
    right after a failure contradicts it: the error model does not hold there."""
    if verdict.status == AGREE:
        return verdict if pending is None else _unconfirmed(pending)
    return verdict if pending is not None else None


def _unconfirmed(pending: Verdict) -> Verdict:
    return Verdict(UNDECIDED, pending.numeric, pending.step, pending.error_bar, UNCONFIRMED)


def _linear(measurements: list[Measurement]) -> bool:
    """Is J shown to be smooth at these (larger) steps? Either its central differences agree
    with each other within an eighth of their size (``J(theta + h) - J(theta - h)`` grows like
    ``h``: J is close to linear across them), or J stood exactly still at every one of them (a
    flat J: its derivative is 0). Central differences that fall like ``1/h`` or ``1/h^2`` are
    what a J that varies on a scale far below the steps gives (it changed, then saturated); the
    noise bound, however wide, says nothing about that, so no failure may rest on them."""
    values = [m.numeric for m in measurements]
    size = min(abs(v) for v in values)
    if size > 0 and max(values) - min(values) <= size / STABLE_FAIL:
        return True
    return all(m.plus == m.center == m.minus for m in measurements)


def _spread(measurements: list[Measurement]) -> float:
    """How far apart the central differences of these measurements are."""
    values = [m.numeric for m in measurements]
    return max(values) - min(values)


def _stalled(larger: Measurement, smaller: Measurement) -> bool:
    """Did a side of J that moved at the larger step stand exactly still at the smaller one?
    A smooth J, or one with a kink at theta, keeps moving on a side that moved; a J whose
    digits are lost (log(1 - p) with p near 1, float32 inside) is a staircase whose treads are
    wider than the smaller step."""
    if larger.crossed:
        return False  # the larger step crossed a declared kink: a flat side is expected
    up = larger.plus != larger.center and smaller.plus == smaller.center
    down = larger.minus != larger.center and smaller.minus == smaller.center
    return up or down


def natural_step(theta: np.ndarray | float) -> np.ndarray:
    """``cbrt(eps) * max(1, |theta|)``: the step that balances truncation and rounding."""
    return CBRT_EPS * np.maximum(1.0, np.abs(theta))


def max_step(theta: np.ndarray | float) -> np.ndarray:
    """The largest step the judge tries when noise needs a larger one."""
    return CLIMB_LIMIT * np.maximum(1.0, np.abs(theta))
