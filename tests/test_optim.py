"""Optimizers against torch.optim: every option, step for step, in float64 and float32; the
flat path against the per-parameter path; gradient clipping against torch's."""

from __future__ import annotations

import math
import os
from typing import ClassVar

import numpy as np
import pytest
from conftest import import_torch, on_path
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
from minnet import Linear, Parameter, ReLU, Sequential, Sigmoid
from minnet.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_grad_norm_,
)

torch = import_torch()

STEPS = 150
TOLERANCE = 1e-9

# (minnet optimizer, torch optimizer, keyword arguments), the same for both: every option.
CASES = {
    "sgd": (SGD, "SGD", {"lr": 0.1}),
    "sgd-momentum": (SGD, "SGD", {"lr": 0.05, "momentum": 0.9}),
    "sgd-dampening": (SGD, "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    "sgd-nesterov": (SGD, "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "sgd-weight-decay": (SGD, "SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01}),
    "adam": (Adam, "Adam", {}),
    "adam-custom": (Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}),
    # beta1 < 0.5: torch.lerp takes its other branch; (Adam with a small beta2, e.g. 0.5, is
    # chaotic on this problem: rounding differences grow to ~1e-8 in 150 full-batch steps.)
    "adam-small-beta1": (Adam, "Adam", {"lr": 0.01, "betas": (0.3, 0.99)}),
    "adam-weight-decay": (Adam, "Adam", {"lr": 0.01, "weight_decay": 0.05}),
    "adam-amsgrad": (Adam, "Adam", {"lr": 0.01, "amsgrad": True}),
    "adamw": (AdamW, "AdamW", {"lr": 0.01}),
    "adamw-amsgrad": (AdamW, "AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    "rmsprop": (RMSprop, "RMSprop", {"lr": 0.001}),
    "rmsprop-centered": (RMSprop, "RMSprop", {"lr": 0.001, "centered": True}),
    "rmsprop-momentum": (RMSprop, "RMSprop", {"lr": 0.001, "momentum": 0.9, "alpha": 0.9}),
    "rmsprop-all": (
        RMSprop,
        "RMSprop",
        {"lr": 0.001, "momentum": 0.5, "centered": True, "weight_decay": 0.01, "eps": 1e-6},
    ),
    "adagrad": (Adagrad, "Adagrad", {"lr": 0.05}),
    "adagrad-all": (
        Adagrad,
        "Adagrad",
        {
            "lr": 0.05,
            "lr_decay": 0.01,
            "weight_decay": 0.01,
            "initial_accumulator_value": 0.1,
            "eps": 1e-8,
        },
    ),
}
CLASSES = [SGD, Adam, AdamW, RMSprop, Adagrad]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These problems are tiny: torch's thread pool only slows them down (20x on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_models(dtype=np.float64):
    model = Sequential(
        [Linear(3, 8, rng=0, dtype=dtype), ReLU(), Linear(8, 1, rng=1, dtype=dtype), Sigmoid()]
    )
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    reference = torch.nn.Sequential(
        torch.nn.Linear(3, 8, dtype=torch_dtype),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 1, dtype=torch_dtype),
    )
    with torch.no_grad():
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            q.copy_(torch.from_numpy(p.value))
    return model, reference


def make_batches(n_batches: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        X = rng.standard_normal((size, 3))
        Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(size) > 0).astype(float)
        batches.append((X, Y.reshape(-1, 1)))
    return batches


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def train_both(case: str, batches) -> list[float]:
    """Train a minnet model and its torch twin on ``batches``; the relative parameter gaps."""
    optimizer_class, torch_name, kwargs = CASES[case]
    model, reference = make_models()
    optimizer = optimizer_class(model.parameters(), **kwargs)
    torch_optimizer = getattr(torch.optim, torch_name)(reference.parameters(), **kwargs)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for X, Y in batches:
        optimizer.zero_grad()
        model.cost(X, Y)
        model.backward()
        optimizer.step()

        torch_optimizer.zero_grad()
        loss_fn(reference(torch.from_numpy(X)), torch.from_numpy(Y)).backward()
        torch_optimizer.step()
    return [
        relative_difference(p.value, q.detach().numpy())
        for p, q in zip(model.parameters(), reference.parameters(), strict=True)
    ]


@pytest.mark.parametrize("case", CASES)
def test_full_batch_matches_torch(case):
    batches = make_batches(1, 64) * STEPS
    assert max(train_both(case, batches)) < TOLERANCE


@pytest.mark.parametrize("case", CASES)
def test_mini_batches_match_torch(case):
    batches = make_batches(STEPS, 16, seed=1)
    assert max(train_both(case, batches)) < TOLERANCE


def stream_both(optimizer_class, torch_name, kwargs, n_steps, seed, dtype=np.float64):
    """Both optimizers over the same stream of random gradients (which do not depend on the
    parameters, so that rounding differences cannot grow through the dynamics); returns the
    minnet parameters, the torch tensors and the minnet parameters' original arrays."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (4,), (1, 4)]
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    tensors = [torch.tensor(p.value, requires_grad=True) for p in params]
    arrays = [p.value for p in params]
    optimizer = optimizer_class(params, **kwargs)
    torch_optimizer = getattr(torch.optim, torch_name)(tensors, **kwargs)
    for _ in range(n_steps):
        for p, t in zip(params, tensors, strict=True):
            p.grad[...] = rng.standard_normal(p.shape)
            t.grad = torch.from_numpy(p.grad.copy())
        optimizer.step()
        torch_optimizer.step()
    return params, tensors, arrays


@pytest.mark.parametrize("case", CASES)
def test_float32_parameters_keep_identity_dtype_and_match_torch(case):
    """Given the same float32 gradients, minnet and torch take the same float32 steps."""
    optimizer_class, torch_name, kwargs = CASES[case]
    params, tensors, arrays = stream_both(optimizer_class, torch_name, kwargs, STEPS, 2, np.float32)
    for p, t, array in zip(params, tensors, arrays, strict=True):
        assert p.value is array
        assert p.value.dtype == np.float32
        assert p.grad.dtype == np.float32
        assert relative_difference(p.value, t.detach().numpy()) < 1e-5


# Random settings of every option, as both libraries take them.
unit = st.floats(0.0, 1.0)
small = st.floats(0.0, 0.2)
SETTINGS = {
    SGD: st.fixed_dictionaries(
        {
            "lr": st.floats(0.0, 0.5),
            "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
            "dampening": st.one_of(st.just(0.0), unit),
            "weight_decay": st.one_of(st.just(0.0), small),
            "nesterov": st.booleans(),
        }
    ).map(lambda s: s | {"nesterov": s["nesterov"] and s["momentum"] > 0 and s["dampening"] == 0}),
    Adam: st.fixed_dictionaries(
        {
            "lr": st.floats(0.0, 0.1),
            "betas": st.tuples(st.floats(0.0, 0.999), st.floats(0.0, 0.9999)),
            "eps": st.floats(1e-10, 1e-2),
            "weight_decay": st.one_of(st.just(0.0), small),
            "amsgrad": st.booleans(),
        }
    ),
    RMSprop: st.fixed_dictionaries(
        {
            "lr": st.floats(0.0, 0.1),
            # (alpha = 1 never moves s from 0: every step divides by eps, and the parameters
            # overflow in both libraries)
            "alpha": st.floats(0.0, 0.999),
            "eps": st.floats(1e-10, 1e-2),
            "weight_decay": st.one_of(st.just(0.0), small),
            "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
            "centered": st.booleans(),
        }
    ).map(
        # centered: sqrt(s - a * a), a cancellation when alpha is small (s ~ a * a: one
        # gradient's square); torch rounds it with a fused multiply-add, numpy cannot: the
        # roundings differ (torch even takes the sqrt of a negative at alpha = 0).
        lambda s: s | {"alpha": 0.5 + s["alpha"] / 2} if s["centered"] else s
    ),
    Adagrad: st.fixed_dictionaries(
        {
            "lr": st.floats(0.0, 0.5),
            "lr_decay": st.one_of(st.just(0.0), unit),
            "weight_decay": st.one_of(st.just(0.0), small),
            "initial_accumulator_value": st.one_of(st.just(0.0), unit),
            "eps": st.floats(1e-10, 1e-2),
        }
    ),
}
SETTINGS[AdamW] = SETTINGS[Adam]


@pytest.mark.parametrize("optimizer_class", CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=int(os.environ.get("MINNET_OPTIM_EXAMPLES", 30)))
@given(data=st.data())
def test_random_settings_match_torch_step_for_step_in_float64(optimizer_class, data):
    kwargs = data.draw(SETTINGS[optimizer_class], label="settings")
    n_steps = data.draw(st.integers(1, 80), label="steps")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    params, tensors, _ = stream_both(
        optimizer_class, optimizer_class.__name__, kwargs, n_steps, seed
    )
    # Agreement to rounding: torch fuses a * x + y into one rounding (FMA) where numpy rounds
    # twice, an ulp a step, which some settings amplify (Adam with beta2 = 0 divides by |g|).
    for p, t in zip(params, tensors, strict=True):
        expected = t.detach().numpy()
        np.testing.assert_allclose(p.value, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_step_updates_in_place_and_leaves_grads_alone(case):
    optimizer_class, _, kwargs = CASES[case]
    model, _ = make_models()
    X, Y = make_batches(1, 32)[0]
    arrays = [p.value for p in model.parameters()]
    optimizer = optimizer_class(model.parameters(), **kwargs)
    for _ in range(3):
        optimizer.zero_grad()
        model.cost(X, Y)
        model.backward()
        grads = [p.grad.copy() for p in model.parameters()]
        optimizer.step()
        for p, grad, array in zip(model.parameters(), grads, arrays, strict=True):
            assert p.value is array
            np.testing.assert_array_equal(p.grad, grad)


@pytest.mark.parametrize("optimizer_class", CLASSES, ids=lambda c: c.__name__)
def test_a_learning_rate_of_zero_leaves_the_parameters_and_can_be_set_later(optimizer_class):
    """lr = 0 is allowed (a schedule may reach it): the parameters stand still, the state
    still moves, and a later rate takes the same steps as torch's."""
    rng = np.random.default_rng(3)
    p = Parameter(rng.standard_normal(5))
    t = torch.tensor(p.value, requires_grad=True)
    start = p.value.copy()
    kwargs = {"lr": 0.0, "weight_decay": 0.0}
    optimizer = optimizer_class([p], **kwargs)
    twin = getattr(torch.optim, optimizer_class.__name__)([t], **kwargs)
    for step in range(6):
        if step == 3:
            optimizer.lr = 0.01
            twin.param_groups[0]["lr"] = 0.01
        p.grad[...] = rng.standard_normal(5)
        t.grad = torch.from_numpy(p.grad.copy())
        optimizer.step()
        twin.step()
        if step < 3:
            np.testing.assert_array_equal(p.value, start)
    np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-13)


