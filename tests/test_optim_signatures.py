"""Every optimizer takes PyTorch's arguments in PyTorch's positional order, with its defaults:
code ported from torch (``AdamW(params, 1e-3, (0.9, 0.999), 1e-8, 0.05)``) means the same."""

from __future__ import annotations

import inspect

import pytest
from conftest import import_torch

import minnet

torch = import_torch()
NAMES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def positional(cls: type) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind in kinds]


@pytest.mark.parametrize("name", NAMES)
def test_positional_arguments_and_defaults_are_torchs(name):
    ours = positional(getattr(minnet, name))
    theirs = {p.name: p for p in positional(getattr(torch.optim, name))}
    names = [p.name for p in ours]
    # minnet's arguments come in the order torch gives them, and torch's positional ones that
    # minnet has are all there (torch-only options such as foreach come last in torch).
    assert names == [n for n in theirs if n in names]
    assert names == list(theirs)[: len(names)]
    for p in ours[2:]:  # after self and params
        assert p.default == theirs[p.name].default, p.name


@pytest.mark.parametrize("name", NAMES)
def test_positional_calls_set_the_same_settings_as_torch(name):
    """Each setting given by position lands where torch puts it."""
    values = {
        "lr": 0.05, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.03, "nesterov": True,
        "betas": (0.8, 0.9), "eps": 1e-6, "amsgrad": True, "alpha": 0.9, "centered": True,
        "lr_decay": 0.1, "initial_accumulator_value": 0.2,
    }  # fmt: skip
    names = [p.name for p in positional(getattr(minnet, name))][2:]
    args = [values[n] for n in names]
    ours = getattr(minnet, name)([minnet.Parameter(torch.zeros(2).numpy())], *args)
    theirs = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], *args)
    for n in names:
        assert getattr(ours, n) == theirs.param_groups[0][n], n
