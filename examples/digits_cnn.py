"""Classify scikit-learn's handwritten digits as images (N, 1, 8, 8) with a small CNN.

Run: python examples/digits_cnn.py [--epochs 20] [--seed 0]   (needs scikit-learn for the data)

Two convolutions (3x3, zero-padded, so that the 8x8 images keep their size) each followed by a
ReLU and a 2x2 max pooling, then Flatten and a Linear to the 10 classes: Softmax +
CrossEntropyLoss, as in examples/digits.py. The net is gradient-checked before training, with
every parameter of every layer, on a few images.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import minnet
from minnet.datasets import train_test_split


def load_data(seed: int):
    """Pixels scaled to [0, 1] as images of one channel, a quarter of the 1,797 held out."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0)[:, np.newaxis]  # (1797, 1, 8, 8)
    return train_test_split(images, digits.target, test_fraction=0.25, seed=seed)


def build_net(seed: int) -> minnet.Sequential:
    """(1, 8, 8) -> Conv 16 -> (16, 4, 4) after pooling -> Conv 32 -> (32, 2, 2) -> 10 classes."""
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [
            minnet.Conv2d(1, 16, 3, padding=1, rng=rng),
            minnet.ReLU(),
            minnet.MaxPool2d(2),
            minnet.Conv2d(16, 32, 3, padding=1, rng=rng),
            minnet.ReLU(),
            minnet.MaxPool2d(2),
            minnet.Flatten(),
            minnet.Linear(32 * 2 * 2, 10, rng=rng, init="glorot"),
            minnet.Softmax(),
        ],
        loss=minnet.CrossEntropyLoss(),
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X_train, X_test, y_train, y_test = load_data(args.seed)
    model = build_net(args.seed)
    print(model.summary(input_shape=X_train.shape[1:]))

    # 1. Before training: every parameter, on a few images (fast=True: the model check's
    #    accelerator, the same verdicts).
    report = model.gradcheck(X_train[:8], y_train[:8], fast=True)
    print(f"\ngradient check: {'passed' if report.passed else 'FAILED'}, "
          f"difference {report.difference:.2g}")  # fmt: skip
    if not report.passed:
        print(report)
        raise SystemExit(1)

    # 2. Train: Adam, lr 3e-3, batches of 32.
    start = time.perf_counter()
    history = model.fit(
        X_train,
        y_train,
        optimizer=minnet.Adam(model.parameters(), lr=3e-3),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    print(f"trained in {seconds:.1f} s: {history}")

    # 3. Top-1 accuracy on the images it never saw.
    loss, accuracy = model.evaluate(X_test, y_test)
    print(f"held-out: loss {loss:.3f}, top-1 accuracy {accuracy:.1%} on {len(X_test)} images")
    return accuracy


if __name__ == "__main__":
    main()
