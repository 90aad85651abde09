"""A gradient check is an observation: it refuses a point where there is nothing to observe
(NaN/inf data, a non-finite value there, options of the wrong kind) with an error naming the
argument, and it leaves every layer as it was: parameters, gradients, buffers, the generators'
states and what ``forward`` cached for a pending ``backward``."""

from __future__ import annotations

import copy
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import example_shape, layer_example

import minnet
from minnet.gradcheck import check_function, check_layer, check_loss, check_model
from minnet.losses import ClassLoss, Loss

ROOT = Path(__file__).resolve().parents[1]
LAYERS = minnet.layers.layer_classes()
SEEDS = range(6)


def _loss_classes() -> list[type]:
    found, stack = [], [Loss]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__ == "minnet.losses" and not inspect.isabstract(cls):
            if cls is not Loss:
                found.append(cls)
    return sorted(found, key=lambda cls: cls.__name__)


def _spoil(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` with a random number (at least one) of random entries NaN, inf or -inf."""
    x = x.copy()
    flat = x.reshape(-1)
    count = int(rng.integers(1, flat.size + 1))
    where = rng.choice(flat.size, count, replace=False)
    flat[where] = rng.choice([np.nan, np.inf, -np.inf], count)
    return x


def _model(rng: np.random.Generator, dropout: bool = True) -> minnet.Sequential:
    """A random net: 1-3 hidden layers of random widths, ReLU or Tanh, Dropout after random
    ones, a final Sigmoid."""
    sizes = [int(rng.integers(2, 5))] + [int(rng.integers(2, 6)) for _ in range(rng.integers(1, 4))]
    layers: list[minnet.Layer] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [
            minnet.Linear(n_in, n_out, rng=rng),
            [minnet.ReLU, minnet.Tanh][rng.integers(2)](),
        ]
        if dropout and rng.random() < 0.7:
            layers.append(minnet.Dropout(float(rng.uniform(0.1, 0.6)), seed=int(rng.integers(99))))
    layers += [minnet.Linear(sizes[-1], 1, rng=rng), minnet.Sigmoid()]
    return minnet.Sequential(layers)


# --- #7: no point, no verdict ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_check_refuses_a_non_finite_x_naming_it(name, seed):
    rng = np.random.default_rng(seed)
    layer = layer_example(LAYERS[name], 4, rng)
    x = _spoil(rng.standard_normal((5, *example_shape(LAYERS[name], 4))), rng)
    with pytest.raises(ValueError, match=r"^x must be finite, but \d+ entries are NaN or inf"):
        layer.gradcheck(x)


@pytest.mark.parametrize("seed", SEEDS)
def test_function_loss_and_model_checks_refuse_non_finite_points_naming_them(seed):
    rng = np.random.default_rng(seed)
    x = _spoil(rng.standard_normal((4, 3)), rng)
    with pytest.raises(ValueError, match=r"^x must be finite"):
        check_function(lambda v: float(np.sum(v**2)), x, 2 * x)
    for cls in _loss_classes():
        with pytest.raises(ValueError, match=r"^outputs must be finite"):
            check_loss(
                cls(),
                x,
                np.zeros(4, dtype=int) if issubclass(cls, ClassLoss) else np.zeros((4, 3)),
            )
    model = _model(rng)
    X = _spoil(rng.standard_normal((5, model.in_features)), rng)
    with pytest.raises(ValueError, match=r"X must be finite"):
        check_model(model, X, rng.integers(0, 2, 5))


class Log(minnet.Layer):
    """log(x): NaN for x < 0, -inf at 0 (a correct backward)."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


@pytest.mark.parametrize("seed", SEEDS)
def test_a_function_not_finite_at_a_finite_point_is_refused(seed):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((4, 3))) + 0.5
    x.reshape(-1)[rng.integers(x.size)] = -rng.uniform(0, 2)  # log of it: NaN or -inf
    with np.errstate(all="ignore"):
        with pytest.raises(ValueError, match=r"^f\(x\) is not finite at the given x"):
            check_function(lambda v: float(np.sum(np.log(v))), x, 1 / x)
        with pytest.raises(ValueError, match=r"forward\(x\) is not finite at the given x"):
            Log().gradcheck(x)
        model = minnet.Sequential([Log(), minnet.Linear(3, 1, rng=seed), minnet.Sigmoid()])
        with pytest.raises(ValueError, match=r"^model.cost\(X, Y\) is not finite"):
            model.gradcheck(x, rng.integers(0, 2, 4))


# --- #8: every option of every entry point, checked like the rest of the API --------------------

WRONG_KIND = {
    "epsilon": ["1e-3", True, 1j, [1e-3]],
    "threshold": ["1e-6", None, False, np.ones(2)],
    "fast": ["no", 0, 1, None, "False"],
    "samples": [1.5, "3", True, 2.0],
    "seed": [1.5, "0", True, np.random.default_rng(0)],
}
OUT_OF_RANGE = {
    "epsilon": [0, -1e-3, np.inf, np.nan, 1e300],
    "threshold": [0, 1, -0.5, 2, np.nan],
    "samples": [0, -1, -100],
    "seed": [-1, -(2**40)],
}


def _entry_points(rng):
    x = rng.standard_normal((4, 3))
    model = _model(rng, dropout=False)
    X = rng.standard_normal((4, model.in_features))
    return {
        "function": lambda **o: check_function(lambda v: float(np.sum(v**2)), x, 2 * x, **o),
        "loss": lambda **o: check_loss(minnet.MSELoss(), x, np.zeros((4, 3)), **o),
        "loss method": lambda **o: minnet.BCELoss().gradcheck(
            x[:, :1] ** 2 / 9 + 0.1, np.ones((4, 1)), **o
        ),
        "loss method, reduction='none'": lambda **o: minnet.MSELoss(reduction="none").gradcheck(
            x, np.zeros((4, 3)), **o
        ),
        "layer": lambda **o: check_layer(minnet.Linear(3, 2, rng=0), x, **o),
        "model": lambda **o: check_model(model, X, rng.integers(0, 2, 4), **o),
    }


@pytest.mark.parametrize("option", sorted(WRONG_KIND))
def test_an_option_of_the_wrong_kind_is_a_type_error_naming_it(option):
    for name, run in _entry_points(np.random.default_rng(0)).items():
        for value in WRONG_KIND[option]:
            with pytest.raises(TypeError, match=f"^{option} must be"):
                run(**{option: value})
                pytest.fail(f"{name} took {option}={value!r}")


@pytest.mark.parametrize("option", sorted(OUT_OF_RANGE))
def test_an_option_out_of_range_is_a_value_error_naming_it(option):
    for run in _entry_points(np.random.default_rng(1)).values():
        for value in OUT_OF_RANGE[option]:
            with pytest.raises(ValueError, match=f"^{option} must be"):
                run(**{option: value})


def test_numpy_scalars_are_accepted_as_options():
    for run in _entry_points(np.random.default_rng(2)).values():
        report = run(fast=np.bool_(True), seed=np.int64(3), threshold=np.float32(1e-6))
        assert report.mode == "fast"


def test_fast_false_runs_the_full_check_and_true_the_fast_one():
    layer, x = minnet.Linear(3, 2, rng=0), np.ones((4, 3))
    assert layer.gradcheck(x, fast=False).mode == "full"
    assert layer.gradcheck(x, fast=True).mode == "fast"


def test_the_check_command_refuses_a_bad_seed_before_building_anything(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(
        "import minnet\nclass Double(minnet.Layer):\n"
        "    def forward(self, x): return 2 * x\n    def backward(self, g): return 2 * g\n"
    )
    for seed in ("-1", "-7"):
        run = subprocess.run(
            [sys.executable, "-m", "minnet", "check", str(path), "--seed", seed],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert run.returncode == 2
        assert run.stderr.strip() == f"minnet check: seed must be a whole number >= 0, got {seed}"
        assert run.stdout == ""


# --- #21: fused=True only for a loss that fuses -------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("cls", _loss_classes(), ids=lambda cls: cls.__name__)
def test_fused_is_a_checked_flag_and_only_for_losses_that_fuse(cls, reduction):
    rng = np.random.default_rng(0)
    if reduction != "mean" and "reduction" not in inspect.signature(cls).parameters:
        pytest.skip(f"{cls.__name__} has no reduction")
    loss = cls(reduction=reduction) if reduction != "mean" else cls()
    index_targets = issubclass(cls, ClassLoss)
    outputs = rng.standard_normal((4, 3)) if index_targets else rng.uniform(0.1, 0.9, (4, 3))
    targets = rng.integers(0, 3, 4) if index_targets else rng.integers(0, 2, (4, 3)).astype(float)
    with pytest.raises(TypeError, match="^fused must be True or False"):
        loss.gradcheck(outputs, targets, fused="yes")
    if cls.fuses is None:
        with pytest.raises(ValueError, match=f"{cls.__name__} fuses with no activation") as err:
            loss.gradcheck(outputs, targets, fused=True)
        fusing = [other.__name__ for other in _loss_classes() if other.fuses is not None]
        assert fusing and all(name in str(err.value) for name in fusing)
    else:
        assert loss.gradcheck(outputs, targets, fused=True).status != "failed"


# --- #10: a check leaves every layer as it was -------------------------------------------------


def _state(value, seen=None):
    """Everything that can change, as plain data (arrays copied, generators' states)."""
    seen = set() if seen is None else seen
    if isinstance(value, np.ndarray):
        return ("array", id(value), value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.random.Generator):
        return ("generator", id(value), repr(value.bit_generator.state))
    if isinstance(value, minnet.Parameter):
        return ("parameter", id(value), _state(value.value, seen), _state(value.grad, seen))
    if isinstance(value, list | tuple):
        return (type(value).__name__, id(value), [_state(item, seen) for item in value])
    if isinstance(value, dict):
        return ("dict", id(value), {k: _state(v, seen) for k, v in value.items()})
    if isinstance(value, minnet.Layer):
        if id(value) in seen:
            return ("layer", id(value))
        seen.add(id(value))
        return ("layer", id(value), {k: _state(v, seen) for k, v in sorted(vars(value).items())})
    return ("object", id(value), repr(value))


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_check_leaves_the_layer_exactly_as_it_was(name, seed):
    rng = np.random.default_rng(seed)
    cls = LAYERS[name]
    layer = layer_example(cls, 4, np.random.default_rng(seed + 100))
    if rng.random() < 0.5:
        layer.eval()
    shape = example_shape(cls, 4)
    X, X2 = rng.standard_normal((5, *shape)), rng.standard_normal((int(rng.integers(2, 7)), *shape))
    pending = rng.random() < 0.8
    if pending:
        out = layer.forward(X)  # a backward is pending
        G = rng.standard_normal(np.shape(out))
    twin = copy.deepcopy(layer)  # never checked
    before = _state(layer)
    layer.gradcheck(X2, seed=int(rng.integers(10)))
    assert _state(layer) == before
    if pending:  # the pending backward computes what it would have without the check
        layer.zero_grad()
        twin.zero_grad()
        np.testing.assert_array_equal(layer.backward(G), twin.backward(G))
        for (_, p), (_, q) in zip(layer.named_parameters(), twin.named_parameters(), strict=True):
            np.testing.assert_array_equal(p.grad, q.grad)
    # and the next forwards draw what they would have drawn
    np.testing.assert_array_equal(layer.forward(X), twin.forward(X))


@pytest.mark.parametrize("seed", SEEDS)
def test_checking_a_random_model_with_dropout_changes_nothing_later(seed):
    rng = np.random.default_rng(seed)
    model = _model(rng)
    twin = copy.deepcopy(model)
    X = rng.standard_normal((8, model.in_features))
    y = rng.integers(0, 2, 8)
    before = [_state(layer) for layer in model.layers]
    model.gradcheck(X, y, fast=bool(rng.random() < 0.5))
    assert [_state(layer) for layer in model.layers] == before
    history = model.fit(X, y, epochs=3, progress=False, seed=seed)
    assert history.loss == twin.fit(X, y, epochs=3, progress=False, seed=seed).loss
    np.testing.assert_array_equal(model.predict(X), twin.predict(X))