def test_zero_grad():
    model, _ = make_models()
    X, Y = make_batches(1, 32)[0]
    model.cost(X, Y)
    model.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(np.any(g != 0) for g in grads)
    SGD(model.parameters(), lr=0.1).zero_grad()
    for p, g in zip(model.parameters(), grads, strict=True):
        assert p.grad is g
        assert not np.any(g)


def test_accepts_any_iterable_of_parameters():
    model, _ = make_models()
    optimizer = Adam(p for p in model.parameters())
    assert isinstance(optimizer, Optimizer)
    assert optimizer.params == model.parameters()
    with pytest.raises(AttributeError):
        optimizer.params = model.parameters()[:1]  # the state is parallel to params


def test_settings_are_validated_when_changed_too():
    model, _ = make_models()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.5)
    optimizer.lr = 0.01
    assert optimizer.lr == 0.01
    optimizer.weight_decay = 0.1
    with pytest.raises(ValueError, match="lr"):
        optimizer.lr = -1.0
    with pytest.raises(ValueError, match="weight_decay"):
        optimizer.weight_decay = float("inf")
    with pytest.raises(AttributeError):  # fixed when made: it decides the velocity buffer
        optimizer.momentum = 0.9
    adam = Adam(model.parameters(), amsgrad=True)
    with pytest.raises(AttributeError):
        adam.amsgrad = False
    with pytest.raises(ValueError, match="eps"):
        adam.eps = 0.0


