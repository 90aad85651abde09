"""The one vectorizing utility: named arrays <-> one flat vector."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch, random_net
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import minnet
from minnet import FlatLayout, Parameter

named_arrays = st.lists(
    arrays(
        np.float64, array_shapes(min_dims=0, max_dims=3, max_side=4), elements=st.floats(-1e6, 1e6)
    ),
    min_size=1,
    max_size=5,
).map(lambda arrs: [(f"p{i}", a) for i, a in enumerate(arrs)])


@given(named_arrays)
def test_vector_round_trip(named):
    layout = FlatLayout.of(named)
    vector = layout.to_vector(dict(named))
    assert vector.shape == (sum(a.size for _, a in named),)
    back = layout.to_arrays(vector)
    assert list(back) == [name for name, _ in named]
    for name, array in named:
        np.testing.assert_array_equal(back[name], array)
        assert back[name].shape == array.shape
    np.testing.assert_array_equal(layout.to_vector(back), vector)


@given(named_arrays)
def test_locate_matches_slices(named):
    layout = FlatLayout.of(named)
    for name, array in named:
        for flat in range(array.size):
            where = layout.slices[name]
            assert layout.locate(where.start + flat) == (
                name,
                tuple(int(i) for i in np.unravel_index(flat, array.shape)),
            )


def test_to_arrays_gives_views_and_to_vector_copies():
    layout = FlatLayout.of([("W", np.zeros((2, 3))), ("b", np.zeros(2))])
    vector = np.arange(8.0)
    arrays = layout.to_arrays(vector)
    np.testing.assert_array_equal(arrays["W"], [[0, 1, 2], [3, 4, 5]])
    arrays["b"][0] = 100
    assert vector[6] == 100
    again = layout.to_vector(arrays)
    again[0] = -1
    assert arrays["W"][0, 0] == 0


def test_layout_errors_name_the_problem():
    layout = FlatLayout.of([("W", np.zeros((2, 3))), ("b", np.zeros(2))])
    with pytest.raises(ValueError, match=r"'W': expected shape \(2, 3\), got \(3, 2\)"):
        layout.to_vector({"W": np.zeros((3, 2)), "b": np.zeros(2)})
    with pytest.raises(ValueError, match="missing"):
        layout.to_vector({"W": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        layout.to_arrays(np.zeros(7))
    with pytest.raises(ValueError, match="duplicate"):
        FlatLayout.of([("W", np.zeros(1)), ("W", np.zeros(1))])
    with pytest.raises(IndexError):
        layout.locate(8)


def test_model_parameters_to_vector_and_back():
    model = minnet.Sequential(
        [minnet.Linear(3, 4, rng=0), minnet.ReLU(), minnet.Linear(4, 1, rng=1)]
    )
    named = list(model.named_parameters())
    assert [n for n, _ in named] == ["0.W", "0.b", "2.W", "2.b"]
    vector = minnet.parameters_to_vector(named)
    assert vector.shape == (3 * 4 + 4 + 4 + 1,)
    minnet.vector_to_parameters(vector * 2, named)
    np.testing.assert_array_equal(minnet.parameters_to_vector(named), vector * 2)
    grads = minnet.gradients_to_vector(named)
    np.testing.assert_array_equal(grads, 0)


@settings(max_examples=20)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.integers(0, 2**32 - 1))
def test_parameters_to_vector_takes_torchs_convention_too(widths, seed):
    """``model.parameters()`` (PyTorch's calling convention) and ``model.named_parameters()``
    give the same vector, the same as torch's ``parameters_to_vector`` of the exported module."""
    torch = import_torch()
    model = random_net(np.random.default_rng(seed), widths)
    vector = minnet.parameters_to_vector(model.parameters())
    np.testing.assert_array_equal(vector, minnet.parameters_to_vector(model.named_parameters()))
    module = torch.nn.Sequential(*minnet.to_torch(model).module)
    torch_vector = torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy()
    np.testing.assert_array_equal(vector, torch_vector)
    minnet.vector_to_parameters(-vector, model.parameters())
    np.testing.assert_array_equal(minnet.parameters_to_vector(model.parameters()), -vector)


@pytest.mark.parametrize("bad", [[np.zeros(3)], [("W", np.zeros(3))], ["W"], [("W",)]])
def test_parameters_to_vector_names_what_it_cannot_take(bad):
    with pytest.raises(TypeError, match="expected Parameters .* at position 0"):
        minnet.parameters_to_vector(bad)


def test_parameter_grad_matches_value():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32
    p.grad += 1
    p.zero_grad()
    np.testing.assert_array_equal(p.grad, 0)


@pytest.mark.parametrize("dtype", [int, bool, np.uint8, np.int32, complex, object, str])
def test_a_parameter_holds_floating_point_numbers(dtype):
    """An integer parameter would get an integer gradient that ``grad += float`` cannot hold:
    refused where it is made, as torch refuses ``requires_grad`` on integers."""
    with pytest.raises(TypeError, match="floating-point numbers.*got dtype"):
        Parameter(np.ones(3).astype(dtype))


def test_zero_grad_and_accumulate_are_plain_fill_and_add():
    p = Parameter(np.ones((3, 4)))
    kept = p.grad  # zeroing is in place: an array kept from p.grad sees it
    p.grad += 7.0
    p.zero_grad()
    np.testing.assert_array_equal(kept, 0)
    delta = np.random.default_rng(0).standard_normal((3, 4))
    p.accumulate(delta)
    p.grad += delta  # the same verb, written out
    np.testing.assert_array_equal(p.grad, 2 * delta)
    assert p.grad is kept


def test_an_optimizer_step_right_after_zero_grad_changes_nothing():
    # Stale values in the gradients are gone after zero_grad: a step then moves nothing.
    model = minnet.Sequential(
        [minnet.Linear(2, 3, rng=0), minnet.ReLU(), minnet.Linear(3, 1, rng=1)]
    )
    for p in model.parameters():
        p.grad[...] = 5.0  # stale values in the flat gradient vector
    opt = minnet.SGD(model.parameters(), lr=1.0)
    before = minnet.parameters_to_vector(model.named_parameters())
    opt.zero_grad()
    opt.step()
    np.testing.assert_array_equal(minnet.parameters_to_vector(model.named_parameters()), before)


def test_sequential_keeps_parameters_in_flat_storage():
    model = minnet.Sequential(
        [minnet.Linear(2, 3, rng=0), minnet.ReLU(), minnet.Linear(3, 1, rng=1)]
    )
    storage = minnet._fast.FlatStorage.find(model.parameters())
    assert storage is not None and storage.values.shape == (13,)
    assert np.shares_memory(storage.values, model.layers[2].W.value)
    model32 = minnet.Sequential([minnet.Linear(2, 3, rng=0), minnet.Sigmoid()], dtype=np.float32)
    assert all(p.value.dtype == np.float32 for p in model32.parameters())
    assert model32.forward(np.ones((1, 2))).dtype == np.float32
    # A parameter re-bound elsewhere leaves the storage: everything still works, per parameter.
    model.layers[0].W.value = model.layers[0].W.value.copy()
    assert minnet._fast.FlatStorage.find(model.parameters()) is None
    opt = minnet.SGD(model.parameters(), lr=0.1)
    model.zero_grad()
    model.cost(np.ones((2, 2)), [0, 1])
    model.backward()
    opt.step()
