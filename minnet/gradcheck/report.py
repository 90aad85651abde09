"""What a gradient check found: a frozen report with three verdicts, and its printout."""

from __future__ import annotations

import numpy as np
from attrs import field, frozen

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


def relative_difference(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The tutorial's formula (2): ``||a - n|| / (||a|| + ||n||)``, 0 when both are 0."""
    a, n = np.ravel(analytic), np.ravel(numeric)
    denominator = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / denominator) if denominator > 0 else 0.0


@frozen
class Entry:
    """One checked entry: ``parameter[index]``, its analytic and numeric derivative, and why it
    is listed (``reason``: empty for a plain disagreement)."""

    parameter: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    relative_error: float
    reason: str = ""

    @classmethod
    def of(
        cls, parameter: str, index: tuple[int, ...], analytic: float, numeric: float, reason=""
    ) -> Entry:
        with np.errstate(invalid="ignore"):
            rel = relative_difference(np.array([analytic]), np.array([numeric]))
        return cls(parameter, index, float(analytic), float(numeric), rel, reason)

    @property
    def where(self) -> str:
        return f"{self.parameter}[{', '.join(map(str, self.index))}]"


def verdict(difference: float) -> str:
    """CS231n's reading of a relative difference, in plain words."""
    if difference < 1e-7:
        return "fine (below 1e-7)"
    if difference <= 1e-4:
        return "suspicious (between 1e-7 and 1e-4)"
    return "wrong (above 1e-4)"  # NaN too


@frozen
class GradcheckReport:
    """What a gradient check found.

    - ``status``: ``"passed"``, ``"failed"`` or ``"inconclusive"``; ``passed`` is true only for
      ``"passed"``. ``failed``: some entry is wrong (or NaN). ``inconclusive``: no entry is
      wrong, but the verdict would rest more on excused (kink) and undecided entries than on
      decided ones, or nothing was compared; ``reasons`` says why.
    - ``difference``: formula (2) over the decided entries, at the check's step.
    - ``by_parameter``: formula (2) for each named tensor (``"input"`` is the layer's input).
    - ``worst``: the entries that disagree most, worst first (failures first).
    - ``kinks``: entries excused as kinks (evidence of a kink, analytic between the one-sided
      slopes); ``undecided``: entries the rounding noise left undecided.
    - ``decided``: entries that agreed or failed on evidence; ``checked``: entries compared;
      ``evaluations``: scalar evaluations (forwards) it took.
    - ``mode``: ``"full"``, ``"sampled"`` or ``"fast"``.
    - ``by_layer``: for a model check that did not pass, each layer's own check at the input it
      sees in the model, keyed by layer index.
    """

    status: str
    difference: float
    by_parameter: dict[str, float]
    threshold: float
    epsilon: float | None
    worst: tuple[Entry, ...] = ()
    kinks: tuple[Entry, ...] = ()
    undecided: tuple[Entry, ...] = ()
    decided: int = 0
    checked: int = 0
    evaluations: int = 0
    mode: str = "full"
    reasons: tuple[str, ...] = ()
    by_layer: dict[int, GradcheckReport] = field(factory=dict)
    layer_names: dict[int, str] = field(factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def worst_parameter(self) -> str | None:
        return max(self.by_parameter, key=self.by_parameter.get) if self.by_parameter else None

    @property
    def blamed_layers(self) -> tuple[int, ...]:
        """Indices of the layers that fail their own check (filled when a model check fails)."""
        return tuple(i for i, report in self.by_layer.items() if report.status == FAILED)

    def __str__(self) -> str:
        step = "adaptive step" if self.epsilon is None else f"epsilon={self.epsilon:g}"
        if self.passed:
            reading = verdict(self.difference)
            if self.difference >= 1e-7:
                reading = f"within the threshold {self.threshold:g}"
        elif self.status == FAILED and not self.difference <= self.threshold:
            reading = verdict(self.difference)
        elif self.status == FAILED:
            reading = "failed for the reasons below"
        else:
            reading = "not decided, for the reasons below"
        lines = [
            f"gradcheck {self.status.upper() if not self.passed else self.status}: "
            f"difference = {self.difference:.4g} (threshold {self.threshold:g}, {step}) "
            f"-> {reading}",
            f"  {self.checked} entries checked ({self.mode} mode) with {self.evaluations} "
            f"evaluations: {self.decided} decided, {len(self.kinks)} kinks, "
            f"{len(self.undecided)} undecided",
        ]
        lines += [f"  ! {reason}" for reason in self.reasons]
        if self.by_parameter:
            lines.append("  difference by parameter:")
            worst_name = self.worst_parameter
            for name, diff in self.by_parameter.items():
                mark = "  <- worst" if name == worst_name and diff > 0 else ""
                lines.append(f"    {name:<10} {diff:.4g}{mark}")
        if self.worst:
            lines.append("  worst entries:")
            lines.append(f"    {'entry':<16} {'analytic':>14} {'numeric':>14} {'rel. error':>11}")
            for e in self.worst:
                note = f"  ({e.reason})" if e.reason else ""
                lines.append(
                    f"    {e.where:<16} {e.analytic:>14.6g} {e.numeric:>14.6g} "
                    f"{e.relative_error:>11.3g}{note}"
                )
        for what, entries in (
            ("sat on a kink and were left out (analytic between the one-sided slopes)", self.kinks),
            ("were left undecided by the rounding noise", self.undecided),
        ):
            if entries:
                shown = ", ".join(e.where for e in entries[:6])
                more = f" and {len(entries) - 6} more" if len(entries) > 6 else ""
                lines.append(f"  {len(entries)} entries {what}: {shown}{more}")
        if self.by_layer:
            lines.append("  each layer checked on its own, at the input it sees in the model:")
            for i, report in self.by_layer.items():
                worst = report.worst_parameter
                detail = f"worst {worst} {report.by_parameter[worst]:.3g}" if worst else ""
                lines.append(
                    f"    layer {i} {self.layer_names[i]:<22} {report.status:<12} {detail}"
                )
            if self.blamed_layers:
                for i in self.blamed_layers:
                    report = self.by_layer[i]
                    wrong = sorted({e.parameter for e in report.worst})
                    lines.append(
                        f"  -> the error is in layer {i} ({self.layer_names[i]}), in its "
                        f"gradient for {', '.join(wrong) or report.worst_parameter}"
                    )
            elif self.status == FAILED:
                lines.append(
                    "  -> every layer passes on its own: look at the loss's gradient, or at how "
                    "the layers are put together"
                )
        return "\n".join(lines)
