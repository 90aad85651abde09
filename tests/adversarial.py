"""Wrong gradients built to slip past a gradient check, and right ones that look suspicious.

Each case is ``(name, run)`` where ``run()`` returns a report. For ``WRONG`` cases the report must
never be ``passed``; for ``RIGHT`` cases it must never be ``failed``. The tests and
``benchmarks/gradcheck_suite.py`` both use this list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from user_layers import CORRECT as CORRECT_NORMS
from user_layers import WRONG as WRONG_NORMS

import minnet
from minnet import Linear, ReLU, Sequential, Sigmoid, check_function

Case = tuple[str, Callable[[], minnet.GradcheckReport]]

#: Smooth functions with their gradients: (name, f, grad).
SMOOTH = [
    ("sum sin", lambda x: float(np.sin(x).sum()), lambda x: np.cos(x)),
    ("sum x^3 + x", lambda x: float((x**3 + x).sum()), lambda x: 3 * x**2 + 1),
    ("sum exp", lambda x: float(np.exp(x).sum()), lambda x: np.exp(x)),
    (
        "log(1 + x^2) + 0.3x",
        lambda x: float((np.log1p(x**2) + 0.3 * x).sum()),
        lambda x: 2 * x / (1 + x**2) + 0.3,
    ),
    ("x @ A @ x + b @ x", None, None),  # filled below with a fixed A and b
]
_A = np.random.default_rng(7).standard_normal((4, 4))
_B = np.random.default_rng(8).standard_normal(4)
SMOOTH[-1] = (
    "x @ A @ x + b @ x",
    lambda x: float(x @ _A @ x + _B @ x),
    lambda x: (_A + _A.T) @ x + _B,
)


def _offset(f, offset: float):
    return lambda x: offset + f(x)


def _wrong(grad: np.ndarray, relative: float, which: str, rng) -> np.ndarray:
    grad = grad.copy()
    if which == "all":
        return grad * (1 + relative)
    i = int(np.argmax(np.abs(grad)))  # one entry, the largest: the error is not hidden in noise
    grad[i] *= 1 + relative
    return grad


def _function_cases() -> tuple[list[Case], list[Case]]:
    wrong, right = [], []
    for name, f, g in SMOOTH:
        for scale in (1e-3, 1e-1):  # smooth points near zero
            x = scale * np.random.default_rng(0).standard_normal(4)
            right.append(
                (f"{name} at |x|~{scale:g}", lambda f=f, g=g, x=x: check_function(f, x, g(x)))
            )
            for relative in (1e-2, 1e-3, 1e-4):
                for which in ("one", "all"):
                    claim = _wrong(g(x), relative, which, None)
                    wrong.append(
                        (
                            f"{name} at |x|~{scale:g}, {which} off by {relative:g}",
                            lambda f=f, x=x, claim=claim: check_function(f, x, claim),
                        )
                    )
            for offset in (1e3, 1e6, 1e9):  # large constant offsets
                fo = _offset(f, offset)
                right.append(
                    (f"{offset:g} + {name}", lambda fo=fo, g=g, x=x: check_function(fo, x, g(x)))
                )
                for relative in (1e-2, 1e-3):
                    claim = _wrong(g(x), relative, "all", None)
                    wrong.append(
                        (
                            f"{offset:g} + {name}, off by {relative:g}",
                            lambda fo=fo, x=x, claim=claim: check_function(fo, x, claim),
                        )
                    )
    # Points where the true gradient is 0.
    square = lambda x: float((x**2).sum())  # noqa: E731
    cosine = lambda x: float(np.cos(x).sum())  # noqa: E731
    for claim in (5.0, 1e-3, 1e-8, -1e-6):
        wrong.append(
            (
                f"x^2 at 0, claim {claim:g}",
                lambda c=claim: check_function(square, np.zeros(3), np.full(3, c)),
            )
        )
        wrong.append(
            (
                f"cos at 0, claim {claim:g}",
                lambda c=claim: check_function(cosine, np.zeros(3), np.full(3, c)),
            )
        )
    right.append(("x^2 at 0", lambda: check_function(square, np.zeros(3), np.zeros(3))))
    # NaN and infinite claims. (A function that is NaN at the point is refused before any
    # verdict: test_gradcheck_rules.test_a_function_not_finite_at_the_point_is_refused_not_judged.)
    for bad in (np.nan, np.inf, -np.inf):
        claim = np.array([1.0, bad, 3.0])
        wrong.append(
            (
                f"claim with {bad}",
                lambda c=claim: check_function(square, np.array([0.5, 1.0, 1.5]), c),
            )
        )
    # The issue's snippets.
    wrong.append(
        (
            "1000 + 1e-3 x, 1% off",
            lambda: check_function(
                lambda x: 1000 + 1e-3 * x.sum(), np.full(3, 0.5), np.full(3, 1.01e-3)
            ),
        )
    )
    return wrong, right


class BiasOnePercentHigh(Linear):
    def backward(self, grad_output):
        out = super().backward(grad_output)
        self.b.grad *= 1.01
        return out


class DoubledWeightGrad(Linear):
    def backward(self, grad_output):
        before = self.W.grad.copy()
        out = super().backward(grad_output)
        self.W.grad += self.W.grad - before
        return out


def _issue_bias_net() -> minnet.GradcheckReport:
    lin = BiasOnePercentHigh(1, 1, rng=0)
    lin.W.value[...] = 2.0
    lin.b.value[...] = 1e-3
    model = Sequential([lin, Sigmoid()])
    return model.gradcheck(np.array([[1.0], [-1.0]]), np.array([1.0, 0.0]))


def _relu_net(first: type[Linear], seed: int) -> tuple[Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = Sequential(
        [
            first(3, 5, rng=rng),
            ReLU(),
            Linear(5, 4, rng=rng),
            ReLU(),
            Linear(4, 1, rng=rng),
            Sigmoid(),
        ]
    )
    X = rng.standard_normal((6, 3))
    Y = (rng.random(6) < 0.5).astype(float)
    return model, X, Y


def _norm_net(norm: type, seed: int) -> tuple[Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = Sequential([Linear(3, 4, rng=rng), norm(4), ReLU(), Linear(4, 1, rng=rng), Sigmoid()])
    X = rng.standard_normal((6, 3))
    Y = (rng.random(6) < 0.5).astype(float)
    return model, X, Y


def _model_cases() -> tuple[list[Case], list[Case]]:
    wrong, right = [], []
    wrong.append(("issue: bias 1% high, no kink", _issue_bias_net))
    for epsilon in (1.0, 10.0, 1e-12, 1e-10):  # huge and tiny steps
        for seed in range(3):
            model, X, Y = _relu_net(DoubledWeightGrad, seed)
            wrong.append(
                (
                    f"doubled W grads, epsilon={epsilon:g}, seed {seed}",
                    lambda m=model, X=X, Y=Y, e=epsilon: m.gradcheck(X, Y, epsilon=e),
                )
            )
            model, X, Y = _relu_net(Linear, seed)
            right.append(
                (
                    f"right ReLU net, epsilon={epsilon:g}, seed {seed}",
                    lambda m=model, X=X, Y=Y, e=epsilon: m.gradcheck(X, Y, epsilon=e),
                )
            )
    for norm in WRONG_NORMS:
        for seed in range(3):
            for fast in (False, True):
                model, X, Y = _norm_net(norm, seed)
                wrong.append(
                    (
                        f"{norm.__name__} in a model, seed {seed}, fast={fast}",
                        lambda m=model, X=X, Y=Y, f=fast: m.gradcheck(X, Y, fast=f),
                    )
                )
            x = np.random.default_rng(seed).standard_normal((5, 4))
            wrong.append(
                (f"{norm.__name__} alone, seed {seed}", lambda n=norm, x=x: n(4).gradcheck(x))
            )
    for norm in CORRECT_NORMS:
        for seed in range(3):
            model, X, Y = _norm_net(norm, seed)
            right.append(
                (
                    f"{norm.__name__} in a model, seed {seed}",
                    lambda m=model, X=X, Y=Y: m.gradcheck(X, Y),
                )
            )
    return wrong, right


def _review_cases() -> list[Case]:
    """Wrong gradients an adversarial review built against the first version of the judge."""
    from test_gradcheck_rules import DoubledW, deep_sigmoid_net

    wrong: list[Case] = []
    n = 3000
    grad = np.full(n, 2e-6)
    grad[0] = 3.0
    offset_line = lambda x: 1000 + 3 * x[0]  # noqa: E731
    wrong.append(
        ("many errors within the noise", lambda: check_function(offset_line, np.zeros(n), grad))
    )
    wrong.append(
        (
            "many errors within the noise, sampled",
            lambda: check_function(offset_line, np.zeros(n), grad, samples=20),
        )
    )
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((32, 8)), (rng.random(32) > 0.5).astype(float)
    for fast in (False, True):
        wrong.append(
            (
                f"doubled dW where gradients vanish, fast={fast}",
                lambda fast=fast: deep_sigmoid_net(DoubledW).gradcheck(X, Y, fast=fast),
            )
        )
    absolute = lambda v: float(np.abs(v).sum())  # noqa: E731
    for distance in (1e-9, 1e-8, 5e-8):
        x = np.array([distance, 0.7, -1.3, 2.0])
        wrong.append(
            (
                f"claimed 0 at {distance:g} from a kink of |x|",
                lambda x=x: check_function(absolute, x, np.array([0.0, 1, -1, 1])),
            )
        )
    return wrong


def cases() -> tuple[list[Case], list[Case]]:
    """``(wrong, right)``: cases that must not pass, and cases that must not fail."""
    wrong_f, right_f = _function_cases()
    wrong_m, right_m = _model_cases()
    return wrong_f + wrong_m + _review_cases(), right_f + right_m