def test_the_public_names_and_defaults_are_torchs():
    params = [Parameter(np.zeros(2))]
    for cls in CLASSES:
        assert getattr(minnet, cls.__name__) is cls
    reference = {
        Adam: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": 0},
        AdamW: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
        RMSprop: {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0, "centered": False},
        Adagrad: {"lr": 1e-2, "lr_decay": 0, "initial_accumulator_value": 0, "eps": 1e-10},
    }
    for cls, defaults in reference.items():
        optimizer = cls(params)
        twin = getattr(torch.optim, cls.__name__)([torch.zeros(2, requires_grad=True)])
        for name, value in defaults.items():
            assert getattr(optimizer, name) == value == twin.defaults[name], (cls, name)
    sgd = SGD(params, 0.5)
    assert (sgd.momentum, sgd.dampening, sgd.weight_decay, sgd.nesterov) == (0, 0, 0, False)


NAN = float("nan")


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda ps: SGD(ps, lr=-0.1), "lr"),
        (lambda ps: SGD(ps, lr=NAN), "lr"),
        (lambda ps: SGD(ps, lr=float("inf")), "lr"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.1), "momentum"),
        (lambda ps: SGD(ps, lr=0.1, momentum=1.0), "momentum"),
        (lambda ps: SGD(ps, lr=0.1, dampening=-0.5), "dampening"),
        (lambda ps: SGD(ps, lr=0.1, weight_decay=-1e-4), "weight_decay"),
        (lambda ps: SGD(ps, lr=0.1, nesterov=True), "nesterov"),
        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
        (lambda ps: Adam(ps, lr=-1e-3), "lr"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "betas"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), "betas"),
        (lambda ps: Adam(ps, betas=(0.9,)), "betas"),
        (lambda ps: Adam(ps, eps=0.0), "eps"),
        (lambda ps: Adam(ps, eps=-1e-8), "eps"),
        (lambda ps: Adam(ps, weight_decay=NAN), "weight_decay"),
        (lambda ps: AdamW(ps, weight_decay=-0.01), "weight_decay"),
        (lambda ps: RMSprop(ps, alpha=1.5), "alpha"),
        (lambda ps: RMSprop(ps, alpha=-0.5), "alpha"),
        (lambda ps: RMSprop(ps, momentum=-0.5), "momentum"),
        (lambda ps: RMSprop(ps, eps=NAN), "eps"),
        (lambda ps: RMSprop(ps, weight_decay=-1.0), "weight_decay"),
        (lambda ps: Adagrad(ps, lr_decay=-0.1), "lr_decay"),
        (lambda ps: Adagrad(ps, initial_accumulator_value=-1.0), "initial_accumulator_value"),
        (lambda ps: Adagrad(ps, eps=0.0), "eps"),
        (lambda ps: Adam([]), "empty"),
        (lambda ps: SGD([], lr=0.1), "empty"),
        (lambda ps: Adam(ps + ps[:1]), "more than once"),
    ],
)
def test_invalid_settings_raise_value_error_naming_the_argument(make, name):
    params = [Parameter(np.zeros(3)), Parameter(np.zeros((2, 2)))]
    with pytest.raises(ValueError, match=name):
        make(params)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr="0.1"),
        lambda ps: SGD(ps, lr=0.1, nesterov="yes"),
        lambda ps: Adam(ps, amsgrad=1),
        lambda ps: RMSprop(ps, centered=None),
    ],
)
def test_settings_of_the_wrong_kind_raise_type_error(make):
    with pytest.raises(TypeError):
        make([Parameter(np.zeros(3))])


