"""CrossEntropyLoss, MSELoss and BCEWithLogitsLoss, and whole models using them with Softmax,
BatchNorm1d and LayerNorm: PyTorch's numbers in float64 to a relative 1e-9, gradient checks, the
catalogue's cross-entropy bug, and bad targets refused with clear ValueErrors.

"Relative 1e-9" is measured entry by entry against the value, and, where the exact value is 0
(a Linear bias just before a BatchNorm has gradient exactly 0: rounding makes it 1e-17 in both
frameworks), against the largest gradient of the whole net.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet import (
    SGD,
    Adam,
    BatchNorm1d,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    LayerNorm,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from minnet.teaching.bugs import CrossEntropyMissingMean

torch = import_torch()
F = torch.nn.functional
RTOL = 1e-9


def assert_close(ours, theirs, reference=None):
    """Entry by entry to a relative RTOL, entries near 0 against ``reference``: the largest
    magnitude of the whole set of gradients (by default of ``theirs``), or, for a loss's own
    gradient, the size of the numbers whose difference it is (``softmax(z) - q`` is a difference
    of numbers up to 1: both frameworks round it to 1e-16, whatever its size)."""
    theirs = np.asarray(theirs)
    if reference is None:
        reference = float(np.abs(theirs).max(initial=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * reference)


def assert_value_close(ours, theirs, logits):
    """A loss value to a relative RTOL, or, when it is tiny, to a few units in the last place of
    the largest logit: ``softplus(z) - y*z`` or ``log_sum_exp(z) - z_y`` cancel to a value below
    the rounding of ``z`` itself (1e-83 for ``z = 189, y = 1``), and the frameworks round it
    differently (both are right to that rounding)."""
    atol = 4 * np.finfo(np.float64).eps * float(np.abs(logits).max(initial=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=atol)


def random_logits(rng, m, classes, scale):
    """Logits of the given scale, with some entries exactly +-1000 when the scale is large."""
    logits = scale * rng.standard_normal((m, classes))
    if scale >= 100:
        logits[rng.random((m, classes)) < 0.3] = 1000.0
        logits[rng.random((m, classes)) < 0.3] = -1000.0
    return logits


def random_probabilities(rng, m, classes):
    q = rng.dirichlet(np.full(classes, 0.5), size=m)
    q /= q.sum(axis=1, keepdims=True)
    return q


# --- each loss against torch --------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 12),
    classes=st.integers(2, 9),
    scale=st.sampled_from([0.1, 1.0, 30.0, 1000.0]),
    kind=st.sampled_from(["indices", "probabilities", "one-hot"]),
    smoothing=st.sampled_from([0.0, 0.1, 0.37, 1.0]),
)
def test_cross_entropy_matches_torch(seed, m, classes, scale, kind, smoothing):
    rng = np.random.default_rng(seed)
    logits = random_logits(rng, m, classes, scale)
    indices = rng.integers(0, classes, m)
    targets = {
        "indices": indices,
        "probabilities": random_probabilities(rng, m, classes),
        "one-hot": np.eye(classes)[indices],
    }[kind]
    loss = CrossEntropyLoss(label_smoothing=smoothing)
    checked = loss.check_targets(targets, (m, classes))

    z = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(z, torch.from_numpy(targets), label_smoothing=smoothing)
    expected.backward()
    rows = F.cross_entropy(
        z.detach(), torch.from_numpy(targets), label_smoothing=smoothing, reduction="none"
    ).numpy()
    for forward in (loss.forward, loss.forward_fused):
        value = forward(logits, checked)
        assert np.isfinite(value)
        assert_value_close(value, expected.item(), logits)
        # (softmax(z) - q) / m: a difference of numbers up to 1, divided by m
        assert_close(loss.backward(), z.grad.numpy(), reference=1 / m)
    assert_value_close(loss.per_example(logits, checked), rows, logits)
    assert_value_close(loss.per_example_fused(logits, checked), rows, logits)
    probabilities = loss.probabilities(logits)
    assert_close(probabilities, torch.softmax(z.detach(), dim=1).numpy())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 12),
    k=st.integers(1, 5),
    scale=st.sampled_from([1e-3, 1.0, 1000.0]),
    column=st.booleans(),
)
def test_mse_matches_torch(seed, m, k, scale, column):
    rng = np.random.default_rng(seed)
    outputs = scale * rng.standard_normal((m, k))
    targets = scale * rng.standard_normal((m, k)) + rng.standard_normal()
    given_targets = targets[:, 0] if k == 1 and column else targets
    loss = MSELoss()
    checked = loss.check_targets(given_targets, (m, k))
    o = torch.tensor(outputs, requires_grad=True)
    expected = F.mse_loss(o, torch.from_numpy(targets))
    expected.backward()
    assert_close(loss.forward(outputs, checked), expected.item())
    # 2 (y_hat - y) / n: a difference of the numbers themselves
    difference_scale = 2 * float(np.abs(outputs).max() + np.abs(targets).max()) / outputs.size
    assert_close(loss.backward(), o.grad.numpy(), reference=difference_scale)
    rows = F.mse_loss(o.detach(), torch.from_numpy(targets), reduction="none").mean(1)
    assert_close(loss.per_example(outputs, checked), rows.numpy())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 12),
    k=st.integers(1, 5),
    scale=st.sampled_from([0.1, 1.0, 30.0, 1000.0]),
    soft=st.booleans(),
)
def test_bce_with_logits_matches_torch(seed, m, k, scale, soft):
    rng = np.random.default_rng(seed)
    logits = random_logits(rng, m, k, scale)
    targets = rng.random((m, k)) if soft else (rng.random((m, k)) < 0.5).astype(float)
    z = torch.tensor(logits, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(z, torch.from_numpy(targets))
    expected.backward()
    rows = F.binary_cross_entropy_with_logits(
        z.detach(), torch.from_numpy(targets), reduction="none"
    ).mean(1)
    for loss, forward, per_example in [
        (BCEWithLogitsLoss(), "forward", "per_example"),
        (minnet.BCELoss(), "forward_fused", "per_example_fused"),  # a final Sigmoid
    ]:
        value = getattr(loss, forward)(logits, targets)
        assert_value_close(value, expected.item(), logits)
        # (sigmoid(z) - y) / n: a difference of numbers up to 1, divided by n
        assert_close(loss.backward(), z.grad.numpy(), reference=1 / targets.size)
        assert_value_close(getattr(loss, per_example)(logits, targets), rows.numpy(), logits)
    assert_close(BCEWithLogitsLoss().probabilities(logits), torch.sigmoid(z.detach()).numpy())


def test_cross_entropy_is_exact_and_finite_at_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0], [-1000.0] * 3])
    loss = CrossEntropyLoss()
    value = loss.forward(logits, np.array([1, 0, 2]))
    # row 0: 2000; row 1: 2000 + log 2; row 2: log 3
    assert value == pytest.approx((4000 + np.log(2) + np.log(3)) / 3, rel=1e-15)
    assert np.isfinite(loss.backward()).all()


# --- whole models against the same torch model ----------------------------------------------------


def torch_twin(model: Sequential):
    """The same net in torch (float64, same weights and buffers) and its loss function. A final
    Softmax fused with CrossEntropyLoss is left out: torch's loss takes the logits."""
    modules = []
    for layer in model.body:
        if isinstance(layer, Linear):
            module = torch.nn.Linear(layer.in_features, layer.out_features).double()
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.W.value))
                module.bias.copy_(torch.from_numpy(layer.b.value))
        elif isinstance(layer, BatchNorm1d):
            module = torch.nn.BatchNorm1d(layer.num_features, layer.eps, layer.momentum).double()
            with torch.no_grad():
                module.running_mean.copy_(torch.from_numpy(layer.running_mean))
                module.running_var.copy_(torch.from_numpy(layer.running_var))
        elif isinstance(layer, LayerNorm):
            module = torch.nn.LayerNorm(layer.num_features, layer.eps).double()
        else:
            module = {
                ReLU: torch.nn.ReLU,
                Tanh: torch.nn.Tanh,
                Sigmoid: torch.nn.Sigmoid,
                Softmax: lambda: torch.nn.Softmax(dim=-1),
            }[type(layer)]()
        if isinstance(layer, BatchNorm1d | LayerNorm):
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.gamma.value))
                module.bias.copy_(torch.from_numpy(layer.beta.value))
        modules.append(module)
    loss = model.loss
    if isinstance(loss, CrossEntropyLoss):
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=loss.label_smoothing)
    elif isinstance(loss, MSELoss):
        loss_fn = torch.nn.MSELoss()
    else:
        loss_fn = torch.nn.BCEWithLogitsLoss()
    return torch.nn.Sequential(*modules), loss_fn


