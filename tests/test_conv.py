"""Conv2d, Flatten, BatchNorm2d and conv nets: against PyTorch in float64, against the teaching
loops, gradient-checked, trained, converted."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch, on_path
from hypothesis import given
from hypothesis import strategies as st

import minnet
from minnet._fast.im2col import col2im, im2col
from minnet.teaching import loops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@st.composite
def conv_cases(draw):
    """A random Conv2d configuration and an input it fits: (args, x shape, seed)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    bias = draw(st.booleans())
    pair = draw(st.booleans())  # sizes given as pairs, or as one number when both are equal
    args = dict(
        in_channels=c,
        out_channels=f,
        kernel_size=(kh, kw) if pair or kh != kw else kh,
        stride=(sh, sw) if pair or sh != sw else sh,
        padding=(ph, pw) if pair or ph != pw else ph,
        bias=bias,
    )
    return args, (n, c, h, w), draw(st.integers(0, 2**16))


def random_conv(args, seed):
    rng = np.random.default_rng(seed)
    layer = minnet.Conv2d(**args, rng=rng)
    if layer.bias:
        layer.b.value[...] = rng.standard_normal(layer.out_channels)
    return layer, rng


def torch_conv(torch, layer):
    conv = torch.nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        bias=layer.bias,
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(layer.W.value))
        if layer.bias:
            conv.bias.copy_(torch.tensor(layer.b.value))
    return conv


@given(conv_cases())
def test_conv2d_matches_torch_forward_and_gradients(case):
    torch = import_torch()
    args, shape, seed = case
    layer, rng = random_conv(args, seed)
    x = rng.standard_normal(shape)
    out = layer.forward(x)
    g = rng.standard_normal(out.shape)
    grad_x = layer.backward(g)

    conv = torch_conv(torch, layer)
    xt = torch.tensor(x, requires_grad=True)
    out_t = conv(xt)
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.W.grad, conv.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    if layer.bias:
        np.testing.assert_allclose(layer.b.grad, conv.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
    else:
        assert [name for name, _ in layer.named_parameters()] == ["W"]


@given(conv_cases())
def test_conv2d_matches_the_teaching_loops(case):
    args, shape, seed = case
    layer, rng = random_conv(args, seed)
    x = rng.standard_normal(shape)
    b = layer.b.value if layer.bias else None
    out = layer.forward(x)
    np.testing.assert_allclose(
        out, loops.conv_forward(x, layer.W.value, b, layer.stride, layer.padding), atol=1e-12
    )
    g = rng.standard_normal(out.shape)
    dx, dW, db = loops.conv_backward(g, x, layer.W.value, layer.stride, layer.padding)
    np.testing.assert_allclose(layer.backward(g), dx, atol=1e-12)
    np.testing.assert_allclose(layer.W.grad, dW, atol=1e-12)
    if layer.bias:
        np.testing.assert_allclose(layer.b.grad, db, atol=1e-12)


@given(conv_cases())
def test_im2col_holds_each_window_in_a_column_and_col2im_is_its_adjoint(case):
    args, shape, seed = case
    layer, rng = random_conv(args, seed)
    x = rng.standard_normal(shape)
    geometry = (layer.kernel_size, layer.stride, layer.padding)
    cols = im2col(x, *geometry)
    (kh, kw), (sh, sw), (ph, pw) = geometry
    n, c, _, _ = shape
    h_out, w_out = layer.output_shape(shape[1:])[1:]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = cols.reshape(c, kh, kw, h_out, w_out, n)
    for i, j, e in [(0, 0, 0), (h_out - 1, w_out - 1, n - 1), (h_out // 2, w_out // 3, n // 2)]:
        window = padded[e, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
        np.testing.assert_array_equal(windows[:, :, :, i, j, e], window)
    # <im2col(x), C> == <x, col2im(C)> for every C: col2im is the input gradient of im2col
    C = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * C), np.sum(x * col2im(C, x.shape, *geometry)))


@pytest.mark.parametrize(
    "args",
    [
        dict(in_channels=2, out_channels=3, kernel_size=3),
        dict(in_channels=1, out_channels=2, kernel_size=(2, 3), stride=2, padding=(1, 0)),
        dict(in_channels=3, out_channels=1, kernel_size=1, bias=False),
        dict(in_channels=2, out_channels=2, kernel_size=2, stride=(1, 3), padding=1),
    ],
)
def test_conv2d_passes_its_gradient_check(args):
    layer, rng = random_conv(args, 0)
    x = rng.standard_normal((3, args["in_channels"], 6, 5))
    report = layer.gradcheck(x)
    assert report.passed, str(report)
    assert report.difference < 1e-8


def test_the_gradient_check_catches_a_wrong_conv_backward():
    class ForgetsOverlaps(minnet.Conv2d):
        def backward(self, grad_output):
            dx = super().backward(grad_output)
            return dx * 0.5  # wrong by a factor

    layer = ForgetsOverlaps(2, 2, 3, rng=0)
    report = layer.gradcheck(np.random.default_rng(1).standard_normal((2, 2, 5, 5)))
    assert not report.passed and report.worst_parameter == "input"


def test_conv2d_arguments_and_initial_scale():
    layer = minnet.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), rng=0)
    assert layer.W.value.shape == (6, 4, 3, 5) and layer.b.value.shape == (6,)
    assert layer.kernel_size == (3, 5) and layer.stride == (2, 2) and layer.padding == (1, 2)
    assert layer.arguments()["bias"] is True
    big = minnet.Conv2d(16, 32, 3, rng=0)
    assert big.W.value.std() == pytest.approx(np.sqrt(2 / (16 * 9)), rel=0.05)
    glorot = minnet.Conv2d(16, 32, 3, rng=0, init="glorot")
    assert glorot.W.value.std() == pytest.approx(np.sqrt(2 / (16 * 9 + 32 * 9)), rel=0.05)
    np.testing.assert_array_equal(
        minnet.Conv2d(2, 3, 2, rng=5).W.value, minnet.Conv2d(2, 3, 2, rng=5).W.value
    )
    assert minnet.Conv2d(2, 3, 2, dtype=np.float32).W.value.dtype == np.float32
    like_torch = minnet.Conv2d(16, 32, 3, rng=0, init="torch")  # nn.Conv2d's own draws
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(like_torch.W.value).max() <= bound and np.abs(like_torch.b.value).max() <= bound
    assert like_torch.W.value.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert np.all(like_torch.b.value != 0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(kernel_size=3, stride=0), ValueError, r"stride must be a whole number >= 1, got 0"),
        (dict(kernel_size=0), ValueError, r"kernel_size must be a whole number >= 1"),
        (dict(kernel_size=3, padding=-1), ValueError, r"padding must be a whole number >= 0"),
        (dict(kernel_size=(3, 3, 3)), ValueError, r"kernel_size must be a whole number or a pair"),
        (dict(kernel_size=2.5), TypeError, r"kernel_size must be a whole number"),
        (dict(kernel_size=(2, 1.5)), TypeError, r"kernel_size\[1\] must be a whole number"),
        (dict(kernel_size=2, bias=1), TypeError, r"bias must be True or False"),
        (dict(kernel_size=2, init="xavier"), ValueError, r"init must be one of"),
    ],
)
def test_conv2d_refuses_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        minnet.Conv2d(2, 3, **kwargs)


