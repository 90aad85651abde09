"""Every loss, every reduction, with and without class weights: PyTorch's values and gradients in
float64, the gradient check, and the shares ``per_example`` gives; the models that use them.

Each case is drawn from a seed: random shapes, scales, targets and weights. With
``reduction="none"`` the gradient compared is that of ``sum(G * losses)`` for a random ``G``:
``loss.backward(G)`` against torch's ``losses.backward(G)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch

import minnet
from minnet import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    Linear,
    LogSoftmax,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    ReLU,
    Sequential,
    Softmax,
)
from minnet.layers import log_softmax, sigmoid

torch = import_torch()
F = torch.nn.functional
RTOL = 1e-10
REDUCTIONS = ["mean", "sum", "none"]
SEEDS = range(6)


def weights_for(rng, classes, weighted):
    return rng.uniform(0.1, 3.0, classes) if weighted else None


def torch_weight(weight):
    return None if weight is None else torch.from_numpy(weight)


def case(name, rng, reduction, weighted):
    """``(minnet loss, fused, outputs, targets, torch function of the outputs tensor)``."""
    m, k = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    classes = k + 1  # at least two classes
    scale = float(rng.choice([0.3, 1.0, 5.0]))
    z = scale * rng.standard_normal((m, classes))
    y = rng.integers(0, classes, m)
    w = weights_for(rng, classes, weighted)
    if name in ("mse", "l1", "huber"):
        outputs, targets = scale * rng.standard_normal((m, k)), scale * rng.standard_normal((m, k))
        delta = float(rng.uniform(0.2, 2.0))
        loss, fn = {
            "mse": (MSELoss(reduction=reduction), F.mse_loss),
            "l1": (L1Loss(reduction=reduction), F.l1_loss),
            "huber": (
                HuberLoss(reduction, delta),
                lambda o, t, reduction: F.huber_loss(o, t, reduction=reduction, delta=delta),
            ),
        }[name]
        t = torch.from_numpy(targets)
        return loss, False, outputs, targets, lambda o: fn(o, t, reduction=reduction)
    if name in ("bce", "bce_fused", "bce_logits"):
        logits = scale * rng.standard_normal((m, k))
        targets = rng.random((m, k)) if rng.random() < 0.5 else rng.integers(0, 2, (m, k)) * 1.0
        t = torch.from_numpy(targets)
        if name == "bce":
            return (
                BCELoss(reduction=reduction),
                False,
                sigmoid(logits),
                targets,
                lambda o: F.binary_cross_entropy(o, t, reduction=reduction),
            )
        loss = (
            BCELoss(reduction=reduction)
            if name == "bce_fused"
            else BCEWithLogitsLoss(reduction=reduction)
        )
        return (
            loss,
            name == "bce_fused",
            logits,
            targets,
            lambda o: F.binary_cross_entropy_with_logits(o, t, reduction=reduction),
        )
    if name in ("ce", "ce_probabilities"):
        smoothing = float(rng.choice([0.0, 0.0, 0.1, 0.35]))
        loss = CrossEntropyLoss(w, label_smoothing=smoothing, reduction=reduction)
        targets = y if name == "ce" else rng.dirichlet(np.full(classes, 0.5), size=m)
        t = torch.from_numpy(targets)
        return (
            loss,
            bool(rng.random() < 0.5),  # fused or not: the same numbers
            z,
            targets,
            lambda o: F.cross_entropy(
                o, t, weight=torch_weight(w), label_smoothing=smoothing, reduction=reduction
            ),
        )
    if name == "nll":
        return (
            NLLLoss(w, reduction=reduction),
            False,
            log_softmax(z),
            y,
            lambda o: F.nll_loss(
                o, torch.from_numpy(y), weight=torch_weight(w), reduction=reduction
            ),
        )
    if name == "nll_fused":
        return (
            NLLLoss(w, reduction=reduction),
            True,
            z,
            y,
            lambda o: F.nll_loss(
                F.log_softmax(o, dim=1),
                torch.from_numpy(y),
                weight=torch_weight(w),
                reduction=reduction,
            ),
        )
    assert name == "multi_margin"
    margin, p = float(rng.choice([1.0, 0.5, 2.5])), int(rng.choice([1, 2]))
    return (
        MultiMarginLoss(p, margin, w, reduction=reduction),
        False,
        z,
        y,
        lambda o: F.multi_margin_loss(
            o, torch.from_numpy(y), p=p, margin=margin, weight=torch_weight(w), reduction=reduction
        ),
    )


NAMES = ["mse", "l1", "huber", "bce", "bce_fused", "bce_logits", "ce", "ce_probabilities"]
NAMES += ["nll", "nll_fused", "multi_margin"]
WEIGHTED = {"ce", "ce_probabilities", "nll", "nll_fused", "multi_margin"}
CASES = [
    (name, reduction, weighted)
    for name in NAMES
    for reduction in REDUCTIONS
    for weighted in ([False, True] if name in WEIGHTED else [False])
]


def run_forward(loss, fused, outputs, targets):
    return loss.forward_fused(outputs, targets) if fused else loss.forward(outputs, targets)


@pytest.mark.parametrize(("name", "reduction", "weighted"), CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_values_and_gradients_match_torch(name, reduction, weighted, seed):
    rng = np.random.default_rng([seed, NAMES.index(name), REDUCTIONS.index(reduction), weighted])
    loss, fused, outputs, targets, torch_fn = case(name, rng, reduction, weighted)
    targets = loss.check_targets(targets, outputs.shape)
    ours = run_forward(loss, fused, outputs.copy(), targets)
    o = torch.tensor(outputs, requires_grad=True)
    theirs = torch_fn(o)
    G = rng.standard_normal(theirs.shape) if reduction == "none" else None
    theirs.backward(torch.ones(()) if G is None else torch.from_numpy(G))
    if reduction == "none":
        assert isinstance(ours, np.ndarray) and ours.shape == tuple(theirs.shape)
        grad = loss.backward(G)
    else:
        assert isinstance(ours, float)
        grad = loss.backward()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=RTOL, atol=1e-13)
    scale = float(np.abs(o.grad.numpy()).max(initial=0.0))
    np.testing.assert_allclose(grad, o.grad.numpy(), rtol=RTOL, atol=RTOL * scale + 1e-15)


@pytest.mark.parametrize(("name", "reduction", "weighted"), CASES)
def test_every_loss_passes_its_gradient_check(name, reduction, weighted):
    rng = np.random.default_rng([7, NAMES.index(name), REDUCTIONS.index(reduction), weighted])
    loss, fused, outputs, targets, _ = case(name, rng, reduction, weighted)
    report = loss.gradcheck(outputs, targets, fused=fused)
    assert report.passed, str(report)


@pytest.mark.parametrize(("name", "reduction", "weighted"), CASES)
def test_per_example_shares_average_to_the_loss(name, reduction, weighted):
    rng = np.random.default_rng([8, NAMES.index(name), REDUCTIONS.index(reduction), weighted])
    loss, fused, outputs, targets, _ = case(name, rng, reduction, weighted)
    targets = loss.check_targets(targets, outputs.shape)
    shares = (loss.per_example_fused if fused else loss.per_example)(outputs, targets)
    if reduction == "none":
        assert shares is None
        return
    assert shares.shape == (len(outputs),)
    value = run_forward(loss, fused, outputs, targets)
    assert np.mean(shares) == pytest.approx(value, rel=1e-12, abs=1e-14)


def test_a_gradcheck_catches_a_wrong_unreduced_gradient():
    class ForgetsTheSign(L1Loss):
        def terms(self, outputs, targets, gradient=True):
            values, grad, weights = super().terms(outputs, targets, gradient)
            return minnet.losses.Terms(values, None if grad is None else np.abs(grad), weights)

    rng = np.random.default_rng(9)
    outputs, targets = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert L1Loss(reduction="none").gradcheck(outputs, targets).passed
    assert not ForgetsTheSign(reduction="none").gradcheck(outputs, targets).passed


# --- the weighted mean and class weights ---------------------------------------------------


def test_the_weighted_mean_divides_by_the_weights_of_the_targets_classes():
    z = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = np.array([0, 0, 1])
    w = np.array([1.0, 3.0])
    terms = NLLLoss(w, reduction="none")(log_softmax(z), y)
    assert NLLLoss(w)(log_softmax(z), y) == pytest.approx(terms.sum() / (1 + 1 + 3), rel=1e-15)
    assert CrossEntropyLoss(w)(z, y) == pytest.approx(terms.sum() / 5, rel=1e-15)
    margins = MultiMarginLoss(weight=w, reduction="none")(z, y)
    assert MultiMarginLoss(weight=w)(z, y) == pytest.approx(margins.mean(), rel=1e-15)


def test_targets_whose_classes_weigh_nothing_have_no_weighted_mean():
    loss = CrossEntropyLoss([0.0, 1.0])
    with pytest.raises(ValueError, match="weights of the targets' classes sum to 0"):
        loss(np.zeros((2, 2)), np.array([0, 0]))
    assert CrossEntropyLoss([0.0, 1.0], reduction="sum")(np.zeros((2, 2)), np.array([0, 0])) == 0


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: CrossEntropyLoss([1.0, -0.5]), ValueError, "weight must be >= 0.*-0.5"),
        (lambda: NLLLoss([[1.0, 2.0]]), ValueError, r"weight must be None or a 1-D.*\(1, 2\)"),
        (lambda: NLLLoss([]), ValueError, r"weight must be None or a 1-D.*\(0,\)"),
        (lambda: NLLLoss([1.0, np.nan]), ValueError, "weight must be finite"),
        (lambda: NLLLoss("ab"), TypeError, "weight must be None or one number per class"),
        (lambda: MultiMarginLoss(weight=["a"]), ValueError, "weight must be .*dtype <U1"),
        (lambda: MSELoss(reduction="avg"), ValueError, r"reduction must be one of \['mean'"),
        (lambda: CrossEntropyLoss(reduction=None), ValueError, "reduction must be one of"),
        (lambda: HuberLoss(delta=0.0), ValueError, "delta must be"),
        (lambda: HuberLoss(delta="1"), TypeError, "delta must be a real number"),
        (lambda: MultiMarginLoss(p=3), ValueError, "p must be 1 or 2"),
        (lambda: MultiMarginLoss(margin=np.inf), ValueError, "margin must be"),
    ],
)
def test_bad_loss_arguments_are_clear_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_class_weights_of_the_wrong_length_are_refused_naming_weight():
    loss = CrossEntropyLoss([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="weight has 3 entries, but the outputs have 4 classes"):
        loss.check_targets([0, 1], (2, 4))
    with pytest.raises(ValueError, match="weight has 3 entries, but the outputs have 2 classes"):
        loss(np.zeros((2, 2)), np.array([0, 1]))
    model = Sequential([Linear(2, 4, rng=0), Softmax()], loss=loss)
    with pytest.raises(ValueError, match="^Y: CrossEntropyLoss: weight has 3 entries"):
        model.cost(np.ones((2, 2)), [0, 1])


def test_class_weights_are_copied_and_listed_as_plain_numbers():
    w = np.array([1.0, 2.0])
    loss = CrossEntropyLoss(w, label_smoothing=0.1)
    w[0] = 5.0
    assert loss.weight.tolist() == [1.0, 2.0]
    assert loss.arguments() == {"weight": [1.0, 2.0], "label_smoothing": 0.1}
    assert type(loss)(**loss.arguments()).weight.tolist() == [1.0, 2.0]
    assert repr(loss) == "CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1)"
    assert repr(MSELoss()) == "MSELoss()" and MSELoss().arguments() == {}


# --- losses in models ---------------------------------------------------------------------


def test_a_model_refuses_a_loss_that_gives_no_single_number():
    with pytest.raises(ValueError, match=r"reduction='none'.*one number.*'mean' or 'sum'"):
        Sequential([Linear(2, 1)], loss=MSELoss(reduction="none"))
    model = Sequential([Linear(2, 1)], loss=MSELoss())
    model.loss.reduction = "none"
    with pytest.raises(ValueError, match=r"reduction='none'"):
        model.cost(np.ones((3, 2)), np.ones(3))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_model_with_a_summed_or_weighted_loss_trains_and_checks(reduction):
    rng = np.random.default_rng(10)
    X, y = rng.standard_normal((30, 3)), rng.integers(0, 3, 30)
    loss = CrossEntropyLoss([1.0, 2.0, 0.5], reduction=reduction)
    model = Sequential([Linear(3, 8, rng=0), ReLU(), Linear(8, 3, rng=1), Softmax()], loss=loss)
    assert model.gradcheck(X[:6], y[:6]).passed
    terms = CrossEntropyLoss([1.0, 2.0, 0.5], reduction="none")(model.run(X), y)
    expected = terms.sum() if reduction == "sum" else terms.sum() / np.array([1, 2, 0.5])[y].sum()
    assert model.cost(X, y) == pytest.approx(expected, rel=1e-12)
    history = model.fit(X, y, epochs=30, seed=0, progress=False)
    assert history.loss[-1] < history.loss[0]


def test_log_softmax_with_nll_is_cross_entropy_fused():
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((12, 3)), rng.integers(0, 4, 12)
    w = rng.uniform(0.5, 2.0, 4)
    nll = Sequential([Linear(3, 4, rng=0), LogSoftmax()], loss=NLLLoss(w))
    ce = Sequential([Linear(3, 4, rng=0), Softmax()], loss=CrossEntropyLoss(w))
    assert nll.fused and nll.body == list(nll.layers[:1])
    assert nll.cost(X, y) == pytest.approx(ce.cost(X, y), rel=1e-14)
    nll.zero_grad(), ce.zero_grad()
    nll.backward(), ce.backward()
    np.testing.assert_allclose(nll.layers[0].W.grad, ce.layers[0].W.grad, rtol=1e-12)
    np.testing.assert_allclose(nll.predict_proba(X), ce.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(nll.predict(X), ce.predict(X))
    assert nll.gradcheck(X[:5], y[:5]).passed
    unfused = Sequential([Linear(3, 4, rng=0), LogSoftmax(), Linear(4, 4, rng=1)], loss=NLLLoss())
    assert not unfused.fused


def test_log_softmax_matches_torch_and_passes_its_check():
    rng = np.random.default_rng(12)
    x = 30 * rng.standard_normal((5, 4))
    layer = LogSoftmax()
    G = rng.standard_normal((5, 4))
    t = torch.tensor(x, requires_grad=True)
    out = F.log_softmax(t, dim=1)
    out.backward(torch.from_numpy(G))
    np.testing.assert_allclose(layer.forward(x), out.detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.backward(G), t.grad.numpy(), rtol=1e-12, atol=1e-13)
    assert minnet.check_layer(LogSoftmax(), x).passed


def test_a_multi_margin_model_predicts_classes_but_no_probabilities():
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((40, 2)), rng.integers(0, 3, 40)
    model = Sequential([Linear(2, 3, rng=0)], loss=MultiMarginLoss())
    model.fit(X, y, epochs=5, seed=0, progress=False)
    assert model.predict(X).shape == (40,)
    _, accuracy = model.evaluate(X, y)
    assert 0 <= accuracy <= 1
    with pytest.raises(ValueError, match="class scores, not probabilities"):
        model.predict_proba(X)


@pytest.mark.parametrize(
    "loss",
    [
        CrossEntropyLoss([1.0, 2.5, 0.25], label_smoothing=0.05, reduction="sum"),
        NLLLoss([0.5, 1.0, 2.0]),
        MultiMarginLoss(2, 0.5, [1.0, 2.0, 3.0]),
        HuberLoss("sum", 0.3),
        L1Loss(),
    ],
)
def test_a_model_with_a_weighted_or_reduced_loss_saves_and_loads(loss, tmp_path):
    model = Sequential([Linear(2, 3, rng=0)], loss=loss)
    loaded = minnet.load(model.save(tmp_path / "model.npz"))
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.arguments() == loss.arguments()
    assert repr(loaded.loss) == repr(loss)
    X = np.random.default_rng(14).standard_normal((4, 2))
    Y = np.array([0, 2, 1, 1]) if loss.task == "multiclass" else np.ones((4, 3))
    assert loaded.cost(X, Y) == model.cost(X, Y)


# --- values published in courses ----------------------------------------------------------------


def test_cs231n_svm_loss_is_multi_margin_times_the_classes():
    # CS231n, lecture 3: three images (cat, car, frog), scores for the classes (cat, car, frog);
    # losses 2.9, 0 and 12.9, mean 5.27.
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = np.array([0, 1, 2])
    per_image = 3 * MultiMarginLoss(reduction="none")(scores, labels)
    np.testing.assert_allclose(per_image, [2.9, 0.0, 12.9], rtol=1e-12, atol=1e-12)
    assert 3 * MultiMarginLoss()(scores, labels) == pytest.approx(5.27, abs=0.005)
    # CS231n notes, "Linear classification": scores [13, -7, 11], first class right, delta 10: 8.
    notes = np.array([[13.0, -7.0, 11.0]])
    assert 3 * MultiMarginLoss(margin=10.0)(notes, np.array([0])) == pytest.approx(8.0, rel=1e-15)
    # ... and the softmax loss of the cat image: -log(0.13) = 2.04.
    assert CrossEntropyLoss()(scores[:1], labels[:1]) == pytest.approx(2.04, abs=0.005)


def test_deeplearning_ai_l1_and_l2_costs():
    # deeplearning.ai, "Python Basics with Numpy": L1 = 1.1 and L2 = 0.43 for these.
    yhat = np.array([[0.9, 0.2, 0.1, 0.4, 0.9]])
    y = np.array([[1, 0, 0, 1, 1]])
    assert L1Loss(reduction="sum")(yhat, y) == pytest.approx(1.1, rel=1e-12)
    assert MSELoss(reduction="sum")(yhat, y) == pytest.approx(0.43, rel=1e-12)


# --- to PyTorch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("layers", "loss"),
    [
        ([ReLU(), Linear(4, 3, rng=2), Softmax()], CrossEntropyLoss([1.0, 2.0, 0.5])),
        ([ReLU(), Linear(4, 3, rng=2), LogSoftmax()], NLLLoss([1.0, 2.0, 0.5], reduction="sum")),
        ([ReLU(), Linear(4, 3, rng=2), LogSoftmax(), Linear(3, 3, rng=3)], NLLLoss()),
        ([ReLU(), Linear(4, 3, rng=2)], MultiMarginLoss(p=2, margin=0.5, weight=[1.0, 2.0, 0.5])),
        ([ReLU(), Linear(4, 1, rng=2)], HuberLoss(reduction="sum", delta=0.5)),
        ([ReLU(), Linear(4, 1, rng=2)], L1Loss()),
        ([ReLU(), Linear(4, 1, rng=2), minnet.Sigmoid()], BCELoss(reduction="sum")),
    ],
)
def test_to_torch_keeps_the_reduction_and_the_class_weights(layers, loss, dtype):
    model = Sequential([Linear(2, 4, rng=1), *layers], loss=loss, dtype=dtype)
    module, torch_loss = minnet.to_torch(model)
    rng = np.random.default_rng(15)
    X = rng.standard_normal((6, 2)).astype(dtype)
    y = rng.integers(0, 3, 6) if loss.task == "multiclass" else rng.random(6).round()
    target = torch.from_numpy(y if loss.task == "multiclass" else y.reshape(-1, 1).astype(dtype))
    theirs = torch_loss(module(torch.from_numpy(X)), target).item()
    assert theirs == pytest.approx(model.cost(X, y), rel=1e-12 if dtype == np.float64 else 1e-5)
