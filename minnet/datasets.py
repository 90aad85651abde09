"""Seeded toy data sets: 2-D binary classification, the CS231n spirals (several classes), a 1-D
regression curve, plus a train/test split.

The binary generators return ``(X, y)`` with ``X: (n_samples, 2)`` float64 and ``y: (n_samples,)``
float64 of 0/1, classes balanced (``n_samples // 2`` of class 0, the rest class 1) and rows
shuffled. All randomness comes from ``np.random.default_rng(seed)``: the same int seed gives the
same data, and numpy's global random state is never touched. Passing a ``np.random.Generator``
uses (and advances) that generator. :func:`spirals` labels its classes ``0 .. classes-1`` as
ints; :func:`sine_regression` returns float targets.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

Seed = int | np.random.Generator | None

__all__ = [
    "circles",
    "flower",
    "sine_regression",
    "spirals",
    "train_test_split",
    "two_moons",
    "xor",
]


def _check_n_samples(n_samples: int) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    return int(n_samples)


def _check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, Real) or not 0 <= noise < np.inf:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def _check_open_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number with 0 < {name} < 1, got {value!r}")
    return float(value)


def _finish(
    parts: list[np.ndarray], n_per_class: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the class-0 and class-1 points, label them 0 and 1, and shuffle the rows."""
    X = np.concatenate(parts).astype(np.float64)
    y = np.repeat([0.0, 1.0], n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


def two_moons(
    n_samples: int = 200, noise: float = 0.2, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, like sklearn's ``make_moons``.  Picture: ◠ over ◡, hooked.

    Class 0 is the upper half of the unit circle around (0, 0); class 1 is the lower half of the
    unit circle around (1, 0.5). Gaussian noise of std ``noise`` is added to every coordinate.

    Returns ``X: (n_samples, 2)``, ``y: (n_samples,)`` (float64, 0/1, balanced, shuffled).
    """
    n = _check_n_samples(n_samples)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    n0, n1 = n // 2, n - n // 2
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    upper = np.column_stack([np.cos(t0), np.sin(t0)])
    lower = np.column_stack([1 - np.cos(t1), 0.5 - np.sin(t1)])
    X, y = _finish([upper, lower], (n0, n1), rng)
    return X + rng.normal(0.0, noise, X.shape), y


def circles(
    n_samples: int = 200, noise: float = 0.1, factor: float = 0.5, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """A small circle inside a big one, like sklearn's ``make_circles``.  Picture: ◎.

    Class 0 lies on the circle of radius 1, class 1 on the circle of radius ``factor``, both
    centered at (0, 0); Gaussian noise of std ``noise`` is added to every coordinate.

    Returns ``X: (n_samples, 2)``, ``y: (n_samples,)`` (float64, 0/1, balanced, shuffled).
    """
    n = _check_n_samples(n_samples)
    noise = _check_noise(noise)
    factor = _check_open_unit("factor", factor)
    rng = np.random.default_rng(seed)
    n0, n1 = n // 2, n - n // 2
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n1, endpoint=False)
    outer = np.column_stack([np.cos(t0), np.sin(t0)])
    inner = factor * np.column_stack([np.cos(t1), np.sin(t1)])
    X, y = _finish([outer, inner], (n0, n1), rng)
    return X + rng.normal(0.0, noise, X.shape), y


def xor(
    n_samples: int = 200, noise: float = 0.0, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in the square [-1, 1]^2, labelled by quadrant.  Picture: a 2x2 checkerboard.

    ``y = (x0 > 0) XOR (x1 > 0)``: class 1 in the top-left and bottom-right quadrants, class 0
    in the other two. Each class is drawn uniformly over its two quadrants, so the classes are
    exactly balanced and the points are still uniform over the square. Gaussian noise of std
    ``noise`` is added to the coordinates *after* labelling, so it can blur the boundary.

    Returns ``X: (n_samples, 2)``, ``y: (n_samples,)`` (float64, 0/1, balanced, shuffled).
    """
    n = _check_n_samples(n_samples)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    n0, n1 = n // 2, n - n // 2
    size = 1.0 - rng.random((n, 2))  # in (0, 1]: no point sits exactly on an axis
    sign = rng.choice([-1.0, 1.0], size=n)
    same = size[:n0] * sign[:n0, None]  # x0, x1 of the same sign -> class 0
    opposite = size[n0:] * np.column_stack([sign[n0:], -sign[n0:]])  # -> class 1
    X, y = _finish([same, opposite], (n0, n1), rng)
    return X + rng.normal(0.0, noise, X.shape), y


def flower(
    n_samples: int = 400, petals: int = 4, noise: float = 0.2, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """The planar "flower" of Andrew Ng's deep-learning course.  Picture: ✿, petals alternating.

    Same formulas as the course's ``planar_utils.load_planar_dataset``, with ``petals`` in
    place of the 4 in ``sin(4t)`` and a seeded generator in place of ``np.random.seed(1)``.
    For class j (0 or 1), with ``N`` points and amplitude ``a = 4``::

        t = linspace(j * 3.12, (j + 1) * 3.12, N) + noise * randn(N)
        r = a * sin(petals * t) + noise * randn(N)
        x = (r * sin(t), r * cos(t))

    The course uses 400 points (200 per class); here class 0 gets ``n_samples // 2`` points and
    class 1 the rest, and the rows are shuffled.

    Returns ``X: (n_samples, 2)``, ``y: (n_samples,)`` (float64, 0/1, balanced, shuffled).
    """
    n = _check_n_samples(n_samples)
    noise = _check_noise(noise)
    if isinstance(petals, bool) or not isinstance(petals, Integral) or petals < 1:
        raise ValueError(f"petals must be an int >= 1, got {petals!r}")
    rng = np.random.default_rng(seed)
    a = 4.0
    n_per_class = (n // 2, n - n // 2)
    parts = []
    for j, N in enumerate(n_per_class):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + rng.standard_normal(N) * noise
        r = a * np.sin(petals * t) + rng.standard_normal(N) * noise
        parts.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
    return _finish(parts, n_per_class, rng)


def spirals(
    n_samples: int = 300, classes: int = 3, noise: float = 0.2, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """CS231n's spiral data set: ``classes`` arms winding out of the origin, one per class.

    Arm ``k`` has ``n_samples // classes`` points (the first arms one more while some are left
    over) at radius ``r`` from 0 to 1 and angle ``4 r + 2 pi k / classes`` (plus Gaussian noise of
    std ``noise`` on the angle); not linearly separable.

    Returns ``X: (n_samples, 2)`` float64 and ``y: (n_samples,)`` int64 class indices in
    ``[0, classes)``, rows shuffled.
    """
    n = _check_n_samples(n_samples)
    if isinstance(classes, bool) or not isinstance(classes, Integral) or not 2 <= classes <= n:
        raise ValueError(f"classes must be an int with 2 <= classes <= n_samples, got {classes!r}")
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    counts = [n // classes + (k < n % classes) for k in range(int(classes))]
    parts, labels = [], []
    for k, count in enumerate(counts):
        radius = np.linspace(0.0, 1.0, count)
        angle = 4.0 * radius + 2 * np.pi * k / classes + noise * rng.standard_normal(count)
        parts.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        labels.append(np.full(count, k, dtype=np.int64))
    X, y = np.concatenate(parts), np.concatenate(labels)
    order = rng.permutation(n)
    return X[order], y[order]


def sine_regression(
    n_samples: int = 200, noise: float = 0.1, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression set: ``y = sin(3 x) + 0.5 x`` plus Gaussian noise of std ``noise``, with
    ``x`` uniform in ``[-2, 2]``.

    Returns ``X: (n_samples, 1)`` and ``y: (n_samples,)``, both float64.
    """
    n = _check_n_samples(n_samples)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, n)
    y = np.sin(3 * x) + 0.5 * x + noise * rng.standard_normal(n)
    return x[:, np.newaxis], y


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the rows and split them into a training and a test set.

    ``X: (m, ...)`` and ``y: (m, ...)`` are split along their first (batch) axis. The test set
    gets ``round(test_fraction * m)`` rows, kept between 1 and ``m - 1`` so neither set is empty.
    The inputs are not modified; the outputs are new arrays.

    Returns ``(X_train, X_test, y_train, y_test)``.
    """
    X, y = np.asarray(X), np.asarray(y)
    test_fraction = _check_open_unit("test_fraction", test_fraction)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"X and y must be arrays with a batch axis, got shapes {X.shape} and {y.shape}"
        )
    m = X.shape[0]
    if y.shape[0] != m:
        raise ValueError(
            f"X and y must have the same number of rows, got X: {X.shape} and y: {y.shape}"
        )
    if m < 2:
        raise ValueError(f"need at least 2 rows to split into train and test, got {m}")
    n_test = min(max(round(test_fraction * m), 1), m - 1)
    order = np.random.default_rng(seed).permutation(m)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