def integer_parameter() -> Parameter:
    """A Parameter whose value was replaced by integers after it was made (its constructor
    refuses them)."""
    p = Parameter(np.zeros(3))
    p.value = np.zeros(3, dtype=int)
    return p


@pytest.mark.parametrize(
    "params",
    [
        [np.zeros(3)],
        [Parameter(np.zeros(3)), "b"],
        [integer_parameter()],
        Parameter(np.zeros(3)),
        Sequential([Linear(2, 1, rng=0)]),
        3,
    ],
)
@pytest.mark.parametrize("optimizer_class", CLASSES, ids=lambda c: c.__name__)
def test_non_parameters_raise_type_error(params, optimizer_class):
    with pytest.raises(TypeError, match="Parameter"):
        optimizer_class(params, lr=0.1)


def build_wide(dtype):
    return Sequential(
        [
            Linear(3, 300, rng=0),
            ReLU(),
            Linear(300, 250, rng=1),
            ReLU(),
            Linear(250, 1, rng=2),
            Sigmoid(),
        ],
        dtype=dtype,
    )


def step_with_random_gradients(models_and_optimizers, steps=10):
    """The same random gradients for every model, then a step of each optimizer."""
    rng = np.random.default_rng(5)
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape) for p in models_and_optimizers[0][0].parameters()]
        for model, optimizer in models_and_optimizers:
            for p, grad in zip(model.parameters(), grads, strict=True):
                p.grad[...] = grad
            optimizer.step()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_flat_path_and_the_per_parameter_path_agree(case, dtype, monkeypatch):
    """The same update rule, applied to blocks of the flat vectors or to each parameter, gives
    the same bits: every update is elementwise (on two threads too, for a threaded optimizer)."""
    from minnet._fast import BLOCK, FlatStorage, parallel

    optimizer_class, _, kwargs = CASES[case]
    # 300 * 250 > BLOCK entries: the flat path cuts the vector into more than one block; a
    # threaded optimizer's blocks of 8,192 entries are enough for both threads to take some.
    assert 300 * 250 > BLOCK
    monkeypatch.setattr(parallel, "THREAD_BLOCK_BYTES", 8192 * np.dtype(dtype).itemsize)
    flat, per_parameter = build_wide(dtype), build_wide(dtype)
    assert FlatStorage.find(flat.parameters()) is not None
    flat_optimizer = optimizer_class(flat.parameters(), **kwargs)
    assert len(flat_optimizer._flat_blocks) >= (
        parallel.MIN_BLOCKS if optimizer_class.threaded else 2
    )
    per_parameter_optimizer = optimizer_class(per_parameter.parameters(), flat=False, **kwargs)
    step_with_random_gradients([(flat, flat_optimizer), (per_parameter, per_parameter_optimizer)])
    for p, q in zip(flat.parameters(), per_parameter.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    for state, other in zip(flat_optimizer.state, per_parameter_optimizer.state, strict=True):
        assert len(state) == len(other)
        for a, b in zip(state, other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer_class", CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=int(os.environ.get("MINNET_OPTIM_EXAMPLES", 30)))
@given(data=st.data())
def test_random_settings_give_the_same_bits_on_the_flat_path(optimizer_class, data):
    """Any settings, either dtype, blocks of any size (the last one shorter), the learning rate
    and weight decay changed between steps as a schedule would: the flat path (the same rule on
    blocks, or its fused twin in minnet._fast.fused) and the per-parameter path agree bit for bit,
    in the parameters and in the state."""
    from unittest import mock

    from minnet._fast import FlatStorage, parallel, storage

    kwargs = data.draw(SETTINGS[optimizer_class], label="settings")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    block = data.draw(st.integers(1, 30), label="block")
    n_steps = data.draw(st.integers(1, 12), label="steps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    twins = [Parameter(p.value.copy()) for p in params]
    held = FlatStorage.create(params)  # (a model would hold it)
    assert held is not None
    # (a threaded optimizer's blocks are of THREAD_BLOCK_BYTES: the same entries here)
    with (
        mock.patch.object(storage, "BLOCK", block),
        mock.patch.object(parallel, "THREAD_BLOCK_BYTES", block * np.dtype(dtype).itemsize),
    ):
        flat = optimizer_class(params, **kwargs)
    per_parameter = optimizer_class(twins, flat=False, **kwargs)
    assert len(flat._flat_blocks) == -(-26 // block)  # 26 entries in all
    for _ in range(n_steps):
        if data.draw(st.booleans(), label="change lr and weight_decay"):
            for name, value in [("lr", data.draw(small)), ("weight_decay", data.draw(small))]:
                setattr(flat, name, value)
                setattr(per_parameter, name, value)
        for p, q in zip(params, twins, strict=True):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape)
        flat.step()
        per_parameter.step()
        for p, q in zip(params, twins, strict=True):
            np.testing.assert_array_equal(p.value, q.value)
    for state, other in zip(flat.state, per_parameter.state, strict=True):
        for a, b in zip(state, other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", CASES)
def test_use_fast_path_off_and_on_give_the_same_numbers(case):
    """Training with the accelerator on (flat storage, flat steps) and off: the same bits."""
    optimizer_class, _, kwargs = CASES[case]
    batches = make_batches(20, 16, seed=4)

    def train(enabled: bool) -> list[np.ndarray]:
        model, _ = make_models()
        optimizer = optimizer_class(model.parameters(), **kwargs)
        assert (len(optimizer._flat_blocks) > 0) is enabled
        for X, Y in batches:
            _step(model, optimizer, X, Y)
        return [p.value.copy() for p in model.parameters()]

    for a, b in zip(on_path(False, train, False), on_path(True, train, True), strict=True):
        np.testing.assert_array_equal(a, b)


def _step(model, optimizer, X, Y) -> None:
    optimizer.zero_grad()
    model.cost(X, Y)
    model.backward()
    optimizer.step()


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("case", CASES)
def test_a_copied_model_and_optimizer_train_as_on_the_textbook_path(case, how):
    """``copy.deepcopy((model, optimizer))`` (or a pickle) mid-training: the copied optimizer
    steps the copied model's parameters (the flat path's blocks would be copies of their own,
    no longer the copied parameters'), as with the accelerator off; the original trains on."""
    import copy
    import pickle

    optimizer_class, _, kwargs = CASES[case]
    batches = make_batches(6, 16, seed=4)

    def train() -> list[np.ndarray]:
        model, _ = make_models()
        optimizer = optimizer_class(model.parameters(), **kwargs)
        for i, (X, Y) in enumerate(batches):
            if i == 3:
                pair = (model, optimizer)
                twin, twin_optimizer = (
                    copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
                )
            for m, o in [(model, optimizer)] + ([(twin, twin_optimizer)] if i >= 3 else []):
                _step(m, o, X, Y)
        return [p.value.copy() for m in (model, twin) for p in m.parameters()]

    for a, b in zip(on_path(False, train), on_path(True, train), strict=True):
        np.testing.assert_array_equal(a, b)


# -- clip_grad_norm_ -----------------------------------------------------------------------------
@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3),
    max_norm=st.floats(0.0, 10.0) | st.just(math.inf),
    norm_type=st.sampled_from([2.0, 1.0, 3.0, 0.5, math.inf]),
)
def test_clip_grad_norm_matches_torch(seed, scale, max_norm, norm_type):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 1, 3)][: rng.integers(1, 4)]
    params = [Parameter(np.zeros(s)) for s in shapes]
    tensors = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, t in zip(params, tensors, strict=True):
        p.grad[...] = scale * rng.standard_normal(p.shape)
        t.grad = torch.from_numpy(p.grad.copy())
    grads = [p.grad for p in params]
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected), rel=1e-13)
    for p, t, g in zip(params, tensors, grads, strict=True):
        assert p.grad is g  # in place
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-13, atol=0)


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(1))
    p.grad[...] = [3.0, 0.0]
    q.grad[...] = [4.0]
    assert clip_grad_norm_([p, q], 1.0) == 5.0
    new_norm = math.hypot(*p.grad, *q.grad)
    assert new_norm == pytest.approx(1.0, rel=1e-6) and new_norm <= 1.0
    assert clip_grad_norm_(p, 10.0) == pytest.approx(0.6, rel=1e-6)  # one Parameter, unclipped
    assert clip_grad_norm_([], 1.0) == 0.0


