"""Constructor signatures against PyTorch's: a call written for ``torch.nn.X(...)`` means the
same thing to ``minnet.X(...)``, positional arguments included, or it is refused.

For every layer and loss of minnet with a namesake in ``torch.nn``: each argument minnet takes
by position sits at the same position in torch's signature (when torch has it), and an argument
both have has the same default. The exceptions are listed, with their reason.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import import_torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet

torch = import_torch()
nn = torch.nn

# Deliberate, documented differences (name, argument): why.
DIFFERENT_DEFAULTS = {
    # torch's dim=None is an implicit, deprecated choice (dim 0 for 1-D or 3-D input, else 1);
    # minnet's softmaxes are over the last axis (docs/conv.md)
    ("Softmax", "dim"),
    ("LogSoftmax", "dim"),
}
# minnet's losses take reduction first; torch has its deprecated size_average (or, for the
# binary cross-entropies, a per-entry weight minnet does not have) there
REDUCTION_FIRST = {"MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss"}

NAMESAKES = sorted(
    name
    for name in minnet.__all__
    if isinstance(getattr(minnet, name), type)
    and issubclass(getattr(minnet, name), minnet.Layer | minnet.Loss)
    and hasattr(nn, name)
)


def _arguments(cls: type) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_namesakes_are_every_layer_and_loss():
    assert len(NAMESAKES) == 23, NAMESAKES


@pytest.mark.parametrize("name", NAMESAKES)
def test_positional_arguments_sit_where_torch_has_them(name):
    ours = _arguments(getattr(minnet, name))
    theirs = [p.name for p in _arguments(getattr(nn, name))]
    positional = [p.name for p in ours if p.kind is p.POSITIONAL_OR_KEYWORD]
    for i, argument in enumerate(positional):
        if argument == "reduction" and name in REDUCTION_FIRST:
            assert i == 0
            continue
        if argument in theirs:
            assert theirs.index(argument) == i, (
                f"{name}: {argument} is positional argument {i} in minnet, "
                f"{theirs.index(argument)} in torch ({theirs})"
            )


@pytest.mark.parametrize("name", NAMESAKES)
def test_shared_arguments_have_torchs_defaults(name):
    theirs = {p.name: p.default for p in _arguments(getattr(nn, name))}
    for p in _arguments(getattr(minnet, name)):
        if p.name not in theirs or (name, p.name) in DIFFERENT_DEFAULTS:
            continue
        default = p.default
        if p.name == "dtype" or p.default is inspect.Parameter.empty:
            continue
        assert default == theirs[p.name], (name, p.name, default, theirs[p.name])


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(2, 6),
    st.sampled_from([1, 2]),
    st.floats(0.1, 3.0),
    st.sampled_from(["mean", "sum", "none"]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_positional_calls_written_for_torch_compute_torchs_losses(
    m, classes, p, number, reduction, weighted, seed
):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((m, classes)) * 2
    labels = rng.integers(0, classes, m)
    weight = rng.uniform(0.1, 2.0, classes) if weighted else None
    targets = rng.standard_normal((m, classes))
    pairs = [
        (
            minnet.MultiMarginLoss(p, number, weight, reduction=reduction),
            nn.MultiMarginLoss(p, number, None if weight is None else torch.tensor(weight)),
            labels,
        ),
        (minnet.HuberLoss(reduction, number), nn.HuberLoss(reduction, number), targets),
    ]
    for ours, theirs, y in pairs:
        theirs.reduction = reduction  # torch's MultiMarginLoss takes reduction after two others
        x = torch.tensor(scores, requires_grad=True)
        expected = theirs(x, torch.tensor(y))
        got = ours(scores, y)
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
        grad_output = rng.standard_normal(np.shape(got))
        expected.backward(torch.tensor(grad_output))
        np.testing.assert_allclose(
            ours.backward(grad_output), x.grad.numpy(), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: minnet.HuberLoss(0.5), r"first argument is reduction.*HuberLoss\(delta=0.5\)"),
        (lambda: minnet.MultiMarginLoss(0.5), r"p must be 1 or 2.*MultiMarginLoss\(margin=0.5\)"),
        (lambda: minnet.MultiMarginLoss(2.0), r"p must be 1 or 2.*MultiMarginLoss\(margin=2.0\)"),
    ],
)
def test_minnets_old_argument_order_is_refused_with_the_new_call(make, message):
    """``HuberLoss(delta)`` and ``MultiMarginLoss(margin)`` were minnet's order once: such a
    call is now an error saying how to write it, never another loss."""
    with pytest.raises(ValueError, match=message):
        make()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=2, max_size=4),
    st.booleans(),
    st.sampled_from(["Softmax", "LogSoftmax"]),
    st.integers(0, 2**32 - 1),
)
def test_softmax_dim_names_the_last_axis_as_torchs_does(shape, negative, name, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    dim = -1 if negative else len(shape) - 1
    ours, theirs = getattr(minnet, name)(dim), getattr(nn, name)(dim=dim)
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt)
    np.testing.assert_allclose(ours(x), expected.detach().numpy(), rtol=1e-12, atol=1e-15)
    grad_output = rng.standard_normal(x.shape)
    expected.backward(torch.tensor(grad_output))
    np.testing.assert_allclose(ours.backward(grad_output), xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    back = minnet.from_torch(nn.Sequential(theirs)).layers[0]
    assert type(back) is type(ours) and back.dim == dim
    assert minnet.to_torch(minnet.Sequential([back])).module[0].dim == dim


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("dim", "shape"), [(0, (3, 4)), (1, (2, 3, 4)), (1, (2, 3, 4, 5))])
def test_a_softmax_over_another_axis_is_refused_naming_the_shape(name, dim, shape):
    layer = getattr(minnet, name)(dim)
    with pytest.raises(ValueError, match=rf"{name}\(dim={dim}\) is over the last axis only.*"):
        layer(np.zeros(shape))


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([0.0, 1.0, 0.1, 0.7]),
    st.integers(2, 5),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_batch_norm_momentum_takes_torchs_whole_range(momentum, m, features, images, seed):
    """``momentum=0`` (running statistics kept as they are) and ``1`` are torch's too: several
    training steps, then evaluation, against torch's."""
    rng = np.random.default_rng(seed)
    ours = (minnet.BatchNorm2d if images else minnet.BatchNorm1d)(features, momentum=momentum)
    theirs = (nn.BatchNorm2d if images else nn.BatchNorm1d)(
        features, momentum=momentum, dtype=torch.float64
    )
    shape = (m, features, 2, 3) if images else (m, features)
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), atol=1e-14)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), atol=1e-14)
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)
    back = minnet.from_torch(nn.Sequential(theirs)).layers[0]
    assert back.momentum == momentum


