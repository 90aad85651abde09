"""Sequential as a container, as torch.nn.Sequential: len, indexing (negative too), iteration,
slices; and a model whose layers do not fix the output width, which takes it from the data."""

from __future__ import annotations

import numpy as np
import pytest

from minnet import (
    CrossEntropyLoss,
    Linear,
    LogSoftmax,
    MSELoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
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
