"""``load``: the file checked, the model built without drawing weights, each tensor read once
into its place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import _fast
from .._fast.storage import FlatStorage
from ..model import Sequential
from .format import MAX_HEADER_BYTES, ZIP_MAGIC, ModelFileError, header_length, readable_path
from .reader import Reader, Replaced


def load(path: str | os.PathLike[str]) -> Sequential:
    """Read a model written by :func:`save` (given the same ``path``).

    Raises :class:`ModelFileError` (a ``ValueError``) for any file that is not a valid minnet model
    file, and ``OSError`` only for the path itself (missing, a directory, no permission). See the
    package's docstring and docs/io.md for what it promises.
    """
    path = readable_path(path)
    for _ in range(REOPENINGS):
        with open(path, "rb") as handle:  # the operating system's errors stay OSError
            try:
                return _load(path, handle)
            except Replaced:
                continue  # the file at path was replaced after this open: open the new one
    raise ModelFileError(
        f"cannot load {path}: it was replaced by another file {REOPENINGS} times while it was read"
    )


#: How many times load opens the path again when a save replaced the file while it was read.
REOPENINGS = 5


def _load(path: Path, handle: BinaryIO) -> Sequential:
    """:func:`load` from ``handle``, the file open at ``path``: every tensor read from it."""
    reader, start = Reader(path), handle.read(8)
    if start.startswith(ZIP_MAGIC):
        raise old_format(path)
    if header_length(start) > MAX_HEADER_BYTES:
        raise reader.fail(
            f"its header declares {header_length(start):,} bytes; minnet reads at most "
            f"{MAX_HEADER_BYTES:,}"
        )
    with reader.opened() as file:
        tensors = {key: described(file.get_slice(key)) for key in file.keys()}
        metadata = file.metadata()  # a new dict at each call
        spec, table, classes, loss = reader.header(metadata, tensors)
        places = reader.places(handle, header_length(start), metadata)
    built = [
        reader.build_layer(i, cls, entry, table[i], spec["dtype"])
        for i, (cls, entry) in enumerate(zip(classes, spec["layers"], strict=True))
    ]
    parameters = [
        (f"{i}.{name}", p) for i, x in enumerate(built) for name, p in x.named_parameters()
    ]
    # each parameter gets its final array unread: a view of the flat storage of minnet._fast,
    # kept alive here until Sequential finds it, or (the fast path off) an array of its own
    storage = _fast.fast_path_enabled() and FlatStorage.empty(
        [p for _, p in parameters], spec["dtype"]
    )
    if not storage:
        for _, p in parameters:
            p.value, p.grad = np.empty(p.shape, p.dtype), np.zeros(p.shape, p.dtype)
    for key, p in parameters:  # and the file's values are read into it
        reader.read_into(handle, places[key], key, p.value)
    try:
        model = Sequential(built, loss=loss, dtype=spec["dtype"], l2=spec["l2"])
    except Exception as err:  # TypeError, ValueError: layers that do not chain
        raise reader.fail(f"the layers do not form a model: {err}") from None
    del storage  # the model holds it now
    for i, layer in enumerate(model.layers):  # buffers are read, then copied in place
        for name, array in layer.named_buffers():
            shape, dtype = table[i][name]
            array[...] = reader.read_into(
                handle, places[f"{i}.{name}"], f"{i}.{name}", np.empty(shape, dtype)
            )
    return model


def old_format(path: Path) -> ModelFileError:
    return ModelFileError(
        f"cannot load {path}: it is an .npz model file of minnet 0.1, which this version no "
        "longer reads. Its weights are plain arrays under the same names: build the same model "
        "here (its architecture is the JSON text in np.load(path)['architecture']), then call "
        "model.load_state_dict({k: v for k, v in np.load(path).items() if k[0].isdigit()}) "
        "and save it again"
    )


def described(part: Any) -> tuple[str, list[int]]:
    """A tensor's dtype (safetensors' name) and shape, as safetensors read them from the header."""
    return part.get_dtype(), part.get_shape()
