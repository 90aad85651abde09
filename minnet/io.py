"""Saving a :class:`~minnet.Sequential` to an ``.npz`` file and loading it back.

The file is a plain numpy archive (``np.savez``) with these entries:

- ``"minnet_format"``: the text ``"minnet.Sequential"``, which marks a minnet model file;
- ``"format_version"``: an integer, currently ``1``;
- ``"architecture"``: a JSON text (a unicode array, never a pickled object) such as
  ``{"layers": [{"class": "Linear", "args": {"in_features": 2, "out_features": 1,
  "dtype": "float64"}}, {"class": "Sigmoid", "args": {}}], "loss": "BCELoss", "dtype":
  "float64"}`` (the model's dtype, optional);
- one array per parameter under its model name (``"0.W"``, ``"0.b"``, ...), in its own dtype.

A layer's ``args`` are its constructor arguments (its attrs fields with ``init=True``) whose
values are plain JSON values; others, such as a random ``Generator``, are left out so the layer
gets its default, and the stored parameter values then replace whatever it initialised.

:func:`load` never unpickles and never executes anything from the file: it only builds layer
classes of :mod:`minnet.layers` (by name) and the losses of ``LOSSES``, then copies the arrays in.
Anything unexpected is refused with a ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import reprlib
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from . import layers
from .layers import Layer
from .losses import BCELoss
from .model import Sequential

MARKER_KEY, MARKER = "minnet_format", "minnet.Sequential"
VERSION_KEY, FORMAT_VERSION = "format_version", 1
ARCHITECTURE_KEY = "architecture"
LOSSES: dict[str, type] = {"BCELoss": BCELoss}

_SKIP = object()  # a value with no plain JSON form


def save(model: Sequential, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.npz`` is appended if missing); return the path written."""
    path = _npz_path(path)
    loss_name = type(model.loss).__name__
    if LOSSES.get(loss_name) is not type(model.loss):
        raise ValueError(f"cannot save a model with loss {loss_name}: only {sorted(LOSSES)}")
    spec = {
        "layers": [_layer_spec(i, layer) for i, layer in enumerate(model.layers)],
        "loss": loss_name,
        "dtype": None if model.dtype is None else model.dtype.name,
    }
    arrays = {}
    for name, p in model.named_parameters():
        if p.value.dtype.kind != "f":
            raise ValueError(f"cannot save parameter {name!r}: dtype {p.value.dtype} is not float")
        arrays[name] = p.value
    np.savez(
        path,
        **{
            MARKER_KEY: np.array(MARKER),
            VERSION_KEY: np.array(FORMAT_VERSION),
            ARCHITECTURE_KEY: np.array(json.dumps(spec)),
        },
        **arrays,
    )
    return path


def load(path: str | os.PathLike[str]) -> Sequential:
    """Read a model written by :func:`save` (given the same ``path``)."""
    path = _npz_path(path)
    arrays = _read_arrays(path)

    def fail(problem: str) -> ValueError:
        return ValueError(f"cannot load {path}: {problem}")

    if MARKER_KEY not in arrays or _text(arrays.pop(MARKER_KEY)) != MARKER:
        raise fail(f"not a minnet model file (no {MARKER_KEY!r} entry saying {MARKER!r})")
    version = arrays.pop(VERSION_KEY, None)
    if not _is_scalar(version, "iu"):
        raise fail(f"no integer {VERSION_KEY!r} entry")
    if int(version) != FORMAT_VERSION:
        raise fail(f"unsupported format version {int(version)}; minnet reads {FORMAT_VERSION}")
    spec = _parse_architecture(arrays.pop(ARCHITECTURE_KEY, None), fail)

    built = [_build_layer(i, entry, fail) for i, entry in enumerate(spec["layers"])]
    if spec["loss"] not in LOSSES:
        raise fail(f"unknown loss {spec['loss']!r} (known: {sorted(LOSSES)})")
    try:
        model = Sequential(built, loss=LOSSES[spec["loss"]](), dtype=spec.get("dtype"))
    except (TypeError, ValueError) as err:
        raise fail(f"the layers do not form a model: {err}") from None

    expected = dict(model.named_parameters())
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise fail(f"missing parameter array(s) {missing}")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise fail(f"unknown array(s) {extra} (the architecture has {list(expected)})")
    for name, p in expected.items():
        stored = arrays[name]
        if stored.shape != p.shape:
            raise fail(f"parameter {name!r}: expected shape {p.shape}, got {stored.shape}")
        if stored.dtype.kind != "f":
            raise fail(f"parameter {name!r}: expected a float array, got dtype {stored.dtype}")
        if stored.dtype == p.value.dtype:
            p.value[...] = stored  # in place: into the model's flat storage
        else:
            p.value, p.grad = stored, np.zeros_like(stored)
    return model


