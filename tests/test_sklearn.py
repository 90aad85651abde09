"""minnet.integrations.sklearn: NetClassifier and NetRegressor pass scikit-learn's own
estimator checks, work in cross_val_score, GridSearchCV and Pipeline, and train what they say
(the L2 penalty's gradient against torch's autograd)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sklearn = pytest.importorskip("sklearn")

from conftest import import_torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import minnet  # noqa: E402
from minnet.integrations.sklearn import NetClassifier, NetRegressor  # noqa: E402

# The estimators as checked: a smaller net and a larger step than the defaults, so that the
# ~50 checks (each fitting a few times) run in seconds; check_classifiers_train and
# check_regressors_train still need a good fit (accuracy > 0.83, R^2 > 0.5).
CHECKED = [
    NetClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.01, max_iter=30),
    NetRegressor(hidden_layer_sizes=(20,), learning_rate_init=0.01, max_iter=30),
]


def expected_failed_checks(estimator):
    # Every check applies and passes: nothing is excused.
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_the_defaults_are_mlpclassifiers():
    params = NetClassifier().get_params()
    assert params == {
        "activation": "relu",
        "alpha": 1e-4,
        "batch_size": 32,
        "hidden_layer_sizes": (100,),
        "learning_rate_init": 1e-3,
        "max_iter": 200,
        "random_state": None,
        "verbose": False,
    }
    assert NetRegressor().get_params() == params


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, (y - y.mean()) / y.std()


def test_cross_val_score_on_digits(digits):
    X, y = digits
    est = NetClassifier(hidden_layer_sizes=(32,), max_iter=8, random_state=0)
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_grid_search_on_digits_with_a_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(), NetClassifier(learning_rate_init=0.01, max_iter=10, random_state=0)
    )
    grid = GridSearchCV(
        pipe,
        {"netclassifier__hidden_layer_sizes": [(16,), (32,)], "netclassifier__alpha": [1e-4, 1]},
        cv=2,
    )
    grid.fit(X[:600], y[:600])
    assert grid.best_score_ > 0.8
    assert grid.score(X[600:900], y[600:900]) > 0.8
    assert isinstance(grid.best_estimator_[-1].model_, minnet.Sequential)


def test_cross_val_score_and_grid_search_on_a_regression_set(diabetes):
    X, y = diabetes
    est = NetRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=20)
    scores = cross_val_score(est.set_params(random_state=0), X, y, cv=3)
    assert scores.min() > 0.3  # diabetes: a linear model gets ~0.45
    grid = GridSearchCV(est, {"activation": ["relu", "tanh"], "alpha": [1e-4, 10.0]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.35


def test_string_labels_probabilities_and_the_model(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "7", "8", "9"])
    est = NetClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=1).fit(X, names[y])
    assert list(est.classes_) == sorted(names)
    proba = est.predict_proba(X[:10])
    assert proba.shape == (10, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert (est.predict(X[:10]) == est.classes_[proba.argmax(axis=1)]).all()
    assert est.n_features_in_ == 64 and est.n_iter_ == 5
    assert "input of the final Softmax)\nL2 penalty: 3.125e-06 / 2" in est.model_.summary()
    assert est.model_.l2 == 1e-4 / 32  # alpha / batch_size: the penalty of a full batch
    report = est.model_.gradcheck(X[:30], np.searchsorted(est.classes_, names[y[:30]]))
    assert report.passed
    again = pickle.loads(pickle.dumps(est))
    assert (again.predict_proba(X) == est.predict_proba(X)).all()


def test_binary_and_same_seed_same_net(digits):
    X, y = digits
    a = NetClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=3).fit(X, y == 3)
    b = clone(a).fit(X, y == 3)
    assert a.predict_proba(X).shape == (len(X), 2)
    assert (a.predict_proba(X) == b.predict_proba(X)).all()
    assert a.score(X, y == 3) > 0.9


def test_regressor_shapes(diabetes):
    X, y = diabetes
    one = NetRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    assert one.predict(X).shape == (len(X),)
    two = NetRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    two.fit(X, np.c_[y, -y])
    assert two.predict(X).shape == (len(X), 2)
    assert one.model_.gradcheck(X[:20], y[:20]).passed


@pytest.mark.parametrize(
    "params, message",
    [
        ({"activation": "gelu"}, "activation must be one of"),
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
        ({"alpha": -1.0}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, message):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    est = NetClassifier(**params)  # no error: sklearn estimators check in fit
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)


@pytest.mark.parametrize("estimator_class", [NetClassifier, NetRegressor])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_the_l2_penalty_gradient_is_torch_autograds(estimator_class, activation):
    """One epoch of one full batch: the gradient Adam steps with is that of loss + penalty, the
    penalty as the docstring says (MLPClassifier's; doubled for MSELoss), by torch's
    autograd."""
    torch = import_torch()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = rng.integers(0, 3, 12) if estimator_class is NetClassifier else rng.standard_normal(12)
    # A step of 1e-300 leaves every weight as it was but those at 0 (the biases), which it
    # moves to +-1e-300: put them back, and torch has the initial net; the model holds, in each
    # .grad, the gradient of that one step.
    est = estimator_class(
        hidden_layer_sizes=(5, 4),
        activation=activation,
        alpha=0.7,
        batch_size=12,
        max_iter=1,
        random_state=0,
        learning_rate_init=1e-300,
    ).fit(X, y)
    module, loss = minnet.to_torch(est.model_)
    with torch.no_grad():
        for q in module.parameters():
            q[q.abs() < 1e-200] = 0
    Xt = torch.tensor(X)
    yt = torch.tensor(y) if estimator_class is NetClassifier else torch.tensor(y)[:, None]
    factor = 1.0 if estimator_class is NetClassifier else 2.0
    weights = [m.weight for m in module if isinstance(m, torch.nn.Linear)]
    penalty = factor * 0.7 / (2 * len(X)) * sum((w**2).sum() for w in weights)
    # The penalty computed here from alpha; to_torch's loss carries the model's own (l2): the
    # same number. The gradient is taken of the first.
    assert loss(module(Xt), yt).item() == pytest.approx(
        (loss.loss(module(Xt), yt) + penalty).item(), rel=1e-12
    )
    (loss.loss(module(Xt), yt) + penalty).backward()
    grads = [p.grad for p in est.model_.parameters()]
    scale = max(np.abs(g).max() for g in grads)
    for (name, p), q in zip(est.model_.named_parameters(), module.parameters(), strict=True):
        error = np.abs(p.grad - q.grad.numpy()).max()
        assert error <= 1e-12 * scale, name
    assert weights[0].grad.abs().max() > 0


def test_without_sklearn_a_clear_import_error():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "try:\n    import minnet.integrations.sklearn\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "minnet[sklearn]"' in out.stdout


def test_importing_minnet_does_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, minnet; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("estimator_class", [NetClassifier, NetRegressor])
@given(seed=st.integers(0, 2**32 - 1), counts=st.lists(st.integers(0, 3), min_size=6, max_size=12))
@settings(max_examples=10)
def test_sample_weight_is_the_row_repeated_in_one_batch(estimator_class, seed, counts):
    """With the whole data in one batch, a weight of k trains the net of the row k times (the
    penalty's n is the weights' sum, as MLPClassifier's sw_sum); scikit-learn's own check of
    this property runs in test_sklearn_estimator_checks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((len(counts), 3))
    y = np.arange(len(counts)) % 2 if estimator_class is NetClassifier else X[:, 0] - X[:, 1]
    assume(len(np.unique(np.repeat(y, counts))) > 1)
    est = estimator_class(hidden_layer_sizes=(5,), max_iter=4, batch_size=100, alpha=0.1,
                          learning_rate_init=0.01, random_state=seed % 1000)  # fmt: skip
    weighted = clone(est).fit(X, y, sample_weight=counts)
    twin = clone(est).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    for p, q in zip(weighted.model_.parameters(), twin.model_.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, twin.loss_curve_, rtol=1e-9)
    assert weighted.loss_ == weighted.loss_curve_[-1]


@pytest.mark.parametrize("estimator_class", [NetClassifier, NetRegressor])
@pytest.mark.parametrize("seed", range(3))
def test_loss_curve_is_scikit_learns_objective(estimator_class, seed):
    """At (nearly) unchanged weights, loss_curve_ is MLPClassifier's / MLPRegressor's own loss
    function (sklearn.neural_network._base) plus its penalty, with sample weights."""
    from sklearn.neural_network._base import log_loss, squared_loss

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 4))
    y = rng.integers(0, 3, 30) if estimator_class is NetClassifier else rng.standard_normal(30)
    w = rng.integers(1, 4, 30).astype(float)
    est = estimator_class(hidden_layer_sizes=(6,), max_iter=1, batch_size="auto", alpha=0.3,
                          learning_rate_init=1e-12, random_state=seed)  # fmt: skip
    est.fit(X, y, sample_weight=w)
    W2 = sum(float(np.sum(layer.W.value**2)) for layer in est.model_.layers if hasattr(layer, "W"))
    penalty = 0.5 * 0.3 * W2 / w.sum()
    if estimator_class is NetClassifier:
        expected = log_loss(np.eye(3)[y], est.predict_proba(X), sample_weight=w)
    else:
        expected = squared_loss(y.reshape(-1, 1), est.predict(X).reshape(-1, 1), sample_weight=w)
    assert est.loss_curve_[0] == pytest.approx(expected + penalty, rel=1e-8)
