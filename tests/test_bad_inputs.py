"""Bad input to the public API: each gives a clear ``ValueError`` (or ``TypeError`` for a wrong
type) naming the argument, what was expected and what was given, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from minnet import (
    SGD,
    Adam,
    BatchNorm1d,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)


def small_model(**options) -> Sequential:
    return Sequential([Linear(3, 4, rng=0), ReLU(), Linear(4, 1, rng=1), Sigmoid()], **options)


def small_data(m: int = 8) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(m, 3))
    return X, (X[:, 0] > 0).astype(float)


# --- layers called directly -----------------------------------------------------------------
LAYERS = {
    "Linear": lambda: Linear(3, 2, rng=0),
    "ReLU": ReLU,
    "LeakyReLU": lambda: LeakyReLU(0.1),
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "Dropout": lambda: Dropout(0.5, seed=0),
    "Dropout-eval": lambda: Dropout(0.5, seed=0).eval(),
    "Softmax": Softmax,
    "BatchNorm1d": lambda: BatchNorm1d(3),
    "LayerNorm": lambda: LayerNorm(3),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint8, np.bool_])
def test_a_layer_computes_integer_and_bool_input_in_float64(make, dtype):
    x_int = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    out = make().forward(x_int)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, make().forward(x_int.astype(np.float64)))


def test_sigmoid_of_integers_is_not_rounded_to_zero():
    np.testing.assert_allclose(
        Sigmoid()(np.array([[1, 2, 3]])), 1 / (1 + np.exp(-np.array([[1.0, 2, 3]])))
    )


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_a_layer_takes_a_nested_list(make):
    rows = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    np.testing.assert_array_equal(make().forward(rows), make().forward(np.array(rows)))


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize(
    "x",
    [np.array([["a", "b", "c"]]), np.ones((2, 3), dtype=complex), np.ones((2, 3), dtype=object)],
    ids=["str", "complex", "object"],
)
def test_a_layer_refuses_non_real_input_with_a_type_error(make, x):
    layer = make()
    with pytest.raises(
        TypeError, match=rf"{type(layer).__name__}\(.*takes real numbers.*as x, got dtype"
    ):
        layer.forward(x)


# --- numbers given as arguments ---------------------------------------------------------------
def params():
    return small_model().parameters()


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: SGD(params(), lr=v), "lr"),
        (lambda v: SGD(params(), lr=0.1, momentum=v), "momentum"),
        (lambda v: Adam(params(), lr=v), "lr"),
        (lambda v: Adam(params(), eps=v), "eps"),
        (lambda v: LeakyReLU(v), "negative_slope"),
        (lambda v: Dropout(v), "p"),
    ],
    ids=["SGD-lr", "SGD-momentum", "Adam-lr", "Adam-eps", "LeakyReLU-slope", "Dropout-p"],
)
def test_a_non_finite_setting_is_refused_naming_it(make, name, bad):
    with pytest.raises(ValueError, match=rf"^{name} must be .*, got {bad!r}$"):
        make(bad)


def test_setting_an_infinite_learning_rate_later_is_refused_too():
    optimizer = SGD(params(), lr=0.1)
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got inf$"):
        optimizer.lr = float("inf")
    assert optimizer.lr == 0.1


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: SGD(params(), lr=v), "lr"),
        (lambda v: Adam(params(), eps=v), "eps"),
        (lambda v: LeakyReLU(v), "negative_slope"),
        (lambda v: Dropout(v), "p"),
        (lambda v: BatchNorm1d(3, momentum=v), "momentum"),
    ],
    ids=["SGD-lr", "Adam-eps", "LeakyReLU-slope", "Dropout-p", "BatchNorm1d-momentum"],
)
@pytest.mark.parametrize("bad", ["0.1", 1j, True, [0.1]], ids=["str", "complex", "bool", "list"])
def test_a_setting_that_is_not_a_number_is_a_type_error_naming_it(make, name, bad):
    with pytest.raises(TypeError, match=rf"^{name} must be a real number, got "):
        make(bad)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_p_outside_zero_to_one_is_refused(p):
    with pytest.raises(ValueError, match=rf"^p must be a number in \[0, 1\), got {p}$"):
        Dropout(p)


@pytest.mark.parametrize(
    "betas", [("a", 0.9), "ab", 0.9, (0.9,), (0.9, 0.99, 0.999), (np.nan, 0.9), (0.9, np.inf)]
)
def test_adam_betas_errors_name_betas(betas):
    with pytest.raises(ValueError, match=r"^betas must be two numbers in \[0, 1\), got "):
        Adam(params(), betas=betas)


@pytest.mark.parametrize("bad", [2.5, "3", None])
def test_linear_sizes_that_are_not_whole_numbers_are_a_type_error_naming_them(bad):
    with pytest.raises(TypeError, match=r"^in_features must be a whole number, got "):
        Linear(bad, 2)
    with pytest.raises(TypeError, match=r"^out_features must be a whole number, got "):
        Linear(2, bad)


def test_a_linear_size_below_one_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"^out_features must be a whole number >= 1, got 0$"):
        Linear(2, 0)
