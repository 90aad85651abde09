"""Numerical gradient checks for functions, layers and models.

Every check compares an *analytic* gradient (what backward claims) with a *numeric* one,
the central difference ``(J(theta + h) - J(theta - h)) / 2h`` of a scalar ``J``, entry by entry,
and summarises the disagreement with the tutorial's formula (2)::

    difference = ||analytic - numeric|| / (||analytic|| + ||numeric||)

over everything checked (``report.difference``) and over each named tensor
(``report.by_parameter``). The three public checks only differ in what ``J`` is:

- :func:`check_function`: any scalar function of an array, with its claimed gradient;
- :func:`check_layer`: ``J = sum(G * layer.forward(x))`` for a fixed random ``G``, so that
  ``layer.backward(G)`` is the claimed gradient for the input and the parameters' ``.grad`` for
  them (the CS231n trick);
- :func:`check_model`: ``J = model.cost(X, Y)``.

All three run in float64 whatever the dtype of the model: parameters get float64 copies of
their values for the duration of the check, and the data is copied, so the caller's parameter
values, gradients and data are left exactly as they were (the layers' forward caches are not:
call ``cost()`` again before a ``backward()``). The parameters and the input are laid out
through :class:`~minnet.parameter.FlatLayout`, like everything else in minnet.

How entries are judged (see ``docs/gradcheck.md``):

- step ``h``: ``epsilon`` if given, else ``cbrt(machine epsilon) * max(1, |theta|)`` (about
  6e-6 for entries of size 1), which balances truncation against rounding error in float64;
- an entry agrees when ``|a - n| <= threshold * (|a| + |n|) + noise``, where ``noise`` is the
  rounding error a finite difference of ``J`` can have (``NOISE_ULPS * eps * |J| / h``);
- an entry that does not agree straddled a kink (ReLU at 0) when a layer's input crossed one
  of that layer's declared ``kink_points`` during its evaluations, or when the same check with
  a step ``h/16`` or ``h/256`` agrees, or when at ``h/256`` the one-sided differences
  ``(J(theta) - J(theta-h))/h`` and ``(J(theta+h) - J(theta))/h`` still differ (theta sits on
  the kink): the entry is reported in ``report.kinks`` and left out of the verdict;
- entries whose analytic and numeric values are both below ``noise`` say nothing about the
  gradient: they are counted in ``report.uninformative``.

``passed`` is true when every checked entry (kinks aside) agrees and ``difference <= threshold``
(unless that difference is no larger than the rounding noise: a net whose gradients are all tiny).

Model checks evaluate many perturbations at once: a perturbed layer computes its outputs for a
chunk of perturbations (``Layer.forward_perturbed``), which are stacked along the batch, so the
layers after it and the loss run once per chunk; the layers before it are not run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import numpy as np
from attrs import evolve, field, frozen

from .layers import Layer
from .parameter import FlatLayout

if TYPE_CHECKING:
    from .model import Sequential

EPS = float(np.finfo(np.float64).eps)
CBRT_EPS = EPS ** (1 / 3)
DEFAULT_THRESHOLD = 1e-6
NOISE_ULPS = 64
KINK_STEP_DIVISORS = (16, 256)
KINK_MIN_JUMP = 1e-3
WORST_COUNT = 5
BATCHED_ENTRIES = 2**20  # how many numbers one batched evaluation may hold per array


class GradcheckError(RuntimeError):
    """The check cannot give a meaningful verdict (for example, the forward is random)."""


def relative_difference(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The tutorial's formula (2): ``||a - n|| / (||a|| + ||n||)``, 0 when both are 0."""
    a, n = np.ravel(analytic), np.ravel(numeric)
    denominator = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / denominator) if denominator > 0 else 0.0


@frozen
class Entry:
    """One checked entry: ``parameter[index]`` with its analytic and numeric derivative."""

    parameter: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    relative_error: float

    @classmethod
    def of(cls, parameter: str, index: tuple[int, ...], analytic: float, numeric: float) -> Entry:
        rel = relative_difference(np.array([analytic]), np.array([numeric]))
        return cls(parameter, index, float(analytic), float(numeric), rel)

    @property
    def where(self) -> str:
        return f"{self.parameter}[{', '.join(map(str, self.index))}]"


