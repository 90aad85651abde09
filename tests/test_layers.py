"""Every layer: gradient-checked, shapes, errors, accumulation semantics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import example_shape, layer_example

import minnet
from minnet.layers import layer_classes

LAYERS = list(layer_classes().values())  # every layer of minnet.layers, new ones too


def test_the_layer_list_is_found():
    names = {cls.__name__ for cls in LAYERS}
    assert {"Linear", "ReLU", "Sigmoid", "Tanh", "LeakyReLU"} <= names


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("batch", [1, 5])
def test_every_layer_passes_its_gradient_check(cls, batch):
    rng = np.random.default_rng(0)
    layer = layer_example(cls, 4, rng)
    if batch == 1 and cls is minnet.BatchNorm1d:
        layer.eval()  # one row has no batch variance: refused in training mode, as torch does
    x = rng.standard_normal((batch, *example_shape(cls, 4)))
    report = layer.gradcheck(x)
    assert report.passed, str(report)
    assert set(report.by_parameter) == {name for name, _ in layer.named_parameters()} | {"input"}
    assert report.difference < 1e-8


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_every_layer_keeps_batch_and_dtype(cls):
    rng = np.random.default_rng(1)
    layer = layer_example(cls, 4, rng)
    x = rng.standard_normal((6, *example_shape(cls, 4)))
    out = layer.forward(x)
    assert out.shape[0] == 6
    assert out.shape[1:] == layer.output_shape(x.shape[1:])
    grad_input = layer.backward(np.ones_like(out))
    assert grad_input.shape == x.shape


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_backward_before_forward_is_a_runtime_error(cls):
    layer = layer_example(cls, 4, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, *layer.output_shape(example_shape(cls, 4)))))


def test_linear_shapes_and_seeded_init():
    a, b = minnet.Linear(4, 5, rng=7), minnet.Linear(4, 5, rng=7)
    assert a.W.value.shape == (5, 4) and a.b.value.shape == (5,)
    np.testing.assert_array_equal(a.W.value, b.W.value)
    assert not np.array_equal(a.W.value, minnet.Linear(4, 5, rng=8).W.value)
    np.testing.assert_array_equal(a.b.value, 0)
    assert [name for name, _ in a.named_parameters()] == ["W", "b"]


def test_linear_wrong_feature_count_names_layer_and_sizes():
    layer = minnet.Linear(4, 5)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=5.*\(batch, 4\).*3"):
        layer.forward(np.zeros((2, 3)))


@pytest.mark.parametrize("args", [(0, 3), (3, -1), (2.5, 3)])
def test_linear_rejects_bad_sizes(args):
    with pytest.raises((ValueError, TypeError)):
        minnet.Linear(*args)


def test_backward_adds_into_grad_until_zeroed():
    rng = np.random.default_rng(0)
    layer = minnet.Linear(3, 2, rng=rng)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(g)
    once = layer.W.grad.copy()
    layer.backward(g)
    np.testing.assert_allclose(layer.W.grad, 2 * once)
    np.testing.assert_allclose(once, g.T @ x)
    layer.zero_grad()
    np.testing.assert_array_equal(layer.W.grad, 0)
    np.testing.assert_array_equal(layer.b.grad, 0)


@pytest.mark.parametrize("z", [-1e308, -1000.0, -745.0, -30.0, 0.0, 30.0, 710.0, 1000.0, 1e308])
def test_sigmoid_never_overflows_or_warns(z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = minnet.Sigmoid().forward(np.array([[z]]))
    expected = 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    assert np.isfinite(out).all() and 0 <= out[0, 0] <= 1
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-15, atol=1e-300)


def test_relu_derivative_at_zero_is_zero():
    relu = minnet.ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_leaky_relu_slope():
    layer = minnet.LeakyReLU(0.1)
    np.testing.assert_allclose(layer.forward(np.array([[-2.0, 3.0]])), [[-0.2, 3.0]])
    with pytest.raises(ValueError):
        minnet.LeakyReLU(-0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_layers_keep_dtype(dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    for layer in (minnet.ReLU(), minnet.LeakyReLU(), minnet.Sigmoid(), minnet.Tanh()):
        assert layer.forward(x).dtype == dtype
        assert layer.backward(np.ones_like(x)).dtype == dtype


def test_from_weights_copies():
    W, b = np.ones((2, 3)), np.zeros(2)
    layer = minnet.Linear.from_weights(W, b)
    layer.W.value[...] = 5
    assert W[0, 0] == 1
    with pytest.raises(ValueError, match="shape"):
        minnet.Linear.from_weights(np.ones((2, 3)), np.zeros(3))


def test_the_initial_scale_is_chosen_when_the_layer_is_made():
    he, glorot = np.sqrt(2 / 400), np.sqrt(2 / 700)
    assert minnet.Linear(400, 300, rng=0).W.value.std() == pytest.approx(he, rel=0.01)
    assert minnet.Linear(400, 300, rng=0, init="glorot").W.value.std() == pytest.approx(
        glorot, rel=0.01
    )
    with pytest.raises(
        ValueError, match=r"init must be one of \['he', 'he_uniform', 'glorot'.*got 'auto'"
    ):
        minnet.Linear(2, 2, init="auto")


@pytest.mark.parametrize("activation", [minnet.ReLU, minnet.Tanh, minnet.Sigmoid])
def test_building_a_model_never_changes_a_weight(activation):
    # The snippet: weights set by hand (say, copied from torch) stay as they were.
    lin = minnet.Linear(2, 1)
    lin.W.value[...] = [[1.0, 2.0]]
    lin.b.value[...] = [0.5]
    mine = np.array([[3.0, 4.0]])
    other = minnet.Linear(2, 1)
    other.W.value = mine
    minnet.Sequential([lin, activation()])
    minnet.Sequential([other, activation()], dtype=np.float32)
    np.testing.assert_array_equal(lin.W.value, [[1.0, 2.0]])
    np.testing.assert_array_equal(lin.b.value, [0.5])
    np.testing.assert_array_equal(other.W.value, [[3.0, 4.0]])
    np.testing.assert_array_equal(mine, [[3.0, 4.0]])  # the user's own array too
