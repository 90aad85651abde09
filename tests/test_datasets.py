"""Tests for minnet.datasets: shapes, labels, seeding, validation, geometry, splitting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minnet import datasets
from minnet.datasets import circles, flower, train_test_split, two_moons, xor

GENERATORS = [two_moons, circles, xor, flower]


def sorted_rows(X):
    """Rows of X in lexicographic order, to compare point sets regardless of shuffling."""
    return X[np.lexsort(X.T[::-1])]


# --- shapes, dtypes, labels ----------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
def test_default_shapes_dtypes_and_balanced_labels(make):
    X, y = make(seed=0)
    n = X.shape[0]
    assert X.shape == (n, 2) and y.shape == (n,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert set(np.unique(y)) == {0.0, 1.0}
    assert (y == 0).sum() == n // 2 and (y == 1).sum() == n - n // 2
    assert np.all(np.isfinite(X))


@settings(max_examples=40, deadline=None)
@given(
    make=st.sampled_from(GENERATORS),
    n=st.integers(min_value=2, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_n_samples_gives_right_shapes_and_balance(make, n, seed):
    X, y = make(n_samples=n, seed=seed)
    assert X.shape == (n, 2) and y.shape == (n,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert (y == 0).sum() == n // 2 and (y == 1).sum() == n - n // 2


@pytest.mark.parametrize("make", GENERATORS)
def test_rows_are_shuffled(make):
    _, y = make(n_samples=200, seed=0)
    assert not np.array_equal(y, np.sort(y))


# --- seeding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
def test_same_seed_same_data(make):
    X1, y1 = make(seed=42)
    X2, y2 = make(seed=42)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("make", GENERATORS)
def test_different_seeds_differ(make):
    X1, _ = make(seed=1)
    X2, _ = make(seed=2)
    assert not np.array_equal(X1, X2)


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_seed_is_used_and_advanced(make):
    X_int, _ = make(seed=7)
    rng = np.random.default_rng(7)
    X_a, _ = make(seed=rng)
    X_b, _ = make(seed=rng)
    np.testing.assert_array_equal(X_int, X_a)
    assert not np.array_equal(X_a, X_b)


def test_global_numpy_random_state_untouched():
    np.random.seed(1234)  # noqa: NPY002 -- the legacy global state is exactly what is checked
    before = np.random.get_state()  # noqa: NPY002
    for make in GENERATORS:
        make(seed=0)
        make()
    X, y = two_moons(seed=0)
    train_test_split(X, y, seed=0)
    train_test_split(X, y)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


# --- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("bad", [0, 1, -5, 2.0, 10.5, "100", True, None])
def test_bad_n_samples(make, bad):
    with pytest.raises(ValueError, match="n_samples must be an int >= 2"):
        make(n_samples=bad)


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan"), "0.1"])
def test_bad_noise(make, bad):
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        make(noise=bad)


@pytest.mark.parametrize("bad", [0, 1, -0.5, 1.5, float("nan")])
def test_bad_factor(bad):
    with pytest.raises(ValueError, match="factor must be a number with 0 < factor < 1"):
        circles(factor=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_petals(bad):
    with pytest.raises(ValueError, match="petals must be an int >= 1"):
        flower(petals=bad)


def test_numpy_integer_n_samples_accepted():
    X, _ = two_moons(n_samples=np.int64(10), seed=0)
    assert X.shape == (10, 2)


def test_error_message_reports_value_received():
    with pytest.raises(ValueError, match="got 1"):
        two_moons(n_samples=1)


# --- geometry --------------------------------------------------------------------------------


def test_two_moons_noise_free_lies_on_the_two_half_circles():
    X, y = two_moons(n_samples=101, noise=0.0, seed=0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0)
    assert np.all(upper[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0)
    assert np.all(lower[:, 1] <= 0.5 + 1e-12)


def test_circles_noise_free_radii_are_one_and_factor():
    X, y = circles(n_samples=101, noise=0.0, factor=0.3, seed=0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 1], axis=1), 0.3)


def test_xor_noise_free_labels_follow_the_quadrant_rule_in_the_square():
    X, y = xor(n_samples=500, noise=0.0, seed=0)
    assert np.all(np.abs(X) <= 1.0) and np.all(X != 0)
    np.testing.assert_array_equal(y, ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(float))
    # every quadrant is populated
    for sx in (-1, 1):
        for sy in (-1, 1):
            assert np.any((np.sign(X[:, 0]) == sx) & (np.sign(X[:, 1]) == sy))


def test_xor_noise_blurs_coordinates_but_keeps_labels():
    X0, y0 = xor(n_samples=200, noise=0.0, seed=3)
    X1, y1 = xor(n_samples=200, noise=0.3, seed=3)
    np.testing.assert_array_equal(y0, y1)
    assert not np.allclose(X0, X1)


@pytest.mark.parametrize("petals", [2, 4, 5])
def test_flower_noise_free_matches_the_course_formula(petals):
    n = 400
    X, y = flower(n_samples=n, petals=petals, noise=0.0, seed=0)
    N = n // 2
    for j in (0, 1):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N)
        r = 4 * np.sin(petals * t)
        expected = np.column_stack([r * np.sin(t), r * np.cos(t)])
        np.testing.assert_allclose(sorted_rows(X[y == j]), sorted_rows(expected), atol=1e-12)


def test_flower_points_stay_within_the_petal_amplitude():
    X, _ = flower(noise=0.0, seed=0)
    assert np.linalg.norm(X, axis=1).max() <= 4.0 + 1e-12


# --- train_test_split ------------------------------------------------------------------------


def test_split_sizes_and_shapes():
    X, y = two_moons(n_samples=200, seed=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_fraction=0.25, seed=0)
    assert X_tr.shape == (150, 2) and y_tr.shape == (150,)
    assert X_te.shape == (50, 2) and y_te.shape == (50,)


def test_split_does_not_modify_inputs_and_returns_copies():
    X, y = two_moons(n_samples=50, seed=0)
    X_orig, y_orig = X.copy(), y.copy()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, seed=0)
    np.testing.assert_array_equal(X, X_orig)
    np.testing.assert_array_equal(y, y_orig)
    for part in (X_tr, X_te, y_tr, y_te):
        part[...] = -99.0
    np.testing.assert_array_equal(X, X_orig)
    np.testing.assert_array_equal(y, y_orig)


def test_split_is_seeded():
    X, y = circles(n_samples=40, seed=0)
    a = train_test_split(X, y, seed=5)
    b = train_test_split(X, y, seed=5)
    c = train_test_split(X, y, seed=6)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])


def test_split_keeps_rows_paired_with_labels():
    X = np.arange(20.0).reshape(10, 2)
    y = X[:, 0] * 10
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_fraction=0.3, seed=0)
    np.testing.assert_array_equal(X_tr[:, 0] * 10, y_tr)
    np.testing.assert_array_equal(X_te[:, 0] * 10, y_te)


@settings(max_examples=50, deadline=None)
@given(
    m=st.integers(min_value=2, max_value=200),
    frac=st.floats(min_value=0.01, max_value=0.99),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_split_is_a_partition_of_the_rows(m, frac, seed):
    X = np.arange(m * 3, dtype=float).reshape(m, 3)
    y = np.arange(m, dtype=float)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_fraction=frac, seed=seed)
    assert len(X_tr) + len(X_te) == m
    assert 1 <= len(X_te) <= m - 1
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), y)
    np.testing.assert_array_equal(X_tr[:, 0], 3 * y_tr)
    np.testing.assert_array_equal(X_te[:, 0], 3 * y_te)


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan")])
def test_split_bad_test_fraction(bad):
    X, y = two_moons(n_samples=20, seed=0)
    with pytest.raises(ValueError, match="test_fraction must be a number with 0 < test_fraction"):
        train_test_split(X, y, test_fraction=bad)


def test_split_length_mismatch():
    with pytest.raises(ValueError, match=r"same number of rows.*\(10, 2\).*\(9,\)"):
        train_test_split(np.zeros((10, 2)), np.zeros(9))


def test_split_needs_two_rows_and_a_batch_axis():
    with pytest.raises(ValueError, match="at least 2 rows"):
        train_test_split(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="batch axis"):
        train_test_split(np.float64(1.0), np.zeros(1))


# --- spirals and the regression set -------------------------------------------------------------


@pytest.mark.parametrize("n, classes", [(300, 3), (7, 2), (101, 5)])
def test_spirals_have_every_class_balanced_and_are_seeded(n, classes):
    X, y = datasets.spirals(n, classes=classes, noise=0.1, seed=0)
    assert X.shape == (n, 2) and y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert counts.max() - counts.min() <= 1 and counts.sum() == n
    assert np.all(np.linalg.norm(X, axis=1) <= 1 + 1e-12)
    X2, y2 = datasets.spirals(n, classes=classes, noise=0.1, seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("classes", [1, 0, 2.0, True, 400])
def test_spirals_refuse_a_bad_class_count(classes):
    with pytest.raises(ValueError, match="classes"):
        datasets.spirals(300, classes=classes)


def test_sine_regression_is_a_noisy_curve():
    X, y = datasets.sine_regression(500, noise=0.0, seed=1)
    assert X.shape == (500, 1) and y.shape == (500,)
    np.testing.assert_allclose(y, np.sin(3 * X[:, 0]) + 0.5 * X[:, 0])
    _, noisy = datasets.sine_regression(500, noise=0.1, seed=1)
    assert 0.05 < np.std(noisy - y) < 0.15
