"""Shared test helpers. PyTorch is the oracle: in CI (CI set) a missing torch is an error."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import minnet

# No per-example deadline: these machines are shared, and a slow example is not a wrong one.
# In CI, the same examples every run, so that a red run can be reproduced.
settings.register_profile("minnet", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("minnet")


def import_torch():
    """torch, or a skip outside CI; in CI the tests against torch must run."""
    if os.environ.get("CI"):
        import torch

        return torch
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convolutions run far slower on two threads of a busy machine; the thread count is
    put back afterwards (it changes torch's rounding, which other files' tests compare).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _linear_example(in_features: int, rng: np.random.Generator) -> minnet.Linear:
    layer = minnet.Linear(in_features, 3, rng=rng)
    layer.b.value[...] = rng.standard_normal(3)  # a zero bias would hide a bias bug
    return layer


#: How the tests that cover every layer build one that takes ``in_features`` inputs:
#: ``factory(in_features, rng)``. A layer not listed here is built as ``cls()``.
def _normalization_example(cls: type, features: int, rng: np.random.Generator) -> minnet.Layer:
    layer = cls(features)
    layer.gamma.value[...] = 1 + 0.1 * rng.standard_normal(features)  # ones and zeros would
    layer.beta.value[...] = 0.1 * rng.standard_normal(features)  # hide a missing factor
    return layer


LAYER_EXAMPLES = {
    minnet.Linear: _linear_example,
    minnet.BatchNorm1d: lambda n, rng: _normalization_example(minnet.BatchNorm1d, n, rng),
    minnet.LayerNorm: lambda n, rng: _normalization_example(minnet.LayerNorm, n, rng),
    minnet.Dropout: lambda in_features, rng: minnet.Dropout(0.5, seed=rng),
}


def _conv_example(channels: int, rng: np.random.Generator) -> minnet.Conv2d:
    layer = minnet.Conv2d(channels, 3, (3, 2), stride=(2, 1), padding=(1, 0), rng=rng)
    layer.b.value[...] = rng.standard_normal(3)  # a zero bias would hide a bias bug
    return layer


#: The layers that take images ``(batch, C, H, W)``: ``factory(channels, rng)``. The tests that
#: cover every layer give them ``IMAGE_SHAPE`` examples (``C = IMAGE_SHAPE[0]``), and give the
#: others ``(batch, in_features)`` rows.
IMAGE_EXAMPLES = {
    minnet.Conv2d: _conv_example,
    minnet.MaxPool2d: lambda channels, rng: minnet.MaxPool2d(2, stride=1, padding=1),
    minnet.AvgPool2d: lambda channels, rng: minnet.AvgPool2d((3, 2), stride=(1, 2), padding=1),
    minnet.BatchNorm2d: lambda c, rng: _normalization_example(minnet.BatchNorm2d, c, rng),
}
IMAGE_SHAPE = (2, 5, 4)


def layer_example(cls: type, in_features: int, rng: np.random.Generator) -> minnet.Layer:
    """An instance of the layer class ``cls`` taking ``in_features`` inputs (an image layer:
    taking images of ``IMAGE_SHAPE``), for the tests."""
    if cls in IMAGE_EXAMPLES:
        return IMAGE_EXAMPLES[cls](IMAGE_SHAPE[0], rng)
    factory = LAYER_EXAMPLES.get(cls)
    return factory(in_features, rng) if factory is not None else cls()


def example_shape(cls: type, in_features: int) -> tuple[int, ...]:
    """One example's shape for :func:`layer_example`'s layer: ``(in_features,)`` or
    ``IMAGE_SHAPE``."""
    return IMAGE_SHAPE if cls in IMAGE_EXAMPLES else (in_features,)


def on_path(fast: bool, fn, *args):
    """``fn(*args)`` with the accelerator on (``fast``) or off, then on again."""
    minnet.use_fast_path(fast)
    try:
        return fn(*args)
    finally:
        minnet.use_fast_path(True)


def random_net(
    rng: np.random.Generator,
    sizes: list[int],
    activation=minnet.ReLU,
    sigmoid_output=True,
    norm_after_first=None,
) -> minnet.Sequential:
    """A net with the given layer sizes, random biases, and an optional final Sigmoid;
    ``norm_after_first(features)`` makes a layer put after the first Linear."""
    layers: list[minnet.Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = minnet.Linear(n_in, n_out, rng=rng)
        linear.b.value[...] = 0.1 * rng.standard_normal(n_out)
        layers.append(linear)
        if i == 0 and norm_after_first is not None:
            layers.append(norm_after_first(n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    if sigmoid_output:
        layers.append(minnet.Sigmoid())
    return minnet.Sequential(layers)


def random_data(rng: np.random.Generator, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((m, n))
    Y = (rng.random(m) < 0.5).astype(float)
    return X, Y
