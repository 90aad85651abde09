"""Classify scikit-learn's handwritten digits (8x8 images, 10 classes) with a 64-128-10 net.

Run: python examples/digits.py [--epochs 30] [--seed 0]   (needs scikit-learn for the data)

Softmax + CrossEntropyLoss, the multi-class pair: the net ends in a Softmax, so predict_proba
gives rows of 10 probabilities, and the loss is computed from the Softmax's input (the logits),
exact for any logits. The labels are class indices 0..9, as load_digits gives them.
"""

from __future__ import annotations

import argparse

import numpy as np

import minnet
from minnet.datasets import train_test_split


def load_data(seed: int):
    """Pixels scaled to [0, 1], a quarter of the 1,797 images held out."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_fraction=0.25, seed=seed)


def build_net(seed: int) -> minnet.Sequential:
    """Linear(64, 128) -> ReLU -> Linear(128, 10) -> Softmax, with CrossEntropyLoss."""
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [minnet.Linear(64, 128, rng=rng), minnet.ReLU(), minnet.Linear(128, 10, rng=rng),
         minnet.Softmax()],
        loss=minnet.CrossEntropyLoss(),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X_train, X_test, y_train, y_test = load_data(args.seed)
    model = build_net(args.seed)
    print(model.summary())

    # 1. Before training: every one of the 9,610 parameters, on a few images.
    report = model.gradcheck(X_train[:10], y_train[:10])
    print(f"\ngradient check: {'passed' if report.passed else 'FAILED'}, "
          f"difference {report.difference:.2g}")  # fmt: skip
    if not report.passed:
        print(report)
        raise SystemExit(1)

    # 2. Train: Adam, lr 1e-3, batches of 32.
    history = model.fit(
        X_train,
        y_train,
        optimizer=minnet.Adam(model.parameters(), lr=1e-3),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(f"trained: {history}")

    # 3. Top-1 accuracy on the images it never saw, and what it predicts for the first few.
    loss, accuracy = model.evaluate(X_test, y_test)
    print(f"held-out: loss {loss:.3f}, top-1 accuracy {accuracy:.1%} on {len(X_test)} images")
    proba = model.predict_proba(X_test[:5])
    for label, predicted, p in zip(y_test[:5], model.predict(X_test[:5]), proba, strict=True):
        print(f"  digit {label}: predicted {predicted} with probability {p[predicted]:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
