"""Learning-rate schedules against torch.optim.lr_scheduler: the same lr sequences, exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import import_torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet import (
    SGD,
    Adam,
    CosineAnnealingLR,
    ExponentialLR,
    Parameter,
    ReduceLROnPlateau,
    StepLR,
)

torch = import_torch()


def twins(lr: float):
    """A minnet SGD and a torch SGD, both at ``lr``."""
    optimizer = SGD([Parameter(np.zeros(2))], lr=lr)
    twin = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    return optimizer, twin


def sequences(make, torch_make, lr: float, epochs: int, metrics=None):
    """The lr after each of ``epochs`` steps (and before the first), from minnet and torch."""
    optimizer, twin = twins(lr)
    schedule, reference = make(optimizer), torch_make(twin)
    ours, theirs = [schedule.get_last_lr()], [reference.get_last_lr()]
    for epoch in range(epochs):
        twin.step()  # torch warns when a schedule steps before its optimizer
        if metrics is None:
            schedule.step()
            reference.step()
        else:
            schedule.step(metrics[epoch])
            reference.step(metrics[epoch])
        ours.append(schedule.get_last_lr())
        theirs.append(reference.get_last_lr())
        assert optimizer.lr == twin.param_groups[0]["lr"]
    return ours, theirs


lrs = st.floats(1e-6, 10.0)


@settings(max_examples=60)
@given(lr=lrs, step_size=st.integers(1, 20), gamma=st.floats(0.0, 2.0), epochs=st.integers(1, 200))
def test_step_lr_matches_torch(lr, step_size, gamma, epochs):
    ours, theirs = sequences(
        lambda o: StepLR(o, step_size, gamma),
        lambda t: torch.optim.lr_scheduler.StepLR(t, step_size, gamma),
        lr,
        epochs,
    )
    assert ours == theirs


@settings(max_examples=60)
@given(lr=lrs, gamma=st.floats(0.0, 1.1), epochs=st.integers(1, 200))
def test_exponential_lr_matches_torch(lr, gamma, epochs):
    ours, theirs = sequences(
        lambda o: ExponentialLR(o, gamma),
        lambda t: torch.optim.lr_scheduler.ExponentialLR(t, gamma),
        lr,
        epochs,
    )
    assert ours == theirs


@settings(max_examples=80)
@given(
    lr=lrs,
    T_max=st.integers(1, 50),
    eta_min=st.one_of(st.just(0.0), st.floats(0.0, 1e-3)),
    epochs=st.integers(1, 300),
)
def test_cosine_annealing_lr_matches_torch(lr, T_max, eta_min, epochs):
    ours, theirs = sequences(
        lambda o: CosineAnnealingLR(o, T_max, eta_min),
        lambda t: torch.optim.lr_scheduler.CosineAnnealingLR(t, T_max, eta_min),
        lr,
        epochs,
    )
    assert ours == theirs


def test_cosine_annealing_reaches_zero_and_the_optimizer_accepts_it():
    optimizer = Adam([Parameter(np.ones(3))], lr=0.1)
    schedule = CosineAnnealingLR(optimizer, T_max=10)
    for _ in range(10):
        schedule.step()
    assert schedule.get_last_lr() == [0.0] and optimizer.lr == 0.0
    p = optimizer.params[0]
    p.grad[...] = 1.0
    optimizer.step()
    np.testing.assert_array_equal(p.value, np.ones(3))  # a rate of 0 moves nothing
    schedule.step()
    assert 0 < optimizer.lr < 0.1  # and the cosine rises again


@settings(max_examples=80)
@given(
    lr=lrs,
    mode=st.sampled_from(["min", "max"]),
    factor=st.floats(0.0, 0.99),
    patience=st.integers(0, 5),
    threshold=st.floats(0.0, 0.1),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    cooldown=st.integers(0, 3),
    min_lr=st.one_of(st.just(0.0), st.floats(0.0, 1e-3)),
    metrics=st.lists(
        st.one_of(st.floats(-10, 10), st.sampled_from([1.0, 2.0])), min_size=1, max_size=100
    ),
)
def test_reduce_lr_on_plateau_matches_torch(
    lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, metrics
):
    options = dict(
        mode=mode,
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=min_lr,
    )
    ours, theirs = sequences(
        lambda o: ReduceLROnPlateau(o, **options),
        lambda t: torch.optim.lr_scheduler.ReduceLROnPlateau(t, **options),
        lr,
        len(metrics),
        metrics,
    )
    assert ours == theirs


def test_reduce_lr_on_plateau_waits_patience_epochs():
    optimizer, _ = twins(1.0)
    schedule = ReduceLROnPlateau(optimizer, patience=2, factor=0.5)
    for metric in [3.0, 2.0, 2.0, 2.0]:  # better, better, bad, bad: not yet
        schedule.step(metric)
    assert optimizer.lr == 1.0
    schedule.step(2.0)  # a third bad epoch: more than patience
    assert optimizer.lr == 0.5 and schedule.get_last_lr() == [0.5]


def test_a_schedule_follows_a_rate_set_by_hand():
    optimizer, twin = twins(0.1)
    schedule = ExponentialLR(optimizer, 0.5)
    optimizer.lr = 1.0
    schedule.step()
    assert optimizer.lr == 0.5


def test_the_names_are_exported_and_a_schedule_needs_a_minnet_optimizer():
    for name in ("StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"):
        assert getattr(minnet, name) is getattr(minnet.optim, name)
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 3)
    assert "StepLR(step_size=3, gamma=0.1" in repr(StepLR(twins(0.1)[0], 3))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda o: StepLR(o, 0), "step_size"),
        (lambda o: StepLR(o, 2, gamma=-0.5), "gamma"),
        (lambda o: StepLR(o, 2, gamma=math.nan), "gamma"),
        (lambda o: ExponentialLR(o, math.inf), "gamma"),
        (lambda o: CosineAnnealingLR(o, 0), "T_max"),
        (lambda o: CosineAnnealingLR(o, 10, eta_min=-1.0), "eta_min"),
        (lambda o: ReduceLROnPlateau(o, mode="lowest"), "mode"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), "factor"),
        (lambda o: ReduceLROnPlateau(o, factor=-0.1), "factor"),
        (lambda o: ReduceLROnPlateau(o, patience=-1), "patience"),
        (lambda o: ReduceLROnPlateau(o, threshold=-1e-4), "threshold"),
        (lambda o: ReduceLROnPlateau(o, threshold_mode="relative"), "threshold_mode"),
        (lambda o: ReduceLROnPlateau(o, cooldown=-2), "cooldown"),
        (lambda o: ReduceLROnPlateau(o, min_lr=math.nan), "min_lr"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_argument(make, name):
    optimizer, _ = twins(0.1)
    with pytest.raises(ValueError, match=name):
        make(optimizer)
    assert optimizer.lr == 0.1
