"""Layers, one module per family. Each layer knows only its own math.

- :mod:`.base`: the :class:`Layer` contract;
- :mod:`.linear`: :class:`Linear`;
- :mod:`.activations`: :class:`ReLU`, :class:`LeakyReLU`, :class:`Sigmoid`, :class:`Tanh`,
  :class:`Softmax`, :class:`LogSoftmax`;
- :mod:`.dropout`: :class:`Dropout`;
- :mod:`.normalization`: :class:`BatchNorm1d`, :class:`BatchNorm2d`, :class:`LayerNorm`;
- :mod:`.conv`: :class:`Conv2d`, :class:`Flatten` (images ``(N, C, H, W)``);
- :mod:`.pooling`: :class:`MaxPool2d`, :class:`AvgPool2d`.

:func:`layer_classes` lists every layer class minnet ships (the every-layer tests and ``load``
use it).
"""

from __future__ import annotations

from . import activations, conv, dropout, linear, normalization, pooling
from .activations import (
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    log_softmax,
    sigmoid,
    softmax,
)
from .base import Layer
from .conv import Conv2d, Flatten
from .dropout import Dropout
from .linear import INIT_STD, Linear
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool2d, MaxPool2d


def layer_classes() -> dict[str, type[Layer]]:
    """Every public layer class of this package (the ``Layer`` base aside), by name: the
    classes of the family modules and of the package itself, each where it is defined."""
    import sys

    found: dict[str, type[Layer]] = {}
    package = sys.modules[__name__]
    for module in (package, activations, conv, dropout, linear, normalization, pooling):
        for name, cls in vars(module).items():
            if (
                not name.startswith("_")
                and isinstance(cls, type)
                and issubclass(cls, Layer)
                and cls is not Layer
                and cls.__module__ == module.__name__
            ):
                found[name] = cls
    return dict(sorted(found.items()))


__all__ = [
    "INIT_STD",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "layer_classes",
    "log_softmax",
    "sigmoid",
    "softmax",
]
