"""Optimizers against torch.optim: same model, same data, 150 steps, same parameters."""

from __future__ import annotations

import os

import numpy as np
import pytest

from minnet import Linear, Parameter, ReLU, Sequential, Sigmoid
from minnet.optim import SGD, Adam, Optimizer

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

STEPS = 150
TOLERANCE = 1e-9

# (minnet optimizer, torch optimizer, keyword arguments), the same for both.
CASES = {
    "sgd": (SGD, "SGD", {"lr": 0.1}),
    "sgd-momentum": (SGD, "SGD", {"lr": 0.05, "momentum": 0.9}),
    "adam": (Adam, "Adam", {}),
    "adam-custom": (Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}),
    # beta1 < 0.5: torch.lerp takes its other branch; (Adam with a small beta2, e.g. 0.5, is
    # chaotic on this problem: rounding differences grow to ~1e-8 in 150 full-batch steps.)
    "adam-small-beta1": (Adam, "Adam", {"lr": 0.01, "betas": (0.3, 0.99)}),
}


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


@pytest.mark.parametrize("case", CASES)
def test_float32_parameters_keep_identity_dtype_and_match_torch(case):
    """Given the same float32 gradients, minnet and torch take the same float32 steps."""
    optimizer_class, torch_name, kwargs = CASES[case]
    rng = np.random.default_rng(2)
    shapes = [(4, 3), (4,), (1, 4)]
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    tensors = [torch.tensor(p.value, requires_grad=True) for p in params]
    arrays = [p.value for p in params]
    optimizer = optimizer_class(params, **kwargs)
    torch_optimizer = getattr(torch.optim, torch_name)(tensors, **kwargs)
    for _ in range(STEPS):
        for p, t in zip(params, tensors, strict=True):
            p.grad[...] = rng.standard_normal(p.shape)
            t.grad = torch.from_numpy(p.grad.copy())
        optimizer.step()
        torch_optimizer.step()
    for p, t, array in zip(params, tensors, arrays, strict=True):
        assert p.value is array
        assert p.value.dtype == np.float32
        assert p.grad.dtype == np.float32
        assert relative_difference(p.value, t.detach().numpy()) < 1e-5


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
    with pytest.raises(ValueError):
        optimizer.lr = -1.0
    with pytest.raises(AttributeError):  # fixed when made: it decides the velocity buffer
        optimizer.momentum = 0.9


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.0),
        lambda ps: SGD(ps, lr=-0.1),
        lambda ps: SGD(ps, lr=float("nan")),
        lambda ps: SGD(ps, lr=0.1, momentum=-0.1),
        lambda ps: SGD(ps, lr=0.1, momentum=1.0),
        lambda ps: Adam(ps, lr=0.0),
        lambda ps: Adam(ps, betas=(1.0, 0.999)),
        lambda ps: Adam(ps, betas=(0.9, -0.1)),
        lambda ps: Adam(ps, betas=(0.9,)),
        lambda ps: Adam(ps, eps=0.0),
        lambda ps: Adam(ps, eps=-1e-8),
        lambda ps: Adam([]),
        lambda ps: SGD([], lr=0.1),
        lambda ps: Adam(ps + ps[:1]),
    ],
)
def test_invalid_settings_raise_value_error(make):
    params = [Parameter(np.zeros(3)), Parameter(np.zeros((2, 2)))]
    with pytest.raises(ValueError):
        make(params)


@pytest.mark.parametrize(
    "params",
    [
        [np.zeros(3)],
        [Parameter(np.zeros(3)), "b"],
        [Parameter(np.zeros(3, dtype=int))],
        Parameter(np.zeros(3)),
        Sequential([Linear(2, 1, rng=0)]),
        3,
    ],
)
@pytest.mark.parametrize("optimizer_class", [SGD, Adam])
def test_non_parameters_raise_type_error(params, optimizer_class):
    with pytest.raises(TypeError, match="Parameter"):
        optimizer_class(params, lr=0.1)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_flat_path_and_the_per_parameter_path_agree(case, dtype):
    """The same update rule, applied to blocks of the flat vectors or to each parameter."""
    from minnet._fast import BLOCK, FlatStorage

    optimizer_class, _, kwargs = CASES[case]
    rng = np.random.default_rng(5)
    # 300 * 250 > BLOCK entries: the flat path cuts the vector into more than one block.
    assert 300 * 250 > BLOCK

    def build():
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

    flat, per_parameter = build(), build()
    assert FlatStorage.find(flat.parameters()) is not None
    optimizers = [
        optimizer_class(flat.parameters(), **kwargs),
        optimizer_class(per_parameter.parameters(), flat=False, **kwargs),
    ]
    for _ in range(100):
        X = rng.standard_normal((8, 3))
        Y = (rng.random(8) < 0.5).astype(float)
        for model, optimizer in zip((flat, per_parameter), optimizers, strict=True):
            optimizer.zero_grad()
            model.cost(X, Y)
            model.backward()
            optimizer.step()
    for p, q in zip(flat.parameters(), per_parameter.parameters(), strict=True):
        scale = np.max(np.abs(q.value))
        assert np.max(np.abs(p.value - q.value)) <= 1e-15 * scale
