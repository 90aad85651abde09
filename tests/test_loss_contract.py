"""The Loss contract: targets checked by the loss, fusing as the loss's rule, a user's own loss."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_data

import minnet
from minnet import BCELoss, Linear, Loss, ReLU, Sequential, Sigmoid, Tanh


class MSELoss(Loss):
    """The user-written loss of docs/losses.md: ``mean((outputs - targets)**2)``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._difference = outputs - targets
        return float(np.mean(self._difference**2))

    def backward(self) -> np.ndarray:
        return 2 * self._difference / self._difference.size


def regression_data(rng, m=64):
    X = rng.standard_normal((m, 2))
    Y = 3 * X[:, :1] - 2 * X[:, 1:] + 5  # targets far outside [0, 1]
    return X, Y


# --- a model's loss ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "pattern"),
    [
        (None, "loss must be a minnet Loss such as minnet.BCELoss.*got NoneType"),
        (BCELoss, r"got the class BCELoss: write loss=BCELoss\(\)"),
        (object(), "loss must be a minnet Loss.*got object"),
    ],
)
def test_a_model_refuses_what_is_not_a_loss(loss, pattern):
    with pytest.raises(TypeError, match=pattern):
        Sequential([Linear(2, 1), Sigmoid()], loss=loss)


def test_bce_fuses_with_exactly_a_final_sigmoid():
    class MySigmoid(Sigmoid):
        pass

    fused = Sequential([Linear(2, 1), Sigmoid()])
    assert fused.fused and fused.body == list(fused.layers[:1])
    for last in (MySigmoid(), Tanh()):
        model = Sequential([Linear(2, 1), last])
        assert not model.fused and model.body == list(model.layers)
    assert BCELoss.fuses is Sigmoid and Loss.fuses is None
    assert not Sequential([Linear(2, 1), Sigmoid()], loss=MSELoss()).fused


