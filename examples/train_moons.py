"""Train a 2-16-16-1 ReLU net on two moons (noise 0.2) and measure it on held-out points.

Run: python examples/train_moons.py [--epochs 50] [--seed 0]

The steps a learner takes with any new net: check its gradients, train it, measure it on data it
never saw, save it, and check that the saved model predicts the same.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import minnet
from minnet.datasets import train_test_split, two_moons


def build_net(seed: int) -> minnet.Sequential:
    """Linear(2, 16) -> ReLU -> Linear(16, 16) -> ReLU -> Linear(16, 1) -> Sigmoid."""
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [
            minnet.Linear(2, 16, rng=rng),
            minnet.ReLU(),
            minnet.Linear(16, 16, rng=rng),
            minnet.ReLU(),
            minnet.Linear(16, 1, rng=rng),
            minnet.Sigmoid(),
        ]
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X, y = two_moons(n_samples=1000, noise=0.2, seed=args.seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=args.seed)
    model = build_net(args.seed)
    print(model.summary())

    # 1. Before training: is backpropagation right? (a few rows are enough)
    report = model.gradcheck(X_train[:50], y_train[:50])
    print(f"\ngradient check: {'passed' if report.passed else 'FAILED'}, "
          f"difference {report.difference:.2g}")  # fmt: skip
    if not report.passed:
        print(report)
        raise SystemExit(1)

    # 2. Train, watching the held-out loss.
    history = model.fit(
        X_train,
        y_train,
        optimizer=minnet.Adam(model.parameters(), lr=0.01),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        validation_data=(X_test, y_test),
        progress=not args.quiet,
    )
    print(f"trained: {history}")

    # 3. Measure on the points it never trained on.
    loss, accuracy = model.evaluate(X_test, y_test)
    print(f"held-out: loss {loss:.3f}, accuracy {accuracy:.1%} on {len(X_test)} points")

    # 4. Save, load, and check that the loaded model predicts the same.
    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / "moons")
        restored = minnet.load(path)
    same = np.array_equal(restored.predict_proba(X_test), model.predict_proba(X_test))
    print(f"saved to and loaded from {path.name}: same predictions: {same}")
    return accuracy


if __name__ == "__main__":
    main()