def test_conv2d_refuses_bad_inputs_naming_the_layer_and_the_shapes():
    layer = minnet.Conv2d(3, 4, 5, rng=0)
    with pytest.raises(
        ValueError, match=r"Conv2d\(in_channels=3.*expects 3 channels.*\(2, 1, 8, 8\)"
    ):
        layer.forward(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"smaller than the kernel: height 4 < kernel 5"):
        layer.forward(np.zeros((2, 3, 4, 8)))
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, channels, height, wi"):
        layer.forward(np.zeros((3, 8, 8)))
    layer.forward(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"grad_output of shape \(2, 4, 4, 4\)"):
        layer.backward(np.zeros((2, 4, 4, 5)))


# -- Flatten ---------------------------------------------------------------------------------
def test_flatten_is_torchs_flatten():
    torch = import_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 5))
    layer = minnet.Flatten()
    out = layer.forward(x)
    np.testing.assert_array_equal(out, torch.nn.Flatten()(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(out, x.reshape(3, 40))  # C order: channel, row, column
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(x.shape))
    assert layer.output_shape((2, 4, 5)) == (40,) and layer.output_shape((2, None, 5)) == (None,)
    assert layer.gradcheck(x).passed
    with pytest.raises(ValueError, match=r"Flatten\(\) expects input of shape \(batch, \.\.\.\)"):
        layer.forward(np.zeros(3))


# -- BatchNorm2d -----------------------------------------------------------------------------
def test_batchnorm2d_matches_torch_in_training_and_evaluation_over_several_steps():
    torch = import_torch()
    rng = np.random.default_rng(0)
    layer = minnet.BatchNorm2d(3, eps=1e-4, momentum=0.2)
    layer.gamma.value[...] = rng.standard_normal(3)
    layer.beta.value[...] = rng.standard_normal(3)
    twin = torch.nn.BatchNorm2d(3, eps=1e-4, momentum=0.2, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(layer.gamma.value))
        twin.bias.copy_(torch.tensor(layer.beta.value))
    for step, shape in enumerate([(4, 3, 5, 6), (2, 3, 3, 3), (1, 3, 2, 2), (5, 3, 1, 1)]):
        x = rng.standard_normal(shape) * (step + 1) + step
        g = rng.standard_normal(shape)
        for mode in (True, False):
            layer.train(mode)
            twin.train(mode)
            layer.zero_grad()
            twin.zero_grad()
            xt = torch.tensor(x, requires_grad=True)
            out_t = twin(xt)
            out_t.backward(torch.tensor(g))
            out = layer.forward(x)
            np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-11)
            np.testing.assert_allclose(layer.gamma.grad, twin.weight.grad.numpy(), rtol=1e-11)
            np.testing.assert_allclose(layer.beta.grad, twin.bias.grad.numpy(), rtol=1e-11)
            np.testing.assert_allclose(layer.running_mean, twin.running_mean.numpy(), rtol=1e-13)
            np.testing.assert_allclose(layer.running_var, twin.running_var.numpy(), rtol=1e-13)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_passes_its_gradient_check(training):
    rng = np.random.default_rng(2)
    layer = minnet.BatchNorm2d(2)
    layer.gamma.value[...] = 1 + 0.3 * rng.standard_normal(2)
    layer.running_mean[...] = rng.standard_normal(2)
    layer.train(training)
    before = layer.running_mean.copy()
    assert layer.gradcheck(rng.standard_normal((3, 2, 3, 4))).passed
    np.testing.assert_array_equal(layer.running_mean, before)  # the check puts buffers back