def test_clip_grad_norm_refuses_bad_arguments():
    p = Parameter(np.ones(2))
    for bad in (-1.0, math.nan, -math.inf):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm_([p], bad)
    with pytest.raises(TypeError, match="error_if_nonfinite must be True or False"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite="yes")
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0)
    with pytest.raises(TypeError, match="Parameter"):
        clip_grad_norm_([np.ones(2)], 1.0)
    p.grad[...] = [np.inf, 1.0]
    with pytest.raises(RuntimeError, match="norm"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert p.grad[1] == 1.0


def test_cs231n_rmsprop_step():
    """CS231n assignment 2 (FullyConnectedNets), "Test RMSProp implementation": one step from a
    given cache, decay_rate 0.99 (alpha), epsilon 1e-8; the notebook's values to 8 digits."""
    N, D = 4, 5
    p = Parameter(np.linspace(-0.4, 0.6, num=N * D).reshape(N, D))
    p.grad[...] = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    optimizer = RMSprop([p], lr=1e-2)
    (cache,) = optimizer.state[0]
    cache[...] = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    optimizer.step()
    expected_next_w = [
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619],
    ]
    expected_cache = [
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926],
    ]
    np.testing.assert_allclose(p.value, expected_next_w, rtol=0, atol=5e-9)
    np.testing.assert_allclose(cache, expected_cache, rtol=0, atol=5e-9)


