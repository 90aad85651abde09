"""The L2 penalty of Sequential(..., l2=lam): the cost, its gradient, the published course
values, the gradient check, summary, evaluate, fit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch, random_data, random_net
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet import (
    SGD,
    BatchNorm1d,
    BCELoss,
    CrossEntropyLoss,
    Linear,
    ReLU,
    Sequential,
    Softmax,
)


def with_l2(model: Sequential, lam: float) -> Sequential:
    model.l2 = lam
    return model


def cs231n_two_layer_net() -> tuple[Sequential, np.ndarray, np.ndarray]:
    """CS231n assignment 2, FullyConnectedNets: the TwoLayerNet test with fixed weights
    (CS231n's W is (in, out): minnet's is its transpose)."""
    N, D, H, C = 3, 5, 50, 7
    model = Sequential([Linear(D, H), ReLU(), Linear(H, C), Softmax()], loss=CrossEntropyLoss())
    first, second = model.layers[0], model.layers[2]
    first.W.value[...] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H).T
    first.b.value[...] = np.linspace(-0.1, 0.9, num=H)
    second.W.value[...] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C).T
    second.b.value[...] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    y = np.asarray([0, 5, 1])
    return model, X, y


def test_cs231n_two_layer_net_loss_without_and_with_reg():
    model, X, y = cs231n_two_layer_net()
    assert abs(model.cost(X, y) - 3.4702243556) < 1e-10  # the notebook's own tolerance
    model.l2 = 1.0  # CS231n's reg: loss + 0.5 * reg * sum(W**2)
    assert abs(model.cost(X, y) - 26.5948426952) < 1e-10


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_cs231n_two_layer_net_passes_the_gradient_check_at_reg(reg):
    model, X, y = cs231n_two_layer_net()
    model.l2 = reg
    report = model.gradcheck(X, y)
    assert report.passed, report


def test_deeplearning_ai_cost_with_regularization():
    """Improving Deep Neural Networks, week 1, Regularization: compute_cost_with_regularization
    at lambd = 0.1 over m = 5 examples, cross-entropy + lambd / (2 m) * sum(W**2): l2 =
    lambd / m. The course gives the last activations A3; the cost is the loss of those."""
    draws = np.random.RandomState(1)  # the course's np.random.seed(1) draws, in its order
    Y = np.array([[1, 1, 0, 1, 0]])
    W1, b1 = draws.randn(2, 3), draws.randn(2, 1)
    W2, b2 = draws.randn(3, 2), draws.randn(3, 1)
    W3, b3 = draws.randn(1, 3), draws.randn(1, 1)
    A3 = np.array([[0.40682402, 0.01629284, 0.16722898, 0.10118111, 0.40682402]])
    model = Sequential(
        [Linear(3, 2), ReLU(), Linear(2, 3), ReLU(), Linear(3, 1)], loss=BCELoss(), l2=0.1 / 5
    )
    for layer, W, b in zip(model.layers[::2], [W1, W2, W3], [b1, b2, b3], strict=True):
        layer.W.value[...] = W
        layer.b.value[...] = b.ravel()
    assert abs(model.loss_value(A3.T, Y.T.astype(float)) - 1.78648594516) < 1e-10


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(1e-4, 10.0), norm=st.booleans())
def test_the_penalty_adds_half_lam_sum_of_squared_weights_and_lam_w_to_their_gradients(
    seed, lam, norm
):
    rng = np.random.default_rng(seed)
    plain = random_net(rng, [3, 5, 4, 1], norm_after_first=BatchNorm1d if norm else None)
    X, Y = random_data(rng, 12, 3)
    cost = plain.cost(X, Y)
    plain.backward()
    grads = {name: p.grad.copy() for name, p in plain.named_parameters()}
    values = {name: p.value.copy() for name, p in plain.named_parameters()}
    model = with_l2(plain, lam)
    model.zero_grad()
    penalized = model.cost(X, Y)
    model.backward()
    weights = [name for name in values if name.endswith(".W")]
    assert len(weights) == 3
    squares = sum(float(np.sum(values[name] ** 2)) for name in weights)
    assert penalized == pytest.approx(cost + lam / 2 * squares, rel=1e-12)
    assert model.penalty() == pytest.approx(lam / 2 * squares, rel=1e-12)
    for name, p in model.named_parameters():
        expected = grads[name] + (lam * values[name] if name in weights else 0.0)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-12, atol=1e-15)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(1e-3, 3.0))
def test_random_nets_with_a_penalty_pass_the_gradient_check(seed, lam):
    rng = np.random.default_rng(seed)
    model = with_l2(random_net(rng, [3, 6, 1], norm_after_first=BatchNorm1d), lam)
    X, Y = random_data(rng, 10, 3)
    report = model.gradcheck(X, Y)
    assert report.passed, report


def test_a_weight_shared_by_two_layers_is_penalized_once():
    first, second = Linear(3, 3, rng=0), Linear(3, 3, rng=1)
    second.W = first.W
    model = Sequential([first, ReLU(), second], loss=minnet.MSELoss(), l2=0.5)
    assert model.weights() == [first.W]
    assert model.penalty() == pytest.approx(0.25 * np.sum(first.W.value**2))
    X, Y = np.ones((2, 3)), np.zeros((2, 3))
    assert model.gradcheck(X, Y).passed


def test_a_bias_only_model_has_no_penalty():
    model = Sequential([BatchNorm1d(3)], loss=minnet.MSELoss(), l2=3.0)
    assert model.weights() == [] and model.penalty() == 0.0


@pytest.mark.parametrize("torch_penalty", ["weight_decay", "to_torch's loss"])
def test_fit_with_a_penalty_is_torch_sgd_with_weight_decay_on_the_weights_only(torch_penalty):
    """minnet's l2 is torch's weight_decay on the weights (not the biases) with the plain loss
    (``loss_fn.loss``), or plain SGD on the loss to_torch gives, which carries the penalty."""
    torch = import_torch()
    rng = np.random.default_rng(7)
    X, Y = random_data(rng, 40, 3)
    model = with_l2(random_net(rng, [3, 6, 1]), 0.05)
    module, loss_fn = minnet.to_torch(model)
    weights = [q for name, q in module.named_parameters() if name.endswith("weight")]
    biases = [q for name, q in module.named_parameters() if name.endswith("bias")]
    if torch_penalty == "weight_decay":
        decay, loss_fn = 0.05, loss_fn.loss
    else:
        decay = 0.0
    twin = torch.optim.SGD([{"params": weights, "weight_decay": decay}, {"params": biases}], lr=0.1)
    model.fit(
        X,
        Y,
        optimizer=SGD(model.parameters(), lr=0.1),
        epochs=15,
        batch_size=None,
        shuffle=False,
        progress=False,
    )
    for _ in range(15):
        twin.zero_grad()
        loss_fn(module(torch.from_numpy(X)), torch.from_numpy(Y).reshape(-1, 1)).backward()
        twin.step()
    for p, q in zip(model.parameters(), module.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_evaluate_and_the_fit_history_include_the_penalty():
    rng = np.random.default_rng(1)
    X, Y = random_data(rng, 16, 3)
    model = with_l2(random_net(rng, [3, 4, 1]), 2.0)
    assert model.evaluate(X, Y).loss == pytest.approx(model.cost(X, Y), rel=1e-12)
    frozen = SGD(model.parameters(), lr=0.0)
    history = model.fit(X, Y, optimizer=frozen, epochs=1, batch_size=None, progress=False)
    assert history.loss[0] == pytest.approx(model.cost(X, Y), rel=1e-12)


def test_summary_and_repr_show_the_penalty():
    model = Sequential([Linear(2, 3), ReLU(), Linear(3, 1)], loss=minnet.MSELoss(), l2=0.01)
    assert "L2 penalty: 0.01 / 2 * sum(||W||^2) over 2 weight matrices (9 weights)" in (
        model.summary()
    )
    assert "l2=0.01" in repr(model)
    plain = Sequential([Linear(2, 1)], loss=minnet.MSELoss())
    assert "L2" not in plain.summary() and "l2" not in repr(plain)


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_a_bad_l2_is_refused_naming_it(lam):
    with pytest.raises(ValueError, match="l2"):
        Sequential([Linear(2, 1)], l2=lam)
    model = Sequential([Linear(2, 1)], l2=0.5)
    with pytest.raises(ValueError, match="l2"):
        model.l2 = lam
    assert model.l2 == 0.5
    with pytest.raises(TypeError, match="l2"):
        Sequential([Linear(2, 1)], l2="0.1")


def test_save_and_load_keep_the_penalty(tmp_path):
    rng = np.random.default_rng(2)
    X, Y = random_data(rng, 8, 3)
    model = with_l2(random_net(rng, [3, 4, 1]), 0.25)
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert loaded.l2 == 0.25
    assert loaded.cost(X, Y) == model.cost(X, Y)
    plain = minnet.load(random_net(rng, [3, 4, 1]).save(tmp_path / "plain"))
    assert plain.l2 == 0.0
