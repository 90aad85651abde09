"""Sequential as a container, as torch.nn.Sequential: len, indexing (negative too), iteration,
slices, append/extend/insert (which re-derive the model), a checked loss; and a model whose
layers do not fix the output width (a convolutional net), which takes it from the data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minnet import (
    AvgPool2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Flatten,
    HuberLoss,
    L1Loss,
    Linear,
    LogSoftmax,
    MaxPool2d,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)


def four_layers():
    layers = [Linear(2, 3, rng=0), ReLU(), Linear(3, 1, rng=1), Sigmoid()]
    return layers, Sequential(layers)


def test_len_indexing_and_iteration_give_the_layers():
    layers, model = four_layers()
    assert len(model) == 4
    assert [model[i] for i in range(4)] == layers
    assert [model[i] for i in range(-4, 0)] == layers
    assert model[-1] is layers[-1] and model[np.int64(2)] is layers[2]
    assert list(model) == layers and model.layers == tuple(layers)
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    assert layers[1] in model and Linear(2, 3) not in model


def test_a_slice_is_a_list_of_the_layers_not_a_second_model():
    layers, model = four_layers()
    part = model[1:3]
    assert type(part) is list and part == layers[1:3]
    assert model[::-1] == layers[::-1]
    with pytest.raises(ValueError, match="already belongs to another Sequential"):
        Sequential(model[:2])


@pytest.mark.parametrize("index", [4, -5, 100])
def test_an_index_out_of_range_says_how_many_layers_there_are(index):
    _, model = four_layers()
    with pytest.raises(IndexError, match=f"layer index {index} is out of range: the model has 4"):
        model[index]


@pytest.mark.parametrize("index", ["0", 1.0, True, None])
def test_an_index_that_is_not_an_integer_is_a_type_error(index):
    _, model = four_layers()
    with pytest.raises(TypeError, match="indices must be integers or slices"):
        model[index]


def test_a_model_without_a_fixed_width_takes_it_from_the_data():
    softmax = Sequential([Softmax()], loss=CrossEntropyLoss())
    assert softmax.cost([[3.0, 3.0], [2.0, 2.0]], [0, 1]) == pytest.approx(np.log(2), rel=1e-15)
    loss, accuracy = softmax.evaluate([[3.0, 1.0], [1.0, 2.0]], [0, 1])
    assert accuracy == 1.0
    relu = Sequential([ReLU()], loss=MSELoss())
    assert relu.cost(np.ones((2, 2)), np.zeros((2, 2))) == 1.0
    assert Sequential([LogSoftmax()], loss=NLLLoss()).cost(np.zeros((1, 4)), [3]) == (
        pytest.approx(np.log(4), rel=1e-15)
    )
    assert softmax.output_width(5) == 5 and softmax.output_width() == 1
    # (m, k) targets give the width (a layer may change it without saying so): the loss then
    # names the two shapes
    with pytest.raises(ValueError, match=r"MSELoss needs predictions and targets of one shape"):
        relu.cost(np.ones((2, 3)), np.zeros((2, 2)))
    assert Sequential([Linear(4, 2)]).output_width(4) == 2


# --- the output width of a convolutional net comes from the data's real shape ------------------
# (loss class, final activations it may follow, kind of targets)
LOSS_KINDS = {
    "CrossEntropyLoss": (CrossEntropyLoss, [None, Softmax], "classes"),
    "NLLLoss": (NLLLoss, [LogSoftmax], "classes"),
    "MultiMarginLoss": (MultiMarginLoss, [None], "classes"),
    "BCELoss": (BCELoss, [Sigmoid], "probabilities"),
    "BCEWithLogitsLoss": (BCEWithLogitsLoss, [None], "probabilities"),
    "MSELoss": (MSELoss, [None, Tanh], "numbers"),
    "L1Loss": (L1Loss, [None], "numbers"),
    "HuberLoss": (HuberLoss, [None], "numbers"),
}


@st.composite
def conv_stacks(draw):
    """A convolution, then random convolutions, poolings and ReLUs, on random images, then a
    Flatten (sometimes after a global average pooling): no Linear anywhere."""
    seed = draw(st.integers(0, 2**16))
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    input_shape, layers = shape, []
    for i in range(draw(st.integers(1, 3))):
        kind = "conv" if i == 0 else draw(st.sampled_from(["conv", "max", "avg", "relu"]))
        k = draw(st.integers(1, min(3, *shape[1:])))
        padding, stride = draw(st.integers(0, k // 2)), draw(st.integers(1, 2))
        if kind == "conv":
            out = draw(st.integers(1, 3))
            bias = draw(st.booleans())
            layer = Conv2d(shape[0], out, k, stride, padding, bias=bias, rng=seed)
        elif kind == "relu":
            layer = ReLU()
        else:
            layer = (MaxPool2d if kind == "max" else AvgPool2d)(k, stride, padding)
        shape = layer.output_shape(shape)
        layers.append(layer)
    if draw(st.booleans()):
        layers.append(AvgPool2d(shape[1:]))  # global average pooling: one number per channel
        shape = (shape[0], 1, 1)
    return [*layers, Flatten()], input_shape, int(np.prod(shape)), seed


def targets_of(kind: str, m: int, k: int, rng: np.random.Generator):
    if kind == "classes":
        return rng.integers(0, k, m)
    if kind == "probabilities":
        return rng.random((m, k))
    return rng.standard_normal((m, k))


def wrong_targets_of(kind: str, m: int, k: int, rng: np.random.Generator):
    if kind == "classes":
        y = rng.integers(0, k, m)
        y[rng.integers(m)] = k  # a class the outputs do not have
        return y
    return targets_of(kind, m, k + 1, rng)  # one column too many


@settings(max_examples=40, deadline=None)
@given(conv_stacks(), st.sampled_from(sorted(LOSS_KINDS)), st.data())
def test_a_conv_net_without_a_linear_takes_the_targets_of_its_real_output_width(
    stack, loss_name, data
):
    layers, input_shape, k, seed = stack
    make_loss, finals, kind = LOSS_KINDS[loss_name]
    final = data.draw(st.sampled_from(finals))
    model = Sequential(layers + ([final()] if final else []), loss=make_loss())
    rng = np.random.default_rng(seed)
    m = 3
    X = rng.standard_normal((m, *input_shape))
    Y = targets_of(kind, m, k, rng)
    assert model.forward(X).shape == (m, k)
    assert model.output_width(input_shape) == k
    last = f"{len(model) - 1} {type(model[-1]).__name__} "
    (row,) = [line for line in model.summary(input_shape).splitlines() if line.startswith(last)]
    assert f"(None, {k})" in row
    cost = model.cost(X, Y)
    assert np.isfinite(cost)
    assert model.evaluate(X, Y).loss == pytest.approx(cost, rel=1e-12)
    report = model.gradcheck(X, Y)  # accepted: checked (a constant loss is inconclusive)
    assert report.status in ("passed", "inconclusive"), str(report)
    history = model.fit(X, Y, epochs=1, batch_size=2, progress=False, seed=0)
    assert np.isfinite(history.loss[0])
    wrong = wrong_targets_of(kind, m, k, rng)
    for check in (
        lambda: model.cost(X, wrong),
        lambda: model.evaluate(X, wrong),
        lambda: model.gradcheck(X, wrong),
        lambda: model.fit(X, wrong, epochs=1, progress=False),
    ):
        with pytest.raises(ValueError, match=r"Y: \w+Loss needs"):
            check()


def test_a_conv_net_whose_outputs_are_not_rows_says_to_flatten():
    model = Sequential([Conv2d(1, 2, 3, rng=0)], loss=MSELoss())
    X = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"outputs are not rows.*Flatten\(\)"):
        model.cost(X, np.zeros((2, 18)))


# --- changing the layers: append, extend, insert re-derive the model ---------------------------
ROW_LAYERS = ["linear", "relu", "tanh", "sigmoid"]


@st.composite
def row_nets(draw):
    """Seeds and sizes of a random chain of Linear layers and activations, ending in a Linear,
    and a random split point."""
    seed = draw(st.integers(0, 2**16))
    widths = draw(st.lists(st.integers(1, 5), min_size=2, max_size=5))
    kinds = []
    for i in range(len(widths) - 1):
        kinds.append(("linear", widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            kinds.append((draw(st.sampled_from(ROW_LAYERS[1:])), None, None))
    return seed, kinds, draw(st.integers(1, len(kinds)))


def build(seed, kinds, dtype=np.float64):
    rng = np.random.default_rng(seed)
    make = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    return [
        Linear(n_in, n_out, rng=rng, dtype=dtype) if kind == "linear" else make[kind]()
        for kind, n_in, n_out in kinds
    ]


@settings(max_examples=30, deadline=None)
@given(row_nets(), st.sampled_from(["append", "extend", "insert"]), st.sampled_from(["64", "32"]))
def test_a_model_grown_by_append_extend_or_insert_is_the_model_built_whole(net, how, dtype):
    seed, kinds, split = net
    dtype = np.float32 if dtype == "32" else np.float64
    whole = Sequential(build(seed, kinds), loss=MSELoss(), dtype=dtype)
    layers = build(seed, kinds)  # float64: the grown model gives the new layers its dtype
    if how == "insert":  # the last layers, then the first ones put before them, one by one
        grown = Sequential(layers[split - 1 :], loss=MSELoss(), dtype=dtype)
        for layer in reversed(layers[: split - 1]):
            assert grown.insert(0, layer) is grown
    else:
        grown = Sequential(layers[:split], loss=MSELoss(), dtype=dtype)
        if how == "extend":
            assert grown.extend(layers[split:]) is grown
        for layer in layers[split:] if how == "append" else []:
            assert grown.append(layer) is grown
    assert grown.layers == tuple(layers) and type(grown.layers) is tuple
    assert (grown.in_features, grown.out_features) == (whole.in_features, whole.out_features)
    assert grown.dtype == whole.dtype == dtype
    assert [(n, p.dtype) for n, p in grown.named_parameters()] == [
        (n, p.dtype) for n, p in whole.named_parameters()
    ]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, kinds[0][1]))
    Y = rng.standard_normal((6, kinds[-1][2]))
    assert grown.cost(X, Y) == whole.cost(X, Y)
    grown.fit(X, Y, epochs=2, batch_size=3, progress=False, seed=0)
    whole.fit(X, Y, epochs=2, batch_size=3, progress=False, seed=0)
    for (_, a), (_, b) in zip(grown.named_parameters(), whole.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)


def test_a_refused_change_of_the_layers_changes_nothing():
    layers, model = four_layers()
    X = np.random.default_rng(0).standard_normal((5, 2))
    y = np.array([0, 1, 1, 0, 1])
    before = model.cost(X, y)
    _, other = four_layers()
    refusals = [
        (lambda: model.append(Linear(3, 2)), ValueError, "layers do not chain"),
        (lambda: model.insert(0, Linear(5, 4)), ValueError, "layers do not chain"),
        (lambda: model.append(layers[1]), ValueError, "same object as layer 1"),
        (lambda: model.append(other[0]), ValueError, "already belongs to another Sequential"),
        (lambda: model.append("relu"), TypeError, "must be a minnet Layer, got str"),
        (lambda: model.extend(ReLU()), TypeError, "use append"),
        (lambda: model.extend([ReLU(), 3]), TypeError, "layer 1 must be a minnet Layer"),
        (lambda: model.insert(5, ReLU()), IndexError, "insert index 5 is out of range"),
        (lambda: model.insert("0", ReLU()), TypeError, "index must be a whole number"),
    ]
    for change, error, message in refusals:
        with pytest.raises(error, match=message):
            change()
        assert model.layers == tuple(layers) and model.out_features == 1
        assert model.cost(X, y) == before
    with pytest.raises(AttributeError, match="use model.append"):
        model.layers = layers + [ReLU()]
    with pytest.raises(AttributeError):
        model.layers.append(ReLU())
    assert model.layers == tuple(layers)


def test_appending_the_layers_of_a_new_output_width_takes_targets_of_that_width():
    X = np.random.default_rng(0).standard_normal((8, 2))
    y = np.array([0, 1] * 4)
    model = Sequential([Linear(2, 4, rng=0), ReLU()])
    model.extend([Linear(4, 1, rng=1), Sigmoid()])
    assert model.out_features == 1 and model.fused
    assert np.isfinite(model.cost(X, y)) and np.isfinite(model.fit(X, y, progress=False).loss[-1])


BAD_LOSSES = ["mse", MSELoss, None, 3, MSELoss(reduction="none")]


@pytest.mark.parametrize("bad", BAD_LOSSES, ids=["str", "class", "None", "int", "none"])
def test_assigning_a_loss_is_checked_as_the_constructor_checks_it(bad):
    _, model = four_layers()
    kept = model.loss
    with pytest.raises((TypeError, ValueError)) as constructor:
        Sequential([Linear(2, 1)], loss=bad)
    with pytest.raises(type(constructor.value)) as assignment:
        model.loss = bad
    assert str(assignment.value) == str(constructor.value)
    assert model.loss is kept


@settings(max_examples=20, deadline=None)
@given(row_nets())
def test_a_new_loss_is_the_loss_of_a_model_built_with_it(net):
    seed, kinds, _ = net
    model = Sequential(build(seed, kinds))
    twin = Sequential(build(seed, kinds), loss=HuberLoss(delta=0.5))
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((4, kinds[0][1])), rng.standard_normal((4, kinds[-1][2]))
    model.loss = MSELoss()
    model.cost(X, Y)
    model.loss = HuberLoss(delta=0.5)
    with pytest.raises(RuntimeError, match="needs a cost"):  # the last cost was MSELoss's
        model.backward()
    assert model.cost(X, Y) == twin.cost(X, Y)
    model.backward()
    twin.backward()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(a.grad, b.grad)