def test_batchnorm2d_refuses_rows_and_a_single_value_per_channel():
    layer = minnet.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 3, height, width\)"):
        layer.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        layer.forward(np.zeros((1, 3, 1, 1)))
    layer.eval()
    assert layer.forward(np.zeros((1, 3, 1, 1))).shape == (1, 3, 1, 1)


# -- models of images -------------------------------------------------------------------------
def small_cnn(seed=0, classes=3):
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [
            minnet.Conv2d(1, 4, 3, padding=1, rng=rng),
            minnet.ReLU(),
            minnet.MaxPool2d(2),
            minnet.Conv2d(4, 6, 3, bias=False, rng=rng),  # a bias before a batch norm cancels
            minnet.BatchNorm2d(6),
            minnet.Tanh(),
            minnet.Flatten(),
            minnet.Linear(6 * 2 * 2, classes, rng=rng, init="glorot"),
            minnet.Softmax(),
        ],
        loss=minnet.CrossEntropyLoss(),
    )


def image_data(seed=0, m=24, classes=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, 1, 8, 8)), rng.integers(0, classes, m)


def test_a_cnn_shows_its_shapes_once_it_has_an_input_shape():
    model = small_cnn()
    text = model.summary(input_shape=(1, 8, 8))
    assert "(None, 4, 8, 8)" in text and "(None, 4, 4, 4)" in text
    assert "(None, 6, 2, 2)" in text and "(None, 24)" in text and "(None, 3)" in text
    assert "(None, 4, None, None)" in model.summary()  # before any data: sizes not known
    X, y = image_data()
    model.evaluate(X, y)
    assert model.summary() == text and model.input_shape == (1, 8, 8)


