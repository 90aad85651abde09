"""The public checks, and the loop that runs the judge over every entry of a target."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import evolve

from ..parameter import FlatLayout
from .judge import AGREE, EPS, FAIL, KINK, NOISE_ULPS, Judge, Measurement, Verdict
from .judge import max_step as max_step_for
from .judge import natural_step as natural_step_for
from .report import FAILED, INCONCLUSIVE, PASSED, Entry, GradcheckReport, relative_difference
from .targets import FunctionTarget, LayerTarget, LossTarget, ModelTarget, Target, checking

if TYPE_CHECKING:
    from ..layers import Layer
    from ..losses import Loss
    from ..model import Sequential

DEFAULT_THRESHOLD = 1e-6
WORST_COUNT = 5


class GradcheckError(RuntimeError):
    """The check cannot give a meaningful verdict (for example, the forward is random)."""


def _check_options(epsilon: Any, threshold: Any, samples: Any) -> int | None:
    if epsilon is not None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)):
            raise ValueError(f"epsilon must be a positive finite number or None, got {epsilon!r}")
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive finite number, got {epsilon}")
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold}")
    if samples is None:
        return None
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    return int(samples)


class _Tally:
    """The verdicts of one check, gathered tensor by tensor into a report."""

    def __init__(self) -> None:
        self.a: list[np.ndarray] = []
        self.n: list[np.ndarray] = []
        self.settled: list[np.ndarray] = []  # the numeric values the verdicts rest on
        self.noise: list[np.ndarray] = []  # and their error bars
        self.by_parameter: dict[str, float] = {}
        self.failures: list[tuple[float, Entry]] = []
        self.kinks: list[Entry] = []
        self.undecided: list[Entry] = []
        self.decided = self.checked = 0

    def add(self, name, shape, flat_index, analytic, first_numeric, noise, verdicts) -> None:
        """Entries of one tensor; ``verdicts`` maps positions to the judge's verdict for the
        entries that did not plainly agree (the others agreed)."""
        counted = np.ones(len(flat_index), dtype=bool)  # decided: agreed or failed
        for k, v in verdicts.items():
            counted[k] = v.status in (AGREE, FAIL)
        settled, error_bar = first_numeric.copy(), noise.copy()
        for k, v in verdicts.items():
            settled[k], error_bar[k] = v.numeric, v.error_bar
        self.a.append(analytic[counted])
        self.n.append(first_numeric[counted])
        self.settled.append(settled[counted])
        self.noise.append(error_bar[counted])
        with np.errstate(invalid="ignore"):
            self.by_parameter[name] = relative_difference(analytic[counted], first_numeric[counted])
        self.checked += len(flat_index)
        self.decided += len(flat_index) - len(verdicts)
        for k, v in verdicts.items():
            if v.status == AGREE:
                self.decided += 1
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
        self.noise.append(np.array([verdict.error_bar]))
        self.by_parameter[name] = relative_difference(
            np.array([analytic]), np.array([verdict.numeric])
        )
        self.checked += size
        self.decided += size

    def report(self, target: Target, threshold: float, epsilon, mode: str) -> GradcheckReport:
        a, n, settled, noise = (
            np.concatenate(x) if x else np.zeros(0)
            for x in (self.a, self.n, self.settled, self.noise)
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
        excused = len(self.kinks) + len(self.undecided)
        if self.failures:
            status = FAILED
        elif target.empty_reason is not None or self.checked == 0:
            status = INCONCLUSIVE
            reasons.append(
                f"nothing was compared ({target.empty_reason or 'no entries'}): a check of "
                "nothing is not a pass"
            )
        elif excused > self.decided:
            status = INCONCLUSIVE
            reasons.append(
                f"only {self.decided} of {self.checked} entries were decided; the rest sat on "
                f"kinks ({len(self.kinks)}) or were too small for the rounding noise "
                f"({len(self.undecided)}). Check at a point off the kinks (non-zero biases, "
                "other inputs), with more rows, or with larger gradients"
            )
        elif not (
            np.linalg.norm(a - settled)
            <= threshold * (np.linalg.norm(a) + np.linalg.norm(settled)) + np.linalg.norm(noise)
        ):
            status = FAILED
            reasons.append(
                f"the overall difference {settled_difference:.3g} is above the threshold "
                f"{threshold:g}"
            )
        else:
            status = PASSED
            if difference > threshold:
                reasons.append(
                    f"at the step asked for the difference is {difference:.3g}, above the "
                    f"threshold: the step is too large or too small for this function. At the "
                    f"steps the judge settled on it is {settled_difference:.3g}"
                )
        self.failures.sort(key=lambda pair: -pair[0])
        return GradcheckReport(
            status=status,
            difference=difference,
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


def _judge_entries(target, judge, t, flat_index, epsilon, tally) -> None:
    """Every chosen entry of tensor ``t``: one batched pass at the check's step, then the judge
    (with more evaluations) only for the entries that do not plainly agree."""
    array = target.arrays[t].reshape(-1)
    analytic = target.analytic[t].reshape(-1)
    theta = array[flat_index]
    a = analytic[flat_index]
    h = np.full(len(flat_index), float(epsilon)) if epsilon else natural_step_for(theta)
    both = target.values_at(t, np.concatenate([flat_index, flat_index]), np.concatenate([h, -h]))
    plus, minus = both[: len(h)], both[len(h) :]
    floor = judge.threshold * target.gradient_scale
    noise = judge.noise / h
    with np.errstate(invalid="ignore", over="ignore"):
        numeric = (plus - minus) / (2 * h)
        tolerance = judge.threshold * (np.abs(a) + np.abs(numeric))
        # The judge's first rule, for all entries at once: agreement with a small error bar.
        plainly = (np.abs(a - numeric) <= tolerance + noise) & (noise <= tolerance + floor)
        plainly &= np.isfinite(a) & np.isfinite(numeric)
        plainly |= (a == 0) & (plus == target.center) & (minus == target.center)
    verdicts = {}
    for k in np.flatnonzero(~plainly):
        first = Measurement(float(h[k]), float(plus[k]), float(minus[k]), target.center)
        verdicts[int(k)] = judge.judge(
            a[k],
            first,
            target.measure(t, int(flat_index[k]), target.center),
            natural_step=float(natural_step_for(theta[k])),
            max_step=float(max_step_for(theta[k])),
            floor=floor,
        )
    name, shape = target.names[t], target.arrays[t].shape
    tally.add(name, shape, flat_index, a, numeric, noise, verdicts)


def _judge_direction(target, judge, t, rng, epsilon) -> tuple[float, Verdict]:
    """Tensor ``t`` along one random unit direction: the analytic ``a . u`` and the verdict."""
    array = target.arrays[t]
    direction = rng.standard_normal(array.shape)
    direction /= np.linalg.norm(direction) or 1.0
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
        floor=judge.threshold * target.gradient_scale,
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
    samples = _check_options(epsilon, threshold, samples)
    center = target.count(None)
    if target.count(None) != center and not (np.isnan(center)):
        raise GradcheckError(
            "the forward is not deterministic: it gave two different values for the same input "
            "(a random layer such as Dropout in training mode?). Hold its randomness fixed, or "
            "call eval() on the model before checking."
        )
    target.center = center
    # An error bar below threshold * (the largest claimed derivative) decides an entry: an error
    # that small cannot move the check's difference, formula (2), past the threshold.
    finite = [np.abs(g[np.isfinite(g)]) for g in target.analytic]
    target.gradient_scale = max((float(g.max()) for g in finite if g.size), default=0.0)
    scale = target.scale() if np.isfinite(center) else 0.0
    judge = Judge(
        threshold, NOISE_ULPS * EPS * max(scale, abs(center) if np.isfinite(center) else 0)
    )
    layout = FlatLayout.of(zip(target.names, target.arrays, strict=True))
    rng = np.random.default_rng(seed)
    tally = _Tally()
    for t, name in enumerate(layout.names):
        size = target.arrays[t].size
        if size == 0:
            continue
        if fast:
            analytic, verdict = _judge_direction(target, judge, t, rng, epsilon)
            if verdict.status == AGREE:
                tally.add_direction(name, size, analytic, verdict)
                continue
            # The direction does not plainly agree: find out which entries, and why.
        flat_index = np.arange(size)
        if samples is not None and samples < size and not fast:
            flat_index = np.sort(rng.choice(size, samples, replace=False))
        _judge_entries(target, judge, t, flat_index, epsilon, tally)
    mode = "fast" if fast else "sampled" if samples is not None else "full"
    return tally.report(target, threshold, epsilon, mode)


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
    target = FunctionTarget(f, x, grad)
    return _run(target, epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)


def check_loss(
    loss: Loss,
    outputs: Any,
    targets: Any,
    *,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check ``loss.backward()`` against central differences of ``loss.forward(outputs,
    targets)`` with respect to ``outputs``. ``by_parameter`` has the one entry ``"outputs"``."""
    target = LossTarget(loss, outputs, targets)
    return _run(target, epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)


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
    with checking([layer]):
        target = LayerTarget(layer, x, seed)
        return _run(
            target, epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
        )


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
    options = dict(epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)
    with checking(model.layers):
        target = ModelTarget(model, X, Y)
        report = _run(target, **options)
        if report.passed:
            return report
        by_layer, x = {}, target.inputs[0]
        for i, layer in enumerate(model.layers):
            by_layer[i] = check_layer(layer, x, **options)
            x = layer.forward(x)
        names = {i: type(layer).__name__ for i, layer in enumerate(model.layers)}
    return evolve(report, by_layer=by_layer, layer_names=names)
