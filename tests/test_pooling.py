"""MaxPool2d and AvgPool2d: against PyTorch in float64 and the teaching loops, ties in max
pooling (torch's choice, and an honest gradient check there), arguments and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch
from hypothesis import given
from hypothesis import strategies as st

import minnet
from minnet.gradcheck import layer_registry
from minnet.teaching import loops

POOLS = {"max": minnet.MaxPool2d, "avg": minnet.AvgPool2d}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@st.composite
def pool_cases(draw):
    """A random pooling configuration and an input it fits: (kind, args, x shape, seed)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * 2)))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    args = dict(kernel_size=(kh, kw), stride=stride, padding=(ph, pw))
    return draw(st.sampled_from(sorted(POOLS))), args, (n, c, h, w), draw(st.integers(0, 2**16))


def data(shape, seed, ties):
    """Normal numbers, or (``ties``) small integers: many windows then hold equal maxima."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, shape).astype(float), rng
    return rng.standard_normal(shape), rng


def torch_pool(torch, kind, layer):
    cls = torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d
    return cls(layer.kernel_size, layer.stride, layer.padding)


@given(pool_cases(), st.booleans())
def test_pooling_matches_torch_forward_and_input_gradient_ties_included(case, ties):
    torch = import_torch()
    kind, args, shape, seed = case
    layer = POOLS[kind](**args)
    x, rng = data(shape, seed, ties)
    out = layer.forward(x)
    g = rng.standard_normal(out.shape)
    grad_x = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_pool(torch, kind, layer)(xt)
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-13, atol=1e-14)
    if kind == "max":  # at a tie, the gradient goes to the same single input as torch's
        np.testing.assert_array_equal(grad_x != 0, xt.grad.numpy() != 0)


@given(pool_cases(), st.floats(0.1, 1.0))
def test_max_pooling_matches_torch_on_inputs_of_minus_infinity_padding_never_wins(case, share):
    torch = import_torch()
    _, args, shape, seed = case
    layer = minnet.MaxPool2d(**args)
    x, rng = data(shape, seed, ties=True)
    x[rng.random(shape) < share] = -np.inf  # windows of -inf ties, next to the -inf padding
    out = layer.forward(x)
    g = rng.standard_normal(out.shape)
    grad_x = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_pool(torch, "max", layer)(xt)
    out_t.backward(torch.tensor(g))
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(grad_x.sum(), g.sum(), rtol=1e-12, atol=1e-12)  # none lost


@given(pool_cases(), st.booleans())
def test_pooling_matches_the_teaching_loops(case, ties):
    kind, args, shape, seed = case
    layer = POOLS[kind](**args)
    x, rng = data(shape, seed, ties)
    geometry = (layer.kernel_size, layer.stride, layer.padding)
    forward, backward = {
        "max": (loops.max_pool_forward, loops.max_pool_backward),
        "avg": (loops.avg_pool_forward, loops.avg_pool_backward),
    }[kind]
    out = layer.forward(x)
    np.testing.assert_allclose(out, forward(x, *geometry), atol=1e-14)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(g), backward(g, x, *geometry), atol=1e-14)


@pytest.mark.parametrize("kind", sorted(POOLS))
@pytest.mark.parametrize(
    "args",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=1, padding=1),
        dict(kernel_size=(2, 3), stride=(1, 2)),
    ],
)
def test_pooling_passes_its_gradient_check(kind, args):
    x, _ = data((2, 3, 5, 6), 0, ties=False)
    report = POOLS[kind](**args).gradcheck(x)
    assert report.passed, str(report)
    assert report.difference < 1e-8


@pytest.mark.parametrize(
    "args",
    [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=2, stride=1)],
)
def test_a_right_max_pool_at_ties_is_not_failed_and_the_ties_are_reported(args):
    x, _ = data((2, 2, 5, 5), 1, ties=True)
    report = minnet.MaxPool2d(**args).gradcheck(x)
    assert report.passed, str(report)
    assert len(report.kinks) > 0  # the ties were seen as kinks, not silently agreed with


def test_a_max_pool_that_sends_the_gradient_to_every_tied_input_fails_at_ties():
    class EveryTiedInput(minnet.MaxPool2d):  # no padding here
        def forward(self, x):
            self.x_seen = x
            return super().forward(x)

        def backward(self, grad_output):
            (kh, kw), (sh, sw) = self.kernel_size, self.stride
            dx = np.zeros_like(self.x_seen)
            for i in range(grad_output.shape[2]):
                for j in range(grad_output.shape[3]):
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    window = self.x_seen[:, :, rows, cols]
                    top = window.max(axis=(2, 3), keepdims=True)
                    # BUG: a window with two equal maxima passes its gradient to both
                    dx[:, :, rows, cols] += (window == top) * grad_output[
                        :, :, i : i + 1, j : j + 1
                    ]
            return dx

    # A subclass computes something else, so the checker's knowledge of MaxPool2d's kinks (its
    # ties) is not inherited: a max pooling of one's own declares them.
    layer_registry.register_kinks(EveryTiedInput, *layer_registry.kinks_of(minnet.MaxPool2d(2)))
    x, _ = data((2, 2, 4, 4), 3, ties=True)
    report = EveryTiedInput(2).gradcheck(x)
    assert report.status == "failed", str(report)
    assert report.worst_parameter == "input"


def test_a_max_pool_that_picks_the_wrong_input_fails():
    class LastInWindow(minnet.MaxPool2d):
        def backward(self, grad_output):
            grad = np.zeros(self.x_shape)
            (kh, kw), (sh, sw) = self.kernel_size, self.stride
            grad[:, :, kh - 1 :: sh, kw - 1 :: sw] = grad_output  # BUG: not the maximum
            return grad

    x, _ = data((2, 2, 4, 4), 4, ties=False)
    assert LastInWindow(2).gradcheck(x).status == "failed"


def test_max_pool_padding_never_wins_and_avg_pool_counts_padded_zeros():
    layer = minnet.MaxPool2d(2, padding=1)
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # all negative: a zero padding would win
    np.testing.assert_array_equal(layer.forward(x), x)
    avg = minnet.AvgPool2d(2, padding=1).forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(avg, np.full((1, 1, 2, 2), 0.25))  # 1 real of 4 counted


def test_pooling_arguments():
    layer = minnet.MaxPool2d(3)
    assert layer.stride == (3, 3) and layer.padding == (0, 0)  # the stride defaults to the kernel
    layer = minnet.AvgPool2d((2, 4), stride=1, padding=(1, 2))
    assert layer.arguments() == {"kernel_size": (2, 4), "stride": (1, 1), "padding": (1, 2)}
    assert minnet.MaxPool2d(2).output_shape((3, 7, 8)) == (3, 3, 4)
    assert minnet.MaxPool2d(2).output_shape((3, None, 8)) == (3, None, 4)
    for cls in POOLS.values():
        with pytest.raises(ValueError, match="padding must be at most half the kernel size"):
            cls(2, padding=2)
        with pytest.raises(ValueError, match=r"stride must be a whole number >= 1, got 0"):
            cls(2, stride=0)
        with pytest.raises(TypeError, match="kernel_size must be a whole number"):
            cls("2")


@pytest.mark.parametrize("cls", POOLS.values(), ids=lambda cls: cls.__name__)
def test_pooling_refuses_bad_inputs_naming_the_layer_and_the_shapes(cls):
    layer = cls(3)
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}\(kernel_size=\(3, 3\).*"
        r"\(batch, channels, height, width\).*\(4, 5, 5\)",
    ):
        layer.forward(np.zeros((4, 5, 5)))
    with pytest.raises(ValueError, match=r"smaller than the kernel: width 2 < kernel 3"):
        layer.forward(np.zeros((1, 1, 5, 2)))
    with pytest.raises(
        ValueError, match=r"cannot follow layer 0 .*which gives 4 features.*takes images"
    ):
        minnet.Sequential([minnet.Linear(3, 4), layer])
    layer.forward(np.zeros((1, 2, 6, 6)))
    with pytest.raises(ValueError, match=r"grad_output of shape \(1, 2, 2, 2\)"):
        layer.backward(np.zeros((1, 2, 3, 3)))


def test_activations_dropout_and_softmax_work_on_images():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    for layer in (minnet.ReLU(), minnet.LeakyReLU(0.1), minnet.Tanh(), minnet.Sigmoid()):
        assert layer.forward(x).shape == x.shape and layer.gradcheck(x).passed
    softmax = minnet.Softmax()  # over the last axis, as torch.nn.Softmax(dim=-1)
    np.testing.assert_allclose(softmax.forward(x).sum(axis=-1), 1.0)
    assert softmax.gradcheck(x).passed
    dropout = minnet.Dropout(0.5, seed=0)
    out = dropout.forward(x)
    assert out.shape == x.shape and set(np.unique(out[out != 0] / x[out != 0])) == {2.0}
    assert dropout.gradcheck(x).passed