def verdict(difference: float) -> str:
    """CS231n's reading of a relative difference, in plain words."""
    if difference < 1e-7:
        return "fine (below 1e-7)"
    if difference <= 1e-4:
        return "suspicious (between 1e-7 and 1e-4)"
    return "wrong (above 1e-4)"


@frozen
class GradcheckReport:
    """What a gradient check found.

    - ``passed``: every checked entry agrees (kinks aside) and ``difference <= threshold``.
    - ``difference``: formula (2) over every checked entry, kinks left out.
    - ``by_parameter``: formula (2) for each named tensor (``"input"`` is the layer's input).
    - ``worst``: the entries that disagree most, worst first.
    - ``kinks``: entries whose finite difference straddled a non-differentiable point.
    - ``uninformative``: per tensor, how many entries had gradients below the rounding noise.
    - ``checked``: entries compared; ``evaluations``: scalar evaluations (forwards) it took.
    - ``mode``: ``"full"`` (every entry), ``"sampled"`` (``samples`` entries per tensor) or
      ``"fast"`` (one random direction per tensor, entries only where that disagrees).
    - ``by_layer``: for a model check that failed, each layer's own check at the input it sees
      in the model, keyed by layer index: it finds the wrong layer even when that layer has no
      parameters (a ReLU whose backward is wrong shows up in the parameters before it).
    """

    passed: bool
    difference: float
    by_parameter: dict[str, float]
    threshold: float
    epsilon: float | None
    worst: tuple[Entry, ...] = ()
    kinks: tuple[Entry, ...] = ()
    uninformative: dict[str, int] = field(factory=dict)
    checked: int = 0
    evaluations: int = 0
    mode: str = "full"
    by_layer: dict[int, GradcheckReport] = field(factory=dict)
    layer_names: dict[int, str] = field(factory=dict)

    @property
    def worst_parameter(self) -> str | None:
        return max(self.by_parameter, key=self.by_parameter.get) if self.by_parameter else None

    @property
    def blamed_layers(self) -> tuple[int, ...]:
        """Indices of the layers that fail their own check (only filled when a model fails)."""
        return tuple(i for i, report in self.by_layer.items() if not report.passed)

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        step = "adaptive step" if self.epsilon is None else f"epsilon={self.epsilon:g}"
        lines = [
            f"gradcheck {status}: difference = {self.difference:.4g} "
            f"(threshold {self.threshold:g}, {step}) -> {verdict(self.difference)}",
            f"  {self.checked} entries checked ({self.mode} mode) with {self.evaluations} "
            "evaluations",
            "  difference by parameter:",
        ]
        worst_name = self.worst_parameter
        for name, diff in self.by_parameter.items():
            mark = "  <- worst" if name == worst_name and diff > 0 else ""
            lines.append(f"    {name:<10} {diff:.4g}{mark}")
        if self.worst:
            lines.append("  worst entries:")
            lines.append(f"    {'entry':<16} {'analytic':>14} {'numeric':>14} {'rel. error':>11}")
            for e in self.worst:
                lines.append(
                    f"    {e.where:<16} {e.analytic:>14.6g} {e.numeric:>14.6g} "
                    f"{e.relative_error:>11.3g}"
                )
        if self.kinks:
            shown = ", ".join(e.where for e in self.kinks[:6])
            more = f" and {len(self.kinks) - 6} more" if len(self.kinks) > 6 else ""
            lines.append(
                f"  {len(self.kinks)} entries straddled a kink and were left out: {shown}{more}"
            )
        for name, count in self.uninformative.items():
            lines.append(
                f"  {name}: {count} entries too small to tell: their gradients are below the "
                "rounding noise of the finite difference"
            )
        if self.by_layer:
            lines.append("  each layer checked on its own, at the input it sees in the model:")
            for i, report in self.by_layer.items():
                status = "passed" if report.passed else "FAILED"
                worst = report.worst_parameter
                detail = f"worst {worst} {report.by_parameter[worst]:.3g}" if worst else ""
                lines.append(f"    layer {i} {self.layer_names[i]:<22} {status:<7} {detail}")
            if self.blamed_layers:
                for i in self.blamed_layers:
                    report = self.by_layer[i]
                    wrong = [n for n, d in report.by_parameter.items() if d > report.threshold]
                    lines.append(
                        f"  -> the error is in layer {i} ({self.layer_names[i]}), in its "
                        f"gradient for {', '.join(wrong) or report.worst_parameter}"
                    )
            else:
                lines.append(
                    "  -> every layer passes on its own: look at the loss's gradient, or at how "
                    "the layers are put together"
                )
        return "\n".join(lines)