def test_a_cnn_refuses_images_that_do_not_fit_naming_the_layer():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d.*takes images of shape \(batch, 1,"):
        model.predict(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"layer 7 \(Linear.*24.*got 54"):
        model.predict(np.zeros((2, 1, 10, 10)))  # the flattened size does not fit the Linear
    with pytest.raises(ValueError, match="smaller than the kernel"):
        model.predict(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"Linear.*takes rows of shape \(batch, features\)"):
        minnet.Sequential([minnet.Linear(4, 2), minnet.Sigmoid()]).predict(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"layers do not chain: layer 1 \(Conv2d.*"):
        minnet.Sequential([minnet.Linear(4, 2), minnet.Conv2d(1, 2, 2)])


def test_a_cnn_passes_its_gradient_check_in_both_modes_of_the_checker():
    model = small_cnn()
    X, y = image_data(m=6)
    for fast in (False, True):
        report = model.gradcheck(X, y, fast=fast)
        assert report.passed, str(report)


def test_the_model_check_blames_a_wrong_conv_layer():
    class WrongWeightGrad(minnet.Conv2d):
        def backward(self, grad_output):
            dx = super().backward(grad_output)
            self.W.grad *= 1.01
            return dx

    layers = list(small_cnn().layers)  # the model they were in is gone
    layers[0] = WrongWeightGrad(1, 4, 3, padding=1, rng=0)
    model = minnet.Sequential(layers, loss=minnet.CrossEntropyLoss())
    report = model.gradcheck(*image_data(m=4))
    assert not report.passed and report.worst_parameter == "0.W"
    assert report.blamed_layers == (0,)


def test_a_cnn_fits_tiny_image_data():
    X, y = image_data(m=32)
    model = small_cnn()
    history = model.fit(X, y, epochs=40, batch_size=8, seed=0, progress=False)
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert model.evaluate(X, y).accuracy > 0.8
    assert model.predict(X).shape == (32,) and model.predict_proba(X).shape == (32, 3)


def test_a_cnn_round_trips_through_torch():
    torch = import_torch()
    model = small_cnn()
    X, y = image_data(m=5)
    model.fit(X, y, epochs=1, batch_size=5, seed=0, progress=False)  # running stats move
    module, loss = minnet.to_torch(model)
    back = minnet.from_torch(module, loss)
    for (name, p), (name_back, q) in zip(
        model.named_parameters(), back.named_parameters(), strict=True
    ):
        assert name == name_back
        np.testing.assert_array_equal(p.value, q.value)
    bn, bn_back = model.layers[4], back.layers[4]
    np.testing.assert_array_equal(bn.running_var, bn_back.running_var)
    model.zero_grad()
    cost = model.cost(X, y)
    model.backward()
    Xt = torch.tensor(X)
    value = loss(module(Xt), torch.tensor(y))
    value.backward()
    assert cost == pytest.approx(value.item(), rel=1e-12)
    torch_grads = [p.grad.numpy() for p in module.parameters()]
    for (name, p), grad in zip(model.named_parameters(), torch_grads, strict=True):
        np.testing.assert_allclose(p.grad, grad, rtol=1e-10, atol=1e-12, err_msg=name)
    model.eval()
    module.eval()
    np.testing.assert_allclose(
        model.predict_proba(X), torch.softmax(module(Xt), dim=1).detach().numpy(), atol=1e-12
    )


def test_torch_image_modules_minnet_cannot_follow_are_refused():
    torch = import_torch()
    nn = torch.nn
    for module in (
        nn.Conv2d(1, 2, 3, dilation=2),
        nn.Conv2d(2, 2, 3, groups=2),
        nn.Conv2d(1, 2, 3, padding="same"),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.AvgPool2d(2, count_include_pad=False),
        nn.Flatten(0),
    ):
        with pytest.raises(ValueError, match="minnet's"):
            minnet.from_torch(nn.Sequential(module))


def test_a_cnn_saves_and_loads_bit_for_bit(tmp_path):
    model = small_cnn()
    X, y = image_data(m=6)
    model.fit(X, y, epochs=1, batch_size=6, seed=0, progress=False)
    path = model.save(tmp_path / "cnn.safetensors")
    back = minnet.load(path)
    assert [repr(layer) for layer in back.layers] == [repr(layer) for layer in model.layers]
    for (_, p), (_, q) in zip(model.named_parameters(), back.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_a_cnn_trains_to_the_same_numbers_with_the_fast_path_off():
    X, y = image_data(m=12)

    def train() -> list[tuple[np.ndarray, np.ndarray]]:
        model = small_cnn()
        model.fit(X, y, epochs=2, batch_size=4, seed=0, progress=False)
        model.zero_grad()
        model.cost(X, y)
        model.backward()  # the first Conv2d's input gradient: skipped on the fast path only
        return [(p.value.copy(), p.grad.copy()) for p in model.parameters()]

    trained = on_path(True, train), on_path(False, train)
    for (value, grad), (value_plain, grad_plain) in zip(*trained, strict=True):
        np.testing.assert_array_equal(value, value_plain)
        np.testing.assert_array_equal(grad, grad_plain)
