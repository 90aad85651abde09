"""Bad input to the public API: each gives a clear ``ValueError`` (or ``TypeError`` for a wrong
type) naming the argument, what was expected and what was given, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
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
    with pytest.raises(ValueError, match=r"^lr must be a finite number >= 0, got inf$"):
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


# --- the model: cost, data and dtype ----------------------------------------------------------
def test_cost_of_zero_rows_is_a_value_error():
    with pytest.raises(ValueError, match=r"^X must have at least one row .*got shape \(0, 3\)$"):
        small_model().cost(np.zeros((0, 3)), np.zeros(0))


def test_finite_x_that_overflows_a_float32_model_says_it_overflows():
    model = small_model(dtype=np.float32)
    with pytest.raises(ValueError, match=r"^X overflows the model's dtype float32: .* 1e\+300"):
        model.cost(np.full((2, 3), 1e300), np.zeros(2))


def test_finite_x_that_overflows_is_refused_by_predict_and_fit_too():
    model = small_model(dtype=np.float32)
    X = np.full((2, 3), -1e39)
    with pytest.raises(ValueError, match=r"^X overflows the model's dtype float32"):
        model.predict(X)
    with pytest.raises(ValueError, match=r"^fit: X overflows the model's dtype float32"):
        model.fit(X, [0, 1], progress=False)


def test_non_finite_x_is_still_called_non_finite_not_an_overflow():
    model = small_model(dtype=np.float32)
    X = np.array([[1e300, np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"^X must be finite, but 1 entries are NaN or infinite$"):
        model.cost(X, [0])


def test_regression_targets_that_overflow_the_model_dtype_are_refused():
    model = Sequential([Linear(2, 1, rng=0)], loss=minnet.MSELoss(), dtype=np.float32)
    with pytest.raises(ValueError, match=r"^Y overflows the model's dtype float32"):
        model.cost(np.ones((2, 2)), np.array([1e300, 1.0]))


def test_sequential_without_a_loss_fails_at_construction():
    with pytest.raises(TypeError, match=r"^loss must be a minnet Loss .*got NoneType$"):
        Sequential([Linear(2, 1)], loss=None)


@pytest.mark.parametrize("layers", [None, 3, "Linear"])
def test_sequential_of_something_not_a_list_names_what_it_got(layers):
    with pytest.raises(TypeError, match=r"^Sequential takes a list of layers, .*got "):
        Sequential(layers)


def test_sequential_dtype_that_numpy_does_not_know_names_dtype():
    with pytest.raises(TypeError, match=r"^dtype must be a numpy floating-point type.*'foo'$"):
        Sequential([Linear(2, 1)], dtype="foo")


# --- Linear.from_weights ------------------------------------------------------------------------
def test_from_weights_refuses_complex_weights_instead_of_dropping_the_imaginary_part():
    with pytest.raises(
        TypeError, match=r"^Linear.from_weights needs real numbers for W, .*complex"
    ):
        Linear.from_weights(np.array([[1 + 1j]]), np.array([0.0]))
    with pytest.raises(TypeError, match=r"needs real numbers for b, got dtype complex128"):
        Linear.from_weights(np.array([[1.0]]), np.array([2j]))


def test_from_weights_refuses_strings_naming_the_array():
    with pytest.raises(TypeError, match=r"needs real numbers for W, got dtype <U1"):
        Linear.from_weights([["a"]], [0.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_from_weights_refuses_non_finite_weights(bad):
    with pytest.raises(ValueError, match=r"^Linear.from_weights needs finite b, but 1 of"):
        Linear.from_weights(np.ones((2, 2)), np.array([0.0, bad]))


def test_from_weights_refuses_a_bias_that_overflows_the_weights_dtype():
    W = np.ones((1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"needs finite b, but 1 of its entries .* in float32"):
        Linear.from_weights(W, np.array([1e300]))


def test_from_weights_of_integers_makes_a_float64_layer():
    layer = Linear.from_weights([[1, 2]], [3])
    assert layer.W.value.dtype == layer.b.value.dtype == np.float64


# --- fit's arguments ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["abc", 1.5, True, object()])
def test_fit_seed_of_the_wrong_type_is_a_type_error_naming_seed(seed):
    X, Y = small_data()
    with pytest.raises(TypeError, match=r"^seed must be None, a non-negative int or a numpy Gen"):
        small_model().fit(X, Y, seed=seed, progress=False)


def test_fit_negative_seed_is_a_value_error_naming_seed():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^seed must be None, a non-negative int .*got -1$"):
        small_model().fit(X, Y, seed=-1, progress=False)


def test_fit_seed_may_be_a_generator():
    X, Y = small_data()
    history = small_model().fit(X, Y, seed=np.random.default_rng(0), epochs=1, progress=False)
    assert history.epochs == 1


@pytest.mark.parametrize("name", ["shuffle", "progress"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_fit_flags_that_are_not_bools_are_refused_instead_of_read_as_truthy(name, value):
    X, Y = small_data()
    options = {"progress": False, name: value}
    with pytest.raises(TypeError, match=rf"^{name} must be True or False, got {value!r}$"):
        small_model().fit(X, Y, **options)


# --- divergence that is not the learning rate's fault -------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fit_refuses_non_finite_weights_before_training_instead_of_blaming_lr(bad):
    X, Y = small_data()
    model = small_model()
    model.layers[2].b.value[0] = bad
    with pytest.raises(ValueError, match=r"^fit: parameter '2.b' holds 1 NaN or infinite") as err:
        model.fit(X, Y, progress=False)
    assert "not a learning-rate problem" in str(err.value)


def test_fit_refuses_a_non_finite_batch_norm_buffer_before_training():
    X, Y = small_data()
    model = Sequential([Linear(3, 2, rng=0), BatchNorm1d(2), Linear(2, 1, rng=1), Sigmoid()])
    model.layers[1].running_var[0] = np.nan
    with pytest.raises(ValueError, match=r"^fit: buffer '1.running_var' holds 1 NaN"):
        model.fit(X, Y, progress=False)


def test_weights_that_overflow_on_the_first_batch_are_not_blamed_on_lr():
    X, Y = small_data()
    model = small_model()
    for layer in (model.layers[0], model.layers[2]):
        layer.W.value[...] = 1e200
    with pytest.raises(ValueError, match=r"^fit: .* before any update .*not the cause") as err:
        model.fit(X, Y, optimizer=SGD(model.parameters(), lr=1e-6), progress=False)
    assert "the weights 1e+200 (parameter '0.W')" in str(err.value)
    assert "lr=" not in str(err.value)


def test_data_that_overflows_on_the_first_batch_is_not_blamed_on_lr():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^fit: .*not the cause.* the data reach 1e\+308"):
        small_model().fit(np.sign(X) * 1e308, Y, progress=False)


def test_validation_data_that_overflows_before_training_is_not_blamed_on_lr():
    X, Y = small_data()
    huge = np.full((2, 3), 1e308)
    with pytest.raises(ValueError, match=r"^validation_data: .*not the cause.*reach 1e\+308"):
        small_model().fit(X, Y, validation_data=(huge, [0, 1]), progress=False)


def test_a_real_divergence_still_blames_the_learning_rate():
    X, Y = small_data(40)
    model = small_model()
    optimizer = SGD(model.parameters(), lr=1e200)
    with pytest.raises(minnet.DivergenceError, match=r"SGD lr=1e\+200\) is probably too large"):
        model.fit(X, Y, optimizer=optimizer, epochs=5, batch_size=10, progress=False)


# --- ragged input, zero rows to a loss -------------------------------------------------------
def test_a_ragged_list_as_x_names_x():
    with pytest.raises(
        ValueError, match=r"^X must be a rectangular array of numbers, got a ragged"
    ):
        small_model().predict([[1, 2, 3], [3]])


def test_a_ragged_list_as_y_names_y():
    with pytest.raises(ValueError, match=r"^Y: targets must be a rectangular array of numbers"):
        small_model().cost(np.ones((2, 3)), [[1], [0, 1]])


def test_a_ragged_list_to_a_layer_names_x():
    with pytest.raises(ValueError, match=r"^x must be a rectangular array of numbers"):
        ReLU()([[1.0], [1.0, 2.0]])


@pytest.mark.parametrize("loss", [minnet.MSELoss(), minnet.BCELoss(), minnet.BCEWithLogitsLoss()])
def test_a_loss_called_on_zero_rows_is_a_value_error(loss):
    with pytest.raises(
        ValueError, match=r"needs at least one row to take a mean, got shape \(0, 1\)"
    ):
        loss(np.zeros((0, 1)), np.zeros((0, 1)))


def test_cross_entropy_called_on_zero_rows_is_a_value_error():
    with pytest.raises(
        ValueError, match=r"needs at least one row to take a mean, got shape \(0, 2\)"
    ):
        minnet.CrossEntropyLoss()(np.zeros((0, 2)), np.zeros(0, dtype=int))


# --- what a new user gets wrong, already refused clearly (kept so) ----------------------------
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_predict_with_the_wrong_number_of_features_names_both(method):
    with pytest.raises(ValueError, match=r"^X has 4 features but layer 0 \(Linear.*\) expects 3$"):
        getattr(small_model(), method)(np.zeros((2, 4)))


def test_predict_of_a_single_row_as_a_vector_asks_for_two_dimensions():
    with pytest.raises(
        ValueError, match=r"^X must have shape \(batch, features\), got shape \(3,\)"
    ):
        small_model().predict(np.zeros(3))


def test_evaluate_with_fewer_targets_than_rows_gives_both_shapes():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^evaluate: Y: BCELoss needs targets of shape \(8,\)"):
        small_model().evaluate(X, Y[:3])


def test_evaluate_of_zero_rows_is_a_value_error():
    with pytest.raises(ValueError, match=r"^evaluate: X must have at least one row"):
        small_model().evaluate(np.zeros((0, 3)), np.zeros(0))


def test_fit_with_mismatched_x_and_y_is_a_value_error():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^fit: Y: BCELoss needs targets of shape \(8,\)"):
        small_model().fit(X, Y[:5], progress=False)


def test_fit_validation_data_with_the_wrong_features_names_validation_data():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^validation_data: X has 2 features but layer 0"):
        small_model().fit(X, Y, validation_data=(X[:, :2], Y), progress=False)


def test_fit_validation_data_with_mismatched_targets_names_validation_data():
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^validation_data: Y: BCELoss needs targets of shape"):
        small_model().fit(X, Y, validation_data=(X, Y[:2]), progress=False)


@pytest.mark.parametrize("bad", [(1, 2, 3), np.zeros((2, 3)), "xy"])
def test_fit_validation_data_that_is_not_a_pair_is_refused(bad):
    X, Y = small_data()
    with pytest.raises(ValueError, match=r"^validation_data must be a pair \(X_val, Y_val\)"):
        small_model().fit(X, Y, validation_data=bad, progress=False)


COUNTS = [("batch_size", 0), ("batch_size", 1.5), ("batch_size", -4), ("epochs", 1.5),
          ("epochs", 0), ("epochs", True)]  # fmt: skip


@pytest.mark.parametrize("name, value", COUNTS)
def test_fit_counts_must_be_positive_ints(name, value):
    X, Y = small_data()
    with pytest.raises(ValueError, match=rf"^{name} must be a positive int, got {value!r}$"):
        small_model().fit(X, Y, progress=False, **{name: value})


@pytest.mark.parametrize("threshold", [-0.1, 1.5, np.nan, "0.5", True])
def test_predict_threshold_outside_zero_to_one_is_refused(threshold):
    X, _ = small_data()
    with pytest.raises(ValueError, match=r"^threshold must be a number in \[0, 1\], got "):
        small_model().predict(X, threshold=threshold)


def test_fit_with_an_optimizer_class_instead_of_an_object_is_a_type_error():
    X, Y = small_data()
    with pytest.raises(TypeError, match=r"^optimizer must be a minnet Optimizer .*got type$"):
        small_model().fit(X, Y, optimizer=Adam, progress=False)


def test_a_threshold_for_a_model_that_is_not_binary_is_refused():
    model = Sequential(
        [Linear(3, 4, rng=0), ReLU(), Linear(4, 3, rng=1), minnet.Softmax()],
        loss=minnet.CrossEntropyLoss(),
    )
    X = np.random.default_rng(0).normal(size=(5, 3))
    assert model.predict(X).shape == (5,)
    with pytest.raises(ValueError, match="threshold applies to binary models only"):
        model.predict(X, threshold=0.3)


# --- booleans are not numbers: True, np.True_ (what x > 0 gives), arrays of bools -------------
def _parameters():
    return [minnet.Parameter(np.zeros(3))]


def _optimizer():
    return SGD(_parameters(), lr=0.1)


# Every public callable that takes a number, with the arguments it needs; the numbers it takes
# are found in its signature (every argument whose default is a number), plus those named here.
NUMBER_TAKERS = {
    "SGD": (lambda **kw: SGD(_parameters(), **{"lr": 0.1, **kw}), ["lr"]),
    "Adam": (lambda **kw: Adam(_parameters(), **kw), []),
    "AdamW": (lambda **kw: minnet.AdamW(_parameters(), **kw), []),
    "RMSprop": (lambda **kw: minnet.RMSprop(_parameters(), **kw), []),
    "Adagrad": (lambda **kw: minnet.Adagrad(_parameters(), **kw), []),
    "Dropout": (lambda **kw: Dropout(**kw), []),
    "LeakyReLU": (lambda **kw: LeakyReLU(**kw), []),
    "Softmax": (lambda **kw: minnet.Softmax(**kw), []),
    "LogSoftmax": (lambda **kw: minnet.LogSoftmax(**kw), []),
    "BatchNorm1d": (lambda **kw: BatchNorm1d(**{"num_features": 3, **kw}), ["num_features"]),
    "BatchNorm2d": (
        lambda **kw: minnet.BatchNorm2d(**{"num_features": 3, **kw}),
        ["num_features"],
    ),
    "LayerNorm": (lambda **kw: LayerNorm(**{"num_features": 3, **kw}), ["num_features"]),
    "Linear": (
        lambda **kw: Linear(**{"in_features": 3, "out_features": 2, **kw}),
        ["in_features", "out_features"],
    ),
    "Conv2d": (
        lambda **kw: minnet.Conv2d(**{"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kw}),
        ["in_channels", "out_channels", "kernel_size"],
    ),
    "MaxPool2d": (lambda **kw: minnet.MaxPool2d(**{"kernel_size": 2, **kw}), ["kernel_size"]),
    "AvgPool2d": (lambda **kw: minnet.AvgPool2d(**{"kernel_size": 2, **kw}), ["kernel_size"]),
    "CrossEntropyLoss": (lambda **kw: minnet.CrossEntropyLoss(**kw), []),
    "NLLLoss": (lambda **kw: minnet.NLLLoss(**kw), []),
    "HuberLoss": (lambda **kw: minnet.HuberLoss(**kw), []),
    "MultiMarginLoss": (lambda **kw: minnet.MultiMarginLoss(**kw), []),
    "Sequential": (lambda **kw: Sequential([Linear(3, 1, rng=0)], **kw), []),
    "clip_grad_norm_": (
        lambda **kw: minnet.clip_grad_norm_(_parameters(), **{"max_norm": 1.0, **kw}),
        ["max_norm"],
    ),
    "StepLR": (
        lambda **kw: minnet.StepLR(_optimizer(), **{"step_size": 2, **kw}),
        ["step_size"],
    ),
    "ExponentialLR": (
        lambda **kw: minnet.ExponentialLR(_optimizer(), **{"gamma": 0.9, **kw}),
        ["gamma"],
    ),
    "CosineAnnealingLR": (
        lambda **kw: minnet.CosineAnnealingLR(_optimizer(), **{"T_max": 5, **kw}),
        ["T_max"],
    ),
    "ReduceLROnPlateau": (lambda **kw: minnet.ReduceLROnPlateau(_optimizer(), **kw), []),
    "EarlyStopping": (lambda **kw: minnet.EarlyStopping(**kw), []),
}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers_taken(name: str) -> list[str]:
    import inspect

    signature = inspect.signature(getattr(minnet, name))
    found = [arg for arg, p in signature.parameters.items() if _is_number(p.default)]
    return sorted(set(found) | set(NUMBER_TAKERS[name][1]))


NUMBER_ARGUMENTS = [(name, arg) for name in NUMBER_TAKERS for arg in _numbers_taken(name)]
BOOLEANS = [True, False, np.True_, np.False_, np.array(True), np.array(False), np.array([True])]


def test_the_table_lists_every_public_callable_with_a_number_argument():
    import inspect

    for name in minnet.__all__:
        obj = getattr(minnet, name)
        if not callable(obj) or name in ("History", "GradcheckReport", "DivergenceError"):
            continue
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        numbers = [arg for arg, p in signature.parameters.items() if _is_number(p.default)]
        if numbers and not name.startswith("check_"):  # the checks: minnet.gradcheck's area
            assert name in NUMBER_TAKERS, f"{name} takes numbers {numbers}: add it to the table"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NUMBER_ARGUMENTS), st.sampled_from(range(len(BOOLEANS))))
def test_a_boolean_is_refused_wherever_a_number_is_taken(target, which):
    name, argument = target
    make, _ = NUMBER_TAKERS[name]
    make()  # the arguments themselves are fine
    with pytest.raises((TypeError, ValueError), match=argument):
        make(**{argument: BOOLEANS[which]})


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["Adam", "AdamW"]), st.integers(0, 1), st.sampled_from(BOOLEANS))
def test_a_boolean_in_adams_betas_is_refused(name, position, boolean):
    betas = [0.9, 0.999]
    betas[position] = boolean
    with pytest.raises((TypeError, ValueError), match="betas"):
        NUMBER_TAKERS[name][0](betas=tuple(betas))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=8, max_size=8), st.sampled_from([list, np.array]))
def test_sample_weights_of_booleans_are_refused_naming_them(mask, kind):
    X, y = small_data(8)
    mask[0] = True
    with pytest.raises(TypeError, match="sample_weight must hold real numbers, got booleans"):
        small_model().cost(X, y, sample_weight=kind(mask))
    weights = np.asarray(mask, dtype=float)  # what the message says to write
    assert np.isfinite(small_model().cost(X, y, sample_weight=weights))


@pytest.mark.parametrize("loss", [minnet.CrossEntropyLoss, minnet.NLLLoss, minnet.MultiMarginLoss])
@pytest.mark.parametrize("kind", [list, np.array])
def test_booleans_are_not_class_weights(loss, kind):
    with pytest.raises(TypeError, match="weight must hold real numbers, got booleans"):
        loss(weight=kind([True, False, True]))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6))
def test_summary_takes_an_int_as_the_shape_of_rows_and_refuses_other_shapes_naming_them(n):
    model = Sequential([Linear(n, 2, rng=0), Sigmoid()])
    assert model.summary(input_shape=n) == model.summary(input_shape=(n,))
    assert model.summary(input_shape=np.int64(n)) == model.summary(input_shape=[n])
    for bad in ["4", 4.0, True, {n: 1}, object()]:
        with pytest.raises(TypeError, match="input_shape"):
            model.summary(input_shape=bad)
    with pytest.raises(ValueError, match="input_shape must be a whole number >= 1"):
        model.summary(input_shape=0)
