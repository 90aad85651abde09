"""A LeNet-like training step against PyTorch's, and the digits CNN's fit.

    python benchmarks/conv_bench.py [--rounds 60]

Step: ``zero_grad, cost, backward, SGD step`` (lr 0.01) of ``Conv2d(1, 8, 5)``, ReLU,
``MaxPool2d(2)``, ``Conv2d(8, 16, 5)``, ReLU, ``MaxPool2d(2)``, Flatten, ``Linear(256, 10)``,
Softmax fused with CrossEntropyLoss, on a batch of 64 images ``1x28x28``, in minnet and in torch
(the same weights, through ``minnet.to_torch``; its losses are compared first), float32 and
float64. One thread each (numpy's BLAS through threadpoolctl, ``torch.set_num_threads(1)``): the
fair setting on a busy two-core machine. The two steps take turns; each figure is the median
(and the minimum) over the rounds, and the ratio is of the medians.

Goals: float32 <= 1.5x torch's step time, float64 <= 1.0x; the digits CNN
(``examples/digits_cnn.py``) >= 0.98 held-out accuracy, its fit time printed.
"""

from __future__ import annotations

import argparse
import contextlib
import runpy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import minnet


def lenet(dtype: np.dtype) -> minnet.Sequential:
    return minnet.Sequential(
        [
            minnet.Conv2d(1, 8, 5, rng=0, dtype=dtype),
            minnet.ReLU(),
            minnet.MaxPool2d(2),
            minnet.Conv2d(8, 16, 5, rng=1, dtype=dtype),
            minnet.ReLU(),
            minnet.MaxPool2d(2),
            minnet.Flatten(),
            minnet.Linear(256, 10, rng=2, dtype=dtype),
            minnet.Softmax(),
        ],
        loss=minnet.CrossEntropyLoss(),
    )


def steps(dtype: np.dtype):
    """The minnet step and the torch step, on the same weights and data."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, 64)
    model = lenet(dtype)
    module, loss = minnet.to_torch(model)
    optimizer = minnet.SGD(model.parameters(), lr=0.01)
    torch_optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    costs = []

    def step():
        model.zero_grad()
        costs.append(model.cost(X, y))
        model.backward()
        optimizer.step()

    def torch_step():
        torch_optimizer.zero_grad()
        value = loss(module(Xt), yt)
        value.backward()
        torch_optimizer.step()
        costs.append(value.item())

    for _ in range(3):  # the same computation: the losses of the first three steps agree
        step()
        torch_step()
    ours, theirs = costs[0::2], costs[1::2]
    assert np.allclose(ours, theirs, rtol=1e-4 if dtype == np.float32 else 1e-10), costs
    return step, torch_step


def timed(rounds: int, *functions) -> list[list[float]]:
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(rounds):
        for function, samples in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    return times


def one_thread():
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    with one_thread():
        for dtype, goal in ((np.float32, 1.5), (np.float64, 1.0)):
            ours, theirs = timed(args.rounds, *steps(np.dtype(dtype)))
            ratio = statistics.median(ours) / statistics.median(theirs)
            print(
                f"LeNet step {np.dtype(dtype).name}: minnet {statistics.median(ours) * 1e3:.1f} ms "
                f"(min {min(ours) * 1e3:.1f}), torch {statistics.median(theirs) * 1e3:.1f} ms "
                f"(min {min(theirs) * 1e3:.1f}): {ratio:.2f}x, goal <= {goal}x "
                f"{'met' if ratio <= goal else 'NOT met'}"
            )
        example = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "digits_cnn.py"))
        start = time.perf_counter()
        accuracy = example["main"](["--quiet"])
        met = "met" if accuracy >= 0.98 else "NOT met"
        print(
            f"digits CNN: {time.perf_counter() - start:.1f} s in all (check, fit, evaluation), "
            f"held-out accuracy {accuracy:.3f}, goal >= 0.98 {met}"
        )


if __name__ == "__main__":
    main()
