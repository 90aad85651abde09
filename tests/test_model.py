"""Sequential + BCE: chaining, bad input, stable loss, and agreement with PyTorch autograd."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import import_torch, random_data, random_net

import minnet
from minnet import BCELoss, Linear, ReLU, Sequential, Sigmoid


def small_model():
    return Sequential([Linear(3, 4, rng=0), ReLU(), Linear(4, 1, rng=1), Sigmoid()])


# --- construction -----------------------------------------------------------------------------


def test_layers_that_do_not_chain_name_both_sizes():
    with pytest.raises(ValueError, match=r"layer 1.*out_features=1.*gives 5 features.*takes 6"):
        Sequential([Linear(4, 5), Linear(6, 1)])
    with pytest.raises(ValueError, match="do not chain"):
        Sequential([Linear(4, 5), ReLU(), Linear(6, 1)])


def test_empty_sequential_is_refused():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([])


def test_non_layers_are_refused():
    with pytest.raises(TypeError, match="layer 1"):
        Sequential([Linear(2, 2), np.tanh])


def test_parameter_names_follow_layer_indices():
    model = Sequential([Linear(2, 3), ReLU(), Linear(3, 1), Sigmoid()])
    assert [name for name, _ in model.named_parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    assert len(model.parameters()) == 4
    assert model.in_features == 2 and model.out_features == 1


# --- bad input --------------------------------------------------------------------------------

X_OK = np.zeros((4, 3))
Y_OK = np.array([0, 1, 1, 0])


@pytest.mark.parametrize(
    ("X", "Y", "pattern"),
    [
        (np.zeros((4, 2)), Y_OK, r"X has 2 features but layer 0 \(Linear.*\) expects 3"),
        (np.zeros(3), Y_OK, r"X must have shape \(batch, features\), got shape \(3,\)"),
        (
            X_OK,
            np.array([0, 1, 1]),
            r"Y: BCELoss needs targets of shape \(4,\) or \(4, 1\).*got \(3,\)",
        ),
        (X_OK, np.zeros((4, 2)), r"got \(4, 2\)"),
        (X_OK, np.array([0, 1, 2, 0]), r"Y: BCELoss needs targets in \[0, 1\].*from 0.* to 2"),
        (X_OK, np.array([0, -0.5, 1, 0]), r"targets in \[0, 1\]"),
        (np.array([[0, 0, np.nan]] * 4), Y_OK, "X must be finite, but 4 entries are NaN"),
        (np.array([[0, 0, np.inf]] * 4), Y_OK, "X must be finite"),
        (X_OK, np.array([0, np.nan, 1, 0]), "Y: targets must be finite"),
    ],
)
def test_bad_input_is_a_clear_value_error(X, Y, pattern):
    model = small_model()
    before = [p.value.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=pattern):
        model.cost(X, Y)
    for p, value in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.value, value)


def test_forward_checks_features_too():
    with pytest.raises(ValueError, match="X has 5 features"):
        small_model().forward(np.zeros((2, 5)))


def test_backward_before_cost_and_twice_is_a_runtime_error():
    model = small_model()
    with pytest.raises(RuntimeError, match="cost"):
        model.backward()
    model.cost(np.ones((2, 3)), [0, 1])
    model.backward()
    with pytest.raises(RuntimeError, match="cost"):
        model.backward()


def test_nothing_the_user_passed_is_modified():
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 5, 3)
    X_copy, Y_copy = X.copy(), Y.copy()
    model = small_model()
    model.cost(X, Y)
    model.backward()
    model.gradcheck(X, Y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(Y, Y_copy)
    assert Y.shape == (5,)


def test_labels_as_vector_or_column_give_the_same_cost():
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 6, 3)
    model = small_model()
    assert model.cost(X, Y) == model.cost(X, Y.reshape(-1, 1))


def test_integer_data_is_accepted():
    assert np.isfinite(small_model().cost(np.ones((2, 3), dtype=int), [0, 1]))


# --- the stable loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("logit", [-1000.0, -50.0, 0.0, 50.0, 1000.0])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_cost_from_extreme_logits_is_exact_and_warning_free(logit, label):
    model = Sequential([Linear.from_weights(np.array([[1.0]]), np.array([0.0])), Sigmoid()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost = model.cost(np.array([[logit]]), np.array([label]))
        model.backward()
    expected = np.logaddexp(0, logit) - label * logit  # softplus(z) - y z, exactly
    assert np.isfinite(cost)
    np.testing.assert_allclose(cost, expected, rtol=1e-15)
    grad = model.layers[0].W.grad[0, 0]
    expected_grad = (1 / (1 + np.exp(-np.clip(logit, -700, 700))) - label) * logit
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-15, atol=1e-290)


def test_bce_on_probabilities_clamps_like_pytorch():
    loss = BCELoss()
    value = loss.forward(np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]))
    assert value == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        loss.forward(np.array([[1.5]]), np.array([[1.0]]))


def test_model_without_final_sigmoid_uses_probabilities():
    model = Sequential([Linear.from_weights(np.array([[1.0, 1.0]]), np.array([0.0]))])
    with pytest.raises(ValueError, match="end the model with a Sigmoid"):
        model.cost(np.array([[3.0, -4.0], [5.0, 1.0]]), [0, 1])


# --- agreement with PyTorch autograd -----------------------------------------------------------


def torch_twin(model: Sequential, torch):
    """The same net in torch, float64, sharing minnet's initial weights."""
    modules = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            linear = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.W.value))
                linear.bias.copy_(torch.from_numpy(layer.b.value))
            modules.append(linear)
        elif isinstance(layer, minnet.LeakyReLU):
            modules.append(torch.nn.LeakyReLU(layer.negative_slope))
        else:
            simple = {"ReLU": torch.nn.ReLU, "Sigmoid": torch.nn.Sigmoid, "Tanh": torch.nn.Tanh}
            modules.append(simple[type(layer).__name__]())
    return modules


