"""What a check differentiates: a scalar ``J`` of some float64 arrays, and the claimed gradients.

- :class:`FunctionTarget`: any ``f(x)``;
- :class:`LayerTarget`: ``J = sum(G * layer.forward(x))`` for a fixed random ``G`` (CS231n's
  trick: ``layer.backward(G)`` is then the claimed input gradient, the parameters' ``.grad`` the
  claimed parameter gradients);
- :class:`ModelTarget`: ``J = model.cost(X, Y)``, through the model's public API only.

Each target moves its arrays in place, one entry at a time (:mod:`.reference`), and can watch
whether an evaluation carried some layer's input across one of its declared ``kink_points``.
A model target may evaluate many moves at once (:mod:`.batched`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from .batched import batched_values, can_batch
from .judge import KINKS_MEET, NEAR_KINK, NO_KINK, ONE_KINK, Measurement
from .layer_registry import holding_randomness, keeping_state, kinks_of
from .reference import evaluate_moved, taken_step

if TYPE_CHECKING:
    from ..layers import Layer
    from ..losses import Loss
    from ..model import Sequential


#: The purposes a check draws random numbers for, each from its own stream of the seed: a
#: recipe's random input, the upstream gradient ``G``, fast-mode directions, sampled entries and
#: the noise probe. Drawn from one stream, ``G`` would equal an input drawn from the same seed
#: (and at that point ``sum(G * out)`` may be flat for a layer that normalizes its rows).
STREAMS = {"input": 1, "upstream": 2, "directions": 3, "samples": 4, "noise": 5}


def stream(seed: int | None, purpose: str, attempt: int = 0) -> np.random.Generator:
    """The random generator of the check with ``seed`` for ``purpose`` (a key of
    :data:`STREAMS`); ``attempt`` numbers redraws. Streams of different purposes, attempts or
    seeds are independent (numpy's ``SeedSequence``); ``seed=None`` gives fresh entropy."""
    if purpose not in STREAMS:
        raise ValueError(f"purpose must be one of {sorted(STREAMS)}, got {purpose!r}")
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[purpose], attempt]))


def upstream_gradient(shape: tuple[int, ...], seed: int | None, attempt: int) -> np.ndarray:
    """The fixed random ``G`` of a layer check: standard normal, from the ``"upstream"``
    stream."""
    return stream(seed, "upstream", attempt).standard_normal(shape)


def float64_copy(array: Any) -> np.ndarray:
    if np.iscomplexobj(array):
        raise ValueError(
            f"gradient checks compare real numbers, got complex values (dtype "
            f"{np.asarray(array).dtype}): the imaginary part would be dropped"
        )
    return np.array(array, dtype=np.float64, copy=True, order="C")


def kink_sides(layer: Any, x: np.ndarray) -> np.ndarray | None:
    """Which side of each of the layer's declared kinks every input entry is on (-1, 0, 1)."""
    own = kinks_of(layer)  # kinks not at fixed input values (max pooling's ties)
    if own is not None:
        return own.sides(layer, x)
    points = getattr(layer, "kink_points", ())
    return np.stack([np.sign(x - p) for p in points]) if points else None


def crossing(layer: Any, x: np.ndarray, x0: np.ndarray, sides0: np.ndarray | None) -> int:
    """Did moving the layer's input from ``x0`` to ``x`` cross a declared kink, and how
    (:data:`~.judge.NO_KINK`, ``ONE_KINK``, ``KINKS_MEET`` or ``NEAR_KINK``)?"""
    if sides0 is None or x.shape != x0.shape:
        return NO_KINK
    own = kinks_of(layer)
    if own is not None:
        return own.crossing(own.sides(layer, x), sides0)
    changed = kink_sides(layer, x) != sides0  # (points, *x.shape)
    if not changed.any():
        return NO_KINK
    if not np.all(sides0[changed] == 0):
        return NEAR_KINK  # an input crossed a kink it was not sitting on
    directions = np.sign(x - x0)[np.any(changed, axis=0)]
    return ONE_KINK if np.all(directions == directions[0]) else KINKS_MEET


def combine(a: int, b: int) -> int:
    """The crossings of two layers together: exact kinks in both meet; a near kink in either
    wins (the codes are ordered so that ``max`` gives the rest)."""
    if a and b and NEAR_KINK not in (a, b):
        return KINKS_MEET
    return max(a, b)


