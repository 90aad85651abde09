"""The one vectorizing utility: named arrays <-> one flat vector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
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


def test_parameter_grad_matches_value():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32
    p.grad += 1
    p.zero_grad()
    np.testing.assert_array_equal(p.grad, 0)
