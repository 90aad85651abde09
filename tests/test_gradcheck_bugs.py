"""The checker against a catalogue of real backward mistakes, in full and fast mode, on layers
and inside models: every bug caught and blamed on the right layer and parameter; and no false
alarm on hundreds of random correct nets with kinks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_data, random_net
from user_layers import UserBatchNorm

import minnet
from minnet import Linear, Sequential, Sigmoid, Tanh
from minnet.teaching.bugs import CATALOGUE, MissingMeanLoss

MODES = {"full": {}, "fast": {"fast": True}, "sampled": {"samples": 3}}


def bug_id(bug):
    return bug.name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bug", CATALOGUE, ids=bug_id)
def test_every_bug_is_caught_in_its_layer(bug, mode):
    rng = np.random.default_rng(0)
    layer = bug.make(4, rng)
    x = rng.standard_normal((5, 4))
    report = layer.gradcheck(x, **MODES[mode])
    assert not report.passed, str(report)
    assert report.worst_parameter == bug.blame
    assert report.worst and report.worst[0].parameter == bug.blame
    for name, difference in report.by_parameter.items():
        if name != bug.blame:
            assert difference < 1e-8, (name, difference)


def model_with(layer: minnet.Layer, rng) -> Sequential:
    """Linear(3, 4) -> Tanh -> the layer under test (index 2) -> Linear(4, 1) -> Sigmoid."""
    return Sequential([Linear(3, 4, rng=rng), Tanh(), layer, Linear(4, 1, rng=rng), Sigmoid()])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bug", CATALOGUE, ids=bug_id)
def test_every_bug_is_caught_inside_a_model_and_blamed_on_its_layer(bug, mode):
    rng = np.random.default_rng(1)
    model = model_with(bug.make(4, rng), rng)
    X, Y = random_data(rng, 6, 3)
    report = model.gradcheck(X, Y, **MODES[mode])
    assert not report.passed, str(report)
    assert report.blamed_layers == (2,), str(report)
    assert report.by_layer[2].worst_parameter == bug.blame
    if bug.blame != "input":  # a parameter of layer 2 itself is wrong
        assert report.worst_parameter == f"2.{bug.blame}"
    text = str(report)
    assert "the error is in layer 2" in text and bug.blame in text


def test_a_wrong_loss_gradient_is_caught_and_no_layer_is_blamed():
    rng = np.random.default_rng(2)
    model = random_net(rng, [3, 4, 1])
    model.loss = MissingMeanLoss()
    X, Y = random_data(rng, 6, 3)
    report = model.gradcheck(X, Y)
    assert not report.passed
    assert report.blamed_layers == ()
    assert "every layer passes on its own" in str(report)
    assert all(d > 0.5 for d in report.by_parameter.values())  # all off by a factor m = 6


def correct_net_with_kinks(seed: int):
    """A random correct net, half of them with zero biases and zero inputs (kinks everywhere),
    one in three with a user-written batch norm after its first layer (rows mix)."""
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(1, 8, size=rng.integers(2, 5))]
    activation = [minnet.ReLU, minnet.LeakyReLU, minnet.Tanh, minnet.Sigmoid][seed % 4]
    rows = int(rng.integers(1, 9))
    norm = UserBatchNorm if seed % 3 == 0 and rows >= 2 else None
    model = random_net(rng, [*sizes, 1], activation, norm_after_first=norm)
    X, Y = random_data(rng, rows, sizes[0])
    if seed % 2:
        for layer in model.layers:
            if isinstance(layer, Linear):
                layer.b.value[...] = 0
        X[:, 0] = 0
    return model, X, Y


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_no_false_alarm_on_hundreds_of_correct_nets_with_kinks(mode):
    false_alarms, kinks, inconclusive = [], 0, 0
    for seed in range(300):
        model, X, Y = correct_net_with_kinks(seed)
        report = model.gradcheck(X, Y, **MODES[mode])
        kinks += len(report.kinks)
        inconclusive += report.status == "inconclusive"
        if report.status == "failed":
            false_alarms.append(seed)
    assert false_alarms == []
    assert inconclusive <= 3  # under 1%
    if mode == "full":
        assert kinks > 50  # the kinks were really there, and recognised


def test_fast_mode_is_far_cheaper_on_a_10k_parameter_net():
    rng = np.random.default_rng(0)
    model = random_net(rng, [20, 100, 80, 1])
    X, Y = random_data(rng, 32, 20)
    n_params = sum(p.size for p in model.parameters())
    assert 10_000 < n_params < 11_000
    fast = model.gradcheck(X, Y, fast=True)
    sampled = model.gradcheck(X, Y, samples=20)
    assert fast.passed and sampled.passed
    # A full check needs 2 evaluations per entry; fast mode two per tensor.
    assert fast.evaluations * 20 <= 2 * n_params
    assert fast.mode == "fast" and sampled.mode == "sampled"
    assert sampled.checked == 6 * 20 - 20 + 1  # b of the last layer has a single entry
