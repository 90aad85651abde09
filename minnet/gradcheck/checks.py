"""The public checks, and the loop that runs the judge over every entry of a target."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import evolve

from ..flat import FlatLayout
from ..layers import Layer
from .contract import UNMEASURABLE, contract_violations
from .inputs import check_options, finite_point, finite_value, fused_loss
from .judge import (
    AGREE,
    EPS,
    FAIL,
    JUMP_NOISE,
    JUMP_STABLE,
    KINK,
    KINK_SIDE,
    KINKS_MEET_REASON,
    LADDER,
    LOCALIZED,
    NEAR_KINK,
    NOISE_SIGMAS,
    NOISE_ULPS,
    NOISY,
    UNDECIDED,
    Judge,
    Measurement,
    Verdict,
    estimate_noise,
    tread,
)
from .judge import max_step as max_step_for
from .judge import natural_step as natural_step_for
from .reference import difference_quotient, step_rounding, taken_step
from .report import FAILED, INCONCLUSIVE, PASSED, Entry, GradcheckReport, relative_difference
from .targets import (
    FunctionTarget,
    LayerTarget,
    LossTarget,
    ModelTarget,
    Target,
    checking,
    float64_copy,
    stream,
    upstream_gradient,
)

if TYPE_CHECKING:
    from ..losses import Loss
    from ..model import Sequential

DEFAULT_THRESHOLD = 1e-6
EPS32 = float(np.finfo(np.float32).eps)
#: The reason of an entry decided on the check's scale (see ``_judge_entries``).
ON_SCALE = "agrees within threshold x the check's largest derivative"
WORST_COUNT = 5
#: An entry that agrees at the first step is screened for a kink when the jump between its
#: one-sided slopes exceeds this fraction of their size (curvature at the natural step gives
#: about 6e-6 * J''/J'); a second, smaller step then tells a kink (the jump stays) from
#: curvature (it shrinks).
KINK_SCREEN = 1e-4
#: An entry that agrees at the first step is judged with more steps when the jump between its
#: one-sided slopes exceeds 1/CURVED of its allowance (see ``_judge_entries``).
CURVED = 1.0
#: The first words of the reason of a check whose claimed gradient is 0 everywhere.
NO_SCALE = "no scale to compare against"


class GradcheckError(RuntimeError):
    """The check cannot give a meaningful verdict (for example, the forward is random)."""


class _Tally:
    """The verdicts of one check, gathered tensor by tensor into a report."""

    def __init__(self) -> None:
        self.a: list[np.ndarray] = []
        self.n: list[np.ndarray] = []
        self.settled: list[np.ndarray] = []  # the numeric values the verdicts rest on
        self.by_parameter: dict[str, float] = {}
        self.failures: list[tuple[float, Entry]] = []
        self.kinks: list[Entry] = []
        self.undecided: list[Entry] = []
        self.decided = self.checked = 0
        self.on_scale: list[tuple[Entry, Verdict]] = []
        self.largest = 0.0  # the largest claimed derivative: the check's scale

    def add(self, name, shape, flat_index, analytic, first_numeric, verdicts) -> None:
        """Entries of one tensor; ``verdicts`` maps positions to the judge's verdict for the
        entries that did not plainly agree (the others agreed)."""
        counted = np.ones(len(flat_index), dtype=bool)  # decided: agreed or failed
        for k, v in verdicts.items():
            counted[k] = v.status in (AGREE, FAIL)
        settled = first_numeric.copy()
        for k, v in verdicts.items():
            settled[k] = v.numeric
        self.a.append(analytic[counted])
        self.n.append(first_numeric[counted])
        self.settled.append(settled[counted])
        # The tensor's difference leaves out the entries that agree only on the check's scale
        # (a bias before a batch norm: 1e-17 against 1e-12, both noise): "worst" must not
        # point at noise.
        shown = counted.copy()
        for k, v in verdicts.items():
            shown[k] &= v.reason != ON_SCALE
        with np.errstate(invalid="ignore"):
            self.by_parameter[name] = relative_difference(analytic[shown], settled[shown])
        finite = np.abs(analytic[np.isfinite(analytic)])
        self.largest = max(self.largest, float(np.max(finite, initial=0.0)))
        self.checked += len(flat_index)
        self.decided += len(flat_index) - len(verdicts)
        for k, v in verdicts.items():
            if v.status == AGREE:
                self.decided += 1
                if v.reason == ON_SCALE:
                    index = tuple(int(i) for i in np.unravel_index(flat_index[k], shape))
                    self.on_scale.append((Entry.of(name, index, analytic[k], v.numeric), v))
                continue
            index = tuple(int(i) for i in np.unravel_index(flat_index[k], shape))
            entry = Entry.of(name, index, analytic[k], v.numeric, v.reason)
            if v.status == FAIL:
                self.decided += 1
                badness = entry.relative_error
                self.failures.append((badness if np.isfinite(badness) else np.inf, entry))
            elif v.status == KINK:
                self.kinks.append(entry)
            else:
                self.undecided.append(entry)

    def add_direction(self, name: str, size: int, analytic: float, verdict: Verdict) -> None:
        """A tensor whose random direction agreed: a random projection would show an error in
        any of its entries, so all of them count as checked and decided."""
        self.a.append(np.array([analytic]))
        self.n.append(np.array([verdict.numeric]))
        self.settled.append(np.array([verdict.numeric]))
        self.by_parameter[name] = relative_difference(
            np.array([analytic]), np.array([verdict.numeric])
        )
        self.checked += size
        self.decided += size

    def report(self, target: Target, threshold: float, epsilon, mode: str) -> GradcheckReport:
        a, n, settled = (
            np.concatenate(x) if x else np.zeros(0) for x in (self.a, self.n, self.settled)
        )
        with np.errstate(invalid="ignore"):
            difference = relative_difference(a, n)
            settled_difference = relative_difference(a, settled)
        reasons = []
        nonfinite = [e for _, e in self.failures if "NaN" in e.reason]
        if nonfinite:
            reasons.append(
                f"{len(nonfinite)} entries have a NaN or infinite value: {nonfinite[0].reason} "
                f"at {nonfinite[0].where}"
            )
        # What the entries decided on the check's scale could hide, all together, must not move
        # formula (2) past the threshold; else they are undecided after all.
        hidden = np.linalg.norm([v.error_bar for _, v in self.on_scale])
        if self.on_scale and hidden > threshold * np.linalg.norm(a):
            self.decided -= len(self.on_scale)
            self.undecided += [evolve(entry, reason=NOISY) for entry, _ in self.on_scale]
        excused = len(self.kinks) + len(self.undecided)
        # An undecided entry may hide a wrong gradient (one that agrees within its noise, an
        # error up to that noise, which is wider than the tolerance): no check with one passes.
        # Only where declared kinks of several units meet is an undecided entry excused.
        unsettled = [e for e in self.undecided if e.reason != KINKS_MEET_REASON]
        self.failures.sort(key=lambda pair: -pair[0])
        if self.failures:
            status = FAILED
            wrong = sorted({entry.parameter for _, entry in self.failures})
            worst = self.failures[0][1]
            reasons.append(
                f"{len(self.failures)} entries disagree with the numeric gradient by more than "
                f"the tolerance and the error bar (worst: {worst.where}, analytic "
                f"{worst.analytic:.6g}, numeric {worst.numeric:.6g}"
                f"{': ' + worst.reason if worst.reason else ''}): fix the gradient of "
                f"{', '.join(wrong)}"
            )
        elif target.empty_reason is not None or self.checked == 0:
            status = INCONCLUSIVE
            reasons.append(
                f"nothing was compared ({target.empty_reason or 'no entries'}): a check of "
                "nothing is not a pass"
            )
        elif excused > self.decided and self.largest == 0:
            status = INCONCLUSIVE
            reasons.append(
                f"{NO_SCALE}: every claimed derivative is 0 and J does not move beyond its "
                "rounding noise, so a small derivative cannot be told from 0. Check at a point "
                "where some derivative is not 0 (other inputs or targets, non-zero biases)"
            )
        elif unsettled:
            status = INCONCLUSIVE
            shown = ", ".join(entry.where for entry in unsettled[:6])
            reasons.append(
                f"{len(unsettled)} entries could not be decided ({shown}; "
                f"{unsettled[0].reason}): a wrong gradient may hide there. Check at another "
                "point (off kinks, other inputs, larger gradients), or in float64 throughout"
            )
        elif excused > self.decided:
            status = INCONCLUSIVE
            reasons.append(
                f"only {self.decided} of {self.checked} entries were decided; the rest sat on "
                f"kinks ({len(self.kinks)}) or were too small for the rounding noise "
                f"({len(self.undecided)}). Check at a point off the kinks (non-zero biases, "
                "other inputs), with more rows, or with larger gradients"
            )
        elif not settled_difference <= threshold:
            # Every decided entry agrees within its error bar, each against the tensor's
            # scale; formula (2) over them is large only when those bars are wide against the
            # entries' own sizes (all of them tiny, J losing digits).
            status = INCONCLUSIVE
            reasons.append(
                f"every decided entry agrees within its error bar, but together they differ by "
                f"{settled_difference:.3g}, above the threshold {threshold:g}: the rounding "
                "noise of J is wide against these derivatives. Check where the gradient is "
                "larger, or compute J more accurately (a stable loss, float64 throughout)"
            )
        else:
            status = PASSED
            if difference > threshold:
                reasons.append(
                    f"at the step asked for the difference is {difference:.3g}, above the "
                    f"threshold; at the steps the judge settled on (where noise and truncation "
                    f"are small) it is {settled_difference:.3g}"
                )
        # The headline is formula (2) at the step asked for, the tutorial's number, unless the
        # check passed on other steps: a pass never shows a difference above its threshold.
        # A failure likewise shows the difference it rests on when the step asked for hid it.
        hid = (status == PASSED and difference > threshold) or (
            status == FAILED and difference <= threshold
        )
        shown = settled_difference if hid else difference
        return GradcheckReport(
            status=status,
            difference=shown,
            by_parameter=self.by_parameter,
            threshold=threshold,
            epsilon=epsilon,
            worst=tuple(entry for _, entry in self.failures[:WORST_COUNT]),
            kinks=tuple(self.kinks),
            undecided=tuple(self.undecided),
            decided=self.decided,
            checked=self.checked,
            evaluations=target.evaluations,
            mode=mode,
            reasons=tuple(reasons),
        )


def _judge_entries(target, judge, t, flat_index, epsilon, tally, scale_floor, probes=()) -> None:
    """Every chosen entry of tensor ``t``: one batched pass at the check's step, then the judge
    (with more evaluations) only for the entries that do not plainly agree.

    An entry the judge leaves undecided because its error bar, even at larger steps, stays wide
    next to its own size, is decided on the check's scale when that error bar is below
    ``scale_floor`` (threshold times the check's largest derivative): a bias just before a batch
    norm, whose true gradient is 0 and whose backward gives 1e-17, is right on every scale that
    matters. The report caps what such entries may hide, all together."""
    array = target.arrays[t].reshape(-1)
    analytic = target.analytic[t].reshape(-1)
    theta = array[flat_index]
    a = analytic[flat_index]
    h = np.full(len(flat_index), float(epsilon)) if epsilon else natural_step_for(theta)
    both = target.values_at(t, np.concatenate([flat_index, flat_index]), np.concatenate([h, -h]))
    plus, minus = both[: len(h)], both[len(h) :]
    up, down = taken_step(theta, h), -taken_step(theta, -h)
    # Along an entry where J did not move at all, the tensor's finest level says nothing about
    # J's resolution: the largest level of its tables applies (Judge.worst).
    still = (plus == target.center) & (minus == target.center)
    level = np.where(still, max(judge.noise, judge.worst), judge.noise)
    noise = level / h + step_rounding(plus, minus, h, up, down)  # inf: step swallowed
    finite_a = np.abs(a[np.isfinite(a)])
    # An error bar below threshold * (the tensor's largest derivative) decides an entry...
    floor = judge.threshold * float(np.max(finite_a, initial=0.0))
    allowance = floor  # the definition's F: what a failure must exceed, whatever the cap below
    with np.errstate(invalid="ignore", over="ignore"):
        numeric = difference_quotient(plus, minus, h)
        tolerance = judge.threshold * (np.abs(a) + np.abs(numeric))
        # |a - g| <= |a - n| + (error of n): an agreement must hold with the error bar added.
        gap = np.abs(a - numeric) + noise
        agree = np.isfinite(a) & np.isfinite(numeric)
        strict = agree & (gap <= tolerance)
        on_floor = agree & ~strict & (gap <= tolerance + floor)
    # ... but only while the errors such entries could hide, all together, cannot move the
    # tensor's difference past the threshold. Otherwise they go to the judge, who tries larger
    # steps.
    if np.linalg.norm(noise[on_floor]) > judge.threshold * np.linalg.norm(finite_a):
        on_floor[:] = False
        floor = 0.0
    # A claimed 0 where J did not move is judged like any claim: it agrees when the noise is
    # small enough that a derivative above the tolerance would have moved J.
    plainly = strict | on_floor
    # The first step's agreement carries its noise, not its truncation (J''' h^2 / 6), which
    # needs more steps. Where the one-sided slopes agree within 1/CURVED of the allowance, J'' h
    # is below it, and so is the truncation unless theta sits within about h / 6 of an
    # inflection (docs/gradcheck.md). Where they do not (``curved``), the entry is judged with
    # an error bar from smaller steps: a claim wrong by just over the allowance would agree
    # with a central difference whose truncation happens to cover the gap.
    # Entries that agree with the central difference may also sit on a kink: the central
    # difference of a three-way tie of a max is 1/2 for each entry, and so is a backward that
    # gives each tied entry half. A slope jump far above the noise (``screened``) is measured
    # again at a smaller step below: a kink keeps it, curvature shrinks it, noise does neither.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        left, right = (target.center - minus) / down, (plus - target.center) / up
        jump = right - left
        curved = plainly & ~(np.abs(jump) <= (tolerance + floor) / CURVED)
        screened = (
            plainly
            & np.isfinite(jump)
            & (np.abs(jump) > KINK_SCREEN * (np.abs(left) + np.abs(right)))
            & (np.abs(jump) > JUMP_NOISE * 4 * noise)
        )
    plainly &= ~(curved & ~screened)

    def first_step(k) -> Measurement:
        """Entry ``k``'s measurement at the check's step, from the batched pass."""
        return Measurement(
            float(h[k]),
            float(plus[k]),
            float(minus[k]),
            target.center,
            up=float(up[k]),
            down=float(down[k]),
        )

    def steps(k) -> dict[str, float]:
        """The judge's step options for entry ``k``."""
        return {
            "natural_step": float(natural_step_for(theta[k])),
            "max_step": float(max_step_for(theta[k])),
            "floor": floor,
        }

    def confirm(k, v: Verdict) -> Verdict:
        """A failure of entry ``k``, confirmed or withdrawn (see :func:`_confirm_failure`)."""
        return _confirm_failure(
            target, judge, _along(target, t, flat_index[k]), a[k], v, floor, float(h[k])
        )

    verdicts = {}
    for k in np.flatnonzero(~plainly):
        measure = target.measure(t, int(flat_index[k]), target.center)
        verdicts[int(k)] = judge.judge(
            a[k], first_step(k), measure, **steps(k), curved=bool(curved[k])
        )
    for k, v in verdicts.items():
        if v.status == FAIL and np.isfinite(v.numeric) and np.isfinite(a[k]):
            verdicts[k] = confirm(k, v)
    for k, v in verdicts.items():
        if (
            v.status == UNDECIDED
            and v.reason == NOISY
            and v.error_bar <= scale_floor
            and abs(a[k] - v.numeric) <= judge.tolerance(a[k], v.numeric) + v.error_bar
        ):
            verdicts[k] = Verdict(AGREE, v.numeric, v.step, v.error_bar, ON_SCALE)
    # The screened entries: a jump that keeps its size is a kink, and such entries join the
    # kinks that are checked together.
    hidden_kinks = []
    for k in np.flatnonzero(screened):
        m = target.measure(t, int(flat_index[k]), target.center)(float(h[k]) / LADDER)
        if not m.finite or m.crossed == NEAR_KINK:
            curved_again = curved[k]
        elif m.crossed or abs((m.right - m.left) - jump[k]) <= JUMP_STABLE * abs(jump[k]):
            hidden_kinks.append(int(k))  # the jump kept its size: a kink, not curvature
            continue
        else:
            curved_again = False
        if curved_again or (curved[k] and not _grew_or_noise(m, jump[k], judge.noise)):
            # Curvature (the jump shrank like curvature's), at the allowance's scale: the
            # agreement needs an error bar for its truncation, from smaller steps.
            measure = target.measure(t, int(flat_index[k]), target.center)
            v = judge.judge(a[k], first_step(k), measure, **steps(k), curved=True)
            if v.status == FAIL and np.isfinite(v.numeric):
                v = confirm(k, v)
            verdicts[int(k)] = v
        elif not m.finite or m.crossed == NEAR_KINK:
            continue
        elif _grew_or_noise(m, jump[k], judge.noise):
            # The jump grew as the step shrank (curvature shrinks it, a kink keeps it): J varies
            # on a scale below the step, where the first agreement may be a saturated central
            # difference (near 0) meeting a zeroed claim. The judge decides it at smaller steps.
            # A jump that neither grew that much nor shrank like curvature's (4 times, up to
            # the noise) is the noise of this entry showing in its second differences (a piece
            # computed in float32, flat at the spacings of the tensor's noise table, whose
            # treads the two steps straddle differently): that noise is measured here, and the
            # entry is judged with it.
            entry_judge = judge
            if abs(m.right - m.left) <= 2 * abs(jump[k]):
                second = max(abs(jump[k]) * float(h[k]), abs(m.right - m.left) * m.step)
                entry_judge = evolve(judge, noise=max(judge.noise, second))
            first, options = first_step(k), steps(k)
            measure = target.measure(t, int(flat_index[k]), target.center)
            v = entry_judge.judge(a[k], first, measure, **options)
            if v.status == AGREE and entry_judge is not judge:
                # A wider noise must not make an agreement easier: under it, larger steps beyond
                # J's scale of variation (central differences falling like 1/h, near 0) look
                # consistent "within the noise", and meet a zeroed claim. The agreement must
                # hold with the tensor's noise too.
                if judge.judge(a[k], first, measure, **options).status != AGREE:
                    v = Verdict(UNDECIDED, v.numeric, v.step, v.error_bar, OWN_NOISE_ONLY)
            if v.status == FAIL and np.isfinite(v.numeric):
                v = confirm(k, v)
            if v.status != AGREE:
                verdicts[int(k)] = v
    # A failure is wrong by the definition (docs/gradcheck.md): beyond threshold * (|a| + |n|)
    # + F and its error bar, with F the definition's allowance even where the cap above took
    # it from the agreements (a claim 7e-4 off an entry of 0.014, beside one of 58: within F,
    # failed with F = 0, the generator's seed 952 case 1589).
    for k, v in verdicts.items():
        if v.status == FAIL and np.isfinite(v.numeric) and np.isfinite(a[k]):
            gap = abs(a[k] - v.numeric) - v.error_bar
            if gap <= judge.tolerance(a[k], v.numeric) + allowance:
                verdicts[k] = Verdict(UNDECIDED, v.numeric, v.step, v.error_bar, WITHIN_ALLOWANCE)
    # An entry that agrees only because the tensor's finest level is its noise, not under the
    # largest level its tables show, may be a float32 piece whose treads that level does not
    # see (at the first step they can leave the slopes equal and the central difference off by
    # a tread over the step: a 1% error agreed, seeds 927 case 3500 and 930 case 3958). Its
    # own noise is measured, on and off the judge's steps, and the agreement must hold with
    # it too. A tensor whose tables show one level only (float64 throughout) costs nothing.
    # Where the tables stood still against the first step (:func:`_tables_stood_still`: a
    # float32 piece flat across the fine tables, whose treads no table shows), some entry's
    # values are off a smooth J by more than the finest level, and the tables do not say which
    # nor by how much: every agreement that rests on that level is in doubt (the generator's
    # seed 1011 case 4468: a 2.2e-4 error agreed with a central difference off by as much).
    # A check whose tables move as its first step says (float64 throughout) costs nothing.
    stood_still = len(flat_index) == array.size and _tables_stood_still(
        probes, flat_index, numeric, left, right, noise, judge
    )  # (sampled: the tables moved entries that the first step did not measure)
    if judge.coarse > judge.noise or stood_still:
        if stood_still:
            doubtful = plainly
        else:
            coarse = judge.coarse / h + step_rounding(plus, minus, h, up, down)
            with np.errstate(invalid="ignore"):
                doubtful = plainly & ~(np.abs(a - numeric) + coarse <= tolerance + floor)
        for k in np.flatnonzero(doubtful):
            if int(k) in verdicts or int(k) in hidden_kinks:
                continue
            measure = _along(target, t, flat_index[k])
            own = 0.0
            for shift in (1.0, 1.0 / SCAN):
                level = _own_noise(measure, shift * float(h[k]) / LADDER, target.center)
                own = max(own, 0.0 if level is None else level)  # None: a declared kink
            if own <= REFUTES * judge.noise:
                # The same noise as the tensor's, up to what two estimates from 9 values each
                # differ by: no coarser resolution along this entry.
                continue
            bar = max(judge.noise, own) / float(h[k]) + float(
                step_rounding(plus[k], minus[k], h[k], up[k], down[k])
            )
            if not abs(a[k] - numeric[k]) + bar <= tolerance[k] + floor:
                verdicts[int(k)] = Verdict(
                    UNDECIDED, float(numeric[k]), float(h[k]), bar, OWN_NOISE
                )
    _check_kinks_together(target, judge, t, flat_index, a, verdicts, hidden_kinks, numeric, h)
    name, shape = target.names[t], target.arrays[t].shape
    tally.add(name, shape, flat_index, a, numeric, verdicts)


def _tables_stood_still(probes, flat_index, numeric, left, right, noise, judge) -> bool:
    """Did some noise table of the tensor move less (or more) than the first step's central
    differences say J moves, beyond what a right agreement at the first step allows?

    Each table (``probes``: the moves of its points and J at them, :func:`_noise_levels`) moved
    J along a line at a spacing far below the check's step; its mean slope per point,
    ``(J_last - J_first) / 8``, is J's derivative along the line times the moves, up to the
    table's own error (its noise, its second and third differences: curvature, truncation, a
    kink or a tread's edge in it). The first step's central differences ``n`` predict that
    slope, ``sum(n * moves)``, up to what each ``n`` may be off the derivative where a plain
    agreement holds: its noise bar, ``threshold * 2|n|`` and ``threshold * max|n|`` (the
    allowance of a right claim), and half the gap of its one-sided slopes ``|R - L| / 2``
    (a kink within the step: the slope there is one side's; curvature's truncation is far
    below it). Beyond that, J at the fine spacings is not the J the first step measured: a
    float32 piece that stood still across the fine tables (its treads wider than all their
    points) and moved at the first step by whole treads, its central difference off by a
    fraction of a tread over the step, at a resolution the finest level does not show. It
    measures J against J (the claim plays no part), and costs no evaluation."""
    with np.errstate(invalid="ignore", over="ignore"):
        slack = noise + judge.threshold * (2 * np.abs(numeric) + np.max(np.abs(numeric)))
        slack = slack + np.abs(right - left) / 2
        if not (np.all(np.isfinite(slack)) and np.all(np.isfinite(numeric))):
            return False  # a step swallowed or overflowed: no prediction
        for moves, table in probes:
            m = moves.reshape(-1)[flat_index]
            half = (len(table) - 1) // 2
            observed = (table[-1] - table[0]) / (2 * half)
            predicted = float(np.sum(numeric * m))
            own = judge.noise / half + float(np.max(np.abs(np.diff(table, 2))))
            own += half * float(np.max(np.abs(np.diff(table, 3))))
            rounding = 4 * EPS * float(np.sum(np.abs(numeric * m)))
            bound = float(np.sum(np.abs(m) * slack)) + own + rounding
            if abs(observed - predicted) > bound:
                return True
    return False


def _grew_or_noise(m: Measurement, jump: float, noise: float) -> bool:
    """Did the slope jump ``jump`` of the first step, measured again at ``m`` (a step 4 times
    smaller), neither keep its size nor shrink like curvature's (4 times, up to the noise)?"""
    again = abs(m.right - m.left)
    return again > 2 * abs(jump) / LADDER or again < abs(jump) / (2 * LADDER) - 4 * noise / m.step


#: The reason of an entry that agrees with its own second differences as noise, not without.
OWN_NOISE_ONLY = "agrees only within the noise of its own second differences"
#: The reason of an entry whose failure its own noise table withdrew.
OWN_NOISE = "J's own rounding at this entry is too coarse to tell (float32 inside, lost digits)"


def _along(target, t, index):
    """``measure(step)`` for one entry of tensor ``t``."""
    return target.measure(t, int(index), target.center)


def _confirm_failure(target, judge, measure, a, verdict, floor, reach) -> Verdict:
    """A failure stands only if the noise of J measured along the failing line alone (one entry,
    or the direction of a set of kinks), at the step the failure was found (ECnoise tables over
    +-that step), does not explain it. The noise of a check is measured once per tensor; one
    entry may be far noisier than the rest (a piece computed in float32, a log(1 - p) losing its
    digits): its table is then a staircase, or shows that noise. ``reach``: the first step of
    the entry (or line), where the judge started."""
    # Tables from the failure's step up to the largest step its evidence rests on (a triple of
    # steps, each 4 times the next, whose central differences showed c h^2): a piece computed
    # in float32 is a staircase that may look exactly linear (with a slope off by a fraction of
    # a tread) at the failure's step, and shows its treads only at larger spacings.
    top = LADDER**2 * verdict.step
    # At the larger spacings only a staircase or localized jumps count: there a smooth J that
    # varies on a scale below them would show its variation as "noise".
    own = 0.0
    for shift in (1.0, 1.0 / SCAN):
        # Tables at the judge's own steps may meet a binary float32 grid in the same phase at
        # every spacing and see a staircase as an exact straight line whose slope is off by a
        # fraction of a tread (seed 361 case 1873 of the generator, with steps 4 times apart:
        # the same wrong slope at five steps). Tables at spacings SCAN (irrational) times off
        # the judge's steps meet it in other phases and show the treads.
        spacing, finest = shift * verdict.step / (PROBE_POINTS // 2), True
        while spacing <= top / (PROBE_POINTS // 2):
            level = _own_noise(measure, spacing, target.center, finest)
            if level is None:
                if shift == 1.0:
                    return verdict  # a declared kink or overflow in the table: it stands
                break
            own, finest = max(own, level), False
            spacing *= LADDER
    bar = verdict.error_bar + own / verdict.step
    if abs(a - verdict.numeric) <= judge.tolerance(a, verdict.numeric) + floor + bar:
        return Verdict(UNDECIDED, verdict.numeric, verdict.step, bar, OWN_NOISE)
    # Between the failure's steps and the larger ones (the first step, the steps its evidence
    # rests on) J may have changed its slope: a kink near theta (J continuous: the slope below
    # it is J'), or it may have jumped in value: the edge of a tread of a staircase (float32
    # inside: between the edges J need not follow the function the backward differentiates,
    # and steps of whole treads look exactly linear). Only the first is a ground for failing.
    jump = _value_jump(
        measure, target.center, verdict, max(reach, LADDER**2 * verdict.step), judge.noise
    )
    if jump > 0:
        bar = verdict.error_bar + max(own, jump) / verdict.step
        if abs(a - verdict.numeric) <= judge.tolerance(a, verdict.numeric) + floor + bar:
            return Verdict(UNDECIDED, verdict.numeric, verdict.step, bar, JUMPS)
    return verdict


#: The reason of an entry whose failure rests on steps below a jump of J's value.
JUMPS = (
    "J's value jumps between the steps the failure rests on and the larger ones (float32 "
    "inside: a staircase whose treads are wider than the step)"
)
#: Cuts in three of the interval where J departs from its slope, looking for a jump of its
#: value (3**13 is about 2**20).
SECTIONS = 13
#: The steps of that search grow by this factor, irrational so that they are not whole
#: multiples of the failure's step: steps of whole treads of a float32 grid (the judge's steps
#: are powers of 2 apart, and a float32 grid is binary too) show no staircase at all.
SCAN = float(np.pi)


def _value_jump(measure, center: float, verdict: Verdict, reach: float, noise: float) -> float:
    """The largest jump of J's *value* (a discontinuity) between the failure's step and
    ``reach`` (the first step, or the largest step the failure rests on), on either side of
    theta, or 0.

    Along each side, the excess of J over the line with the failure's slope,
    ``e(x) = J(theta +- x) - J(theta) -+ n x``, is followed up steps ``SCAN`` times apart; where
    it grows abruptly (twice as fast as curvature's ``x^2``), that interval is searched for a
    jump (:func:`_jump_in`): a continuous J (a kink, a steep smooth piece) departs less and
    less from a straight line as the interval narrows, a jump keeps its size. A jump counts
    when it stays above 4 times J's noise."""
    slope, largest, bisected = verdict.numeric, 0.0, 0

    def excess(m: Measurement) -> tuple[float, float]:
        return (
            m.plus - center - slope * m.taken_up,
            m.minus - center + slope * m.taken_down,
        )

    previous: tuple[float, tuple[float, float], tuple[float, float]] | None = None
    x = verdict.step
    while x <= reach and bisected < 2:
        m = measure(x)
        if not m.finite or m.crossed:
            break
        e = excess(m)
        if previous is not None:
            for side in (0, 1):
                lo, hi = previous[0], x
                e_lo, e_hi = previous[1][side], e[side]
                if not abs(e_hi) > 2 * SCAN**2 * abs(e_lo) + 4 * noise or bisected >= 2:
                    continue
                bisected += 1
                ends = previous[2][side], (m.plus, m.minus)[side]
                change = _jump_in(measure, side, lo, hi, *ends, (slope, -slope)[side])
                if change > 4 * noise:
                    largest = max(largest, change)
        previous = (x, e, (m.plus, m.minus))
        # The last point is ``reach`` itself: an edge between the last scan step below it and
        # it (a float32 tread's edge between 5.8e-3 and the first step 1.3e-2) is bracketed too
        # (the generator's seed 926 case 2450).
        x = reach if x < reach < x * SCAN else x * SCAN
    return largest


def _jump_in(
    measure, side: int, lo: float, hi: float, j_lo: float, j_hi: float, slope: float
) -> float:
    """The jump of J's value between steps ``lo`` and ``hi`` on one side of theta, or 0 where
    J is continuous there. The interval is cut in three ``SECTIONS`` times, keeping the third
    whose change departs most from ``slope``, the failure's slope along this side (the line
    :func:`_value_jump` measures the excess against: J between two edges of a staircase moves
    with a slope of its own, from float64 terms, as large as the edge, and the failure's steps,
    below a tread, measured it). A continuous J departs less and less (a kink by a third as much
    at each cut), a jump keeps its size. It counts when it keeps more than
    ``3**-(SECTIONS / 2)`` of its first departure. (The median slope of the three thirds was
    the reference before: where two thirds hold an edge each, the median is an edge's, and the
    cut followed the third without one.)"""
    first = departure = 0.0
    for level in range(SECTIONS):
        a, b = lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3
        values = []
        for x in (a, b):
            m = measure(x)
            if not m.finite or m.crossed:
                return 0.0
            values.append((m.plus, m.minus)[side])
        points = [(lo, j_lo), (a, values[0]), (b, values[1]), (hi, j_hi)]
        thirds = list(zip(points[:-1], points[1:], strict=True))
        departures = [abs((jy - jx) - slope * (y - x)) for (x, jx), (y, jy) in thirds]
        k = int(np.argmax(departures))
        departure = departures[k]
        if level == 0:
            first = departure
        (lo, j_lo), (hi, j_hi) = thirds[k]
    return departure if departure > first * 3.0 ** (-SECTIONS / 2) else 0.0


def _own_noise(measure, spacing: float, center: float, smooth_too: bool = True) -> float | None:
    """How far one value of J may be off a smooth J, from a table of J along one entry with
    this spacing (``None``: the table crossed a declared kink or overflowed). Without
    ``smooth_too``, only a staircase or jumps in a few places count (0 otherwise)."""
    values = [center]
    for k in range(1, PROBE_POINTS // 2 + 1):
        m = measure(k * spacing)
        if m.crossed or not m.finite:
            return None
        values = [m.minus, *values, m.plus]
    steps = np.diff(values)
    if np.any(steps == 0) and not np.all(steps == 0):
        # A staircase: each value of J may be off by up to the highest tread in the table.
        return float(np.max(np.abs(steps)))
    if tread(np.array(values)) is not None:
        # Second differences in whole float32 units (a staircase wider than its treads, which
        # can look exactly linear at other spacings): J may be off a smooth J by the largest.
        return float(np.max(np.abs(np.diff(values, 2))))
    sigma = estimate_noise(np.array(values))
    if sigma is None:
        # No noise level shows (the second differences sit in a few places: a staircase whose
        # treads the spacing straddles, float32 inside, or a kink in the table): J may then be
        # off a straight line by its largest second difference.
        return float(np.max(np.abs(np.diff(values, 2))))
    return NOISE_SIGMAS * sigma if smooth_too else 0.0


def _check_kinks_together(
    target, judge, t, flat_index, a, verdicts, hidden_kinks, numeric, h
) -> None:
    """The kinks of a tensor checked together: the entries excused one by one as kinks, and
    ``hidden_kinks`` (entries that agree with the central difference but whose one-sided
    slopes differ as a kink's do). Along the sum of their directions, and along a random
    signed combination, the claims must agree with J where J is smooth along that line and lie
    between its one-sided slopes where it is not: a backward that gives the whole gradient to
    each of two tied maxima puts each entry between its slopes, but not the pair. A failure
    fails them all."""
    # The entries on one slope of an undeclared kink are undecided one by one (the kink may
    # lie on either side of theta), and kinks all the same: together they may still be wrong.
    kinks = [k for k, v in verdicts.items() if v.status == KINK or v.reason == KINK_SIDE] + list(
        hidden_kinks
    )
    if len(kinks) < 2 and not hidden_kinks:
        return  # one kink, judged on its own already
    # A hidden kink alone is judged too: its claim agreed with the central difference only, and
    # a kink *near* theta (|x| at 1e-10 from 0, steps of 1e-6) makes that central difference
    # the average of two slopes, neither of which need be the derivative at theta.
    theta = float(np.max(np.abs(target.arrays[t].reshape(-1)[flat_index[kinks]])))
    step = float(natural_step_for(theta))
    signs = stream(0, "directions", len(kinks)).choice([-1.0, 1.0], size=len(kinks))
    # The definition's allowance: threshold times the tensor's largest derivative.
    floor = judge.threshold * float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
    for weights in (np.ones(len(kinks)), signs)[: 1 if len(kinks) == 1 else 2]:
        direction = np.zeros(target.arrays[t].size)
        direction[flat_index[kinks]] = weights / np.sqrt(len(kinks))
        direction = direction.reshape(target.arrays[t].shape)
        analytic = float(np.sum(a[kinks] * weights) / np.sqrt(len(kinks)))
        measure = target.measure_along(t, direction, target.center)
        together = judge.judge(
            analytic,
            measure(step),
            measure,
            natural_step=step,
            max_step=float(max_step_for(theta)),
            floor=floor,
            kinked=True,
        )
        if together.status == FAIL and np.isfinite(together.numeric):
            together = _confirm_failure(target, judge, measure, analytic, together, floor, step)
        if together.status == FAIL and abs(analytic - together.numeric) - together.error_bar <= (
            _allowance_along(a[kinks], weights / np.sqrt(len(kinks)), judge.threshold, floor)
        ):
            # Wrong along the line by the judge's allowance for one number, but not by the
            # definition's, which is per entry: claims each within their own allowance add up,
            # along the line, to anything within the sum of those allowances.
            together = Verdict(
                UNDECIDED, together.numeric, together.step, together.error_bar, WITHIN_ENTRIES
            )
        if together.status == FAIL or (
            together.status == UNDECIDED and together.reason != KINKS_MEET_REASON
        ):
            # Failed together, or not shown to agree together: a tie whose entries each claim
            # the whole share sits between each entry's slopes; only the set shows it.
            status = together.status
            name = target.names[t]
            if len(kinks) > 1:
                what, verbs = f"the {len(kinks)} kinks of {name} together", ("disagree", "are")
            else:
                what, verbs = f"a slope jump of {name} at smaller steps", ("disagrees", "is")
            reason = f"{what} " + (
                verbs[0] if status == FAIL else f"{verbs[1]} undecided ({together.reason})"
            )
            for k in kinks:
                v = verdicts.get(k)
                if v is not None and v.status == FAIL:
                    continue
                n, at, bar = (v.numeric, v.step, v.error_bar) if v else (numeric[k], h[k], 0.0)
                verdicts[k] = Verdict(status, float(n), float(at), float(bar), reason)
            return


#: The reason of an entry that disagrees beyond the judge's allowance for its steps, but not
#: beyond the definition's.
WITHIN_ALLOWANCE = "disagrees, but within the definition's allowance and the error bar"

#: The reason of kinks whose claims disagree with J along their joint line by less than the
#: entries' own allowances add up to there.
WITHIN_ENTRIES = "within the entries' own allowances added up along their line"


def _allowance_along(claims: np.ndarray, weights: np.ndarray, threshold: float, floor: float):
    """The most by which claims that are each right by docs/gradcheck.md's definition
    (``|a - g| <= threshold * (|a| + |g|) + floor`` in every entry) can differ from the truth
    along the line ``weights``: each entry's ``|a - g|`` is at most ``(2 threshold |a| +
    floor) / (1 - threshold)``, and the line adds them up with ``|weights|``."""
    per_entry = (2 * threshold * np.abs(claims) + floor) / (1 - threshold)
    return float(np.sum(np.abs(weights) * per_entry))


def _judge_direction(target, judge, t, rng, epsilon) -> tuple[float, Verdict]:
    """Tensor ``t`` along one random unit direction: the analytic ``a . u`` and the verdict."""
    array = target.arrays[t]
    # Rademacher: every entry weighs the same (1/sqrt(size)), so an error in any one entry moves
    # the projection by as much as an error of that size can.
    direction = rng.choice([-1.0, 1.0], size=array.shape) / np.sqrt(array.size)
    analytic = float(np.sum(target.analytic[t] * direction))
    theta = float(np.max(np.abs(array)))
    h = float(epsilon) if epsilon else float(natural_step_for(theta))
    measure = target.measure_along(t, direction, target.center)
    verdict = judge.judge(
        analytic,
        measure(h),
        measure,
        natural_step=float(natural_step_for(theta)),
        max_step=float(max_step_for(theta)),
        floor=judge.threshold * float(np.linalg.norm(target.analytic[t])),
    )
    return analytic, verdict


def _run(
    target: Target,
    *,
    epsilon: float | None,
    threshold: float,
    fast: bool,
    samples: int | None,
    seed: int | None,
) -> GradcheckReport:
    mode = "fast" if fast else "sampled" if samples is not None else "full"
    if target.empty_reason is not None:
        return _Tally().report(target, threshold, epsilon, mode)
    # Steps far from theta may overflow J: the judge sees inf or NaN and says so; numpy need not.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _judge_all(target, epsilon, threshold, fast, samples, seed, mode)


def _judge_all(target, epsilon, threshold, fast, samples, seed, mode) -> GradcheckReport:
    center = target.count(None)
    if target.count(None) != center and not (np.isnan(center)):
        raise GradcheckError(
            "the forward is not deterministic: it gave two different values for the same input "
            "(a random layer such as Dropout in training mode?). Hold its randomness fixed, or "
            "call eval() on the model before checking."
        )
    target.center = center
    # Every target's scale is at least |J|: the rounding error of J is relative to it.
    # The worst-case model, used for a tensor whose noise cannot be measured: NOISE_ULPS units
    # in the last place of J's scale (every target's scale is at least |J|).
    assumed = NOISE_ULPS * EPS * target.scale() if np.isfinite(center) else 0.0
    judges = []
    probes: dict[int, list] = {t: [] for t in range(len(target.arrays))}  # each tensor's tables
    if fast:
        # One noise table, on the largest tensor, for all: fast mode's budget is a few
        # evaluations per tensor.
        largest = int(np.argmax([array.size for array in target.arrays]))
        judges = [_judge_for(target, largest, seed, threshold, assumed)] * len(target.arrays)
    for t in range(len(target.arrays) if not fast else 0):
        judges.append(_judge_for(target, t, seed, threshold, assumed, probes[t]))
    layout = FlatLayout.of(zip(target.names, target.arrays, strict=True))
    directions = stream(seed, "directions")
    sampling = stream(seed, "samples")
    chosen = {}  # the entries each tensor checks
    for t, size in enumerate(layout.sizes):
        chosen[t] = np.arange(size)
        if samples is not None and samples < size and not fast:
            chosen[t] = np.sort(sampling.choice(size, samples, replace=False))
    # The check's scale: its largest claimed derivative among the entries it compares.
    largest = [
        np.abs(g.reshape(-1)[chosen[t]]) for t, g in enumerate(target.analytic) if chosen[t].size
    ]
    scale_floor = threshold * max(
        (float(np.max(g[np.isfinite(g)], initial=0.0)) for g in largest), default=0.0
    )
    tally = _Tally()
    for t, name in enumerate(layout.names):
        size = target.arrays[t].size
        if size == 0:
            continue
        if fast:
            analytic, verdict = _judge_direction(target, judges[t], t, directions, epsilon)
            if verdict.status == AGREE:
                tally.add_direction(name, size, analytic, verdict)
                continue
            # The direction does not plainly agree: find out which entries, and why, with the
            # tensor's own noise.
            probes[t] = []
            judges[t] = _judge_for(target, t, seed, threshold, assumed, probes[t])
        _judge_entries(target, judges[t], t, chosen[t], epsilon, tally, scale_floor, probes[t])
    return tally.report(target, threshold, epsilon, mode)


#: Spacing of the noise probe along a unit direction, relative to the tensor's size: small
#: enough that J's smooth part vanishes from the higher differences, large enough that every
#: entry does move. A probe that shows no noise level is tried again this much finer.
PROBE_STEP = 1e-6
PROBE_REFINE = 1e-3
PROBE_SPACINGS = 3
#: Points of the noise probe (ECnoise's table), and the bound taken: that many standard
#: deviations of the measured noise (one value of J is within it but for odds below 1e-15).
PROBE_POINTS = 8
#: The least noise assumed for one value of J, in units of eps * |J|: J's own last place.
ULP_FLOOR = 4


def exact_moves(array: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """``moves`` rounded, entry by entry, to a power of two of at least two units in the last
    place of the entry (same sign): then ``array + k * moves`` is exact for small whole ``k``,
    and a table of J along it is equally spaced, as ECnoise needs. (Moves of 1e-12 * theta
    would otherwise be rounded by 1e-4 of their size, which J shows as noise.)"""
    least = 2 * np.spacing(np.abs(array))
    size = np.maximum(np.abs(moves), least)
    return np.sign(moves) * np.exp2(np.ceil(np.log2(size)))


def _judge_for(
    target: Target,
    t: int,
    seed: int | None,
    threshold: float,
    assumed: float,
    probes: list | None = None,
):
    """The judge of tensor ``t``: its noise the finest level its tables show (the worst-case
    model ``assumed`` where none does); for entries along which J did not move at all, the
    largest level any of its tables shows, and at least the worst-case model
    (:attr:`.judge.Judge.worst`). ``probes`` receives the tables (:func:`_noise_levels`)."""
    finest, largest = _noise_levels(target, t, seed, probes)
    if largest is not None and largest < 0:
        # J moved in none of the tables: its resolution along the tensor is coarser than
        # every spacing (float32 inside, digits lost), or it does not depend on the tensor,
        # and no table says which. The worst-case model is then float32's, not float64's: a J
        # exactly flat at every step is no evidence that a derivative the claim says would
        # move it is 0 (a float32 exp piece flat up to steps of 0.05 failed a right claim of
        # 1e-8: seed 932 case 680).
        return Judge(threshold, assumed if finest is None else finest, assumed * EPS32 / EPS)
    return Judge(
        threshold,
        assumed if finest is None else finest,
        max(assumed, largest or 0.0),
        largest or 0.0,
    )


def _tensor_noise(target: Target, t: int, seed: int | None) -> float | None:
    """The finest noise level of tensor ``t`` (:func:`_noise_levels`)."""
    return _noise_levels(target, t, seed)[0]


def _noise_levels(
    target: Target, t: int, seed: int | None, probes: list | None = None
) -> tuple[float | None, float | None]:
    """The rounding noise of J when tensor ``t`` moves, measured (:func:`.judge.estimate_noise`)
    along one random direction: ``NOISE_SIGMAS`` standard deviations, at least ``ULP_FLOOR``
    units in J's last place. ``None`` when the probe cannot tell (it crossed a declared kink,
    overflowed, or no difference level shows noise); the caller then assumes the worst-case
    model.

    The table is taken at ``PROBE_SPACINGS`` spacings from ``PROBE_STEP`` down by
    ``PROBE_REFINE`` each, and the finest that shows noise is used: at a coarse spacing, a
    kink inside the table or a J that varies on a scale below the spacing (parameters of size
    1e-7) look like noise; a finer table gets clear of them. A staircase (float32 inside, J
    losing digits) shows as equal neighbours and is no estimate at that spacing.

    Returned with the largest level any spacing shows (not refuted): the bound for an entry
    along which J did not move at all. A float32 piece inside J is flat at the fine spacings,
    where the float64 pieces beside it show their own rounding, and shows its treads only at
    the coarse one; exact stillness at the check's step is what such a resolution gives
    along its entry (the generator's seed 905 case 4774: a zeroed claim on a float32 exp piece
    agreed against the float64 level, 5e7 times too fine).

    ``probes``, when given, receives each table with its moves, ``(moves, table)``, for
    the check of the first step against them, :func:`_tables_stood_still`."""
    array = target.arrays[t]
    if array.size == 0 or not np.isfinite(target.center):
        return None, None
    rng = stream(seed, "noise", t)
    direction = rng.standard_normal(array.shape)
    direction /= np.linalg.norm(direction)
    spacing = PROBE_STEP * max(1.0, float(np.max(np.abs(array))))
    estimates, tables = [], []
    for _ in range(PROBE_SPACINGS):
        moves = exact_moves(array, spacing * direction)
        table = target.table_along(t, moves, PROBE_POINTS // 2)
        if table is not None:
            estimates.append(estimate_noise(table))
            tables.append(np.asarray(table, dtype=np.float64))
            if probes is not None:
                probes.append((moves, tables[-1]))
        spacing *= PROBE_REFINE
    levels = [
        max(NOISE_SIGMAS * estimate, ULP_FLOOR * EPS * abs(target.center))
        for k, estimate in enumerate(estimates)
        if estimate is not None and not _refuted(estimate, tables[k + 1 :])
    ]
    # A table that shows no level but a jump of J's value (a tread's edge of a float32 piece)
    # says that J may be off a smooth J by its largest second difference somewhere along the
    # tensor: the largest level, not the finest.
    jumps = [float(np.max(np.abs(np.diff(table, 2)))) for table in tables if _value_step(table)]
    # A table that shows no level because a kink sits in it (a ReLU or |x| near theta) still
    # shows, away from the kink, how far J departs from a smooth J: a float32 piece's tread
    # edge beside the kink (the generator's seed 964 case 299) is seen nowhere else.
    jumps += [
        rough
        for table, estimate in zip(tables, estimates, strict=True)
        if estimate is None and (rough := _roughness(table)) > 0
    ]
    finest = levels[-1] if levels else None
    largest = max(levels + jumps) if levels + jumps else None
    if not levels + jumps and tables and all(np.all(np.diff(table) == 0) for table in tables):
        return finest, -1.0  # J moved in no table at all: see _judge_for
    return finest, largest


def _roughness(table: np.ndarray) -> float:
    """How far the second differences of ``table`` (J at equally spaced points) depart from a
    smooth J's, away from the one place where they are largest (a kink, or a jump of J's
    value: the largest second difference and its two neighbours, which a kink between two
    points or a jump shares). A smooth J's second differences are about ``J'' s^2`` in every
    place, and change little from one to the next (by about the third derivative times
    ``s^3``); what departs from their median by more is rounding coarser than float64's (a
    float32 piece's treads) or another kink. 0 for a table too short or not finite."""
    second = np.diff(np.asarray(table, dtype=np.float64), 2)
    if second.size < 5 or not np.all(np.isfinite(second)):
        return 0.0
    top = int(np.argmax(np.abs(second)))
    rest = np.delete(second, [k for k in (top - 1, top, top + 1) if 0 <= k < second.size])
    return float(np.max(np.abs(rest - np.median(rest))))


def _value_step(table: np.ndarray) -> bool:
    """Does this table of J show a jump of J's value, the edge of a tread: two consecutive
    second differences of opposite signs and about the same size (within a factor 2), far
    above the median (:data:`LOCALIZED`)? A kink gives one large second difference, noise
    and a smooth J no such pair."""
    second = np.diff(table, 2)
    if second.size < 3 or not np.all(np.isfinite(second)):
        return False
    size = np.abs(second)
    far = LOCALIZED * float(np.median(size))
    for x, y in zip(second[:-1], second[1:], strict=True):
        if (
            x * y < 0
            and min(abs(x), abs(y)) > far
            and max(abs(x), abs(y)) <= 2 * min(abs(x), abs(y))
        ):
            return True
    return False


#: A noise level read at one spacing is refuted by a finer table whose second differences are
#: all below it by this factor (see :func:`_refuted`).
REFUTES = 16.0


def _refuted(sigma: float, finer: list[np.ndarray]) -> bool:
    """Is the noise level ``sigma``, read at a coarse spacing, refuted by a ``finer`` table
    that holds a kink at theta (a tie of a max there: its one large second difference at the
    centre, the rest far below it, as :func:`.judge.estimate_noise` rejects it)? Rounding noise
    does not shrink with the spacing: noise of standard deviation ``sigma`` gives second
    differences of standard deviation ``sqrt(6) sigma`` at every spacing, and all 7 of a table
    below ``sigma / 16`` has odds below 1e-11. J's own variation does shrink (J varying faster
    than the coarse spacing, on a scale of 1e-7, looks like noise there), and so does a kink's.
    Only a table with a kink at theta refutes: the kink is why the finer tables showed no level
    of their own. A table smooth at the finer spacing refutes nothing: a float32 piece may be
    flat across it (within one tread), its treads shown only by the coarse table, while float64
    pieces move J smoothly."""
    for table in finer:
        if not np.all(np.isfinite(table)):
            continue
        second = np.abs(np.diff(table, 2))
        order = np.argsort(second)
        at_centre = order[-1] == len(second) // 2 and (
            second[order[-2]] * LOCALIZED < second[order[-1]]
        )
        if at_centre and second[order[-1]] < sigma / REFUTES:
            return True
    return False


# --- public checks -------------------------------------------------------------------------------


def check_function(
    f: Callable[[np.ndarray], float],
    x: Any,
    grad: Any,
    *,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check ``grad`` (same shape as ``x``) against central differences of the scalar ``f(x)``.

    ``f`` receives a float64 array of ``x``'s shape that the check moves in place; it must not
    keep it. The tutorial's 1-D check is
    ``check_function(lambda theta: theta * 2, 4.0, 2.0, epsilon=1e-7, threshold=1e-7)``.
    """
    options = check_options(
        epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
    )
    finite_point("x", float64_copy(x))
    target = FunctionTarget(f, x, grad)
    if target.empty_reason is None:
        finite_value("f(x)", target.value(None, False)[0], "x")
    return _run(target, **options)


def check_loss(
    loss: Loss,
    outputs: Any,
    targets: Any,
    *,
    fused: bool = False,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check ``loss.backward()`` against central differences of ``loss.forward(outputs,
    targets)`` (of ``loss.forward_fused``, the loss from the fused activation's input, with
    ``fused=True``) with respect to ``outputs: (m, k)``, in float64. The targets are checked by
    the loss's ``check_targets``. ``by_parameter`` has the one entry ``"outputs"``."""
    options = check_options(
        epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
    )
    fused = fused_loss(loss, fused)
    finite_point("outputs", float64_copy(outputs))
    target = LossTarget(loss, outputs, targets, fused)
    if target.empty_reason is None:
        finite_value("the loss", target.value(None, False)[0], "outputs")
    return _run(target, **options)


def check_layer(
    layer: Layer,
    x: Any,
    *,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check a layer's parameter gradients and its input gradient at ``x: (batch, in_features)``.

    The scalar is ``sum(G * layer.forward(x))`` for a fixed random ``G`` (drawn from ``seed``),
    so ``layer.backward(G)`` is the claimed gradient. ``by_parameter`` has one entry per
    parameter and ``"input"``. The layer's parameters, gradients and buffers are left as they
    were.
    """
    if not isinstance(layer, Layer):
        raise TypeError(
            f"check_layer takes a minnet Layer, got {type(layer).__name__}: subclass "
            "minnet.Layer (and call super().__init__() in your __init__)"
        )
    options = check_options(
        epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
    )
    seed = options["seed"]
    given = float64_copy(x)
    finite_point("x", given)
    with checking([layer]):
        violations, notes = [], []
        if given.ndim >= 1 and len(given) > 0:
            # The contract first, on the caller's input: a forward that changes its input in
            # place would otherwise have changed the check's copy before anyone looked.
            out = np.asarray(layer.forward(given.copy()))
            finite_value(f"{layer!r}.forward(x)", out, "x")
            upstream = upstream_gradient(out.shape, seed, 0)
            violations, notes = contract_violations(layer, given, upstream)
        if violations and _unmeasurable(violations):
            # The numbers cannot even be compared (wrong shapes or types): the contract says why.
            return GradcheckReport(
                status=FAILED,
                difference=float("nan"),
                by_parameter={},
                threshold=threshold,
                epsilon=epsilon,
                mode="fast" if fast else "sampled" if samples is not None else "full",
                reasons=tuple(violations) + tuple(notes),
            )
        for attempt in range(PROBE_ATTEMPTS):
            target = LayerTarget(layer, given, seed, attempt)
            blind = _blind_tensors(target, seed, attempt)
            if not blind:
                break
        report = _run(target, **options)
    reasons = tuple(violations) + report.reasons + tuple(notes)
    if violations:
        return evolve(report, status=FAILED, reasons=reasons)
    if blind and report.status != FAILED:
        reason = (
            f"the upstream gradient G had no power on {', '.join(blind)} in {PROBE_ATTEMPTS} "
            "independent draws: the output moves with it, J = sum(G * out) does not; a wrong "
            "gradient there could not be seen"
        )
        return evolve(report, status=INCONCLUSIVE, reasons=reasons + (reason,))
    return evolve(report, reasons=reasons)


def _unmeasurable(violations: list[str]) -> bool:
    """Do the violations leave nothing to compare (a gradient of the wrong shape or type)?"""
    return any(UNMEASURABLE in reason for reason in violations)


#: How many upstream gradients ``G`` a layer check draws before it says it has no power.
PROBE_ATTEMPTS = 3


def _blind_tensors(target: LayerTarget, seed: int | None, attempt: int) -> list[str]:
    """The tensors ``G`` is blind to (:meth:`LayerTarget.powerless`), along one random
    direction each, at the natural step."""
    if target.empty_reason is not None:
        return []
    rng = stream(seed, "directions", attempt)
    blind = []
    with np.errstate(all="ignore"):
        for t, array in enumerate(target.arrays):
            if array.size == 0:
                continue
            direction = rng.standard_normal(array.shape)
            direction /= np.linalg.norm(direction)
            step = float(natural_step_for(float(np.max(np.abs(array)))))
            if target.powerless(t, direction, step):
                blind.append(target.names[t])
    return blind


def check_model(
    model: Sequential,
    X: Any,
    Y: Any,
    *,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check the gradient of ``model.cost(X, Y)`` against every parameter of ``model``.

    ``by_parameter`` is keyed by the model's parameter names (``"0.W"``, ``"0.b"``, ...). When
    the check does not pass, every layer is also checked on its own at the input it sees in the
    model (``report.by_layer``), which points at the wrong layer.
    """
    options = check_options(
        epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
    )
    with checking(model.layers):
        target = ModelTarget(model, X, Y)
        if target.empty_reason is None:
            finite_value("model.cost(X, Y)", target.value(None, False)[0], "X and Y")
        report = _run(target, **options)
        if report.passed or target.empty_reason is not None:
            return report
        by_layer, x = {}, target.inputs[0]
        for i, layer in enumerate(model.layers):
            by_layer[i] = check_layer(layer, x, **options)
            x = layer.forward(x)
        names = {i: type(layer).__name__ for i, layer in enumerate(model.layers)}
    return evolve(report, by_layer=by_layer, layer_names=names)
