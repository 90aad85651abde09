"""The model API by task, decided by the loss: predict, predict_proba, evaluate and fit's History
for multi-class (CrossEntropyLoss), multi-label (BCE with k outputs) and regression (MSELoss);
and the digits case of issue 10."""

from __future__ import annotations

import numpy as np
import pytest

import minnet
from minnet import (
    Adam,
    BatchNorm1d,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Evaluation,
    Linear,
    MSELoss,
    RegressionEvaluation,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from minnet.datasets import sine_regression, spirals, train_test_split


def classifier(final_softmax: bool, seed: int = 0, classes: int = 3) -> Sequential:
    rng = np.random.default_rng(seed)
    layers = [Linear(2, 32, rng=rng), ReLU(), Linear(32, classes, rng=rng)]
    return Sequential(layers + [Softmax()] * final_softmax, loss=CrossEntropyLoss())


# --- multi-class -------------------------------------------------------------------------------


@pytest.mark.parametrize("final_softmax", [True, False])
def test_multiclass_predictions_probabilities_and_top1_accuracy(final_softmax):
    X, y = spirals(300, classes=3, seed=0)
    model = classifier(final_softmax)
    assert model.fused == final_softmax
    history = model.fit(X, y, epochs=60, batch_size=32, seed=0, progress=False,
                        optimizer=Adam(model.parameters(), lr=0.02))  # fmt: skip
    assert history.metric == "accuracy" and history.r2 == []
    assert len(history.accuracy) == 60 and history.accuracy[-1] > 0.9

    proba = model.predict_proba(X)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    predicted = model.predict(X)
    assert predicted.shape == (300,) and predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, np.argmax(proba, axis=1))

    evaluation = model.evaluate(X, y)
    assert type(evaluation) is Evaluation and type(evaluation.accuracy) is float
    assert evaluation.accuracy == np.mean(predicted == y)  # top-1, exactly
    expected_loss = -np.mean(np.log(proba[np.arange(300), y]))
    assert evaluation.loss == pytest.approx(expected_loss, rel=1e-9)
    # probability targets (one-hot) give the same loss and the same top-1 accuracy
    assert model.evaluate(X, np.eye(3)[y]) == pytest.approx(evaluation, rel=1e-12)


def test_the_epoch_accuracy_is_top1_of_each_batch_before_its_step():
    X, y = spirals(90, classes=3, seed=1)
    model = classifier(True, seed=1)
    twin = classifier(True, seed=1)
    history = model.fit(X, y, epochs=1, batch_size=30, shuffle=False, progress=False,
                        optimizer=Adam(model.parameters(), lr=0.05))  # fmt: skip
    optimizer, right = Adam(twin.parameters(), lr=0.05), 0
    for start in range(0, 90, 30):
        batch = slice(start, start + 30)
        right += int(np.sum(twin.predict(X[batch]) == y[batch]))
        twin.train()
        optimizer.zero_grad()
        twin.cost(X[batch], y[batch])
        twin.backward()
        optimizer.step()
    assert history.accuracy == [right / 90]


def test_validation_data_for_a_multiclass_model():
    X, y = spirals(300, classes=4, seed=2)
    X_train, X_val, y_train, y_val = train_test_split(X, y, 0.25, seed=0)
    model = classifier(True, seed=2, classes=4)
    history = model.fit(X_train, y_train, epochs=3, validation_data=(X_val, y_val), seed=0,
                        progress=False)  # fmt: skip
    assert len(history.val_accuracy) == 3 and history.val_r2 == []
    assert history.val_accuracy[-1] == model.evaluate(X_val, y_val).accuracy
    assert "accuracy" in str(history)


def test_the_postfix_names_the_metric():
    from minnet.training import History, _postfix

    regression = History(loss=[1.0], r2=[0.5], metric="r2", val_loss=[2.0], val_r2=[0.25])
    assert _postfix(regression) == {
        "loss": "1.0000",
        "r2": "0.500",
        "val_loss": "2.0000",
        "val_r2": "0.250",
    }
    classification = History(loss=[1.0], accuracy=[0.5])
    assert _postfix(classification) == {"loss": "1.0000", "acc": "0.500"}


# --- binary, multi-label ---------------------------------------------------------------------


@pytest.mark.parametrize("loss", [minnet.BCELoss(), BCEWithLogitsLoss()])
def test_multilabel_accuracy_is_per_label(loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4))
    Y = (X[:, :3] + 0.3 * rng.standard_normal((50, 3)) > 0).astype(float)
    layers = [Linear(4, 8, rng=rng), ReLU(), Linear(8, 3, rng=rng)]
    if isinstance(loss, minnet.BCELoss) and not isinstance(loss, BCEWithLogitsLoss):
        layers.append(Sigmoid())
    model = Sequential(layers, loss=loss)
    model.fit(X, Y, epochs=30, batch_size=10, seed=0, progress=False)
    proba = model.predict_proba(X)
    assert proba.shape == (50, 3) and ((0 <= proba) & (proba <= 1)).all()
    predicted = model.predict(X)
    assert predicted.shape == (50, 3) and predicted.dtype == np.int64
    loss_value, accuracy = model.evaluate(X, Y)
    assert accuracy == np.mean(predicted == Y)  # the fraction of the 150 labels right
    rows_all_right = np.mean((predicted == Y).all(axis=1))
    assert accuracy >= rows_all_right


