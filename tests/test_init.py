"""Initializers (minnet.init) and Linear(init=...): each distribution tested statistically,
PyTorch's default against torch.nn.Linear's own draws, a user's function, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch
from scipy import stats

import minnet
from minnet import Linear
from minnet.init import INITS, initial_bias, initialize

torch = import_torch()

UNIFORM_BOUND = {
    "he_uniform": lambda n_in, n_out: np.sqrt(6 / n_in),
    "glorot_uniform": lambda n_in, n_out: np.sqrt(6 / (n_in + n_out)),
    "torch": lambda n_in, n_out: 1 / np.sqrt(n_in),
}
NORMAL_STD = {
    "he": lambda n_in, n_out: np.sqrt(2 / n_in),
    "glorot": lambda n_in, n_out: np.sqrt(2 / (n_in + n_out)),
}


@pytest.mark.parametrize("init", sorted(NORMAL_STD))
@pytest.mark.parametrize(("n_in", "n_out"), [(400, 300), (30, 2000)])
def test_normal_initializers_have_their_standard_deviation(init, n_in, n_out):
    W = Linear(n_in, n_out, init=init, rng=1).W.value
    std = NORMAL_STD[init](n_in, n_out)
    assert W.shape == (n_out, n_in)
    assert W.std() == pytest.approx(std, rel=0.01)  # the estimate's own error: ~0.2%
    assert abs(W.mean()) < 5 * std / np.sqrt(W.size)
    assert stats.kstest(W.ravel() / std, "norm").pvalue > 1e-3


@pytest.mark.parametrize("init", sorted(UNIFORM_BOUND))
@pytest.mark.parametrize(("n_in", "n_out"), [(400, 300), (30, 2000)])
def test_uniform_initializers_fill_their_bounds(init, n_in, n_out):
    W = Linear(n_in, n_out, init=init, rng=2).W.value
    bound = UNIFORM_BOUND[init](n_in, n_out)
    assert np.abs(W).max() <= bound
    assert np.abs(W).max() > 0.999 * bound  # 120,000 draws reach the ends
    assert W.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)
    assert stats.kstest(W.ravel(), "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


def test_he_and_he_uniform_have_one_variance_and_so_do_the_glorots():
    he, he_uniform = (Linear(500, 400, init=i, rng=3).W.value.var() for i in ("he", "he_uniform"))
    assert he == pytest.approx(he_uniform, rel=0.02)
    glorot, glorot_uniform = (
        Linear(500, 400, init=i, rng=3).W.value.var() for i in ("glorot", "glorot_uniform")
    )
    assert glorot == pytest.approx(glorot_uniform, rel=0.02)


def test_every_init_but_torch_starts_the_bias_at_zero():
    for init in INITS:
        b = Linear(50, 40, init=init, rng=4).b.value
        assert (np.all(b == 0)) == (init != "torch"), init


def test_zeros_gives_zeros():
    layer = Linear(5, 3, init="zeros", rng=0)
    assert not layer.W.value.any() and not layer.b.value.any()


def test_torch_init_is_distributed_as_torch_nn_linear_draws_it():
    n_in, n_out = 50, 40
    torch.manual_seed(0)
    theirs = [torch.nn.Linear(n_in, n_out, dtype=torch.float64) for _ in range(30)]
    their_W = np.concatenate([t.weight.detach().numpy().ravel() for t in theirs])
    their_b = np.concatenate([t.bias.detach().numpy() for t in theirs])
    ours = [Linear(n_in, n_out, init="torch", rng=seed) for seed in range(30)]
    our_W = np.concatenate([layer.W.value.ravel() for layer in ours])
    our_b = np.concatenate([layer.b.value for layer in ours])
    bound = 1 / np.sqrt(n_in)  # kaiming_uniform_(a=sqrt(5)) and the bias: both 1/sqrt(fan_in)
    for mine, theirs_ in ((our_W, their_W), (our_b, their_b)):
        assert np.abs(mine).max() <= bound and np.abs(theirs_).max() <= bound
        assert np.abs(mine).max() > 0.98 * bound and np.abs(theirs_).max() > 0.98 * bound
        assert stats.ks_2samp(mine, theirs_).pvalue > 1e-3
    assert our_W.std() == pytest.approx(their_W.std(), rel=0.02)


def test_the_default_draw_is_unchanged_he_normal():
    expected = np.random.default_rng(5).standard_normal((2, 3)) * np.sqrt(2 / 3)
    np.testing.assert_array_equal(Linear(3, 2, rng=5).W.value, expected)
    np.testing.assert_array_equal(Linear(3, 2, rng=5, init="he").W.value, expected)


def test_initialize_serves_any_weight_shape_with_its_fans():
    rng = np.random.default_rng(6)
    W = initialize("he", (64, 16, 3, 3), 16 * 9, 64 * 9, rng, np.float32)
    assert W.shape == (64, 16, 3, 3) and W.dtype == np.float32
    assert W.std() == pytest.approx(np.sqrt(2 / 144), rel=0.02)
    b = initial_bias("torch", (64,), 16 * 9, rng, np.float32)
    assert b.dtype == np.float32 and np.abs(b).max() <= 1 / 12


def test_a_function_of_yours_draws_the_weights():
    seen = []

    def ten_times_random(shape, rng):
        seen.append((shape, type(rng)))
        return 10 * rng.standard_normal(shape)

    layer = Linear(300, 200, init=ten_times_random, rng=7, dtype=np.float32)
    assert seen == [((200, 300), np.random.Generator)]
    assert layer.W.dtype == np.float32 and layer.W.value.std() == pytest.approx(10, rel=0.02)
    assert not layer.b.value.any()
    same = Linear(300, 200, init=ten_times_random, rng=7, dtype=np.float32)
    np.testing.assert_array_equal(same.W.value, layer.W.value)


def test_a_function_returning_a_list_of_the_shape_is_taken():
    layer = Linear(2, 1, init=lambda shape, rng: [[1, 2]])
    assert layer.W.value.tolist() == [[1.0, 2.0]] and layer.W.dtype == np.float64


@pytest.mark.parametrize(
    ("init", "error", "pattern"),
    [
        ("xavier", ValueError, r"init must be one of \['he', 'he_uniform', 'glorot', 'glorot_uni"),
        (None, ValueError, r"or a function init\(shape, rng\) -> array, got None"),
        (Linear, ValueError, "init must be one of .* got <class"),
        (lambda shape, rng: np.zeros((3, 2)), ValueError, r"shape \(2, 3\), got \(3, 2\)"),
        (lambda shape, rng: np.zeros(6), ValueError, r"shape \(2, 3\), got \(6,\)"),
        (lambda shape, rng: np.full(shape, np.nan), ValueError, "init <lambda> returned must be"),
        (lambda shape, rng: np.full(shape, "a"), ValueError, "must return real numbers"),
    ],
)
def test_bad_inits_are_clear_errors(init, error, pattern):
    with pytest.raises(error, match=pattern):
        Linear(3, 2, init=init)


@pytest.mark.parametrize("init", ["torch", "he_uniform", lambda shape, rng: np.ones(shape)])
def test_a_model_of_any_init_saves_and_loads(init, tmp_path):
    model = minnet.Sequential([Linear(3, 2, init=init, rng=8), minnet.Sigmoid()])
    loaded = minnet.load(model.save(tmp_path / "model.npz"))
    np.testing.assert_array_equal(loaded.layers[0].W.value, model.layers[0].W.value)
    np.testing.assert_array_equal(loaded.layers[0].b.value, model.layers[0].b.value)