@settings(max_examples=30, deadline=None)
@given(st.floats(-3.0, 3.0), st.integers(0, 2**32 - 1))
def test_leaky_relu_takes_any_finite_slope_as_torch(slope, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 5))
    x[0, :2] = 0.0  # the kink: torch sends slope * g there, as minnet
    ours, theirs = minnet.LeakyReLU(slope), nn.LeakyReLU(slope)
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt)
    np.testing.assert_allclose(ours(x), expected.detach().numpy(), rtol=1e-15)
    grad_output = rng.standard_normal(x.shape)
    expected.backward(torch.tensor(grad_output))
    np.testing.assert_allclose(ours.backward(grad_output), xt.grad.numpy(), rtol=1e-15)
    assert minnet.from_torch(nn.Sequential(theirs)).layers[0].negative_slope == slope


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(2, 5),
    st.sampled_from(["CrossEntropyLoss", "NLLLoss", "NLLLoss fused"]),
    st.sampled_from([-100, -1, 0, 1]),
    st.sampled_from(["mean", "sum", "none"]),
    st.booleans(),
    st.sampled_from([0.0, 0.2]),
    st.integers(0, 2**32 - 1),
)
def test_ignore_index_rows_count_for_nothing_as_in_torch(
    m, classes, name, ignore, reduction, weighted, smoothing, seed
):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((m, classes)) * 3
    y = rng.integers(0, classes, m)
    y[rng.random(m) < 0.4] = ignore
    weight = rng.uniform(0.1, 2.0, classes) if weighted else None
    w = None if weight is None else torch.tensor(weight)
    zt = torch.tensor(z, requires_grad=True)
    if name == "CrossEntropyLoss":
        ours = minnet.CrossEntropyLoss(
            weight, ignore_index=ignore, label_smoothing=smoothing, reduction=reduction
        )
        theirs = nn.CrossEntropyLoss(
            w, ignore_index=ignore, label_smoothing=smoothing, reduction=reduction
        )(zt, torch.tensor(y))
        forward = ours.forward
    else:
        ours = minnet.NLLLoss(weight, ignore_index=ignore, reduction=reduction)
        theirs = nn.NLLLoss(w, ignore_index=ignore, reduction=reduction)(
            torch.log_softmax(zt, dim=1), torch.tensor(y)
        )
        forward = ours.forward_fused if name == "NLLLoss fused" else ours.forward
        if name == "NLLLoss":
            z = torch.log_softmax(torch.tensor(z), dim=1).numpy()
    outputs, targets = ours.check_call(z, y)
    if reduction == "mean" and np.isnan(theirs.item()):  # every row ignored (or weighted 0)
        with pytest.raises(ValueError, match="weighted mean is undefined"):
            forward(outputs, targets)
        return
    got = forward(outputs, targets)
    np.testing.assert_allclose(got, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    grad_output = rng.standard_normal(np.shape(got))
    grad = torch.autograd.grad(theirs, zt, torch.tensor(grad_output))[0].numpy()
    if name == "NLLLoss":  # ours is with respect to the log-probabilities: chain rule by hand
        g = ours.backward(grad_output)
        grad_ours = g - np.exp(z) * g.sum(axis=1, keepdims=True)
    else:
        grad_ours = ours.backward(grad_output)
    np.testing.assert_allclose(grad_ours, grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", [minnet.CrossEntropyLoss, minnet.NLLLoss])
def test_a_model_leaves_ignored_rows_out_of_cost_accuracy_and_conversion(loss):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    y[::4] = 2  # ignore_index: one of the classes
    kept = y != 2
    last = minnet.Softmax() if loss is minnet.CrossEntropyLoss else minnet.LogSoftmax()
    model = minnet.Sequential([minnet.Linear(4, 3, rng=1), last], loss=loss(ignore_index=2))
    assert model.cost(X, y) == pytest.approx(model.cost(X[kept], y[kept]), rel=1e-14)
    assert model.evaluate(X, y) == pytest.approx(tuple(model.evaluate(X[kept], y[kept])))
    module, torch_loss = minnet.to_torch(model)
    assert torch_loss.ignore_index == 2
    cost = torch_loss(module(torch.tensor(X)), torch.tensor(y)).item()
    assert cost == pytest.approx(model.cost(X, y), rel=1e-12)
    back = minnet.from_torch(module, torch_loss, final_activation=model.fused)
    assert back.loss.ignore_index == 2 and back.cost(X, y) == model.cost(X, y)
    optimizer = minnet.SGD(model.parameters(), lr=0.0)
    history = model.fit(X, y, epochs=1, batch_size=7, optimizer=optimizer, progress=False)
    assert history.accuracy[0] == pytest.approx(model.evaluate(X[kept], y[kept]).accuracy)
    with pytest.raises(ValueError, match=r"got values from -1 to .*ignore_index=2"):
        model.cost(X[:3], [-1, 0, 1])


def test_early_stopping_keeps_the_documented_positional_order():
    """``EarlyStopping(monitor, patience, min_delta, restore_best_weights)``, the order issue 20
    and docs/training.md give (tests outside the project call it so); Keras' order differs."""
    stopper = minnet.EarlyStopping("loss", 3, 0.25, True)
    assert (stopper.monitor, stopper.patience, stopper.min_delta) == ("loss", 3, 0.25)
    assert stopper.restore_best_weights is True


def test_a_wrong_class_weight_is_blamed_on_weight_not_targets():
    with pytest.raises(ValueError, match=r"^NLLLoss: weight has 3 entries, but the outputs have 4"):
        minnet.NLLLoss(weight=np.ones(3))(np.zeros((3, 4)), [0, 1, 2])


def test_a_batch_whose_targets_are_all_ignored_is_skipped_as_absent():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((12, 3)), rng.integers(0, 2, 12)
    y[:4] = -100  # the first batch of 4: nothing to learn from, and no mean to take

    def trained(X, y):
        model = minnet.Sequential([minnet.Linear(3, 2, rng=0)], loss=minnet.CrossEntropyLoss())
        optimizer = minnet.SGD(model.parameters(), lr=0.5)
        history = model.fit(
            X, y, epochs=3, batch_size=4, shuffle=False, optimizer=optimizer, progress=False
        )
        return model, history

    model, history = trained(X, y)
    twin, twin_history = trained(X[4:], y[4:])
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    assert history.loss == twin_history.loss and history.accuracy == twin_history.accuracy


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 4),
    st.booleans(),
    st.sampled_from(["logits", "fused", "probabilities"]),
    st.sampled_from(["mean", "sum", "none"]),
    st.integers(0, 2**32 - 1),
)
def test_pos_weight_is_torchs(m, k, one, form, reduction, seed):
    """``BCEWithLogitsLoss(pos_weight=)`` as torch's; ``BCELoss(pos_weight=)`` is the same loss
    from the fused Sigmoid's input, or (to rounding) from its output."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((m, k)) * 4
    y = rng.uniform(0, 1, (m, k)) if rng.random() < 0.5 else rng.integers(0, 2, (m, k)) * 1.0
    pos_weight = rng.uniform(0, 3, 1 if one else k)
    zt = torch.tensor(z, requires_grad=True)
    expected = nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(pos_weight))(
        zt, torch.tensor(y)
    )
    grad_output = rng.standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(grad_output))
    if form == "logits":
        loss = minnet.BCEWithLogitsLoss(reduction, pos_weight=pos_weight)
        got, grad = loss(z, y), loss.backward(grad_output)
    elif form == "fused":
        loss = minnet.BCELoss(reduction, pos_weight=pos_weight)
        got = loss.forward_fused(*loss.check_call(z, y))
        grad = loss.backward(grad_output)
    else:
        loss = minnet.BCELoss(reduction, pos_weight=pos_weight)
        p = 1 / (1 + np.exp(-z))
        got = loss(p, y)
        grad = loss.backward(grad_output) * p * (1 - p)  # chain rule through the sigmoid
    tol = 1e-12 if form != "probabilities" else 1e-8
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=tol, atol=tol)


def test_pos_weight_of_the_wrong_length_or_on_probabilities_to_torch_is_refused():
    loss = minnet.BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^BCEWithLogitsLoss: pos_weight has 3 entries"):
        loss(np.zeros((2, 2)), np.ones((2, 2)))
    unfused = minnet.Sequential([minnet.Linear(3, 2)], loss=minnet.BCELoss(pos_weight=2.0))
    with pytest.raises(ValueError, match="torch's BCELoss has no pos_weight"):
        minnet.to_torch(unfused)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (nn.Sequential(nn.Linear(2, 2), nn.Dropout(1.0)), r"^layer 1: Dropout\(p=1.0.*\): p must"),
        (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)), r"^layer 1: Softmax\(dim=0\): minnet"),
        (nn.Sequential(nn.ReLU(), nn.Linear(2, 2, bias=False)), r"^layer 1: Linear\(.*no bias"),
    ],
)
def test_a_refused_conversion_names_the_layer_and_its_position(module, message):
    with pytest.raises(ValueError, match=message):
        minnet.from_torch(module)


def test_layers_given_one_by_one_as_to_torchs_sequential_say_how_to_write_it():
    with pytest.raises(TypeError, match=r"write Sequential\(\[Linear\(...\), Sigmoid\(...\)\]\)"):
        minnet.Sequential(minnet.Linear(3, 1), minnet.Sigmoid())
