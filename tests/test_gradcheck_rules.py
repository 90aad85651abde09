"""The judge's rules, one test each, each with a case that a check without the rule gets wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from adversarial import DoubledWeightGrad, _issue_bias_net, _norm_net, _relu_net, cases
from conftest import random_data, random_net
from hypothesis import given, settings
from hypothesis import strategies as st
from user_layers import CORRECT as CORRECT_NORMS
from user_layers import WRONG as WRONG_NORMS
from user_layers import PlainScale, UserBatchNorm

import minnet
from minnet import Layer, Linear, ReLU, Sequential, Sigmoid, Tanh, check_function
from minnet.gradcheck.judge import (
    KINK_BESIDE,
    KINK_SIDE,
    ONE_KINK,
    UNDECLARED_KINK_REASON,
    Judge,
    Measurement,
)
from minnet.gradcheck.targets import ModelTarget, checking
from minnet.testing import assert_gradients

square = lambda x: float((x**2).sum())  # noqa: E731


# --- the issue's snippets ----------------------------------------------------------------------


def test_curvature_at_a_zero_gradient_is_not_a_kink():
    report = check_function(square, np.zeros(3), np.full(3, 5.0))
    assert report.status == "failed" and report.kinks == ()


def test_a_nan_claim_fails_and_says_so():
    report = check_function(square, np.zeros(3), np.full(3, np.nan))
    assert report.status == "failed"
    assert "NaN" in str(report)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_an_infinite_claim_fails(bad):
    assert check_function(square, np.ones(3), np.array([2.0, bad, 2.0])).status == "failed"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_function_not_finite_at_the_point_is_refused_not_judged(value):
    # No slope to measure: a verdict would blame the claimed gradient for the point.
    with pytest.raises(ValueError, match=r"^f\(x\) is not finite at the given x"):
        check_function(lambda x: float(value), np.ones(2), np.ones(2))


def test_agreement_only_because_the_noise_grew_is_no_evidence():
    # J = 1000 + 1e-3 * sum(x): the rounding noise of J swamps a 1% error at the natural step
    # and grows at smaller ones; a larger step (J is smooth) shows the error.
    f = lambda x: 1000 + 1e-3 * x.sum()  # noqa: E731
    assert check_function(f, np.full(3, 0.5), np.full(3, 1.01e-3)).status == "failed"
    assert check_function(f, np.full(3, 0.5), np.full(3, 1e-3)).status == "passed"


def test_a_one_percent_bias_error_without_any_kink_fails():
    report = _issue_bias_net()
    assert report.status == "failed"
    assert report.worst_parameter == "0.b" and report.blamed_layers == (0,)


# --- kinks need evidence -----------------------------------------------------------------------


def test_a_tanh_net_has_no_kinks():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        model = random_net(rng, [3, 5, 4, 1], Tanh)
        report = model.gradcheck(*random_data(rng, 6, 3))
        assert report.passed and report.kinks == (), str(report)


def test_huge_epsilon_cannot_excuse_doubled_relu_weight_gradients():
    for epsilon in (1.0, 10.0):
        model, X, Y = _relu_net(DoubledWeightGrad, 0)
        assert model.gradcheck(X, Y, epsilon=epsilon).status == "failed"
        model, X, Y = _relu_net(Linear, 0)
        assert model.gradcheck(X, Y, epsilon=epsilon).passed


def test_a_tiny_epsilon_is_not_a_free_pass():
    model, X, Y = _relu_net(DoubledWeightGrad, 1)
    assert model.gradcheck(X, Y, epsilon=1e-12).status == "failed"
    model, X, Y = _relu_net(Linear, 1)
    assert model.gradcheck(X, Y, epsilon=1e-12).status != "failed"


@pytest.mark.parametrize(
    "epsilon, error",
    [(0.0, ValueError), (-1e-3, ValueError), (np.inf, ValueError), (np.nan, ValueError)]
    + [("1e-3", TypeError), (True, TypeError)],
)
def test_meaningless_epsilons_are_refused(epsilon, error):
    with pytest.raises(error, match="^epsilon must be"):
        check_function(square, np.ones(2), 2 * np.ones(2), epsilon=epsilon)


def abs_plus_square(x):
    return float(abs(x[0]) + (x[1:] ** 2).sum())


def test_an_undeclared_kink_is_never_excused():
    # At a kink nobody declared, no claim is shown right. On one slope it is right only if the
    # kink is at theta or on that slope's side: a kink beside theta, closer than the smallest
    # step the noise allows, moves the far slope by less than its noise (the generator's seed
    # 372 case 1610: |x| at 1.5e-13 from 0 with J's noise 1e-7, a sign flip "on a slope").
    # Strictly between them it is right only if the kink is exactly at theta. Outside them,
    # the kinks of several pieces may meet (a ReLU at 0 feeding a tie of a max), where a right
    # backward need not lie between J's one-sided slopes. Undecided, never passed.
    x = np.array([0.0, 0.5, -1.0, 2.0, 1.5])
    grad = 2 * x
    for claim in (-1.0, 1.0, 0.0, 0.5, 1.5):  # |x| at 0: slopes -1 and 1
        grad[0] = claim
        report = check_function(abs_plus_square, x, grad)
        assert report.status == "inconclusive", str(report)
        assert [e.where for e in report.undecided] == ["x[0]"]
        assert "undeclared kink" in report.undecided[0].reason


def test_a_declared_kink_is_excused_only_between_the_one_sided_slopes():
    class ReLUWithSlopeTwoAtZero(ReLU):
        def forward(self, x):
            self.zero = x == 0
            return super().forward(x)

        def backward(self, grad_output):
            return super().backward(grad_output) + 2.0 * grad_output * self.zero

    x = np.array([[0.0, 1.0, -2.0], [3.0, 0.5, 0.25]])
    assert ReLU().gradcheck(x).passed
    assert ReLUWithSlopeTwoAtZero().gradcheck(x).status == "failed"


def test_most_entries_on_kinks_is_inconclusive_not_passed():
    report = ReLU().gradcheck(np.zeros((3, 4)))
    assert report.status == "inconclusive" and not report.passed
    assert "kinks" in str(report)


def test_the_judge_calls_curvature_curvature_and_a_kink_a_kink():
    judge = Judge(threshold=1e-6, noise=0.0)

    def measure_of(f):
        return lambda step: Measurement(step, f(step), f(-step), f(0.0))

    curved = measure_of(lambda t: t * t)
    kinked = measure_of(abs)
    options = dict(natural_step=6e-6, max_step=0.1, floor=0.0)
    assert judge.judge(1e-3, curved(6e-6), curved, **options).status == "fail"
    # On one slope of a kink nobody declared: the kink may lie on either side of theta.
    on_slope = judge.judge(1.0, kinked(6e-6), kinked, **options)
    assert (on_slope.status, on_slope.reason) == ("undecided", KINK_SIDE)
    # Strictly between the slopes of a kink nobody declared: right only if the kink is exactly
    # at theta, which no step can show.
    between = judge.judge(0.5, kinked(6e-6), kinked, **options)
    assert (between.status, between.reason) == ("undecided", KINK_BESIDE)
    # Outside the slopes of a kink nobody declared: undecided (several kinks may meet there);
    # of a kink declared by one unit: wrong.
    outside = judge.judge(1.5, kinked(6e-6), kinked, **options)
    assert (outside.status, outside.reason) == ("undecided", UNDECLARED_KINK_REASON)

    def declared(step):
        return Measurement(step, abs(step), abs(step), 0.0, crossed=ONE_KINK)

    assert judge.judge(1.5, declared(6e-6), declared, **options).status == "fail"
    assert judge.judge(1.0, declared(6e-6), declared, **options).status == "kink"
    assert judge.judge(0.0, curved(6e-6), curved, **options).status == "agree"


# --- three verdicts ----------------------------------------------------------------------------


def test_passed_is_true_only_for_the_passed_status():
    report = check_function(square, np.ones(2), 2 * np.ones(2))
    assert report.status == "passed" and report.passed
    report = check_function(square, np.ones(2), 3 * np.ones(2))
    assert report.status == "failed" and not report.passed


@pytest.mark.parametrize(
    "run",
    [
        lambda: check_function(square, np.zeros(0), np.zeros(0)),
        lambda: Linear(3, 2, rng=0).gradcheck(np.zeros((0, 3))),
        lambda: Sequential([ReLU(), Sigmoid()]).gradcheck(np.ones((2, 1)), [1, 0]),
    ],
    ids=["empty x", "0 rows", "no parameters"],
)
def test_a_check_that_compared_nothing_is_inconclusive(run):
    report = run()
    assert report.status == "inconclusive"
    assert "nothing was compared" in str(report)


# --- layers that mix rows ----------------------------------------------------------------------


@pytest.mark.parametrize("norm", CORRECT_NORMS)
def test_a_user_batch_norm_that_is_right_passes_in_a_model(norm):
    for seed in range(5):
        model, X, Y = _norm_net(norm, seed)
        for fast in (False, True):
            report = model.gradcheck(X, Y, fast=fast)
            assert report.passed, str(report)


@pytest.mark.parametrize("norm", WRONG_NORMS)
def test_the_classic_norm_backward_bugs_fail_and_are_blamed(norm):
    for seed in range(3):
        model, X, Y = _norm_net(norm, seed)
        for fast in (False, True):
            report = model.gradcheck(X, Y, fast=fast)
            assert report.status == "failed", str(report)
            assert report.blamed_layers == (1,)


def test_batched_evaluation_equals_the_reference_through_a_row_mixing_layer():
    model, X, Y = _norm_net(UserBatchNorm, 0)
    with checking(model.layers):
        target = ModelTarget(model, X, Y)
        for t in range(len(target.arrays)):
            index = np.arange(target.arrays[t].size)
            steps = np.full(len(index), 1e-3)
            batched = target.values_at(t, index, steps)
            reference = super(ModelTarget, target).values_at(t, index, steps)
            np.testing.assert_allclose(batched, reference, rtol=1e-13, atol=0)


def test_a_user_forward_is_not_stacked_just_because_its_parent_is_rowwise():
    class CenteredLinear(Linear):  # subtracts the batch mean: mixes rows
        def forward(self, x):
            out = super().forward(x)
            return out - out.mean(axis=0)

    assert minnet.gradcheck.layer_registry.is_rowwise(Linear(2, 2))
    assert not minnet.gradcheck.layer_registry.is_rowwise(CenteredLinear(2, 2))


# --- parameters found however a layer is written -----------------------------------------------


def test_plain_class_parameters_are_found_checked_and_trained():
    layer = PlainScale(3)
    assert [name for name, _ in layer.named_parameters()] == ["w"]
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert layer.gradcheck(x).passed
    assert PlainScale(3, wrong=True).gradcheck(x).status == "failed"
    model = Sequential([PlainScale(2), Linear(2, 1, rng=0), Sigmoid()])
    assert [name for name, _ in model.named_parameters()] == ["0.w", "1.W", "1.b"]
    before = model.layers[0].w.value.copy()
    X, Y = random_data(np.random.default_rng(1), 20, 2)
    model.fit(X, Y, epochs=2, progress=False)
    assert not np.array_equal(model.layers[0].w.value, before)
    assert model.gradcheck(X, Y).passed


# --- using it from your own tests --------------------------------------------------------------


def test_assert_gradients_passes_right_and_raises_with_the_report():
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert assert_gradients(Linear(3, 2, rng=0), x).passed
    assert assert_gradients(square, np.ones(2), 2 * np.ones(2)).passed
    with pytest.raises(AssertionError, match="gradient check failed") as info:
        assert_gradients(PlainScale(3, wrong=True), x)
    assert "w[" in str(info.value)
    with pytest.raises(AssertionError, match="inconclusive"):
        assert_gradients(ReLU(), np.zeros((2, 2)))


def test_the_check_command_checks_each_layer_of_a_file(tmp_path):
    path = tmp_path / "my_layers.py"
    path.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from minnet import Layer, Parameter

            class Scale(Layer):
                def __init__(self, features=3):
                    super().__init__()
                    self.w = Parameter(np.linspace(0.5, 1.5, features))
                def forward(self, x):
                    self.x = x
                    return x * self.w.value
                def backward(self, g):
                    self.w.grad += (g * self.x).sum(0)
                    return g * self.w.value

            class Doubled(Scale):
                def backward(self, g):
                    self.w.grad += 2 * (g * self.x).sum(0)
                    return g * self.w.value

            class Shifted(Layer):
                def __init__(self, shift):
                    super().__init__()
                    self.shift = shift
                def forward(self, x):
                    return x + self.shift
                def backward(self, g):
                    return g

            CHECK_EXAMPLES = {"Shifted": lambda: (Shifted(2.0), np.ones((2, 2)))}
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "minnet", "check", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0].split()[:2] == ["Scale", "PASSED"]
    assert lines[1].split()[:2] == ["Doubled", "FAILED"]
    assert lines[2].split()[:2] == ["Shifted", "PASSED"]
    assert "== Doubled ==" in run.stdout and "w[" in run.stdout


# --- properties and the adversarial set --------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 6),
    relative=st.sampled_from([1e-2, 1e-3, 1e-4]),
    offset=st.sampled_from([0.0, 1.0, 1e3]),
    scale=st.sampled_from([1e-3, 1e-1, 1.0]),
)
def test_a_wrong_quadratic_gradient_never_passes_and_a_right_one_never_fails(
    seed, size, relative, offset, scale
):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((size, size))
    b = rng.standard_normal(size)
    x = scale * rng.standard_normal(size)

    def f(v):
        return float(offset + v @ A @ v + b @ v)

    grad = (A + A.T) @ x + b
    assert check_function(f, x, grad).status != "failed"
    wrong = grad.copy()
    i = int(np.argmax(np.abs(grad)))
    wrong[i] *= 1 + relative
    assert check_function(f, x, wrong).status != "passed"


def test_no_wrong_gradient_of_the_adversarial_set_passes():
    wrong, right = cases()
    passed = [name for name, run in wrong if run().passed]
    assert passed == []
    failed = [name for name, run in right if run().status == "failed"]
    assert failed == []


def test_the_check_leaves_a_layers_buffers_as_it_found_them():
    class CountingNorm(UserBatchNorm):
        def __init__(self, features):
            super().__init__(features)
            self.running_mean = np.zeros(3)

        def named_buffers(self):
            yield "running_mean", self.running_mean

        def forward(self, x):
            self.running_mean += 0.1 * x.mean(axis=0)
            return super().forward(x)

    layer = CountingNorm(3)
    layer.running_mean[...] = [1.0, 2.0, 3.0]
    layer.gradcheck(np.random.default_rng(0).standard_normal((4, 3)))
    assert layer.running_mean.tolist() == [1.0, 2.0, 3.0]


def test_a_layer_check_input_gradient_of_the_wrong_shape_fails_with_a_reason():
    class Bad(Layer):
        def forward(self, x):
            return x

        def backward(self, g):
            return g[:, :1]

    report = Bad().gradcheck(np.ones((2, 3)))
    assert report.status == "failed"
    assert any("input gradient, a float array of the input's shape" in r for r in report.reasons)


# --- found by trying to break it -----------------------------------------------------------------


def test_many_small_errors_within_the_noise_do_not_add_up_to_a_pass():
    # The true gradient is (3, 0, 0, ...); 0.000067% of the largest entry claimed everywhere else.
    n = 3000
    grad = np.full(n, 2e-6)
    grad[0] = 3.0
    f = lambda x: 1000 + 3 * x[0]  # noqa: E731
    # Each entry is within threshold x the largest derivative (docs/gradcheck.md: not wrong
    # one by one), but formula (2) over all of them is above the threshold: never a pass.
    assert check_function(f, np.zeros(n), grad).status != "passed"
    assert check_function(f, np.zeros(n), grad, samples=20).status != "passed"


class DoubledW(Linear):
    def backward(self, grad_output, *args, **kwargs):
        out = super().backward(grad_output, *args, **kwargs)
        self.W.grad *= 2
        return out


def deep_sigmoid_net(first):
    layers = [first(8, 16, rng=0), Sigmoid()]
    for i in range(7):
        layers += [Linear(16, 16, rng=i + 1), Sigmoid()]
    layers += [Linear(16, 1, rng=99)]
    for layer in layers:
        if isinstance(layer, Linear):
            layer.W.value *= 0.3
    return Sequential(layers, loss=minnet.BCEWithLogitsLoss())


def test_a_wrong_gradient_in_a_layer_whose_gradients_vanish_fails():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((32, 8)), (rng.random(32) > 0.5).astype(float)
    for options in ({}, {"fast": True}):
        assert deep_sigmoid_net(Linear).gradcheck(X, Y, **options).passed
        report = deep_sigmoid_net(DoubledW).gradcheck(X, Y, **options)
        assert report.status == "failed" and report.blamed_layers == (0,)


def test_parameters_of_sub_layers_and_lists_are_found_and_checked():
    class Residual(Layer):
        def __init__(self, n, factor=1.0):
            super().__init__()
            self.fc, self.act, self.factor = Linear(n, n, rng=0), Tanh(), factor

        def forward(self, x):
            return x + self.act.forward(self.fc.forward(x))

        def backward(self, g):
            grad = self.fc.backward(self.act.backward(g))
            self.fc.W.grad *= self.factor
            return g + grad

    class TwoMatrices(Layer):
        def __init__(self):
            super().__init__()
            self.ws = [minnet.Parameter(np.eye(3) + 0.1), minnet.Parameter(np.eye(3) - 0.2)]

        def forward(self, x):
            self.x, self.h = x, x @ self.ws[0].value.T
            return self.h @ self.ws[1].value.T

        def backward(self, g):
            self.ws[1].grad += g.T @ self.h
            self.ws[0].grad += 7 * (g @ self.ws[1].value).T @ self.x  # wrong
            return g @ self.ws[1].value @ self.ws[0].value

    x = np.random.default_rng(1).standard_normal((4, 3))
    assert [name for name, _ in Residual(3).named_parameters()] == ["fc.W", "fc.b"]
    assert Residual(3).gradcheck(x).passed
    assert Residual(3, factor=3.0).gradcheck(x).worst_parameter == "fc.W"
    model = Sequential([Residual(3), Linear(3, 1, rng=1), Sigmoid()])
    assert [name for name, _ in model.named_parameters()] == ["0.fc.W", "0.fc.b", "1.W", "1.b"]
    assert model.gradcheck(x, [0, 1, 1, 0]).passed
    report = TwoMatrices().gradcheck(x)
    assert report.status == "failed" and report.worst_parameter == "ws.0"


def test_a_single_wrong_entry_is_seen_by_fast_mode():
    rng = np.random.default_rng(0)
    layer = Linear(40, 40, rng=rng)
    x = rng.standard_normal((8, 40))

    class OneEntryZeroed(Linear):
        def backward(self, grad_output, *args, **kwargs):
            out = super().backward(grad_output, *args, **kwargs)
            self.W.grad.flat[123] = 0.0
            return out

    wrong = OneEntryZeroed(40, 40, rng=np.random.default_rng(0))
    assert layer.gradcheck(x, fast=True).passed
    assert wrong.gradcheck(x, fast=True).status == "failed"


def test_kinks_excused_one_by_one_are_checked_together():
    class MaxPair(Layer):
        def forward(self, x):
            self.x = x
            return np.maximum(x[:, 0::2], x[:, 1::2])

        def backward(self, g):  # a tie gets the whole gradient twice
            top = np.maximum(self.x[:, 0::2], self.x[:, 1::2])
            out = np.zeros_like(self.x)
            out[:, 0::2] = g * (self.x[:, 0::2] == top)
            out[:, 1::2] = g * (self.x[:, 1::2] == top)
            return out

    x = np.random.default_rng(0).standard_normal((4, 6))
    x[0, 1], x[1, 3] = x[0, 0], x[1, 2]
    report = MaxPair().gradcheck(x)
    assert report.status == "failed" and "together" in str(report)


@pytest.mark.parametrize("distance", [1e-8, 3e-8, 1e-7])
def test_a_kink_near_theta_is_not_a_kink_at_theta(distance):
    x = np.array([distance, 0.7, -1.3, 2.0])
    f = lambda v: float(np.abs(v).sum())  # noqa: E731
    assert check_function(f, x, np.array([0.0, 1, -1, 1])).status == "failed"
    right = check_function(f, x, np.sign(x))
    # At 1e-8 from the kink only steps below 1e-8 see |x| smooth, where the rounding noise is
    # about 1e-6 of the slope: an agreement cannot be proven within 1e-6 there.
    assert right.status != "failed" and (right.passed or distance < 3e-8)


def test_relu_inputs_near_but_not_on_their_kinks_are_no_false_alarm():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        model = Sequential([Linear(1, 8, rng=seed), ReLU(), Linear(8, 1, rng=seed + 1), Sigmoid()])
        X = 1e-4 * rng.standard_normal((64, 1))
        assert model.gradcheck(X, (rng.random(64) > 0.5).astype(float)).status != "failed"


def test_a_forward_rounded_to_float32_is_inconclusive_not_failed():
    x = np.random.default_rng(0).standard_normal(20)
    f = lambda v: float(np.sum(np.sin(v.astype(np.float32)), dtype=np.float32))  # noqa: E731
    assert check_function(f, x, np.cos(x)).status == "inconclusive"
    # A 1% error under float32 rounding: the entries' own noise tables are staircases whose
    # treads, over the steps the judge tried, are as large as the error: never passed.
    assert check_function(f, x, 1.01 * np.cos(x)).status != "passed"


@pytest.mark.parametrize(
    "run, expected",
    [
        (
            lambda: Sequential([Linear(2, 1, rng=0), Sigmoid()]).gradcheck(np.zeros((0, 2)), []),
            "inconclusive",
        ),
        (lambda: Sequential([Sigmoid()]).gradcheck(np.ones((2, 1)), [1, 0]), "inconclusive"),
        (lambda: check_function(square, np.ones(2), 2 * np.ones(2), epsilon=1e-300), "passed"),
    ],
    ids=["0 rows", "no parameters", "epsilon 1e-300"],
)
def test_edge_cases_get_a_verdict_not_a_crash(run, expected):
    assert run().status == expected


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: check_function(square, np.ones(2), np.ones(2) * 1j), "complex"),
        (lambda: check_function(lambda x: x, np.ones(2), np.ones(2)), "scalar"),
        (lambda: check_function(square, np.ones(2), np.ones(2), threshold=1.0), "threshold"),
        (lambda: check_function(square, np.ones(2), np.ones(2), epsilon=1e300), "epsilon"),
    ],
    ids=["complex", "not a scalar", "threshold 1", "epsilon huge"],
)
def test_bad_arguments_are_clear_value_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_an_option_of_the_wrong_kind_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="^threshold must be a real number, got None"):
        check_function(square, np.ones(2), np.ones(2), threshold=None)


def test_a_layer_check_of_something_else_is_a_clear_type_error():
    class NotALayer:
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="minnet Layer"):
        minnet.check_layer(NotALayer(), np.ones((2, 2)))
