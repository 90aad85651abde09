"""``save``: a model's tensors and architecture, checked to load back, written atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np
import safetensors.numpy

from ..model import Sequential
from .architecture import SUPPORTED_DTYPES, describe
from .loading import DTYPES, MAX_HEADER_BYTES, check_header, model_path
from .state import count_non_finite, layer_arrays


def save(model: Sequential, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.safetensors`` is appended if missing); return the path.

    Refuses (``ValueError``, before writing anything) a model that :func:`load` would refuse:
    non-finite weights or arguments, mixed or unsupported dtypes, a layer class that is not
    registered (:func:`register_layer`), a loss that is not minnet's. The file appears complete or
    not at all, with a new file's permissions: see :func:`write_atomically`.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"save takes a minnet Sequential, got {type(model).__name__}")
    path = model_path(path)
    data = safetensors.numpy.save(*contents(model))
    length = int.from_bytes(data[:8], "little")
    if length > MAX_HEADER_BYTES:
        raise ValueError(
            f"cannot save the model: its file header (architecture and tensor table) would have "
            f"{length:,} bytes; load reads at most {MAX_HEADER_BYTES:,}"
        )
    write_atomically(path, data)
    return path


def contents(model: Sequential) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the metadata of ``model``'s file, checked by the checks :func:`load` makes
    of a file's header, so that it loads back."""
    found = {p.value.dtype for p in model.parameters()}  # the one dtype of its parameters
    if len(found) > 1:
        raise ValueError(
            f"cannot save a model whose parameters have mixed dtypes {sorted(map(str, found))}: "
            "give it one with Sequential(..., dtype=)"
        )
    dtype = found.pop() if found else model.dtype
    if dtype is not None and dtype.name not in SUPPORTED_DTYPES:
        raise ValueError(
            f"cannot save a model of dtype {dtype}: minnet files hold {', '.join(SUPPORTED_DTYPES)}"
            " (the size of longdouble differs between machines)"
        )
    metadata = describe(model, dtype)
    tensors: dict[str, np.ndarray] = {}  # finite; parameters in dtype, float buffers made so
    for i, layer in enumerate(model.layers):
        for kind, name, array in layer_arrays(layer):
            key = f"{i}.{name}"
            what = f"cannot save {kind} '{key}'"
            if not isinstance(name, str) or not name or key in tensors:
                raise ValueError(f"{what}: a name must be a new non-empty string")
            if not isinstance(array, np.ndarray):
                raise ValueError(f"{what}: expected a numpy array, got {type(array).__name__}")
            if array.dtype.name not in DTYPES.values() or not array.dtype.isnative:
                raise ValueError(f"{what}: dtype {array.dtype} is not a bool, int or float type")
            if array.dtype.kind == "f" and dtype is not None and array.dtype != dtype:
                with np.errstate(over="ignore"):  # a float buffer follows the model's dtype
                    array = array.astype(dtype)  # (every parameter is of dtype already)
            if bad := count_non_finite(array):
                raise ValueError(
                    f"{what}: {bad} of its values are NaN or infinite in {array.dtype}"
                )
            tensors[key] = array
    names = {numpy: name for name, numpy in DTYPES.items()}  # safetensors' dtype names
    try:
        check_header(
            metadata, {k: (names[a.dtype.name], list(a.shape)) for k, a in tensors.items()}
        )
    except ValueError as err:
        raise ValueError(f"cannot save the model: {err}") from None
    return tensors, metadata


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, then put that file at ``path``.

    The file is created ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name: always a new file
    of ours (a symlink planted there is never followed), with a new file's permissions (``0o666``
    less the umask, or the folder's default ACL), no setuid bit, the saving user as owner. It is
    flushed to disk and renamed over ``path`` (atomic: ``path`` holds the old file or the whole
    new one; a symlink at ``path`` is itself replaced). On failure it is removed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = path.parent / f".minnet-{secrets.token_hex(8)}.tmp"
        try:
            handle = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cannot write {path}: its folder {path.parent} does not exist"
            ) from None
    else:
        raise FileExistsError(f"no free temporary name in {path.parent}")
    try:
        with open(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the folder's entry for it to disk, where allowed
        handle = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