def twin_parameters(twin) -> list:
    """torch's parameters in minnet's order (W, b / gamma, beta per layer)."""
    return [p for module in twin for p in module.parameters(recurse=False)]


def build(kind: str, rng, n_in: int, hidden: int, classes: int) -> Sequential:
    def linear(a, b):
        layer = Linear(a, b, rng=rng)
        layer.b.value[...] = 0.1 * rng.standard_normal(b)
        return layer

    def norm(cls, n):
        layer = cls(n)
        layer.gamma.value[...] = 1 + 0.3 * rng.standard_normal(n)
        layer.beta.value[...] = 0.3 * rng.standard_normal(n)
        return layer

    if kind == "softmax":  # Linear-ReLU-Linear-Softmax + CrossEntropyLoss: fused
        layers, loss = [linear(n_in, hidden), ReLU(), linear(hidden, classes), Softmax()], None
    elif kind == "logits":  # no final Softmax: the loss takes the model's outputs as logits
        layers, loss = [linear(n_in, hidden), Tanh(), linear(hidden, classes)], None
    elif kind == "batchnorm":
        layers = [linear(n_in, hidden), norm(BatchNorm1d, hidden), ReLU()]
        layers += [linear(hidden, classes), Softmax()]
        loss = None
    elif kind == "layernorm":
        layers = [linear(n_in, hidden), norm(LayerNorm, hidden), Tanh()]
        layers += [linear(hidden, classes), Softmax()]
        loss = None
    elif kind == "regression":
        layers = [linear(n_in, hidden), norm(BatchNorm1d, hidden), Tanh(), linear(hidden, 1)]
        loss = MSELoss()
    elif kind == "regression-k":
        layers = [linear(n_in, hidden), norm(LayerNorm, hidden), ReLU(), linear(hidden, classes)]
        loss = MSELoss()
    elif kind == "multilabel":
        layers, loss = [linear(n_in, hidden), ReLU(), linear(hidden, classes)], BCEWithLogitsLoss()
    else:
        raise ValueError(kind)
    if loss is None:
        loss = CrossEntropyLoss(label_smoothing=float(rng.choice([0.0, 0.1])))
    return Sequential(layers, loss=loss)


