"""Saving a :class:`~minnet.Sequential` to a ``.safetensors`` file and loading it back.

A minnet model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file, read and
written by the ``safetensors`` package: one tensor per parameter and buffer under its model name
(``"0.W"``, ``"1.running_mean"``), and the architecture as JSON in its metadata. ``docs/io.md``
shows the format and what :func:`load` promises: no code from a file runs, its cost is bounded
by the file and decided before anything is built, and any bad file is a ``ValueError``
(:class:`ModelFileError`) naming the file.

Modules: :mod:`.registry` (the classes load builds, by name), :mod:`.architecture` (the
metadata: the model as JSON, and its checks), :mod:`.state` (a model's arrays by name),
:mod:`.saving` (:func:`save`, atomic) and :mod:`.loading` (:func:`load`: the file's name, dtypes
and header bound, and the checks of a file).
"""

from __future__ import annotations

from .architecture import MAX_ARCHITECTURE_CHARS
from .loading import MAX_HEADER_BYTES, SUFFIX, ModelFileError, linear_without_weights, load
from .registry import layer_registry, register_layer
from .saving import contents, save
from .state import load_state_dict, named_arrays, state_dict

__all__ = [
    "MAX_ARCHITECTURE_CHARS",
    "MAX_HEADER_BYTES",
    "SUFFIX",
    "ModelFileError",
    "contents",
    "layer_registry",
    "linear_without_weights",
    "load",
    "load_state_dict",
    "named_arrays",
    "register_layer",
    "save",
    "state_dict",
]