def torch_cost_and_grads(model, X, Y, torch):
    modules = torch_twin(model, torch)
    out = torch.from_numpy(X)
    for module in modules[:-1]:
        out = module(out)
    target = torch.from_numpy(Y.reshape(-1, 1).astype(np.float64))
    cost = torch.nn.functional.binary_cross_entropy_with_logits(out, target)
    cost.backward()
    grads = []
    for module in modules:
        if isinstance(module, torch.nn.Linear):
            grads += [module.weight.grad.numpy(), module.bias.grad.numpy()]
    return float(cost.detach()), grads


def rel_err(a, b):
    return np.linalg.norm(np.ravel(a) - np.ravel(b)) / max(np.linalg.norm(np.ravel(b)), 1e-300)


ARCHITECTURES = [
    ([4, 5, 3, 1], ReLU),
    ([2, 16, 16, 1], ReLU),
    ([7, 1], ReLU),
    ([3, 10, 1], minnet.Tanh),
    ([5, 8, 6, 4, 1], minnet.LeakyReLU),
    ([6, 20, 1], Sigmoid),
]


@pytest.mark.parametrize(("sizes", "activation"), ARCHITECTURES)
@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("seed", range(3))
def test_cost_and_gradients_match_pytorch(sizes, activation, batch, seed):
    torch = import_torch()
    rng = np.random.default_rng(seed)
    model = random_net(rng, sizes, activation)
    X, Y = random_data(rng, batch, sizes[0])
    cost = model.cost(X, Y)
    model.backward()
    torch_cost, torch_grads = torch_cost_and_grads(model, X, Y, torch)
    assert rel_err(cost, torch_cost) < 1e-9
    for (name, p), expected in zip(model.named_parameters(), torch_grads, strict=True):
        assert p.grad.shape == expected.shape, name
        assert rel_err(p.grad, expected) < 1e-9, name