def random_targets(kind: str, rng, m: int, classes: int, probabilities: bool):
    if kind == "regression":
        return 5 * rng.standard_normal(m) + 3
    if kind == "regression-k":
        return rng.standard_normal((m, classes)) - 2
    if kind == "multilabel":
        return (rng.random((m, classes)) < 0.5).astype(float)
    if probabilities:
        return random_probabilities(rng, m, classes)
    return rng.integers(0, classes, m)


KINDS = ["softmax", "logits", "batchnorm", "layernorm", "regression", "regression-k", "multilabel"]


def torch_cost_and_grads(model, twin, loss_fn, X, Y):
    for p in twin.parameters():
        p.grad = None
    target = torch.from_numpy(model.check_targets(Y, len(X), dtype=np.float64))
    cost = loss_fn(twin(torch.from_numpy(X)), target)
    cost.backward()
    return cost.item(), [p.grad.numpy() for p in twin_parameters(twin)]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(KINDS),
    m=st.integers(2, 10),
    n_in=st.integers(1, 6),
    hidden=st.integers(1, 8),
    classes=st.integers(2, 6),
    scale=st.sampled_from([1.0, 100.0]),
    probabilities=st.booleans(),
)
def test_models_match_torch_cost_and_every_gradient(
    seed, kind, m, n_in, hidden, classes, scale, probabilities
):
    rng = np.random.default_rng(seed)
    model = build(kind, rng, n_in, hidden, classes)
    twin, loss_fn = torch_twin(model)
    X = scale * rng.standard_normal((m, n_in))
    Y = random_targets(kind, rng, m, classes, probabilities)

    expected_cost, expected_grads = torch_cost_and_grads(model, twin, loss_fn, X, Y)
    model.zero_grad()
    cost = model.cost(X, Y)
    model.backward()
    assert_value_close(cost, expected_cost, model.last_outputs)
    largest = max(float(np.abs(g).max()) for g in expected_grads)
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(expected_grads)
    for name, p, expected in zip(names, model.parameters(), expected_grads, strict=True):
        assert p.grad.shape == expected.shape, name
        assert_close(p.grad, expected, reference=largest)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_steps_match_torch_parameters_buffers_and_eval_output(kind, optimizer):
    """Several optimizer steps (minnet's SGD with momentum or Adam against torch.optim's): every
    parameter, BatchNorm's running statistics, and the eval-mode outputs."""
    rng = np.random.default_rng(KINDS.index(kind))
    model = build(kind, rng, 4, 7, 3)
    twin, loss_fn = torch_twin(model)
    if optimizer == "sgd":
        ours = SGD(model.parameters(), lr=0.05, momentum=0.9)
        theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    else:
        ours = Adam(model.parameters(), lr=0.01)
        theirs = torch.optim.Adam(twin.parameters(), lr=0.01)
    for _ in range(6):
        X = rng.standard_normal((9, 4))
        Y = random_targets(kind, rng, 9, 3, probabilities=False)
        theirs.zero_grad()
        torch_cost, _ = torch_cost_and_grads(model, twin, loss_fn, X, Y)
        theirs.step()
        ours.zero_grad()
        assert_close(model.cost(X, Y), torch_cost)
        model.backward()
        ours.step()
    # A Linear bias just before a BatchNorm has gradient exactly 0: rounding leaves 1e-17 in
    # both frameworks, different noise, and Adam divides it by its own size (g / sqrt(v)), so
    # that bias wanders by up to lr per step in both, differently: it changes no output.
    noise_driven = {
        f"{i}.b"
        for i, (layer, after) in enumerate(zip(model.layers[:-1], model.layers[1:], strict=True))
        if isinstance(layer, Linear) and isinstance(after, BatchNorm1d) and optimizer == "adam"
    }
    pairs = zip(model.named_parameters(), twin_parameters(twin), strict=True)
    for (name, p), expected in pairs:
        if name not in noise_driven:
            assert_close(p.value, expected.detach().numpy())
    for layer, module in zip(model.body, twin, strict=True):
        if isinstance(layer, BatchNorm1d):
            assert_close(layer.running_mean, module.running_mean.numpy())
            assert_close(layer.running_var, module.running_var.numpy())
            assert not np.array_equal(layer.running_var, np.ones(layer.num_features))
    X = rng.standard_normal((5, 4))
    model.eval()
    twin.eval()
    with torch.no_grad():
        expected = twin(torch.from_numpy(X)).numpy()
    assert_close(model.run(X), expected)
    if kind in ("softmax", "batchnorm", "layernorm"):  # the final Softmax runs in forward
        assert_close(model.forward(X), torch.softmax(torch.from_numpy(expected), 1).numpy())