# -- helpers ------------------------------------------------------------------------------
def _npz_path(path: str | os.PathLike[str]) -> Path:
    """The file ``np.savez`` writes for ``path``: ``path`` + ``.npz`` unless it ends so already."""
    text = os.fspath(path)
    return Path(text if text.endswith(".npz") else text + ".npz")


def _layer_class(name: str) -> type[Layer] | None:
    """The public Layer subclass of :mod:`minnet.layers` called ``name``, or ``None``."""
    cls = None if name.startswith("_") else getattr(layers, name, None)
    is_layer = isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer
    return cls if is_layer and cls.__module__ == layers.__name__ else None


def _to_json(value: Any) -> Any:
    """``value`` as a plain JSON value (dtypes as their name), or ``_SKIP`` if it has none."""
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return str(np.dtype(value))
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [_to_json(item) for item in value]
        return _SKIP if any(item is _SKIP for item in items) else items
    return _SKIP


def _layer_spec(index: int, layer: Layer) -> dict[str, Any]:
    """``{"class": name, "args": {...}}`` for one layer, from its attrs ``init=True`` fields."""
    cls = type(layer)
    if _layer_class(cls.__name__) is not cls:
        raise ValueError(
            f"cannot save layer {index} ({cls.__qualname__}): load rebuilds layers by name, "
            "so only the layer classes of minnet.layers can be saved"
        )
    args = {}
    for f in attrs.fields(cls):
        if not f.init:
            continue
        value = _to_json(getattr(layer, f.name))
        if value is not _SKIP:
            args[f.alias] = value
        elif f.default is attrs.NOTHING:
            raise ValueError(
                f"cannot save layer {index} ({cls.__name__}): its required argument "
                f"{f.alias!r} has no plain JSON value"
            )
    return {"class": cls.__name__, "args": args}


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, read without unpickling."""
    arrays = {}
    with open(path, "rb") as file:  # our own handle: np.load leaks its own on a corrupt zip
        try:
            contents = np.load(file, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"cannot load {path}: not an .npz file ({err})") from None
        if not isinstance(contents, np.lib.npyio.NpzFile):
            raise ValueError(f"cannot load {path}: a single .npy array, not an .npz file")
        for key in contents.files:
            try:
                arrays[key] = contents[key]
            except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(
                    f"cannot load {path}: entry {key!r} cannot be read ({err}); minnet files "
                    "hold only plain numeric and text arrays, never pickled objects"
                ) from None
            if not isinstance(arrays[key], np.ndarray):
                raise ValueError(f"cannot load {path}: entry {key!r} is not a numpy array")
    return arrays


def _is_scalar(array: Any, kinds: str) -> bool:
    """Whether ``array`` is a 0-d array whose dtype kind is one of ``kinds``."""
    return isinstance(array, np.ndarray) and array.shape == () and array.dtype.kind in kinds


def _text(array: Any) -> str | None:
    """The string held by a 0-d unicode array, else ``None``."""
    return str(array[()]) if _is_scalar(array, "U") else None


def _parse_architecture(array: Any, fail: Callable[[str], ValueError]) -> dict[str, Any]:
    """The architecture spec, checked to be ``{"layers": [{"class", "args"}, ...], "loss"}``
    with an optional ``"dtype"`` (the model's, ``Sequential(dtype=)``)."""
    text = _text(array)
    if text is None:
        raise fail(f"no {ARCHITECTURE_KEY!r} entry holding a JSON text")
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise fail(f"the architecture is not valid JSON ({err})") from None
    if (
        not isinstance(spec, dict)
        or set(spec) not in ({"layers", "loss"}, {"layers", "loss", "dtype"})
        or not isinstance(spec["layers"], list)
        or not spec["layers"]
        or not isinstance(spec["loss"], str)
        or spec.get("dtype") not in (None, "float16", "float32", "float64")
    ):
        raise fail(
            'the architecture must be {"layers": [non-empty list], "loss": str, "dtype": '
            f"null or a float dtype name}}, got {reprlib.repr(spec)}"
        )
    for i, entry in enumerate(spec["layers"]):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"class", "args"}
            or not isinstance(entry["class"], str)
            or not isinstance(entry["args"], dict)
        ):
            raise fail(
                f'layer {i} must be {{"class": str, "args": dict}}, got {reprlib.repr(entry)}'
            )
    return spec


def _build_layer(index: int, entry: dict[str, Any], fail: Callable[[str], ValueError]) -> Layer:
    """Call the named minnet layer class with the stored arguments."""
    name, args = entry["class"], entry["args"]
    cls = _layer_class(name)
    if cls is None:
        raise fail(f"layer {index}: {name!r} is not a layer class of minnet.layers")
    try:
        return cls(**args)
    except (TypeError, ValueError, OverflowError) as err:
        raise fail(
            f"layer {index} ({name}) rejects the arguments {reprlib.repr(args)}: {err}"
        ) from None