def test_the_digits_case_of_the_issue():
    """10 classes as indices with 10 sigmoid outputs: one clear message (no self-contradiction),
    pointing to CrossEntropyLoss; one-hot targets with CrossEntropyLoss give the true top-1."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    sigmoid_net = Sequential([Linear(64, 32, rng=0), ReLU(), Linear(32, 10, rng=1), Sigmoid()])
    with pytest.raises(ValueError) as raised:
        sigmoid_net.fit(X, y, epochs=1, progress=False)
    message = str(raised.value)
    assert message.count("(1797,)") == 1, message  # says what it got, once
    assert "shape (1797, 10) for 10 outputs, got (1797,)" in message
    assert "CrossEntropyLoss" in message

    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=0)
    model = Sequential(
        [Linear(64, 32, rng=0), ReLU(), Linear(32, 10, rng=1), Softmax()], loss=CrossEntropyLoss()
    )
    model.fit(X_train, np.eye(10)[y_train], epochs=5, seed=0, progress=False,
              optimizer=Adam(model.parameters(), lr=1e-2))  # fmt: skip
    _, accuracy = model.evaluate(X_test, np.eye(10)[y_test])
    assert accuracy == np.mean(model.predict(X_test) == y_test)  # true top-1
    assert accuracy > 0.9


# --- regression --------------------------------------------------------------------------------


def regression_net(outputs: int = 1, seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(
        [
            Linear(1, 32, rng=rng),
            Tanh(),
            Linear(32, 32, rng=rng),
            Tanh(),
            Linear(32, outputs, rng=rng, init="glorot"),
        ],
        loss=MSELoss(),
    )


def test_regression_predict_evaluate_and_history():
    X, y = sine_regression(200, seed=0)
    model = regression_net()
    history = model.fit(X, y, epochs=100, batch_size=32, seed=0, progress=False,
                        optimizer=Adam(model.parameters(), lr=0.03),
                        validation_data=(X, y))  # fmt: skip
    assert history.metric == "r2" and history.accuracy == [] and history.val_accuracy == []
    assert len(history.r2) == 100 and history.r2[-1] > 0.9 and history.val_r2[-1] > 0.9
    assert "r2" in str(history) and "accuracy" not in str(history)

    predicted = model.predict(X)
    assert predicted.shape == (200,) and predicted.dtype == np.float64
    evaluation = model.evaluate(X, y)
    assert type(evaluation) is RegressionEvaluation
    loss, r2 = evaluation
    assert loss == pytest.approx(np.mean((predicted - y) ** 2), rel=1e-12)
    assert r2 == pytest.approx(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))
    assert evaluation.r2 == history.val_r2[-1]
    with pytest.raises(ValueError, match="gives numbers, not probabilities: use predict"):
        model.predict_proba(X)


def test_r2_matches_scikit_learn_over_several_outputs():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 1))
    Y = np.column_stack([np.sin(X[:, 0]), 3 * np.cos(X[:, 0]) + 10])
    model = regression_net(outputs=2, seed=4)
    model.fit(X, Y, epochs=20, seed=0, progress=False)
    predicted = model.predict(X)
    assert predicted.shape == (40, 2)
    # R^2 over all outputs together: sum of squared errors over sum of squares about each
    # output's mean (scikit-learn's variance_weighted)
    expected = metrics.r2_score(Y, predicted, multioutput="variance_weighted")
    assert model.evaluate(X, Y).r2 == pytest.approx(expected, rel=1e-12)


def test_regression_targets_may_be_any_finite_numbers():
    X = np.linspace(-1, 1, 8).reshape(-1, 1)
    model = regression_net()
    for Y in (1e6 * X[:, 0] - 5e5, (1e6 * X - 5e5)):
        assert np.isfinite(model.cost(X, Y))
    with pytest.raises(ValueError, match=r"Y: MSELoss needs targets of shape \(8,\) or \(8, 1\)"):
        model.cost(X, np.zeros((8, 2)))
    with pytest.raises(ValueError, match="targets must be finite"):
        model.evaluate(X, np.full(8, np.inf))


def test_batch_norm_models_predict_in_eval_mode_and_stay_in_their_mode():
    X, y = spirals(120, classes=3, seed=5)
    rng = np.random.default_rng(5)
    model = Sequential(
        [Linear(2, 16, rng=rng), BatchNorm1d(16), ReLU(), Linear(16, 3, rng=rng), Softmax()],
        loss=CrossEntropyLoss(),
    )
    model.fit(X, y, epochs=5, seed=0, progress=False)
    norm = model.layers[1]
    mean = norm.running_mean.copy()
    assert model.predict(X[:1]).shape == (1,)  # one row: running statistics, no error
    one = model.predict_proba(X[:1])
    np.testing.assert_allclose(model.predict_proba(X)[:1], one, rtol=1e-12)  # rows independent
    np.testing.assert_array_equal(norm.running_mean, mean)  # predicting changes no buffer
    assert norm.training  # fit leaves training mode; predicting restored it
