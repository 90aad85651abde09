"""The accelerator's guard that objects still hold what they held (minnet._fast.watch)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet._fast.watch import same_attributes


class Holder:
    pass


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 12),
    replaced=st.lists(st.integers(0, 11), max_size=4),
)
def test_same_attributes_is_the_loop_it_replaces(count, replaced):
    owners = [Holder() for _ in range(count)]
    triples = []
    for owner in owners:
        owner.value, owner.grad = np.zeros(2), np.zeros(2)
        triples += [(owner, "value", owner.value), (owner, "grad", owner.grad)]
    same = same_attributes(triples)
    assert same()
    for i in replaced:
        if i < count:
            owners[i].grad = owners[i].grad.copy()  # equal numbers, another array
    assert same() is all(getattr(o, n) is e for o, n, e in triples)


def test_a_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(ValueError, match="identifier"):
        same_attributes([(Holder(), "value; import os", None)])


def test_an_optimizer_notices_a_parameter_given_a_new_array():
    """After ``p.value = ...`` the flat storage no longer holds it: the step updates the new
    array, by the per-parameter path."""
    model = minnet.Sequential([minnet.Linear(3, 2)], loss=minnet.MSELoss())
    opt = minnet.SGD(model.parameters(), lr=0.5)
    p = model.parameters()[0]
    p.grad[...] = 1.0
    p.value = np.zeros_like(p.value)  # another array, outside the storage
    opt.step()
    np.testing.assert_array_equal(p.value, -0.5)


def test_a_dict_that_no_longer_has_the_item_does_not_hold_it():
    # (a layer's attribute deleted: the plan's holds() says False, it does not raise)
    expected = object()
    owner = {"W": expected}
    same = same_attributes([(owner, "W", expected)])
    assert same()
    del owner["W"]
    assert same() is False
    owner["W"] = expected
    assert same()