def test_extreme_logits_match_pytorch():
    torch = import_torch()
    z = np.array([[-1000.0], [-30.0], [0.5], [30.0], [1000.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0], [1.0]])
    loss = BCELoss()
    value = loss.forward_fused(z, y)
    zt = torch.tensor(z, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(zt, torch.tensor(y))
    expected.backward()
    assert rel_err(value, float(expected.detach())) < 1e-12
    assert rel_err(loss.backward(), zt.grad.numpy()) < 1e-12


def test_forward_after_cost_makes_backward_wait_for_a_new_cost():
    model = small_model()
    model.cost(np.ones((2, 3)), [0, 1])
    model.forward(np.zeros((5, 3)))
    with pytest.raises(RuntimeError, match="cost"):
        model.backward()


def test_the_fast_path_skips_only_the_first_layers_input_gradient_and_changes_no_number():
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 8, 3)
    grads = {}
    for fast in (True, False):
        minnet.use_fast_path(fast)
        try:
            model = Sequential([Linear(3, 4, rng=1), ReLU(), Linear(4, 1, rng=2), Sigmoid()])
            model.zero_grad()
            model.cost(X, Y)
            model.backward()
            grads[fast] = [p.grad.copy() for p in model.parameters()]
        finally:
            minnet.use_fast_path(True)
    for fast_grad, textbook_grad in zip(grads[True], grads[False], strict=True):
        np.testing.assert_array_equal(fast_grad, textbook_grad)


def test_review_cases_zero_grad_storage_and_shapes():
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 6, 3)
    # A parameter replaced after the model was made is still zeroed by zero_grad.
    model = Sequential([Linear(3, 4, rng=0), minnet.Tanh(), Linear(4, 1, rng=1), Sigmoid()])
    model.layers[2].W = minnet.Parameter(np.ones((1, 4)))
    grads = []
    for _ in range(2):
        model.zero_grad()
        model.cost(X, Y)
        model.backward()
        grads.append(model.layers[2].W.grad.copy())
    np.testing.assert_allclose(grads[0], grads[1])
    # A value assigned in another memory order is still updated by a step.
    W = model.layers[0].W
    W.value = np.asfortranarray(W.value)
    before = W.value.copy()
    opt = minnet.SGD(model.parameters(), lr=1.0)
    opt.zero_grad()
    model.cost(X, Y)
    model.backward()
    opt.step()
    assert not np.array_equal(W.value, before)
    # The same layer twice is refused; a single-Sigmoid model runs backward.
    layer = Linear(3, 3)
    with pytest.raises(ValueError, match="layer 2 is the same object as layer 0"):
        Sequential([layer, ReLU(), layer])
    lone = Sequential([Sigmoid()])
    lone.cost(X[:, :1], Y)
    lone.backward()
    with pytest.raises(ValueError, match="dtype"):
        small_model().cost(X, np.array(["a"] * 6))


def test_a_float32_model_is_checked_in_float64():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float16):
        model = Sequential(
            [Linear(3, 4, rng=rng), minnet.Tanh(), Linear(4, 1, rng=rng), Sigmoid()], dtype=dtype
        )
        report = model.gradcheck(*random_data(rng, 5, 3))
        assert report.passed and report.difference < 1e-9, str(report)


def test_a_linear_subclass_first_in_a_model_gets_its_input_gradient():
    from minnet.teaching.bugs import WrongInputGrad

    rng = np.random.default_rng(2)
    model = Sequential([WrongInputGrad(3, 3, rng=rng), minnet.Tanh(), Linear(3, 1), Sigmoid()])
    X, Y = random_data(rng, 4, 3)
    model.cost(X, Y)
    model.backward()
    assert model.gradcheck(X, Y).passed  # its input gradient is wrong, but nothing uses it


def test_bce_refuses_predictions_and_targets_of_different_shapes():
    with pytest.raises(ValueError, match=r"one shape, got \(3, 1\) and \(3,\)"):
        BCELoss().forward(np.full((3, 1), 0.5), np.ones(3))
    with pytest.raises(ValueError, match="one shape"):
        BCELoss().forward_fused(np.zeros((3, 1)), np.ones(3))


def test_a_parameter_shared_by_two_layers_is_one_parameter_of_the_model():
    first, second = Linear(2, 2, rng=0), Linear(2, 2, rng=1)
    second.W = first.W  # tied weights
    model = Sequential([first, minnet.Tanh(), second, minnet.Tanh(), Linear(2, 1), Sigmoid()])
    assert sum(p is first.W for p in model.parameters()) == 1
    assert second.W is first.W  # flat storage or not, both layers hold the one parameter
    X, Y = random_data(np.random.default_rng(3), 4, 2)
    assert model.gradcheck(X, Y).passed