def test_bce_targets_are_checked_by_the_loss():
    loss = BCELoss()
    assert loss.check_targets([0, 1, 1], (3, 1)).shape == (3, 1)
    assert loss.check_targets(np.zeros((3, 2)), (3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for 2 outputs, got \(3,\).*Cross"):
        loss.check_targets([0, 1, 1], (3, 2))
    with pytest.raises(ValueError, match=r"shape \(3, 2\), one row per example, got \(3, 3\)"):
        loss.check_targets(np.zeros((3, 3)), (3, 2))
    with pytest.raises(ValueError, match=r"targets in \[0, 1\].*from -1 to 1"):
        loss.check_targets([0, -1, 1], (3, 1))
    with pytest.raises(ValueError, match="targets must be finite, but 1 entries"):
        loss.check_targets([0, np.nan, 1], (3, 1))
    with pytest.raises(ValueError, match="real numbers, got dtype <U1"):
        loss.check_targets(["a", "b", "c"], (3, 1))


def test_the_default_targets_check_takes_any_finite_numbers():
    assert MSELoss().check_targets([-7.5, 1e6], (2, 1)).tolist() == [[-7.5], [1e6]]
    with pytest.raises(ValueError, match="finite"):
        MSELoss().check_targets([np.inf, 0], (2, 1))


def test_the_model_no_longer_forces_targets_into_0_1():
    rng = np.random.default_rng(0)
    X, Y = regression_data(rng, 8)
    model = Sequential([Linear(2, 4, rng=0), Tanh(), Linear(4, 1, rng=1)], loss=MSELoss())
    assert model.cost(X, Y) > 1  # no ValueError: MSELoss takes any finite targets
    with pytest.raises(ValueError, match=r"Y: BCELoss needs targets in \[0, 1\]"):
        Sequential([Linear(2, 1), Sigmoid()]).cost(X, Y)


# --- a user-written loss, through the public API --------------------------------------------------


def test_a_user_written_mse_works_everywhere_a_built_in_loss_does():
    rng = np.random.default_rng(1)
    X, Y = regression_data(rng)
    model = Sequential(
        [Linear(2, 16, rng=0), Tanh(), Linear(16, 1, rng=1, init="glorot")], loss=MSELoss()
    )
    cost = model.cost(X, Y)
    np.testing.assert_allclose(cost, np.mean((model.forward(X) - Y) ** 2), rtol=1e-14)
    model.cost(X, Y)
    model.zero_grad()
    model.backward()
    report = model.gradcheck(X[:10], Y[:10])
    assert report.passed, str(report)
    assert model.loss_per_example(model.forward(X), Y) is None  # not provided: a correct fallback
    history = model.fit(X, Y, epochs=60, batch_size=16, seed=0, progress=False)
    assert history.loss[-1] < 0.05 * history.loss[0]
    loss, _ = model.evaluate(X, Y)
    assert loss == pytest.approx(np.mean((model.forward(X) - Y) ** 2), rel=1e-12)
    assert MSELoss().gradcheck(rng.standard_normal((5, 2)), rng.standard_normal((5, 2))).passed


def test_a_wrong_user_loss_is_caught_by_its_gradcheck():
    class ForgetsTheMean(MSELoss):
        def backward(self) -> np.ndarray:
            return 2 * self._difference

    rng = np.random.default_rng(2)
    report = ForgetsTheMean().gradcheck(rng.standard_normal((4, 1)), rng.standard_normal((4, 1)))
    assert not report.passed


# --- BCELoss's own values ------------------------------------------------------------------


def test_bce_passes_its_gradient_checks_fused_and_not():
    rng = np.random.default_rng(3)
    logits, targets = rng.standard_normal((6, 2)), rng.random((6, 2))
    assert BCELoss().gradcheck(logits, targets, fused=True).passed
    assert BCELoss().gradcheck(minnet.layers.sigmoid(logits), targets).passed


def test_per_example_values_average_to_the_loss():
    rng = np.random.default_rng(4)
    logits, targets = rng.standard_normal((7, 3)), rng.random((7, 3))
    loss = BCELoss()
    per_example = loss.per_example_fused(logits, targets)
    assert per_example.shape == (7,)
    assert np.mean(per_example) == pytest.approx(loss.forward_fused(logits, targets), rel=1e-14)
    p = minnet.layers.sigmoid(logits)
    assert np.mean(loss.per_example(p, targets)) == pytest.approx(
        loss.forward(p, targets), rel=1e-14
    )


def test_per_example_values_are_not_used_when_a_subclass_changes_the_forward():
    from minnet.teaching.tutorial import TutorialBCELoss

    X, Y = random_data(np.random.default_rng(5), 4, 3)
    for loss, available in ((BCELoss(), True), (TutorialBCELoss(), False)):
        model = Sequential([Linear(3, 2, rng=0), ReLU(), Linear(2, 1, rng=1), Sigmoid()], loss=loss)
        out = model.run(X)
        values = model.loss_per_example(out, Y.reshape(-1, 1))
        assert (values is not None) == available
        if available:
            assert values.shape == (4,)
            assert np.mean(values) == pytest.approx(model.loss_value(out, Y.reshape(-1, 1)))


# --- the task: declared by the loss, checked, with a documented default ------------------------


class SquaredHingeLoss(Loss):
    """A user's classification loss: the multi-class squared hinge, one class index per row."""

    task = "multiclass"

    def check_targets(self, targets, outputs_shape):
        return minnet.losses.class_indices(targets, outputs_shape, "SquaredHingeLoss")

    def forward(self, scores, labels):
        rows = np.arange(len(scores))
        margins = np.maximum(0.0, 1.0 - scores[rows, labels][:, None] + scores)
        margins[rows, labels] = 0.0
        self._grad = 2 * margins / len(scores)
        self._grad[rows, labels] = -self._grad.sum(axis=1)
        return float(np.sum(margins**2) / len(scores))

    def backward(self):
        return self._grad


def test_a_users_classification_loss_that_declares_its_task_is_scored_as_one():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((90, 2))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # three classes
    model = Sequential(
        [Linear(2, 16, rng=0), ReLU(), Linear(16, 3, rng=1)], loss=SquaredHingeLoss()
    )
    assert SquaredHingeLoss().gradcheck(rng.standard_normal((5, 3)), [0, 2, 1, 1, 0]).passed
    assert model.gradcheck(X[:8], y[:8]).passed
    history = model.fit(X, y, epochs=40, seed=0, progress=False)
    assert history.metric == "accuracy" and not history.r2
    assert history.accuracy[-1] > 0.8
    result = model.evaluate(X, y)
    assert type(result) is minnet.Evaluation and result.accuracy > 0.8
    predicted = model.predict(X)
    assert predicted.dtype == np.int64 and set(predicted) <= {0, 1, 2}
    with pytest.raises(ValueError, match=r"Y: SquaredHingeLoss needs class indices in \[0, 3\)"):
        model.cost(X[:2], [0, 3])


def test_a_loss_that_says_nothing_is_a_regression_loss_by_the_documented_default():
    assert MSELoss.task == "regression" and Loss.task == "regression"
    model = Sequential([Linear(2, 1, rng=0)], loss=MSELoss())
    X, Y = regression_data(np.random.default_rng(7), 8)
    assert type(model.evaluate(X, Y)) is minnet.RegressionEvaluation


@pytest.mark.parametrize("task", ["classification", "Binary", None, 1])
def test_a_loss_class_with_an_unknown_task_is_refused_when_defined(task):
    with pytest.raises(ValueError, match=r"Bad.task must be one of \['binary', 'multiclass'"):
        type("Bad", (Loss,), {"task": task})


def test_an_unknown_task_set_on_a_loss_object_is_refused_where_it_is_used():
    model = Sequential([Linear(2, 1, rng=0)], loss=MSELoss())
    model.loss.task = "ranking"
    X, Y = regression_data(np.random.default_rng(8), 4)
    with pytest.raises(ValueError, match="MSELoss.task must be one of .* got 'ranking'"):
        model.evaluate(X, Y)
