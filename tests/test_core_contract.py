"""The textbook core as users write it: plain layers, parameters wherever they keep them, tied
weights, lazily made parameters, and the accelerator giving the textbook path's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_data

import minnet
from minnet import Layer, Linear, Parameter, Sequential, Sigmoid, Tanh


def grads_after_two_steps(build, X, Y, fast: bool) -> list[np.ndarray]:
    """Each parameter's value after two SGD steps, and its last gradient, fast path on or off."""
    minnet.use_fast_path(fast)
    try:
        model = build()
        optimizer = minnet.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            model.zero_grad()
            model.cost(X, Y)
            model.backward()
            optimizer.step()
        return [a.copy() for p in model.parameters() for a in (p.value, p.grad)]
    finally:
        minnet.use_fast_path(True)


def same_on_both_paths(build, X, Y, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Bit for bit by default; ``rtol`` for products made a block at a time (BLAS may round a
    block's dot products in another order)."""
    fast, textbook = (grads_after_two_steps(build, X, Y, fast) for fast in (True, False))
    assert len(fast) == len(textbook)
    for a, b in zip(fast, textbook, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


class DictLinear(Layer):
    """Parameters kept in a dict."""

    def __init__(self, n_in, n_out, seed):
        rng = np.random.default_rng(seed)
        self.p = {
            "W": Parameter(rng.standard_normal((n_out, n_in))),
            "b": Parameter(np.zeros(n_out)),
        }

    def forward(self, x):
        self.x = x
        return x @ self.p["W"].value.T + self.p["b"].value

    def backward(self, grad_output):
        self.p["W"].grad += grad_output.T @ self.x
        self.p["b"].grad += grad_output.sum(0)
        return grad_output @ self.p["W"].value


class LazyScale(Layer):
    """Makes its parameter in its first forward, when it sees the width."""

    def forward(self, x):
        if "a" not in vars(self):
            self.a = Parameter(np.linspace(0.5, 1.5, x.shape[1]))
        self.x = x
        return x * self.a.value

    def backward(self, grad_output):
        self.a.grad += (grad_output * self.x).sum(0)
        return grad_output * self.a.value


def test_tied_weights_are_one_parameter_trained_alike_on_both_paths():
    X, Y = random_data(np.random.default_rng(0), 6, 3)

    def build():
        a, b = Linear(3, 3, rng=1), Linear(3, 3, rng=2)
        b.W = a.W
        return Sequential([a, Tanh(), b, Tanh(), Linear(3, 1, rng=3), Sigmoid()])

    model = build()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.W", "0.b", "2.b", "4.W", "4.b"]
    assert "Total params: 19" in model.summary()
    assert model.gradcheck(X, Y).passed
    same_on_both_paths(build, X, Y)
    model.fit(X, Y, epochs=2, progress=False)


def test_parameters_in_a_dict_train_and_check():
    X, Y = random_data(np.random.default_rng(1), 5, 3)

    def build():
        return Sequential([DictLinear(3, 2, seed=4), Tanh(), DictLinear(2, 1, seed=5), Sigmoid()])

    assert build().gradcheck(X, Y).passed
    same_on_both_paths(build, X, Y)


def test_a_parameter_made_in_the_first_forward_is_zeroed_like_the_others():
    X, Y = random_data(np.random.default_rng(2), 5, 3)
    same_on_both_paths(lambda: Sequential([LazyScale(), Linear(3, 1, rng=0), Sigmoid()]), X, Y)


def test_an_instance_backward_on_the_first_layer_runs_on_both_paths():
    X, Y = random_data(np.random.default_rng(3), 5, 3)

    def build():
        first = Linear(3, 2, rng=0)
        plain = first.backward
        first.backward = lambda g: plain(np.clip(g, -1e-3, 1e-3))
        return Sequential([first, Tanh(), Linear(2, 1, rng=1), Sigmoid()])

    same_on_both_paths(build, X, Y)


def test_a_float32_model_holds_its_running_statistics_in_float32():
    model = Sequential(
        [Linear(3, 4, rng=0), minnet.BatchNorm1d(4), Linear(4, 1, rng=1), Sigmoid()],
        dtype=np.float32,
    )
    norm = model.layers[1]
    assert norm.running_mean.dtype == norm.running_var.dtype == np.float32
    X, Y = random_data(np.random.default_rng(4), 6, 3)
    model.cost(X, Y)
    assert norm.running_mean.dtype == np.float32


def test_random_draws_inside_a_sublayer_are_replayed_by_the_check():
    class Block(Layer):
        def __init__(self):
            self.inner = [minnet.Dropout(0.3, seed=0)]
            self.fc = Linear(4, 4, rng=1)

        def forward(self, x):
            return self.inner[0].forward(self.fc.forward(x))

        def backward(self, grad_output):
            return self.fc.backward(self.inner[0].backward(grad_output))

    x = np.random.default_rng(5).standard_normal((6, 4))
    assert Block().gradcheck(x).passed


@pytest.mark.parametrize(
    "layer",
    [
        minnet.ReLU(),
        minnet.LeakyReLU(),
        Sigmoid(),
        Tanh(),
        minnet.Softmax(),
        minnet.Dropout(0.5),
        minnet.LayerNorm(4),
        minnet.BatchNorm1d(4),
        Linear(4, 4),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_a_grad_output_of_another_shape_is_a_clear_error(layer):
    layer.forward(np.random.default_rng(6).standard_normal((5, 4)))
    for shape in [(1, 4), (5, 1)]:
        with pytest.raises(ValueError, match=r"expects grad_output of shape \(5, 4\)"):
            layer.backward(np.ones(shape))


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 18])
def test_products_added_a_block_at_a_time_are_the_products(monkeypatch, block):
    monkeypatch.setattr(minnet._fast.products, "PRODUCT_BLOCK", block)
    rng = np.random.default_rng(7)
    for rows, inner, cols in [(1, 3, 1), (13, 5, 9), (40, 2, 33)]:
        a, b = rng.standard_normal((rows, inner)), rng.standard_normal((inner, cols))
        start = rng.standard_normal((rows, cols))
        out = start.copy()
        minnet._fast.add_product(out, a, b)
        np.testing.assert_allclose(out, start + a @ b, rtol=1e-13, atol=1e-13)


def test_a_wide_model_trains_alike_on_both_paths(monkeypatch):
    monkeypatch.setattr(minnet._fast.products, "PRODUCT_BLOCK", 16)  # every W added in blocks
    X, Y = random_data(np.random.default_rng(8), 7, 6)
    same_on_both_paths(
        lambda: Sequential(
            [
                Linear(6, 12, rng=0),
                Tanh(),
                Linear(12, 5, rng=1),
                Tanh(),
                Linear(5, 1, rng=2),
                Sigmoid(),
            ]
        ),
        X,
        Y,
        rtol=1e-12,
        atol=1e-15,  # the values are of order 1: rounding in the last digits, not more
    )
