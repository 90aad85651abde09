"""BatchNorm1d, LayerNorm and Softmax: PyTorch's numbers in float64, gradient checks, buffers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minnet import BatchNorm1d, LayerNorm, Softmax

torch = import_torch()


def torch_twin(layer):
    if isinstance(layer, BatchNorm1d):
        twin = torch.nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    elif isinstance(layer, LayerNorm):
        twin = torch.nn.LayerNorm(layer.num_features, eps=layer.eps)
    else:
        return torch.nn.Softmax(dim=-1)
    twin = twin.double()
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.gamma.value))
        twin.bias.copy_(torch.from_numpy(layer.beta.value))
    return twin


def random_norm(cls, features, rng):
    layer = cls(features)
    layer.gamma.value[...] = 1 + 0.5 * rng.standard_normal(features)
    layer.beta.value[...] = rng.standard_normal(features)
    return layer


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(2, 9),
    features=st.integers(1, 6),
    cls=st.sampled_from([BatchNorm1d, LayerNorm, Softmax]),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
)
def test_forward_backward_and_statistics_match_torch(seed, rows, features, cls, scale):
    rng = np.random.default_rng(seed)
    layer = Softmax() if cls is Softmax else random_norm(cls, features, rng)
    twin = torch_twin(layer)
    for _ in range(3):  # several training steps: the running statistics follow torch's
        x = scale * rng.standard_normal((rows, features)) + rng.standard_normal()
        g = rng.standard_normal((rows, features))
        if cls is not Softmax:
            layer.gamma.zero_grad()
            layer.beta.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        out_t = twin(xt)
        out_t.backward(torch.from_numpy(g))
        out = layer.forward(x)
        grad_x = layer.backward(g)
        reference = max(1.0, float(np.abs(xt.grad.numpy()).max()))
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-9, atol=1e-9 * reference)
        if cls is not Softmax:
            for ours, theirs in ((layer.gamma, twin.weight), (layer.beta, twin.bias)):
                expected = theirs.grad.numpy()
                # measured against the largest gradient where the exact value is 0
                tolerance = 1e-9 * max(1.0, float(np.abs(expected).max()))
                np.testing.assert_allclose(ours.grad, expected, rtol=1e-9, atol=tolerance)
            twin.weight.grad = twin.bias.grad = None
    if cls is BatchNorm1d:
        np.testing.assert_allclose(layer.running_mean, twin.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, twin.running_var.numpy(), rtol=1e-12)
        layer.eval()
        twin.eval()
        x = rng.standard_normal((rows, features))
        np.testing.assert_allclose(
            layer.forward(x), twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("cls", [BatchNorm1d, LayerNorm, Softmax])
@pytest.mark.parametrize("training", [True, False])
def test_each_layer_passes_its_gradient_check(cls, training):
    rng = np.random.default_rng(0)
    layer = Softmax() if cls is Softmax else random_norm(cls, 4, rng)
    layer.train(training)
    report = layer.gradcheck(rng.standard_normal((6, 4)))
    assert report.passed, str(report)


def test_softmax_is_exact_for_extreme_logits():
    out = Softmax().forward(np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]]))
    np.testing.assert_array_equal(out[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(out[1], [1 / 3] * 3)


def test_the_gradient_check_leaves_the_running_statistics_alone():
    rng = np.random.default_rng(1)
    layer = BatchNorm1d(3)
    layer.forward(rng.standard_normal((5, 3)))
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    assert layer.gradcheck(rng.standard_normal((5, 3))).passed
    np.testing.assert_array_equal(layer.running_mean, mean)
    np.testing.assert_array_equal(layer.running_var, var)


def test_buffers_are_named_and_not_parameters():
    layer = BatchNorm1d(2)
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var"]
    assert [name for name, _ in layer.named_parameters()] == ["gamma", "beta"]


def test_batch_norm_refuses_one_row_in_training_but_not_in_eval():
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match="at least 2 rows"):
        layer.forward(np.ones((1, 3)))
    layer.eval()
    assert layer.forward(np.ones((1, 3))).shape == (1, 3)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: BatchNorm1d(0), "num_features"),
        (lambda: BatchNorm1d(2.5), "num_features"),
        (lambda: BatchNorm1d(2, eps=0), "eps"),
        (lambda: BatchNorm1d(2, momentum=1.5), "momentum"),
        (lambda: BatchNorm1d(2, momentum=float("nan")), "momentum"),
        (lambda: LayerNorm(2, eps=float("inf")), "eps"),
        (lambda: LayerNorm(True), "num_features"),
    ],
)
def test_bad_arguments_are_refused(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("cls", [BatchNorm1d, LayerNorm])
def test_an_input_of_the_wrong_width_is_a_clear_error(cls):
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 3\)"):
        cls(3).forward(np.ones((4, 2)))