class Target:
    """A scalar ``J`` of ``arrays`` (float64, C-contiguous, moved in place by the check)."""

    names: list[str]
    arrays: list[np.ndarray]
    analytic: list[np.ndarray]
    evaluations: int = 0
    #: ``J`` at the unmoved arrays (set by the check before it judges).
    center: float = np.nan
    #: Why nothing can be compared (0 rows...), or ``None``.
    empty_reason: str | None = None

    def value(self, tensor: int | None, watch: bool) -> tuple[float, int]:
        """``J`` at the current arrays, and (when ``watch``) what declared kinks it crossed
        (:data:`NO_KINK`, :data:`ONE_KINK` or :data:`KINKS_MEET`).

        ``tensor`` says which array was moved (``None``: unknown), so that a model only runs
        the layers from the one that owns it.
        """
        raise NotImplementedError

    def scale(self) -> float:
        """The magnitude that the rounding errors of ``J`` are relative to (``center`` is set)."""
        return abs(self.center)

    def count(self, tensor: int | None, watch: bool = False) -> float:
        self.evaluations += 1
        value, crossed = self.value(tensor, watch)
        self.crossed = max(self.crossed, crossed)  # one measurement: the worst of its sides
        return value

    crossed = NO_KINK

    def values_at(self, tensor: int, flat_index: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """``J`` with ``arrays[tensor].flat[flat_index[k]]`` moved by ``steps[k]``, for each k."""
        array = self.arrays[tensor]
        return np.array(
            [
                evaluate_moved(lambda: self.count(tensor), array, int(i), float(step))
                for i, step in zip(flat_index, steps, strict=True)
            ]
        )

    def measure(self, tensor: int, index: int, center: float) -> Callable[[float], Measurement]:
        """``measure(step)`` for one entry, watching for declared kinks (for the judge)."""
        array = self.arrays[tensor]
        theta = float(array.reshape(-1)[index])

        def measure(step: float) -> Measurement:
            self.crossed = NO_KINK
            plus = evaluate_moved(lambda: self.count(tensor, True), array, index, step)
            minus = evaluate_moved(lambda: self.count(tensor, True), array, index, -step)
            up, down = taken_step(theta, step), -taken_step(theta, -step)
            return Measurement(step, plus, minus, center, self.crossed, up, down)

        return measure

    def measure_along(
        self, tensor: int, direction: np.ndarray, center: float
    ) -> Callable[[float], Measurement]:
        """``measure(step)`` along ``direction`` (an array of the tensor's shape)."""
        array = self.arrays[tensor]
        saved = array.copy()

        norm2 = float(np.sum(direction * direction))

        def moved(step: float) -> tuple[float, float]:
            """J moved by ``step`` along the direction, and the step taken along it."""
            np.add(saved, step * direction, out=array)
            try:
                taken = float(np.sum(taken_step(saved, step * direction) * direction)) / norm2
                return self.count(tensor, True), abs(taken)
            finally:
                array[...] = saved

        def measure(step: float) -> Measurement:
            self.crossed = NO_KINK
            (plus, up), (minus, down) = moved(step), moved(-step)
            return Measurement(step, plus, minus, center, self.crossed, up, down)

        return measure

    def table_along(self, tensor: int, move: np.ndarray, half: int) -> np.ndarray | None:
        """J at ``arrays[tensor] + k * move`` for ``k = -half .. half`` (watching for declared
        kinks), or ``None`` when some value crossed one or is not finite."""
        array = self.arrays[tensor]
        saved = array.copy()
        values = []
        try:
            for k in range(-half, half + 1):
                if k == 0:
                    values.append(self.center)
                    continue
                np.add(saved, k * move, out=array)
                self.crossed = NO_KINK
                value = self.count(tensor, True)
                if self.crossed or not np.isfinite(value):
                    return None
                values.append(value)
        finally:
            array[...] = saved
        return np.array(values)


class FunctionTarget(Target):
    """``J = f(x)`` with the claimed gradient ``grad`` (``x``'s shape)."""

    def __init__(self, f: Callable[[np.ndarray], float], x: Any, grad: Any) -> None:
        x, grad = float64_copy(x), float64_copy(grad)
        if grad.shape != x.shape:
            raise ValueError(f"the gradient has shape {grad.shape}, x has shape {x.shape}")
        self.f = f
        self.names, self.arrays, self.analytic = ["x"], [x], [grad]
        if x.size == 0:
            self.empty_reason = "x has no entries"

    def value(self, tensor: int | None, watch: bool) -> tuple[float, int]:
        value = self.f(self.arrays[0])
        if np.ndim(value) != 0:
            raise ValueError(
                f"f must return a scalar (one number), got an array of shape {np.shape(value)}"
            )
        return float(value), NO_KINK


class LossTarget(FunctionTarget):
    """``J = loss.forward(outputs, targets)`` (or ``loss.forward_fused``, with ``fused``), claimed
    gradient ``loss.backward()``.

    The targets go through the loss's own ``check_targets`` when it has one; numbers become
    float64 like the outputs, class indices stay integers."""

    def __init__(self, loss: Loss, outputs: Any, targets: Any, fused: bool = False) -> None:
        outputs = float64_copy(outputs)
        check_targets = getattr(loss, "check_targets", None)
        if check_targets is not None:
            targets = check_targets(targets, outputs.shape)
        targets = np.array(targets, copy=True)
        if targets.shape == outputs.shape:
            targets = targets.astype(np.float64)
        forward = loss.forward_fused if fused else loss.forward
        forward(outputs, targets)
        grad = loss.backward()
        super().__init__(lambda o: forward(o, targets), outputs, grad)
        self.names = ["outputs"]


@contextmanager
def checking(layers: Sequence[Layer]) -> Iterator[None]:
    """Float64 parameters, fixed randomness and untouched buffers, for the duration of a check.

    Each parameter gets a float64 copy of its value and a fresh gradient; the original arrays are
    put back afterwards, untouched, and so are the layers' buffers (``named_buffers()``, such as
    a batch norm's running statistics, which every training forward updates). The check works on
    the caller's own layers (so a subclass behaves as it does for the caller) without changing
    them. Random layers (``Dropout``) repeat their last draw, so every evaluation sees the same
    function, and their generators are put back to the state they had. Every other attribute
    of the layers (what ``forward`` cached for ``backward``) is put back as well, so that a
    ``backward`` after the check computes what it would have computed without it.
    """
    parameters = [p for layer in layers for p in layer.parameters()]
    saved = [(p.value, p.grad) for p in parameters]
    buffers = [
        (layer, name, np.array(value, copy=True))
        for layer in layers
        for name, value in layer.named_buffers()
    ]
    try:
        with keeping_state(list(layers)), holding_randomness(list(layers)):
            for p in parameters:
                p.value = float64_copy(p.value)
                p.grad = np.zeros_like(p.value)
            yield
    finally:
        for p, (value, grad) in zip(parameters, saved, strict=True):
            p.value, p.grad = value, grad
        for layer, name, value in buffers:
            getattr(layer, name)[...] = value


#: See :meth:`LayerTarget.powerless`.
POWERLESS = 1e-6


class LayerTarget(Target):
    """``J = sum(G * layer.forward(x))`` for ``G`` drawn from the seed's ``"upstream"`` stream
    (redraw number ``attempt``)."""

    def __init__(self, layer: Layer, x: Any, seed: int | None, attempt: int = 0) -> None:
        self.layer = layer
        self.x = float64_copy(x)
        out = np.asarray(layer.forward(self.x))
        self.projection = upstream_gradient(out.shape, seed, attempt)
        grad_input = layer.backward(self.projection.copy())
        named = list(layer.named_parameters())
        self.names = [name for name, _ in named] + ["input"]
        self.arrays = [p.value for _, p in named] + [self.x]
        self.analytic = [p.grad.copy() for _, p in named] + [float64_copy(grad_input)]
        if self.analytic[-1].shape != self.x.shape:
            raise ValueError(
                f"{layer!r}.backward returned an input gradient of shape "
                f"{self.analytic[-1].shape}, its input has shape {self.x.shape}"
            )
        self.x0 = self.x.copy()
        self.sides = kink_sides(layer, self.x)
        if self.x.ndim >= 1 and len(self.x) == 0:
            self.empty_reason = "x has 0 rows"

    def value(self, tensor: int | None, watch: bool) -> tuple[float, int]:
        crossed = crossing(self.layer, self.x, self.x0, self.sides) if watch else NO_KINK
        return float(np.sum(self.projection * self.layer.forward(self.x))), crossed

    def scale(self) -> float:
        self.evaluations += 1
        return float(np.sum(np.abs(self.projection * self.layer.forward(self.x))))

    def powerless(self, tensor: int, direction: np.ndarray, step: float) -> bool:
        """Is ``G`` blind to ``tensor``: the layer's output moves along ``direction`` but
        ``J = sum(G * out)`` does not?

        ``J(+h) - J(-h) = G . (out(+h) - out(-h))``; for a ``G`` independent of the layer,
        that is a normal number of standard deviation ``||out(+h) - out(-h)||``, below
        :data:`POWERLESS` times it with probability under ``POWERLESS``. Far below it means
        ``G`` is orthogonal to what the tensor does to the output (``G`` equal to the input of a
        layer that normalizes rows): a check with this ``G`` could not see a wrong gradient."""
        array = self.arrays[tensor]
        saved = array.copy()
        outs = []
        for s in (step, -step):
            np.add(saved, s * direction, out=array)
            try:
                self.evaluations += 1
                outs.append(np.asarray(self.layer.forward(self.x), dtype=np.float64))
            finally:
                array[...] = saved
        moved = outs[0] - outs[1]
        size = float(np.linalg.norm(moved))
        return bool(
            np.isfinite(size)
            and size > 0
            and abs(np.sum(self.projection * moved)) <= POWERLESS * size
        )


class ModelTarget(Target):
    """``J = model.cost(X, Y)``; each parameter perturbation reruns the layers from its own."""

    def __init__(self, model: Sequential, X: Any, Y: Any) -> None:
        self.model = model
        X = float64_copy(model.check_inputs(X, np.dtype(np.float64)))
        self.Y = model.check_targets(Y, len(X))
        if np.issubdtype(self.Y.dtype, np.floating):
            self.Y = float64_copy(self.Y)
        self.body = model.body
        named = list(model.named_parameters())
        self.names = [name for name, _ in named]
        self.arrays = [p.value for _, p in named]
        self.inputs = [X]
        if len(X) == 0:
            self.empty_reason = "X has 0 rows"
            self.analytic = [np.zeros_like(array) for array in self.arrays]
            return
        model.zero_grad()
        model.cost_prepared(X, self.Y)
        model.backward()
        self.analytic = [p.grad.copy() for _, p in named]
        # The first layer that uses each array (a parameter tied between layers changes all).
        layer_of = {
            id(p): i
            for i, layer in reversed(list(enumerate(model.layers)))
            for p in layer.parameters()
        }
        self.owner = [layer_of[id(p)] for _, p in named]
        # Each body layer's input at the unperturbed parameters: moving layer k's parameters
        # only needs layers k, k+1, ... to run again.
        for layer in self.body[:-1]:
            self.inputs.append(np.asarray(layer.forward(self.inputs[-1])))
        self.sides = [
            kink_sides(layer, x)
            for layer, x in zip(self.body, self.inputs[: len(self.body)], strict=True)
        ]
        if not self.names:
            self.empty_reason = "the model has no parameters"

    def value(self, tensor: int | None, watch: bool) -> tuple[float, int]:
        start = 0 if tensor is None else self.owner[tensor]
        x, crossed = self.inputs[start], NO_KINK
        for k in range(start, len(self.body)):
            if watch:
                layer_crossed = crossing(self.body[k], x, self.inputs[k], self.sides[k])
                crossed = combine(crossed, layer_crossed)
            x = self.body[k].forward(x)
        return self.model.loss_value(x, self.Y), crossed

    def values_at(self, tensor: int, flat_index: np.ndarray, steps: np.ndarray) -> np.ndarray:
        if can_batch(self, tensor):
            values = batched_values(self, tensor, flat_index, steps)
            self.evaluations += len(steps)
            return values
        return super().values_at(tensor, flat_index, steps)

    def scale(self) -> float:
        # A loss of confident outputs is a small difference of large terms (softplus(z) - y*z):
        # its rounding error follows the size of the outputs, not of the loss.
        out = self.model.run(self.inputs[0])
        return abs(self.center) + float(np.mean(np.abs(out))) if out.size else 0.0
