"""Every layer: gradient-checked, shapes, errors, accumulation semantics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import example_shape, layer_example
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet.layers import layer_classes
from minnet.layers.base import MissingForwardError

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
    # a negative slope is torch's too (tests/test_torch_signatures.py); a non-finite one is not
    np.testing.assert_allclose(minnet.LeakyReLU(-0.5)(np.array([[-2.0, 3.0]])), [[1.0, 3.0]])
    with pytest.raises(ValueError):
        minnet.LeakyReLU(np.inf)


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


# --- a missing attribute: "backward before forward" only when that is what happened ----------
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: not hasattr(minnet.Layer, name) and name not in ("x", "helper")
)


@settings(max_examples=50, deadline=None)
@given(NAMES, st.integers(1, 4))
def test_a_typo_in_forward_is_a_plain_attribute_error_naming_it(name, n):
    class Typo(minnet.Layer):
        def forward(self, x):
            self.x = x
            return x * getattr(self, name)  # an attribute nobody sets: a typo

        def backward(self, grad_output):
            return grad_output

    with pytest.raises(AttributeError, match=f"Typo has no attribute '{name}'") as raised:
        Typo().forward(np.ones((2, n)))
    assert not isinstance(raised.value, MissingForwardError)
    assert "backward" not in str(raised.value)
    assert not hasattr(Typo(), name)


@settings(max_examples=50, deadline=None)
@given(NAMES, st.integers(1, 4))
def test_an_attribute_forward_keeps_read_by_a_backward_before_any_forward_says_so(name, n):
    class Keeps(minnet.Layer):
        def forward(self, x):
            setattr(self, name, x)
            return 2 * x

        def backward(self, grad_output):
            return self.helper(grad_output)  # read in a helper of backward: diagnosed too

        def helper(self, grad_output):
            return 2 * grad_output + 0 * getattr(self, name)

    layer = Keeps()
    with pytest.raises(MissingForwardError, match="backward\\(\\) was called before"):
        layer.backward(np.ones((2, n)))
    layer.forward(np.ones((2, n)))
    np.testing.assert_array_equal(layer.backward(np.ones((2, n))), np.full((2, n), 2.0))


# --- a backward takes what its forward takes -------------------------------------------------
@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["list", "int"]))
def test_every_layer_backward_takes_a_nested_list_or_integers_as_forward_does(cls, seed, kind):
    rng = np.random.default_rng(seed)
    layer = layer_example(cls, 4, np.random.default_rng(0))
    x = rng.standard_normal((3, *example_shape(cls, 4)))
    out = layer.forward(x)
    g = rng.integers(-3, 4, out.shape)
    given_g = g.tolist() if kind == "list" else g
    layer.zero_grad()
    from_given = layer.backward(given_g)
    grads = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    expected = layer.backward(g.astype(np.float64))
    np.testing.assert_array_equal(from_given, expected)
    for grad, p in zip(grads, layer.parameters(), strict=True):
        np.testing.assert_array_equal(grad, p.grad)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_every_layer_backward_refuses_a_gradient_that_is_not_numbers_naming_it(cls):
    layer = layer_example(cls, 4, np.random.default_rng(0))
    out = layer.forward(np.ones((2, *example_shape(cls, 4))))
    with pytest.raises(TypeError, match="grad_output"):
        layer.backward(np.full(out.shape, "a"))


# --- train(mode) takes True or False, as every flag --------------------------------------------
@pytest.mark.parametrize("mode", ["no", "eval", 0, 1, None, 0.0, [True]])
def test_train_refuses_a_mode_that_is_not_a_bool_and_changes_nothing(mode):
    layer = minnet.Dropout(0.5)
    model = minnet.Sequential([minnet.Linear(2, 1), minnet.Dropout(0.5)]).eval()
    with pytest.raises(TypeError, match="mode must be True or False"):
        layer.train(mode)
    with pytest.raises(TypeError, match="mode must be True or False"):
        model.train(mode)
    assert layer.training and not any(layer.training for layer in model)
    assert not layer.train(np.False_).training and model.train(np.True_)[1].training