def cs231n_weight(flat: bool) -> tuple[object, list[Parameter], Parameter]:
    """CS231n's ``w`` and ``dw`` (N, D = 4, 5) as the weight of a Linear in a model, whose
    parameters sit in flat storage (the optimizers' flat path, the bias's gradient zero), or as
    a lone Parameter; ``(the model, to keep, the parameters to optimize, w)``."""
    N, D = 4, 5
    model = Sequential([Linear(D, N, rng=0)]) if flat else None
    if flat:
        params, p = model.parameters(), model.layers[0].W
        model.zero_grad()
    else:
        p = Parameter(np.zeros((N, D)))
        params = [p]
    p.value[...] = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    p.grad[...] = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    return model, params, p


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
def test_cs231n_sgd_momentum_step(flat):
    """CS231n assignment 2 (FullyConnectedNets), "Test SGD+Momentum": ``v = 0.9 v - lr dw``,
    ``w = w + v`` from a given ``v``, lr 1e-3; the notebook's values to 8 digits. PyTorch's
    velocity (minnet's) is CS231n's divided by ``-lr``: ``b = 0.9 b + dw``, ``w = w - lr b``."""
    N, D, lr = 4, 5, 1e-3
    _model, params, p = cs231n_weight(flat)
    optimizer = SGD(params, lr=lr, momentum=0.9)
    assert bool(optimizer._flat_blocks) is flat
    (velocity,) = optimizer.state[params.index(p)]
    velocity[...] = np.linspace(0.6, 0.9, num=N * D).reshape(N, D) / -lr
    optimizer.steps = 1  # a velocity from earlier steps (the first step would start it at dw)
    optimizer.step()
    expected_next_w = [
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096],
    ]
    expected_velocity = [
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096],
    ]
    np.testing.assert_allclose(p.value, expected_next_w, rtol=0, atol=5e-9)
    np.testing.assert_allclose(-lr * velocity, expected_velocity, rtol=0, atol=5e-9)


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
def test_cs231n_adam_step(flat):
    """CS231n assignment 2, "Test Adam": one step from given moments ``m``, ``v`` after
    ``t = 5`` steps (CS231n counts the step first: this is step 6), lr 1e-2, betas (0.9, 0.999),
    eps 1e-8, with bias correction; the notebook's values to 8 digits."""
    N, D = 4, 5
    _model, params, p = cs231n_weight(flat)
    optimizer = Adam(params, lr=1e-2)
    assert bool(optimizer._flat_blocks) is flat
    m, v = optimizer.state[params.index(p)]
    m[...] = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v[...] = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    optimizer.steps = 5
    optimizer.step()
    expected_next_w = [
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459],
    ]
    expected_v = [
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966],
    ]
    expected_m = [
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85],
    ]
    np.testing.assert_allclose(p.value, expected_next_w, rtol=0, atol=5e-9)
    np.testing.assert_allclose(v, expected_v, rtol=0, atol=5e-9)
    np.testing.assert_allclose(m, expected_m, rtol=0, atol=5e-9)