def test_more_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match=r"Sequential\(\[Linear"):
        Sequential(Linear(3, 4))
    with pytest.raises(ValueError, match="betas must be two numbers"):
        minnet.Adam(small_model().parameters(), betas=0.9)
    with pytest.raises(ValueError, match=r"init must be one of \['he', 'he_uniform', 'glorot'"):
        Linear(2, 2, init="xavier")
    layer = Linear(3, 2)
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"grad_output of shape \(4, 2\).*got \(4, 3\)"):
        layer.backward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="X must hold real numbers"):
        small_model().cost(np.ones((2, 3)) * 1j, [0, 1])


def test_sequential_dtype_reaches_the_layers():
    model = Sequential(
        [Linear(3, 2, rng=0), ReLU(), Linear(2, 1, rng=1), Sigmoid()], dtype=np.float32
    )
    assert all(layer.dtype == np.float32 for layer in model.layers if isinstance(layer, Linear))


# --- nothing changes behind the user's back ------------------------------------------------------


@pytest.mark.parametrize("zero", ["model", "optimizer", "per-parameter"])
def test_a_kept_gradient_array_sees_eager_zeros_and_plain_additions(zero):
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 5, 3)
    model, reference = small_model(), small_model()
    optimizer = minnet.SGD(model.parameters(), lr=0.1, flat=zero != "per-parameter")
    zero_grad = model.zero_grad if zero == "model" else optimizer.zero_grad
    model.cost(X, Y)
    model.backward()
    g = model.layers[0].W.grad  # kept from before
    zero_grad()
    np.testing.assert_array_equal(g, 0)  # the snippet printed the old gradient
    g += 1.0
    model.cost(X, Y)
    model.backward()
    reference.cost(X, Y)
    reference.backward()
    assert model.layers[0].W.grad is g
    np.testing.assert_array_equal(g, 1.0 + reference.layers[0].W.grad)  # the +1 is kept


def test_a_layer_of_a_live_model_is_refused_by_a_second_model():
    rng = np.random.default_rng(1)
    A = small_model()
    before = [p.value.copy() for p in A.parameters()]
    with pytest.raises(
        ValueError, match=r"layer 0 \(Linear.*already belongs to another Sequential"
    ):
        Sequential([A.layers[0], minnet.Tanh()])
    with pytest.raises(ValueError, match="already belongs to another Sequential"):
        Sequential([A.layers[0], Sigmoid()], dtype=np.float32)
    # A is untouched: its dtype, its storage, its values, its gradients.
    assert A.dtype == np.float64 and all(p.dtype == np.float64 for p in A.parameters())
    assert A.layers[0].dtype == np.float64
    assert minnet._fast.FlatStorage.find(A.parameters()) is not None
    for p, value in zip(A.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.value, value)
    X, Y = random_data(rng, 4, 3)
    A.cost(X, Y)
    A.backward()
    assert A.gradcheck(X, Y).passed


def test_a_layer_is_free_again_once_its_model_is_gone():
    import gc

    layer = Linear(3, 1, rng=0)
    first = Sequential([layer, Sigmoid()])
    del first
    gc.collect()
    second = Sequential([layer, Sigmoid()], dtype=np.float32)
    assert layer.W.dtype == np.float32 and second.dtype == np.float32


def test_parameters_tied_across_models_leave_the_first_model_alone():
    rng = np.random.default_rng(2)
    A = small_model()
    tied = Linear(3, 4)
    tied.W = A.layers[0].W
    B = Sequential([tied, minnet.Tanh(), Linear(4, 1), Sigmoid()])
    assert minnet._fast.FlatStorage.find(A.parameters()) is not None  # A's storage intact
    X, Y = random_data(rng, 4, 3)
    A.zero_grad()
    A.cost(X, Y)
    B.forward(rng.standard_normal((7, 3)))  # B's own layers: A's caches are untouched
    A.backward()
    expected = small_model()
    expected.cost(X, Y)
    expected.backward()
    for p, q in zip(A.parameters(), expected.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad)
    assert B.gradcheck(X, Y).passed
    other = Linear(3, 4)
    other.W = A.layers[0].W
    with pytest.raises(ValueError, match=r"dtype=float32 cannot be given to parameters \['0.W'\]"):
        Sequential([other, Sigmoid()], dtype=np.float32)
    assert A.layers[0].W.dtype == np.float64
