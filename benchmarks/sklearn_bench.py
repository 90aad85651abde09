"""NetClassifier against scikit-learn's MLPClassifier on digits, with the same settings.

    python benchmarks/sklearn_bench.py [--epochs 100] [--repeats 3]

Both: one hidden layer of 100 ReLUs, Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8), mini-batches
of 32 reshuffled every epoch, alpha 1e-4, the same number of epochs (MLPClassifier's early
stopping is switched off with ``n_iter_no_change`` above ``max_iter``), float64, on the 1,347
training images of a 75/25 split of digits (pixels / 16); accuracy on the 450 held-out ones.
Each repeat uses a new ``random_state`` for both; the fits alternate, and each figure is the
median over the repeats. BLAS is held to one thread when threadpoolctl is installed.

Goal: NetClassifier's fit time <= 0.8x MLPClassifier's, at an accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from minnet.integrations.sklearn import NetClassifier


def settings(epochs: int, seed: int) -> dict:
    return dict(
        hidden_layer_sizes=(100,),
        activation="relu",
        alpha=1e-4,
        batch_size=32,
        learning_rate_init=1e-3,
        max_iter=epochs,
        random_state=seed,
    )


def timed_fit(estimator, X, y) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: as intended
        estimator.fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, random_state=0)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except ImportError:
        limits = contextlib.nullcontext()

    rows = {"minnet NetClassifier": ([], []), "sklearn MLPClassifier": ([], [])}
    with limits:
        for seed in range(args.repeats):
            ours = NetClassifier(**settings(args.epochs, seed))
            theirs = MLPClassifier(
                **settings(args.epochs, seed),
                solver="adam",
                shuffle=True,
                n_iter_no_change=args.epochs + 1,
            )
            for name, est in [("minnet NetClassifier", ours), ("sklearn MLPClassifier", theirs)]:
                seconds = timed_fit(est, X_train, y_train)
                rows[name][0].append(seconds)
                rows[name][1].append(est.score(X_test, y_test))
            assert theirs.n_iter_ == args.epochs == ours.n_iter_

    print(
        f"digits, {len(X_train)} train / {len(X_test)} test rows, 64-100-10, {args.epochs} "
        f"epochs of batches of 32, median of {args.repeats}"
    )
    print(f"{'':24}{'fit time':>10}{'accuracy':>10}")
    medians = {}
    for name, (times, scores) in rows.items():
        medians[name] = statistics.median(times), statistics.median(scores)
        print(f"{name:24}{medians[name][0]:9.2f}s{medians[name][1]:10.1%}")
    ours_t, ours_acc = medians["minnet NetClassifier"]
    theirs_t, theirs_acc = medians["sklearn MLPClassifier"]
    ratio = ours_t / theirs_t
    gap = 100 * (ours_acc - theirs_acc)
    met = ratio <= 0.8 and abs(gap) <= 1
    print(
        f"fit time ratio {ratio:.2f}x (goal <= 0.8x), accuracy {gap:+.1f} points (goal +-1): "
        f"{'met' if met else 'not met'}"
    )


if __name__ == "__main__":
    main()