@pytest.mark.parametrize(
    "optimizer_class", [minnet.Adam, minnet.AdamW, minnet.RMSprop, minnet.Adagrad]
)
def test_an_eps_that_rounds_to_zero_in_float16_is_refused_up_front(optimizer_class):
    model = Sequential(
        [Linear(2, 3, rng=0, dtype=np.float16), Linear(3, 1, rng=1, dtype=np.float16)]
    )
    with pytest.raises(ValueError, match=r"eps=1e-\d+ rounds to 0 in float16.*at least 6\.1e-05"):
        optimizer_class(model.parameters())
    optimizer_class(model.parameters(), eps=1e-4)  # representable: accepted


@pytest.mark.parametrize("optimizer_class", CLASSES, ids=lambda c: c.__name__)
def test_a_subclass_with_its_own_rule_gets_its_rule_on_the_flat_path(optimizer_class):
    """minnet's fused twins mirror minnet's rules: a subclass that writes its own ``update``
    has that rule applied to the flat blocks, not the twin of its parent's."""
    from minnet._fast import FlatStorage

    class Halved(optimizer_class):
        def update(self, value, grad, *state):
            value -= 0.5 * grad  # a rule of its own, without its parent's state

    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(s)) for s in [(4, 3), (4,)]]
    held = FlatStorage.create(params)  # (a model would hold it)
    assert held is not None
    optimizer = Halved(params)
    assert optimizer._flat_blocks
    before = [p.value.copy() for p in params]
    for p in params:
        p.grad[...] = 1.0
    optimizer.step()
    for p, old in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.value, old - 0.5)
    # its blocks stay on one thread: the parent's promise (touching nothing but its block and
    # its scratch) was about the parent's rule; a subclass may promise it for its own
    assert not Halved.threaded

    class Promised(Halved):
        threaded = True

        def update(self, value, grad, *state):
            value -= 0.25 * grad

    assert Promised.threaded


