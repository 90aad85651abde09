"""Fit y = sin(3x) + 0.5x (with noise) with a 1-32-32-1 Tanh net and MSELoss.

Run: python examples/regression.py [--epochs 100] [--seed 0]

With MSELoss the model is a regression model: predict gives numbers, (m,) for one output, and
evaluate gives the loss and R^2 (1 is a perfect fit, 0 no better than predicting the mean).
"""

from __future__ import annotations

import argparse

import numpy as np

import minnet
from minnet.datasets import sine_regression, train_test_split


def build_net(seed: int) -> minnet.Sequential:
    """Linear(1, 32) -> Tanh -> Linear(32, 32) -> Tanh -> Linear(32, 1), with MSELoss."""
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [
            minnet.Linear(1, 32, rng=rng),
            minnet.Tanh(),
            minnet.Linear(32, 32, rng=rng),
            minnet.Tanh(),
            minnet.Linear(32, 1, rng=rng),
        ],
        loss=minnet.MSELoss(),
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X, y = sine_regression(n_samples=400, noise=0.1, seed=args.seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=args.seed)
    model = build_net(args.seed)

    report = model.gradcheck(X_train[:20], y_train[:20])
    print(f"gradient check: {'passed' if report.passed else 'FAILED'}, "
          f"difference {report.difference:.2g}")  # fmt: skip
    if not report.passed:
        print(report)
        raise SystemExit(1)

    history = model.fit(
        X_train,
        y_train,
        optimizer=minnet.Adam(model.parameters(), lr=0.03),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        validation_data=(X_test, y_test),
        progress=not args.quiet,
    )
    print(f"trained: {history}")
    loss, r2 = model.evaluate(X_test, y_test)
    print(f"held-out: mean squared error {loss:.4f}, R^2 {r2:.3f} on {len(X_test)} points")
    for x, target, predicted in zip(X_test[:3, 0], y_test[:3], model.predict(X_test[:3]),
                                    strict=True):  # fmt: skip
        print(f"  x = {x:+.2f}: y = {target:+.3f}, predicted {predicted:+.3f}")
    return r2


if __name__ == "__main__":
    main()
