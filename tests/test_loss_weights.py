"""Sample weights, the epoch's loss and the direct call of a loss, for every loss, reduction
and class weights (generated cases):

- ``loss(outputs, targets)`` checks its arguments with the loss's own ``check_targets``, and a
  model's training steps never call that check;
- a sample weight of ``k`` is the row given ``k`` times: in ``cost``, its gradient, ``fit`` (one
  batch, SGD) and ``evaluate`` (the loss and the accuracy or R^2);
- ``fit``'s epoch ``loss`` is on ``val_loss``'s scale: with unchanged weights (lr=0) and the
  training data as validation data, the two agree, whatever the batch size.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minnet
from minnet import Linear, LogSoftmax, Sequential, Sigmoid, Softmax
from minnet.losses import PROBABILITY_TOLERANCE

CLASSES = 3


def class_weight(rng):
    return rng.uniform(0.2, 3.0, CLASSES)


# Each case: (make the loss for a reduction and a generator, the head after Linear(3, k),
# k, the kind of targets). The class losses draw class weights half of the time.
CASES = {
    "MSELoss": (lambda r, g: minnet.MSELoss(reduction=r), [], 2, "numbers"),
    "L1Loss": (lambda r, g: minnet.L1Loss(reduction=r), [], 2, "numbers"),
    "HuberLoss": (lambda r, g: minnet.HuberLoss(r, 0.5), [], 1, "numbers"),
    "BCELoss+Sigmoid": (lambda r, g: minnet.BCELoss(reduction=r), [Sigmoid], 2, "labels"),
    "BCEWithLogitsLoss": (lambda r, g: minnet.BCEWithLogitsLoss(reduction=r), [], 1, "labels"),
    "CrossEntropyLoss": (
        lambda r, g: minnet.CrossEntropyLoss(
            class_weight(g) if g.random() < 0.5 else None,
            label_smoothing=float(g.choice([0.0, 0.1])),
            reduction=r,
        ),
        [],
        CLASSES,
        "classes",
    ),
    "CrossEntropyLoss+Softmax": (
        lambda r, g: minnet.CrossEntropyLoss(class_weight(g), reduction=r),
        [Softmax],
        CLASSES,
        "classes",
    ),
    "CrossEntropyLoss(probabilities)": (
        lambda r, g: minnet.CrossEntropyLoss(
            class_weight(g) if g.random() < 0.5 else None, reduction=r
        ),
        [],
        CLASSES,
        "probabilities",
    ),
    "NLLLoss+LogSoftmax": (
        lambda r, g: minnet.NLLLoss(class_weight(g) if g.random() < 0.5 else None, reduction=r),
        [LogSoftmax],
        CLASSES,
        "classes",
    ),
    "MultiMarginLoss": (
        lambda r, g: minnet.MultiMarginLoss(
            p=int(g.choice([1, 2])),
            weight=class_weight(g) if g.random() < 0.5 else None,
            reduction=r,
        ),
        [],
        CLASSES,
        "classes",
    ),
}


def make(case, reduction, seed, m):
    """A model for ``case`` and ``reduction``, data ``X: (m, 3)`` and targets for it."""
    rng = np.random.default_rng(seed)
    make_loss, head, k, kind = CASES[case]
    loss = make_loss(reduction, rng)
    model = Sequential([Linear(3, k, rng=rng), *(layer() for layer in head)], loss=loss)
    X = rng.standard_normal((m, 3))
    if kind == "numbers":
        Y = rng.standard_normal((m, k))
    elif kind == "labels":
        Y = rng.integers(0, 2, (m, k)).astype(float)
    elif kind == "classes":
        Y = rng.integers(0, CLASSES, m)
    else:
        Y = rng.dirichlet(np.ones(CLASSES), m)
    return model, X, Y


def repeated(X, Y, counts):
    """Each row ``i`` of X and Y ``counts[i]`` times."""
    return np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0)


def gradients(model):
    return [p.grad.copy() for p in model.parameters()]


cases = st.sampled_from(sorted(CASES))
reductions = st.sampled_from(["mean", "sum"])
seeds = st.integers(0, 2**32 - 1)
counts_of = st.lists(st.integers(0, 3), min_size=2, max_size=8)


# -- sample weights ----------------------------------------------------------------------------
@settings(max_examples=120)
@given(case=cases, reduction=reductions, seed=seeds, counts=counts_of)
def test_a_weight_of_k_is_the_row_k_times_in_the_cost_and_its_gradient(
    case, reduction, seed, counts
):
    assume(sum(counts) > 0)
    model, X, Y = make(case, reduction, seed, len(counts))
    model.zero_grad()
    weighted = model.cost(X, Y, sample_weight=counts)
    model.backward()
    weighted_grads = gradients(model)
    model.zero_grad()
    plain = model.cost(*repeated(X, Y, counts))
    model.backward()
    assert weighted == pytest.approx(plain, rel=1e-12, abs=1e-13)
    for ours, theirs in zip(weighted_grads, gradients(model), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@settings(max_examples=40)
@given(case=cases, reduction=reductions, seed=seeds, counts=counts_of)
def test_a_weight_of_k_is_the_row_k_times_in_fit_and_evaluate(case, reduction, seed, counts):
    assume(sum(counts) > 0)
    model, X, Y = make(case, reduction, seed, len(counts))
    twin, _, _ = make(case, reduction, seed, len(counts))
    lr = 0.05 if reduction == "mean" else 0.05 / sum(counts)
    options = dict(epochs=3, batch_size=None, shuffle=False, progress=False)
    history = model.fit(
        X, Y, optimizer=minnet.SGD(model.parameters(), lr=lr), sample_weight=counts, **options
    )
    X_rep, Y_rep = repeated(X, Y, counts)
    twin_history = twin.fit(X_rep, Y_rep, optimizer=minnet.SGD(twin.parameters(), lr=lr), **options)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(history.loss, twin_history.loss, rtol=1e-10, atol=1e-12)
    ours = model.evaluate(X, Y, sample_weight=counts)
    theirs = model.evaluate(X_rep, Y_rep)
    np.testing.assert_allclose(tuple(ours), tuple(theirs), rtol=1e-10, atol=1e-12)


@given(seed=seeds, reduction=reductions)
def test_weights_whose_rows_have_classes_of_weight_0_are_refused_for_the_mean(seed, reduction):
    rng = np.random.default_rng(seed)
    loss = minnet.CrossEntropyLoss([0.0, 1.0, 1.0], reduction=reduction)
    model = Sequential([Linear(3, 3, rng=rng)], loss=loss)
    X, y = rng.standard_normal((4, 3)), np.array([0, 0, 1, 2])
    w = np.array([1.0, 2.0, 0.0, 0.0])  # only rows of class 0, whose weight is 0
    if reduction == "sum":
        assert model.cost(X, y, sample_weight=w) == 0.0
    else:
        with pytest.raises(ValueError, match="sample_weight.*weight 0"):
            model.cost(X, y, sample_weight=w)


# -- the epoch's loss --------------------------------------------------------------------------
@settings(max_examples=80)
@given(
    case=cases,
    reduction=reductions,
    seed=seeds,
    m=st.integers(2, 12),
    batch_size=st.integers(1, 12),
    weighted=st.booleans(),
    l2=st.sampled_from([0.0, 0.3]),
)
def test_with_unchanged_weights_the_epoch_loss_is_the_loss_of_the_whole_data(
    case, reduction, seed, m, batch_size, weighted, l2
):
    model, X, Y = make(case, reduction, seed, m)
    model.l2 = l2
    w = np.random.default_rng(seed).integers(1, 4, m) if weighted else None
    frozen = minnet.SGD(model.parameters(), lr=0.0)
    history = model.fit(X, Y, optimizer=frozen, epochs=2, batch_size=batch_size, seed=seed,
                        validation_data=(X, Y), sample_weight=w, progress=False)  # fmt: skip
    whole = model.evaluate(X, Y, sample_weight=w)
    np.testing.assert_allclose(history.loss, [whole.loss] * 2, rtol=1e-10, atol=1e-12)
    metric = getattr(history, history.metric)
    np.testing.assert_allclose(metric, [whole[1]] * 2, rtol=1e-10, atol=1e-12)
    if w is None:
        np.testing.assert_allclose(history.loss, history.val_loss, rtol=1e-10, atol=1e-12)


# -- the direct call checks its arguments ----------------------------------------------------
CLASS_LOSSES = [minnet.CrossEntropyLoss, minnet.NLLLoss, minnet.MultiMarginLoss]


@given(
    loss_class=st.sampled_from(CLASS_LOSSES),
    seed=seeds,
    m=st.integers(1, 6),
    classes=st.integers(2, 5),
    bad=st.one_of(st.integers(-10, -1), st.integers(0, 5)),
)
def test_a_class_index_outside_0_to_C_is_refused_naming_targets(loss_class, seed, m, classes, bad):
    rng = np.random.default_rng(seed)
    outputs = rng.standard_normal((m, classes))
    targets = rng.integers(0, classes, m)
    assert loss_class()(outputs, targets) == loss_class()(outputs, list(targets))
    assert loss_class()(outputs, targets) == loss_class().forward(outputs, targets)
    assume(not 0 <= bad < classes)
    targets[rng.integers(m)] = bad
    with pytest.raises(ValueError, match=rf"targets: .*indices in \[0, {classes}\)"):
        loss_class()(outputs, targets)


@given(seed=seeds, m=st.integers(1, 5), k=st.integers(1, 3), low=st.booleans())
def test_bce_targets_outside_0_1_are_refused_naming_targets(seed, m, k, low):
    rng = np.random.default_rng(seed)
    targets = rng.uniform(0, 1, (m, k))
    targets[rng.integers(m), rng.integers(k)] = (
        -rng.uniform(1e-9, 5) if low else 1 + rng.uniform(1e-9, 5)
    )
    for loss in (minnet.BCELoss(), minnet.BCEWithLogitsLoss()):
        with pytest.raises(ValueError, match=r"targets: .*in \[0, 1\]"):
            loss(rng.uniform(0.01, 0.99, (m, k)), targets)


@pytest.mark.parametrize("loss_class", [minnet.MSELoss, minnet.L1Loss, minnet.HuberLoss])
@pytest.mark.parametrize(
    "outputs, targets, name",
    [
        (np.array([["a"]]), np.array([[1.0]]), "outputs"),
        (np.array([[1.0]]), np.array([["a"]]), "targets"),
        (np.array([1.0, 2.0]), np.array([1.0, 2.0]), "outputs"),
        (np.zeros((2, 2)), np.zeros((3, 2)), "targets"),
        (np.zeros((2, 1)), [[np.nan], [0.0]], "targets"),
    ],
)
def test_bad_outputs_or_targets_are_a_value_error_naming_them(loss_class, outputs, targets, name):
    with pytest.raises(ValueError, match=name):
        loss_class()(outputs, targets)


@settings(max_examples=20)
@given(case=cases, seed=seeds, batch_size=st.integers(1, 10), epochs=st.integers(1, 3))
def test_training_steps_never_check_the_targets_again(case, seed, batch_size, epochs):
    """fit checks Y once, before training: the steps call forward, not the checked call."""
    model, X, Y = make(case, "mean", seed, 10)
    calls = []
    check = model.loss.check_targets
    model.loss.check_targets = lambda *args: calls.append(1) or check(*args)
    model.fit(X, Y, optimizer=minnet.SGD(model.parameters(), lr=0.01), epochs=epochs,
              batch_size=batch_size, progress=False)  # fmt: skip
    assert len(calls) == 1


# -- probability targets: one tolerance for entries and sums ----------------------------------
@given(seed=seeds, m=st.integers(1, 5), scale=st.floats(0.0, 0.99))
def test_probability_entries_and_sums_within_the_tolerance_are_accepted(seed, m, scale):
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.ones(CLASSES), m)
    q[:, 0] = -scale * PROBABILITY_TOLERANCE  # slightly negative, rounding
    q[:, 1] += scale * PROBABILITY_TOLERANCE + 1 - q.sum(axis=1)
    logits = rng.standard_normal((m, CLASSES))
    assert np.isfinite(minnet.CrossEntropyLoss()(logits, q))
    model = Sequential([Linear(CLASSES, CLASSES, rng=0)], loss=minnet.CrossEntropyLoss())
    assert np.isfinite(model.cost(logits, q))  # the model's check is the loss's
    q[:, 0] = -1.01 * PROBABILITY_TOLERANCE - scale
    with pytest.raises(ValueError, match="targets: .*smallest entry"):
        minnet.CrossEntropyLoss()(logits, q)