# --- gradient checks ------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_passes_its_gradient_check(smoothing, kind, scale):
    rng = np.random.default_rng(0)
    logits = scale * rng.standard_normal((6, 4))
    targets = rng.integers(0, 4, 6) if kind == "indices" else random_probabilities(rng, 6, 4)
    loss = CrossEntropyLoss(label_smoothing=smoothing)
    for fused in (False, True):
        report = loss.gradcheck(logits, targets, fused=fused)
        assert report.passed, str(report)


@pytest.mark.parametrize(
    "loss, targets",
    [
        (MSELoss(), lambda rng: 10 * rng.standard_normal((6, 3))),
        (BCEWithLogitsLoss(), lambda rng: rng.random((6, 3))),
    ],
)
def test_mse_and_bce_with_logits_pass_their_gradient_checks(loss, targets):
    rng = np.random.default_rng(1)
    report = loss.gradcheck(3 * rng.standard_normal((6, 3)), targets(rng))
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_passes_the_gradient_check_and_leaves_the_buffers(kind):
    rng = np.random.default_rng(10 + KINDS.index(kind))
    model = build(kind, rng, 3, 5, 4)
    for layer in model.layers:
        if isinstance(layer, BatchNorm1d):
            layer.running_mean[...] = rng.standard_normal(layer.num_features)
    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm1d)]
    buffers = [b.copy() for layer in norms for _, b in layer.named_buffers()]
    X = rng.standard_normal((7, 3))
    Y = random_targets(kind, rng, 7, 4, probabilities=kind == "layernorm")
    for mode in (True, False):
        model.train(mode)
        report = model.gradcheck(X, Y)
        assert report.passed, f"{kind}, training={mode}\n{report}"
    after = [b for layer in norms for _, b in layer.named_buffers()]
    for before, now in zip(buffers, after, strict=True):
        np.testing.assert_array_equal(before, now)


