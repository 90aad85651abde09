"""Saving a :class:`~minnet.Sequential` to a ``.safetensors`` file and loading it back.

A minnet model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file, read and
written by the ``safetensors`` package (minnet parses no file format of its own): one tensor per
parameter and buffer under its model name (``"0.W"``, ``"1.running_mean"``), and the
architecture as JSON in its metadata. ``docs/io.md`` shows the format and what :func:`load`
promises: no code from a file runs, its cost is bounded by the file and decided before anything
is built, and any bad file is a ``ValueError`` (:class:`ModelFileError`) naming the file.

One job per module:

- :mod:`.format`: the file's name, format version, dtypes and header bound;
- :mod:`.registry`: the layer and loss classes load builds, by name (:func:`register_layer`);
- :mod:`.architecture`: the model described as JSON, and that description checked;
- :mod:`.state`: a model's arrays by name, ``state_dict`` and ``load_state_dict``;
- :mod:`.saving`: :func:`save`, the file written atomically;
- :mod:`.loading`: :func:`load`, and the checks of one file.
"""

from __future__ import annotations

from .architecture import (
    FORMAT_VERSION,
    MAX_ARCHITECTURE_CHARS,
    MAX_ARGUMENT_DEPTH,
    MAX_LAYERS,
    declared_size,
)
from .format import MAX_HEADER_BYTES, SUFFIX, ModelFileError, model_path
from .loading import MAX_ARRAYS_PER_LAYER, linear_without_weights, load
from .registry import layer_registry, loss_classes, register_layer
from .saving import contents, save
from .state import load_state_dict, named_arrays, state_dict

__all__ = [
    "FORMAT_VERSION",
    "MAX_ARCHITECTURE_CHARS",
    "MAX_ARGUMENT_DEPTH",
    "MAX_ARRAYS_PER_LAYER",
    "MAX_HEADER_BYTES",
    "MAX_LAYERS",
    "SUFFIX",
    "ModelFileError",
    "contents",
    "declared_size",
    "layer_registry",
    "linear_without_weights",
    "load",
    "load_state_dict",
    "loss_classes",
    "model_path",
    "named_arrays",
    "register_layer",
    "save",
    "state_dict",
]