def test_a_subclass_with_its_own_update_block_stays_on_one_thread(monkeypatch):
    # as a subclass that writes its own update: the parent's promise (touching nothing but its
    # block and its scratch) was about the parent's update_block; this one keeps Python state
    import threading

    from minnet._fast import FlatStorage, parallel, storage

    class Recorded(SGD):
        threads: ClassVar[set] = set()

        def update_block(self, block, scratch):
            Recorded.threads.add(threading.get_ident())
            value, grad = block[:2]
            value -= 0.5 * grad

    assert not Recorded.threaded
    assert AdamW.threaded  # (minnet's own say so)
    monkeypatch.setattr(storage, "BLOCK", 2)
    monkeypatch.setattr(parallel, "THREAD_BLOCK_BYTES", 16)
    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(s)) for s in [(4, 3), (4,), (2, 4), (2,)]]
    held = FlatStorage.create(params)  # (a model would hold it)
    assert held is not None
    optimizer = Recorded(params, lr=0.1)
    assert len(optimizer._flat_blocks) >= parallel.MIN_BLOCKS
    before = [p.value.copy() for p in params]
    for p in params:
        p.grad[...] = 1.0
    optimizer.step()
    assert Recorded.threads == {threading.get_ident()}
    for p, old in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.value, old - 0.5)