def test_a_softmax_that_is_not_fused_is_checked_through_its_own_backward():
    rng = np.random.default_rng(3)
    model = Sequential([Linear(3, 4, rng=rng), Softmax()], loss=MSELoss())
    assert not model.fused
    X, Y = rng.standard_normal((5, 3)), rng.random((5, 4))
    assert model.gradcheck(X, Y).passed


# --- the catalogue's cross-entropy bug ----------------------------------------------------------


def test_cross_entropy_without_the_mean_is_caught():
    rng = np.random.default_rng(4)
    logits, targets = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    assert not CrossEntropyMissingMean().gradcheck(logits, targets, fused=True).passed
    model = Sequential(
        [Linear(4, 5, rng=rng), ReLU(), Linear(5, 3, rng=rng), Softmax()],
        loss=CrossEntropyMissingMean(),
    )
    report = model.gradcheck(rng.standard_normal((6, 4)), targets)
    assert not report.passed
    assert report.blamed_layers == ()
    assert "every layer passes on its own" in str(report)


# --- bad targets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "targets, pattern",
    [
        ([0, 3, 1], r"class indices in \[0, 3\) for 3 outputs, got values from 0 to 3"),
        ([0, -1, 1], r"class indices in \[0, 3\) for 3 outputs, got values from -1 to 1"),
        ([0, 1.5, 2], r"class indices that are whole numbers, got \[1.5\]"),
        ([0, np.nan, 2], "targets must be finite, but 1 entries are NaN"),
        ([[0.5, 0.5, 0.5]] * 3, "rows of numbers >= 0 summing to 1, got row sums from 1.5"),
        ([[1.5, -0.5, 0.0]] * 3, "smallest entry -0.5"),
        ([[np.nan, 0.5, 0.5]] * 3, "targets must be finite"),
        (np.zeros((3, 2)), r"class indices of shape \(3,\) or probabilities of shape \(3, 3\)"),
        (["a", "b", "c"], "class indices or probabilities, got dtype <U1"),
    ],
)
def test_bad_cross_entropy_targets_are_clear_value_errors(targets, pattern):
    with pytest.raises(ValueError, match=pattern):
        CrossEntropyLoss().check_targets(targets, (3, 3))
    model = Sequential([Linear(2, 3, rng=0), Softmax()], loss=CrossEntropyLoss())
    X = np.ones((3, 2))
    for call in (model.cost, model.evaluate, model.gradcheck):
        with pytest.raises(ValueError, match=pattern):
            call(X, targets)
    with pytest.raises(ValueError, match=pattern) as raised:
        model.fit(X, targets, progress=False)
    assert str(raised.value).startswith("fit: Y: ")


@pytest.mark.parametrize("loss", [MSELoss(), BCEWithLogitsLoss()])
def test_nan_targets_are_refused_by_every_loss(loss):
    with pytest.raises(ValueError, match="targets must be finite, but 1 entries are NaN"):
        loss.check_targets([0.0, np.nan], (2, 1))


def test_batch_norm_on_one_row_in_training_says_what_it_needs():
    model = Sequential([Linear(2, 3, rng=0), BatchNorm1d(3), Linear(3, 2, rng=1)], loss=MSELoss())
    with pytest.raises(ValueError, match="at least 2 rows to compute a batch variance, got 1"):
        model.cost(np.ones((1, 2)), np.ones((1, 2)))
    model.eval()
    assert model.predict(np.ones((1, 2))).shape == (1, 2)