# --- what is being checked ---------------------------------------------------------------------


class _Target:
    """A scalar ``J`` of some float64 arrays, perturbed in place, with claimed gradients."""

    names: list[str]
    arrays: list[np.ndarray]
    analytic: list[np.ndarray]
    evaluations: int = 0
    watch_kinks: bool = False  # when set, value() records in `straddled` whether the
    straddled: bool = False  # evaluation carried a layer input across a declared kink

    def value(self, tensor: int | None) -> float:
        """``J`` at the current arrays; ``tensor`` says which one changed (None: unknown)."""
        raise NotImplementedError

    def scale(self) -> float:
        """The magnitude that rounding errors in ``J`` are relative to."""
        return abs(self.value(None))

    def values_at(self, tensor: int, flat_index: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """``J`` with ``arrays[tensor].flat[flat_index[k]]`` moved by ``steps[k]``, for each k."""
        array = self.arrays[tensor].reshape(-1)  # a view: arrays are contiguous
        out = np.empty(len(steps))
        for k, (i, step) in enumerate(zip(flat_index, steps, strict=True)):
            saved = array[i]
            array[i] = saved + step
            out[k] = self._counted(tensor)
            array[i] = saved
        return out

    def crosses_kink(self, tensor: int, index: int, step: float) -> bool:
        """Does moving ``arrays[tensor].flat[index]`` by ``step`` carry the input of some layer
        across one of that layer's declared ``kink_points``?"""
        self.watch_kinks = True
        try:
            self.values_at(tensor, np.array([index]), np.array([step]))
            return self.straddled
        finally:
            self.watch_kinks = False

    def values_along(self, tensor: int, direction: np.ndarray, steps: Sequence[float]) -> list:
        """``J`` with ``arrays[tensor]`` moved by ``step * direction``, for each step."""
        array = self.arrays[tensor]
        saved = array.copy()
        out = []
        for step in steps:
            np.add(saved, step * direction, out=array)
            out.append(self._counted(tensor))
        array[...] = saved
        return out

    def _counted(self, tensor: int | None) -> float:
        self.evaluations += 1
        self.straddled = False
        return self.value(tensor)


def _kink_sides(layer: Layer, x: np.ndarray) -> np.ndarray | None:
    """Which side of each of the layer's declared kinks every input entry is on (-1, 0, 1)."""
    points = getattr(layer, "kink_points", ())
    return np.stack([np.sign(x - p) for p in points]) if points else None


def _float64_copy(array) -> np.ndarray:
    return np.array(array, dtype=np.float64, copy=True, order="C")


class _FunctionTarget(_Target):
    def __init__(self, f: Callable[[np.ndarray], float], x, grad) -> None:
        x = _float64_copy(x)
        grad = _float64_copy(grad)
        if grad.shape != x.shape:
            raise ValueError(f"the gradient has shape {grad.shape}, x has shape {x.shape}")
        self.f = f
        self.names, self.arrays, self.analytic = ["x"], [x], [grad]

    def value(self, tensor: int | None) -> float:
        return float(self.f(self.arrays[0]))


@contextmanager
def _checking(layers: Sequence[Layer]) -> Iterator[None]:
    """Float64 parameters and fixed randomness for the layers, for the duration of a check.

    Each parameter gets a float64 copy of its value and a fresh gradient; the original arrays
    are put back afterwards, untouched. The check works on the caller's own layers (so a
    subclass behaves as it does for the caller) without changing them. Random layers
    (``Dropout``) repeat their last draw, so every evaluation sees the same function.
    """
    parameters = [p for layer in layers for p in layer.parameters()]
    saved = [(p.value, p.grad) for p in parameters]
    try:
        with ExitStack() as stack:
            for layer in layers:
                stack.enter_context(layer.fixed_randomness())
            for p in parameters:
                p.value = _float64_copy(p.value)
                p.grad = np.zeros_like(p.value)
            yield
    finally:
        for p, (value, grad) in zip(parameters, saved, strict=True):
            p.value, p.grad = value, grad


class _LayerTarget(_Target):
    def __init__(self, layer: Layer, x, seed: int | None) -> None:
        self.layer = layer
        self.x = _float64_copy(x)
        out = self.layer.forward(self.x)
        self.projection = np.random.default_rng(seed).standard_normal(np.shape(out))
        grad_input = self.layer.backward(self.projection.copy())
        named = list(self.layer.named_parameters())
        self.names = [name for name, _ in named] + ["input"]
        self.arrays = [p.value for _, p in named] + [self.x]
        self.analytic = [p.grad.copy() for _, p in named] + [_float64_copy(grad_input)]
        self.sides = _kink_sides(self.layer, self.x)

    def value(self, tensor: int | None) -> float:
        if self.watch_kinks and self.sides is not None:
            self.straddled = bool(np.any(_kink_sides(self.layer, self.x) != self.sides))
        return float(np.sum(self.projection * self.layer.forward(self.x)))

    def scale(self) -> float:
        return float(np.sum(np.abs(self.projection * self.layer.forward(self.x))))


class _ModelTarget(_Target):
    def __init__(self, model: Sequential, X, Y) -> None:
        self.model = model
        X = self.model.check_inputs(X, np.dtype(np.float64))
        self.Y = _float64_copy(self.model.check_targets(Y, len(X)))
        self.body, self.logits = self.model.body, self.model.fused
        self.model.zero_grad()
        self.model.cost_prepared(X, self.Y)  # X and Y checked above, and float64
        self.model.backward()
        named = list(self.model.named_parameters())
        self.names = [name for name, _ in named]
        self.arrays = [p.value for _, p in named]
        self.analytic = [p.grad.copy() for _, p in named]
        # Each layer's input at the unperturbed parameters: a perturbation of layer k's
        # parameters only needs layers k, k+1, ... to be run again.
        self.owner = [int(name.split(".", 1)[0]) for name in self.names]
        # A parameter shared by several layers (tied weights) changes all of them: start at
        # the first.
        self.owner = [
            min(o for o, other in zip(self.owner, self.arrays, strict=True) if other is array)
            for array in self.arrays
        ]
        self.inputs = [_float64_copy(X)]
        for layer in self.body[:-1]:
            self.inputs.append(layer.forward(self.inputs[-1]))
        self.sides = [
            _kink_sides(layer, x) for layer, x in zip(self.body, self.inputs, strict=True)
        ]

    def value(self, tensor: int | None) -> float:
        start = 0 if tensor is None else self.owner[tensor]
        x = self.inputs[start]
        for k in range(start, len(self.body)):
            sides = self.sides[k]
            if self.watch_kinks and sides is not None and not self.straddled:
                self.straddled = bool(np.any(_kink_sides(self.body[k], x) != sides))
            x = self.body[k].forward(x)
        return self.model.loss_value(x, self.Y)

    def values_at(self, tensor: int, flat_index: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Many perturbations of one tensor at once: the owning layer computes its output for
        each (``forward_perturbed``), the outputs are stacked along the batch, and the layers
        after it and the loss run once per chunk of perturbations."""
        start = self.owner[tensor]
        if self.watch_kinks or not self._can_batch(tensor):
            return super().values_at(tensor, flat_index, steps)
        name = self.names[tensor].split(".", 1)[1]
        m = len(self.Y)
        width = max(x.shape[1] for x in self.inputs[start:]) + self.Y.shape[1]
        chunk = max(1, BATCHED_ENTRIES // (m * width))
        values = np.empty(len(steps))
        for lo in range(0, len(steps), chunk):
            part = slice(lo, lo + chunk)
            out = self.body[start].forward_perturbed(
                self.inputs[start], name, flat_index[part], steps[part]
            )
            count = len(out)
            x = self.model.run(out.reshape(count * m, -1), start + 1)
            per_example = self.model.loss_per_example(x, np.tile(self.Y, (count, 1)))
            values[part] = per_example.reshape(count, -1).mean(axis=1)
            self.evaluations += count
        return values

    def _can_batch(self, tensor: int) -> bool:
        """Batching needs a loss with per-example values, deterministic later layers, and a
        tensor used by its own layer only (not tied to another layer's parameter)."""
        start = self.owner[tensor]
        array = self.arrays[tensor]
        return (
            sum(other is array for other in self.arrays) == 1
            and self.model.loss_per_example(self.Y, self.Y) is not None
            and all(
                type(layer).fixed_randomness is Layer.fixed_randomness
                for layer in self.body[start + 1 :]
            )
        )

    def scale(self) -> float:
        # A loss of confident outputs is a small difference of large terms (softplus(z) - y*z):
        # its rounding error follows the size of the outputs, not of the loss.
        out = self.model.run(self.inputs[0])
        return abs(self.value(None)) + float(np.mean(np.abs(out)))


# --- the engine ----------------------------------------------------------------------------------


def _steps(values: np.ndarray, epsilon: float | None) -> np.ndarray:
    if epsilon is not None:
        return np.full(values.shape, float(epsilon))
    return CBRT_EPS * np.maximum(1.0, np.abs(values))


def _agrees(a, n, threshold, noise):
    return np.abs(a - n) <= threshold * (np.abs(a) + np.abs(n)) + noise


def _is_kink(target, t, i, a, h, j0, threshold, noise_unit) -> bool:
    """Did the step straddle a kink: does a smaller step agree, or is theta on a kink?"""
    index = np.array([i])
    for divisor in KINK_STEP_DIVISORS:
        small = h / divisor
        jp, jm = target.values_at(t, np.repeat(index, 2), np.array([small, -small]))
        if _agrees(a, (jp - jm) / (2 * small), threshold, noise_unit / small):
            return True
    # Still no agreement at a 256 times smaller step: is there a kink exactly at theta? Then
    # the slopes on either side differ, however small the step, and the function has no
    # derivative there for the analytic value to match (with several kinks meeting, backprop's
    # convention need not even equal either one-sided slope).
    noise = 2 * noise_unit / small
    left, right = (j0 - jm) / small, (jp - j0) / small
    return abs(right - left) > max(10 * noise, KINK_MIN_JUMP * (abs(left) + abs(right)))


def _check_entries(target, t, flat_index, epsilon, threshold, j0, noise_unit):
    """Full check of some entries of tensor t: numeric values, and which ones are kinks."""
    array = target.arrays[t].reshape(-1)
    analytic = target.analytic[t].reshape(-1)[flat_index]
    h = _steps(array[flat_index], epsilon)
    both = target.values_at(t, np.concatenate([flat_index, flat_index]), np.concatenate([h, -h]))
    jp, jm = both[: len(h)], both[len(h) :]
    numeric = (jp - jm) / (2 * h)
    noise = noise_unit / h
    agree = _agrees(analytic, numeric, threshold, noise)
    kink = np.zeros(len(h), dtype=bool)
    for k in np.flatnonzero(~agree):
        i = flat_index[k]
        kink[k] = (
            target.crosses_kink(t, i, h[k])
            or target.crosses_kink(t, i, -h[k])
            or _is_kink(target, t, i, analytic[k], h[k], j0, threshold, noise_unit)
        )
    # Exact zeros on both sides (a dead unit) do agree; tiny non-zero values cannot be told apart.
    tiny = (
        (np.abs(analytic) <= noise)
        & (np.abs(numeric) <= noise)
        & ((analytic != 0) | (numeric != 0))
    )
    return analytic, numeric, agree, kink, tiny, noise


def _fast_direction(target, t, rng, epsilon, threshold, noise_unit):
    """Check tensor t along a random unit direction u: (a.u, numeric, noise, agrees)."""
    array = target.arrays[t]
    direction = rng.standard_normal(array.shape)
    direction /= np.linalg.norm(direction) or 1.0
    h = float(epsilon) if epsilon is not None else CBRT_EPS * max(1.0, float(np.max(np.abs(array))))
    jp, jm = target.values_along(t, direction, [h, -h])
    analytic = float(np.sum(target.analytic[t] * direction))
    numeric = (jp - jm) / (2 * h)
    noise = noise_unit / h
    return analytic, numeric, noise, bool(_agrees(analytic, numeric, threshold, noise))


def _run(
    target: _Target,
    *,
    epsilon: float | None,
    threshold: float,
    fast: bool,
    samples: int | None,
    seed: int | None,
) -> GradcheckReport:
    if epsilon is not None and not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        samples = int(samples)
    j0 = target._counted(None)
    if target._counted(None) != j0:
        raise GradcheckError(
            "the forward is not deterministic: it gave two different values for the same input "
            "(a random layer such as Dropout in training mode?). Hold its randomness fixed, or "
            "call eval() on the model before checking."
        )
    noise_unit = NOISE_ULPS * EPS * max(target.scale(), abs(j0))
    layout = FlatLayout.of(zip(target.names, target.arrays, strict=True))
    rng = np.random.default_rng(seed)

    all_a, all_n, all_noise, worst, kinks = [], [], [], [], []
    by_parameter, uninformative = {}, {}
    passed, checked = True, 0
    for t, name in enumerate(layout.names):
        size = target.arrays[t].size
        if size == 0:
            continue
        if fast:
            a, n, noise, ok = _fast_direction(target, t, rng, epsilon, threshold, noise_unit)
            if ok:
                all_a.append([a])
                all_n.append([n])
                all_noise.append([noise])
                by_parameter[name] = relative_difference(np.array([a]), np.array([n]))
                checked += 1
                continue
            # The direction disagrees: find out which entries, and whether they are kinks.
        flat_index = np.arange(size)
        if samples is not None and samples < size and not fast:
            flat_index = np.sort(rng.choice(size, samples, replace=False))
        a, n, agree, kink, tiny, noise = _check_entries(
            target, t, flat_index, epsilon, threshold, j0, noise_unit
        )
        counted = ~kink
        all_a.append(a[counted])
        all_n.append(n[counted])
        all_noise.append(noise[counted])
        by_parameter[name] = relative_difference(a[counted], n[counted])
        checked += len(flat_index)
        passed &= bool(np.all(agree | kink))
        if np.any(tiny & counted):
            uninformative[name] = int(np.sum(tiny & counted))
        shape = target.arrays[t].shape

        def entry(k: int, name=name, shape=shape, a=a, n=n, flat_index=flat_index) -> Entry:
            index = tuple(int(i) for i in np.unravel_index(flat_index[k], shape))
            return Entry.of(name, index, a[k], n[k])

        kinks.extend(entry(k) for k in np.flatnonzero(kink))
        excess = np.where(
            counted, np.abs(a - n) / (threshold * (np.abs(a) + np.abs(n)) + noise), -1
        )
        for k in np.argsort(-excess)[:WORST_COUNT]:
            if excess[k] > 0:
                worst.append((excess[k], entry(k)))
    a, n, noise = (np.concatenate(x) if x else np.zeros(0) for x in (all_a, all_n, all_noise))
    difference = relative_difference(a, n)
    # The tutorial's criterion, difference <= threshold, unless the disagreement is no larger
    # than the rounding noise (a net whose gradients are all tiny or zero).
    overall_ok = np.linalg.norm(a - n) <= threshold * (
        np.linalg.norm(a) + np.linalg.norm(n)
    ) + np.linalg.norm(noise)
    worst.sort(key=lambda pair: -pair[0])
    return GradcheckReport(
        passed=bool(passed and overall_ok),
        difference=difference,
        by_parameter=by_parameter,
        threshold=threshold,
        epsilon=epsilon,
        worst=tuple(entry for _, entry in worst[:WORST_COUNT]),
        kinks=tuple(kinks),
        uninformative=uninformative,
        checked=checked,
        evaluations=target.evaluations,
        mode="fast" if fast else "sampled" if samples is not None else "full",
    )


# --- public checks -------------------------------------------------------------------------------


def check_function(
    f: Callable[[np.ndarray], float],
    x,
    grad,
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
    target = _FunctionTarget(f, x, grad)
    return _run(target, epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)


def check_layer(
    layer: Layer,
    x,
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
    parameter and ``"input"``.
    """
    with _checking([layer]):
        target = _LayerTarget(layer, x, seed)
        return _run(
            target, epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed
        )


def check_model(
    model: Sequential,
    X,
    Y,
    *,
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fast: bool = False,
    samples: int | None = None,
    seed: int | None = 0,
) -> GradcheckReport:
    """Check the gradient of ``model.cost(X, Y)`` against every parameter of ``model``.

    ``by_parameter`` is keyed by the model's parameter names (``"0.W"``, ``"0.b"``, ...).
    """
    options = dict(epsilon=epsilon, threshold=threshold, fast=fast, samples=samples, seed=seed)
    with _checking(model.layers):
        target = _ModelTarget(model, X, Y)
        report = _run(target, **options)
        if report.passed:
            return report
        # Localise: check every layer on its own, at the input it sees in the model.
        by_layer, x = {}, target.inputs[0]
        for i, layer in enumerate(model.layers):
            by_layer[i] = check_layer(layer, x, **options)
            x = layer.forward(x)
        names = {i: type(layer).__name__ for i, layer in enumerate(model.layers)}
    return evolve(report, by_layer=by_layer, layer_names=names)
