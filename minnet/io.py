"""Saving a :class:`~minnet.Sequential` to a ``.safetensors`` file and loading it back.

The format
----------
A `safetensors <https://huggingface.co/docs/safetensors>`_ file, read and written by the
``safetensors`` package (minnet parses no file format of its own):

- one tensor per parameter under its model name (``"0.W"``, ``"0.b"``, ...), in the model's dtype
  (float16, float32 or float64), and one per *buffer* (``"1.running_mean"``): the plain arrays a
  layer keeps besides its parameters, which it lists with ``named_buffers()``. A float buffer is
  stored in the model's dtype, an int or bool buffer in its own;
- the file's metadata (string to string): ``"format"``: ``"minnet.Sequential"``,
  ``"format_version"``: ``"3"``, and ``"architecture"``: a JSON text such as
  ``{"layers": [{"class": "Linear", "args": {"in_features": 2, "out_features": 1, "init": "he",
  "dtype": "float64"}, "training": true}, {"class": "Sigmoid", "args": {}, "training": true}],
  "loss": {"class": "BCELoss", "args": {}}, "dtype": "float64"}``.

A layer's or the loss's ``args`` are its constructor arguments (``arguments()``) that have plain
JSON values; others, such as a random ``Generator``, are left out, so the layer gets its default
(``save`` refuses an argument without a JSON value or a default). ``"training"`` is the layer's
mode. Any tool reads the weights: ``safetensors.numpy.load_file(path)`` or
``safetensors.torch.load_file(path)``.

Layers of your own
------------------
``load`` builds only classes it knows by name: minnet's layers (``minnet.layers.layer_classes()``)
and the classes given to :func:`register_layer` in this process. Losses are minnet's own
(:func:`loss_classes`).

What :func:`load` promises
--------------------------
- **No code from the file runs**: classes are looked up by name among the registered ones and
  called with plain JSON arguments; nothing is imported or unpickled.
- **Its cost is bounded by the file, decided before anything is built.** The header is at most
  ``MAX_HEADER_BYTES``; safetensors checks it (offsets that cover the data exactly, shapes that
  match them). minnet then checks the architecture (at most ``MAX_ARCHITECTURE_CHARS``
  characters, ``MAX_LAYERS`` layers, ``MAX_ARRAYS_PER_LAYER`` arrays per layer, no NaN, no
  repeated keys) against the tensor table, and builds a layer only when the sizes its integer
  arguments declare are backed by its stored tensors (see :func:`declared_size`). A built
  layer's parameters and buffers must then match the stored tensors exactly in name, shape and
  dtype. minnet's ``Linear`` is built without drawing random weights
  (:func:`linear_without_weights`); a registered layer is built by its own ``__init__``, whose
  initial values the stored ones then replace.
- **Any bad file is a** ``ValueError`` (:class:`ModelFileError`) naming the file and the problem.
  Only the operating system's errors on the path (missing file, a directory, no permission) are
  ``OSError``.

:func:`save` refuses, before writing anything, a model that :func:`load` would refuse, and
writes atomically: see :func:`_write_atomically`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import reprlib
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import safetensors
import safetensors.numpy

from . import _checks, _fast, layers, losses
from ._fast.storage import FlatStorage
from .layers import Layer, Linear
from .model import Sequential

SUFFIX = ".safetensors"
FORMAT_KEY, FORMAT = "format", "minnet.Sequential"
VERSION_KEY, FORMAT_VERSION = "format_version", "3"
ARCHITECTURE_KEY = "architecture"
SUPPORTED_DTYPES = ("float16", "float32", "float64")

#: The longest architecture text load reads (the JSON of 1,000 layers is about 100 KB).
MAX_ARCHITECTURE_CHARS = 1_000_000
#: The largest JSON header (the architecture and the tensor table) load reads: checked from the
#: file's first 8 bytes, before safetensors parses the header (its own limit is 100 MB; a
#: 3.5 MB header took it 40 ms).
MAX_HEADER_BYTES = 3_000_000
#: The most layers load builds (Sequential's same-object check is quadratic in their number).
MAX_LAYERS = 1_000
#: The most tensors (parameters and buffers) one layer may have in a file.
MAX_ARRAYS_PER_LAYER = 64
#: How deeply a list may nest inside an argument.
MAX_ARGUMENT_DEPTH = 4
#: A layer whose integer arguments declare at most this many entries is built even without
#: stored tensors (an activation, a ``Softmax(axis=-1)``); above it, its stored tensors must
#: hold at least as many entries (``Linear(10**6, 10**6)`` needs 10**12).
FREE_SIZE = 4096

# safetensors' dtype names -> numpy's, for the dtypes numpy holds
_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
}
_SKIP = object()  # an argument with no plain JSON form
_ZIP_MAGIC = b"PK\x03\x04"  # the start of an .npz file (minnet 0.1)


class ModelFileError(ValueError):
    """A file :func:`load` refuses; the message names the file and the problem."""


# -- the registry of layer classes ----------------------------------------------------------------
_REGISTERED: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Let :func:`save` and :func:`load` handle the layer class ``cls``; returns ``cls``, so it
    works as a decorator::

        @minnet.register_layer
        class Scale(minnet.Layer):
            def __init__(self, n): ...

    The class is stored by its ``__name__``, which must not be one of minnet's layers or another
    registered class (registering a class again, or a new definition of it from the same module
    and name, as a re-run notebook cell makes, replaces it). ``load`` calls ``cls(**args)`` with
    the arguments saved from ``arguments()``, then puts the stored parameters and buffers in.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or cls is Layer:
        raise TypeError(f"register_layer takes a subclass of minnet.Layer, got {cls!r}")
    name = cls.__name__
    builtin = layers.layer_classes().get(name)
    if builtin is not None and builtin is not cls:
        raise ValueError(
            f"cannot register {cls.__module__}.{cls.__qualname__}: {name!r} is minnet's own layer "
            f"({builtin.__module__}.{name}); give your class another name"
        )
    known = _REGISTERED.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise ValueError(
            f"cannot register {cls.__module__}.{cls.__qualname__}: the name {name!r} is taken by "
            f"{known.__module__}.{known.__qualname__}, and files name layers by class name"
        )
    if builtin is None:
        _REGISTERED[name] = cls
    return cls


def layer_registry() -> dict[str, type[Layer]]:
    """Every layer class :func:`load` builds, by name: minnet's and the registered ones."""
    return {**layers.layer_classes(), **_REGISTERED}


def loss_classes() -> dict[str, type]:
    """minnet's own losses by name: the public subclasses of :class:`~minnet.Loss` defined in
    :mod:`minnet.losses` (the base class aside)."""
    found = {}
    for name, cls in vars(losses).items():
        if (
            not name.startswith("_")
            and isinstance(cls, type)
            and cls.__module__ == losses.__name__
            and issubclass(cls, losses.Loss)
            and cls is not losses.Loss
            and not inspect.isabstract(cls)
        ):
            found[name] = cls
    return found


# -- state_dict -----------------------------------------------------------------------------------
def named_arrays(model: Sequential) -> Iterator[tuple[str, str, np.ndarray]]:
    """``("parameter" | "buffer", "<layer index>.<name>", array)`` for every array of the
    model, parameters first in each layer; the arrays themselves, not copies."""
    for i, layer in enumerate(model.layers):
        for name, p in layer.named_parameters():
            yield "parameter", f"{i}.{name}", p.value
        for name, array in layer.named_buffers():
            yield "buffer", f"{i}.{name}", array


def state_dict(model: Sequential) -> dict[str, np.ndarray]:
    """``{"<layer index>.<name>": copy}`` of every parameter and buffer, in order (the names
    :meth:`Sequential.named_parameters` gives, and ``"<i>.running_mean"`` for buffers)."""
    return {name: np.array(array, copy=True) for _, name, array in named_arrays(model)}


def load_state_dict(model: Sequential, state: Mapping[str, Any]) -> None:
    """Copy ``state`` (as :func:`state_dict` gives) into the model's arrays, in place.

    The names must be exactly the model's, each array of the shape and dtype of the array it
    replaces; any mismatch is a ``ValueError`` listing them all, and then nothing is changed.
    """
    targets = {name: (kind, array) for kind, name, array in named_arrays(model)}
    if not isinstance(state, Mapping):
        raise TypeError(f"load_state_dict takes a dict of arrays, got {type(state).__name__}")
    problems = []
    missing = [name for name in targets if name not in state]
    unexpected = [name for name in state if name not in targets]
    if missing:
        problems.append(f"missing {missing}")
    if unexpected:
        problems.append(f"unexpected {reprlib.repr(unexpected)}")
    for name, (kind, target) in targets.items():
        if name in state:
            given = state[name]
            if not isinstance(given, np.ndarray):
                problems.append(f"{kind} {name!r}: expected a numpy array, got {type(given)}")
            elif given.shape != target.shape or given.dtype != target.dtype:
                problems.append(
                    f"{kind} {name!r}: expected {target.dtype} of shape {target.shape}, got "
                    f"{given.dtype} of shape {given.shape}"
                )
    if problems:
        raise ValueError(f"load_state_dict changed nothing: {'; '.join(problems)}")
    for name, (_, target) in targets.items():
        target[...] = state[name]


# -- saving ---------------------------------------------------------------------------------------
def save(model: Sequential, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.safetensors`` is appended if missing); return the path.

    Refuses (``ValueError``, before writing anything) a model that :func:`load` would refuse:
    non-finite weights or arguments, mixed or unsupported dtypes, a layer class that is not
    registered (:func:`register_layer`), a loss that is not minnet's. The file appears complete or
    not at all, with a new file's permissions: see :func:`_write_atomically`.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"save takes a minnet Sequential, got {type(model).__name__}")
    path = model_path(path)
    tensors, metadata = contents(model)
    data = safetensors.numpy.save(tensors, metadata=metadata)
    if header_length(data[:8]) > MAX_HEADER_BYTES:
        raise ValueError(
            f"cannot save the model: its file header (architecture and tensor table) would have "
            f"{header_length(data[:8]):,} bytes; load reads at most {MAX_HEADER_BYTES:,}"
        )
    _write_atomically(path, data)
    return path


def contents(model: Sequential) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the metadata of ``model``'s file, checked to be what :func:`load` takes."""
    if len(model.layers) > MAX_LAYERS:
        raise ValueError(
            f"cannot save a model of {len(model.layers)} layers: load reads at most {MAX_LAYERS}"
        )
    dtype = _model_dtype(model)
    spec = {
        "layers": [_layer_spec(i, layer) for i, layer in enumerate(model.layers)],
        "loss": _loss_spec(model.loss),
        "dtype": None if dtype is None else dtype.name,
    }
    if model.l2:  # the L2 penalty, written only when there is one
        spec["l2"] = model.l2
    tensors: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        stored = _layer_tensors(i, layer, dtype)
        what = f"cannot save layer {i} ({type(layer).__name__})"
        if len(stored) > MAX_ARRAYS_PER_LAYER:
            raise ValueError(f"{what}: it has {len(stored)} arrays, load reads at most 64")
        _check_declared_size(what, spec["layers"][i]["args"], [a.shape for a in stored.values()])
        tensors.update({f"{i}.{name}": array for name, array in stored.items()})
    text = json.dumps(spec, allow_nan=False)
    if len(text) > MAX_ARCHITECTURE_CHARS:
        raise ValueError(
            f"cannot save the model: its architecture text has {len(text):,} characters, load "
            f"reads at most {MAX_ARCHITECTURE_CHARS:,}"
        )
    _check_spec(parse_json(text))  # what load checks, so that it loads back
    metadata = {FORMAT_KEY: FORMAT, VERSION_KEY: FORMAT_VERSION, ARCHITECTURE_KEY: text}
    return tensors, metadata


def _model_dtype(model: Sequential) -> np.dtype | None:
    """The one dtype of all the model's parameters (``model.dtype`` if it has none)."""
    found = {p.value.dtype for p in model.parameters()}
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
    return dtype


def _layer_tensors(index: int, layer: Layer, dtype: np.dtype | None) -> dict[str, np.ndarray]:
    """``{name: array}`` of one layer's parameters and buffers as stored: finite, parameters in
    ``dtype``, float buffers converted to ``dtype``."""
    arrays: dict[str, np.ndarray] = {}
    named = [("parameter", name, p.value) for name, p in layer.named_parameters()]
    named += [("buffer", name, array) for name, array in layer.named_buffers()]
    for kind, name, array in named:
        what = f"cannot save {kind} '{index}.{name}'"
        if not isinstance(name, str) or not name or name in arrays:
            raise ValueError(f"{what}: a name must be a new non-empty string")
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{what}: expected a numpy array, got {type(array).__name__}")
        if array.dtype.name not in _DTYPES.values() or not array.dtype.isnative:
            raise ValueError(f"{what}: dtype {array.dtype} is not a bool, int or float type")
        if array.dtype.kind == "f" and dtype is not None and array.dtype != dtype:
            if kind == "parameter":
                raise ValueError(f"{what}: its dtype {array.dtype} is not the model's {dtype}")
            with np.errstate(over="ignore"):
                array = array.astype(dtype)  # a float buffer follows the model's dtype
        bad = count_non_finite(array)
        if bad:
            raise ValueError(f"{what}: {bad} of its values are NaN or infinite in {array.dtype}")
        arrays[name] = array
    return arrays


def _layer_spec(index: int, layer: Layer) -> dict[str, Any]:
    """``{"class": name, "args": {...}, "training": bool}`` for one registered layer."""
    cls = type(layer)
    if layer_registry().get(cls.__name__) is not cls:
        raise ValueError(
            f"cannot save layer {index} ({cls.__module__}.{cls.__qualname__}): load rebuilds "
            f"layers by class name, and this class is not registered. Register it with "
            f"minnet.register_layer({cls.__name__}) (or put @minnet.register_layer above its "
            "class), in the program that saves and in the one that loads"
        )
    what = f"layer {index} ({cls.__name__})"
    return {"class": cls.__name__, "args": _init_args(layer, what), "training": layer.training}


def _loss_spec(loss: Any) -> dict[str, Any]:
    """``{"class": name, "args": {...}}`` for the loss, one of :func:`loss_classes`."""
    cls = type(loss)
    if loss_classes().get(cls.__name__) is not cls:
        raise ValueError(
            f"cannot save a model with loss {cls.__qualname__}: load rebuilds losses by name, so "
            f"only minnet's own can be saved ({sorted(loss_classes())})"
        )
    return {"class": cls.__name__, "args": _init_args(loss, f"the loss {cls.__name__}")}


def _init_args(obj: Any, what: str) -> dict[str, Any]:
    """The constructor arguments of a layer or loss (``arguments()``) that have plain JSON
    values. One without (a random ``Generator``) is left out if ``__init__`` has a default for
    it, and refused otherwise: load could not call the constructor."""
    signature = inspect.signature(type(obj).__init__)
    args = {}
    for name, value in obj.arguments().items():
        plain = _to_json(value)
        if plain is _SKIP:
            parameter = signature.parameters.get(name)
            if parameter is not None and parameter.default is parameter.empty:
                raise ValueError(
                    f"cannot save {what}: its argument {name!r} is a {type(value).__name__}, "
                    "which has no JSON form, and __init__ has no default for it"
                )
            continue
        if not _all_finite(plain):
            raise ValueError(
                f"cannot save {what}: its argument {name!r} is {plain!r}, and load refuses "
                "non-finite arguments"
            )
        args[name] = plain
    return args


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


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(item) for item in value)
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, then put that file at ``path``.

    - The temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random short
      name: it is always a new file of ours (a symlink planted at its name is never followed),
      with the permissions any new file gets (``0o666`` less the umask, or the folder's default
      ACL), no setuid bit and the saving user as owner, whatever ``path`` held before.
    - It is flushed to disk and renamed over ``path`` (``os.replace``, atomic): ``path`` holds the
      old file or the complete new one, never a part; a symlink at ``path`` is itself replaced.
    - On any failure the temporary file is removed and the error raised.
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
    else:
        raise FileExistsError(f"no free temporary name in {path.parent}")
    try:
        with open(handle, "wb", closefd=True) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# -- loading --------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> Sequential:
    """Read a model written by :func:`save` (given the same ``path``).

    Raises :class:`ModelFileError` (a ``ValueError``) for any file that is not a valid minnet model
    file, and ``OSError`` only for the path itself (missing, a directory, no permission). See the
    module's docstring for what it promises.
    """
    path = _readable_path(path)
    with open(path, "rb") as handle:  # the operating system's errors stay OSError
        return _load(path, handle)


def _load(path: Path, handle: BinaryIO) -> Sequential:
    """:func:`load` from ``handle``, the file open at ``path``: every tensor read from it."""
    reader, start = _Reader(path), handle.read(8)
    if start.startswith(_ZIP_MAGIC):
        raise _old_format(path)
    if header_length(start) > MAX_HEADER_BYTES:
        raise reader.fail(
            f"its header declares {header_length(start):,} bytes; minnet reads at most "
            f"{MAX_HEADER_BYTES:,}"
        )
    with reader.opened() as file:
        spec = reader.architecture(file.metadata())
        table = reader.tensor_table(file, len(spec["layers"]))
        classes = [reader.layer_class(i, entry, table[i]) for i, entry in enumerate(spec["layers"])]
        loss = reader.build_loss(spec["loss"])
        places = reader.places(handle, header_length(start), file.metadata())
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


def _old_format(path: Path) -> ModelFileError:
    return ModelFileError(
        f"cannot load {path}: it is an .npz model file of minnet 0.1, which this version no "
        "longer reads. Its weights are plain arrays under the same names: build the same model "
        "here (its architecture is the JSON text in np.load(path)['architecture']), then call "
        "model.load_state_dict({k: v for k, v in np.load(path).items() if k[0].isdigit()}) "
        "and save it again"
    )


class _Reader:
    """The checks of one file being loaded; every refusal is a :class:`ModelFileError` naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.classes = layer_registry()  # the layer classes it builds, by name
        self.checked: dict[str, tuple[str, list[int]]] = {}  # safetensors' dtype and shape

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"cannot load {self.path}: {problem}")

    @contextlib.contextmanager
    def opened(self) -> Iterator[Any]:
        """The file opened by safetensors (its header checked); its errors as ModelFileError."""
        try:
            file = safetensors.safe_open(str(self.path), framework="numpy")
        except safetensors.SafetensorError as err:
            raise self.fail(f"not a valid safetensors file ({err})") from None
        except (ValueError, TypeError, OverflowError, UnicodeError) as err:
            raise self.fail(f"not a valid safetensors file ({type(err).__name__}: {err})") from None
        with file:
            yield file

    def architecture(self, metadata: dict[str, str] | None) -> dict[str, Any]:
        """The checked architecture (see :func:`_check_spec`) from the file's metadata."""
        metadata = metadata or {}
        if metadata.get(FORMAT_KEY) != FORMAT:
            raise self.fail(
                f"not a minnet model file (its metadata has no {FORMAT_KEY!r}: {FORMAT!r}); the "
                "weights of any safetensors file open with safetensors.numpy.load_file, and "
                "model.load_state_dict takes them"
            )
        if metadata.get(VERSION_KEY) != FORMAT_VERSION:
            raise self.fail(
                f"format version {reprlib.repr(metadata.get(VERSION_KEY))}; this minnet reads "
                f"version {FORMAT_VERSION}"
            )
        text = metadata.get(ARCHITECTURE_KEY)
        if text is None:
            raise self.fail(f"its metadata has no {ARCHITECTURE_KEY!r}")
        if len(text) > MAX_ARCHITECTURE_CHARS:
            raise self.fail(
                f"the architecture text has {len(text):,} characters; minnet reads at most "
                f"{MAX_ARCHITECTURE_CHARS:,}"
            )
        try:
            spec = parse_json(text)
        except ValueError as err:
            raise self.fail(f"the architecture is not valid JSON ({err})") from None
        try:
            return _check_spec(spec)
        except ValueError as err:
            raise self.fail(str(err)) from None

    def tensor_table(self, file: Any, n_layers: int) -> list[dict[str, tuple[tuple, np.dtype]]]:
        """For each layer, ``{name: (shape, dtype)}`` of the tensors named ``"<index>.<name>"``,
        from the header alone; any other tensor, or a dtype numpy does not hold, is refused."""
        table: list[dict[str, tuple[tuple, np.dtype]]] = [{} for _ in range(n_layers)]
        unknown = []
        for key in file.keys():
            index, _, name = key.partition(".")
            canonical = index.isascii() and index.isdigit() and (index == "0" or index[0] != "0")
            if not (canonical and len(index) <= len(str(n_layers)) and int(index) < n_layers):
                unknown.append(key)
                continue
            if not name:
                unknown.append(key)
                continue
            tensor = file.get_slice(key)
            self.checked[key] = (tensor.get_dtype(), tensor.get_shape())
            dtype = _DTYPES.get(tensor.get_dtype())
            if dtype is None:
                raise self.fail(
                    f"tensor {key!r} has dtype {tensor.get_dtype()}, which minnet does not hold "
                    f"(it reads {', '.join(_DTYPES)})"
                )
            table[int(index)][name] = (tuple(tensor.get_shape()), np.dtype(dtype))
        if unknown:
            raise self.fail(
                f"unknown tensor(s) {reprlib.repr(sorted(unknown))} (the architecture has "
                f"{n_layers} layers; their tensors are named '<layer index>.<name>')"
            )
        for i, group in enumerate(table):
            if len(group) > MAX_ARRAYS_PER_LAYER:
                raise self.fail(
                    f"layer {i} has {len(group)} tensors in the file; minnet reads at most "
                    f"{MAX_ARRAYS_PER_LAYER} per layer"
                )
        return table

    def layer_class(
        self, index: int, entry: dict[str, Any], table: dict[str, tuple[tuple, np.dtype]]
    ) -> type[Layer]:
        """The registered class of layer ``index``, once the sizes its arguments declare are
        known to be backed by its stored tensors."""
        name = entry["class"]
        cls = self.classes.get(name)
        if cls is None:
            raise self.fail(
                f"layer {index}: class {name!r} is not registered in this process. minnet's "
                f"layers are {sorted(layers.layer_classes())}; a layer of your own must be "
                f"registered before loading: minnet.register_layer({name})"
            )
        try:
            shapes = [shape for shape, _ in table.values()]
            _check_declared_size(f"layer {index} ({name})", entry["args"], shapes)
        except ValueError as err:
            raise self.fail(str(err)) from None
        return cls

    def places(self, handle: BinaryIO, length: int, metadata: Any) -> dict[str, int]:
        """Where each tensor's data starts in the file open as ``handle``, from its header of
        ``length`` bytes, read again from ``handle``: it must be exactly the one safetensors
        checked (``metadata`` and the tensors seen by :meth:`tensor_table`; the path may have
        been replaced since), and its offsets must tile the data, each tensor's span holding
        its shape in its dtype."""
        handle.seek(8)
        try:
            header = parse_json(handle.read(length).decode("utf-8"))
            changed = header.pop("__metadata__", None) != metadata
            spans = {key: tuple(entry["data_offsets"]) for key, entry in header.items()}
            changed |= {k: (v["dtype"], v["shape"]) for k, v in header.items()} != self.checked
            changed |= not all(len(v) == 2 and {*map(type, v)} == {int} for v in spans.values())
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise self.fail(f"its header changed while it was read ({err})") from None
        if changed:
            raise self.fail("its header changed while it was read")
        data_size, end = os.fstat(handle.fileno()).st_size - 8 - length, 0
        for key in sorted(spans, key=spans.get):
            dtype, shape = self.checked[key]
            size = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize
            if spans[key] != (end, end + size):
                raise self.fail(
                    f"tensor {key!r}: its data offsets {spans[key]} are not {end, end + size}"
                )
            end = spans[key][1]
        if end != data_size:
            raise self.fail(f"its tensors hold {end:,} bytes of data, the file {data_size:,}")
        return {key: 8 + length + begin for key, (begin, _) in spans.items()}

    def read_into(self, handle: BinaryIO, start: int, key: str, array: np.ndarray) -> np.ndarray:
        """Read tensor ``key``, from byte ``start`` of the file, into ``array`` (C-contiguous,
        of its shape and dtype): refused if the file ends early or it holds NaN or infinite
        values. Returns ``array``."""
        handle.seek(start)
        if array.nbytes and handle.readinto(memoryview(array).cast("B")) != array.nbytes:
            raise self.fail(f"tensor {key!r}: the file ends before its data does")
        if sys.byteorder == "big":  # safetensors stores little-endian
            array.byteswap(inplace=True)
        bad = count_non_finite(array)
        if bad:
            raise self.fail(
                f"tensor {key!r} holds {bad} NaN or infinite values; minnet loads only finite "
                "weights"
            )
        return array

    def build_layer(
        self,
        index: int,
        cls: type[Layer],
        entry: dict[str, Any],
        table: dict[str, tuple[tuple, np.dtype]],
        dtype: str | None,
    ) -> Layer:
        """Layer ``index`` from its arguments, in its saved mode; its parameters and buffers must
        match the stored ones (``table``: their shapes and dtypes), which load then reads into
        them."""
        what = f"layer {index} ({cls.__name__})"
        args = entry["args"]
        try:
            layer = linear_without_weights(args) if cls is Linear else cls(**args)
        except Exception as err:  # TypeError, ValueError, OverflowError, even MemoryError
            raise self.fail(
                f"{what} rejects the arguments {reprlib.repr(args)}: {type(err).__name__}: {err}"
            ) from None
        self.match(index, layer, table, dtype)
        layer.train(entry["training"])
        return layer

    def match(
        self, index: int, layer: Layer, table: dict[str, tuple[tuple, np.dtype]], dtype: str | None
    ) -> None:
        """The layer's parameters and buffers are exactly the stored tensors: the same names and
        shapes; parameters in the model's ``dtype``, buffers in the layer's own."""
        expected = {}
        try:
            for name, p in layer.named_parameters():
                expected[name] = ("parameter", p.value.shape, dtype)
            for name, array in layer.named_buffers():
                expected[name] = ("buffer", np.shape(array), getattr(array, "dtype", None))
        except Exception as err:
            raise self.fail(f"layer {index} does not list its arrays ({err})") from None
        missing = [f"{index}.{name}" for name in expected if name not in table]
        if missing:
            raise self.fail(f"missing tensor(s) {missing}")
        extra = sorted(f"{index}.{name}" for name in table if name not in expected)
        if extra:
            raise self.fail(
                f"unknown tensor(s) {extra} (layer {index} ({type(layer).__name__}) has no "
                "parameter or buffer of that name)"
            )
        for name, (kind, shape, wanted) in expected.items():
            stored_shape, stored_dtype = table[name]
            if stored_shape != shape:
                raise self.fail(
                    f"{kind} '{index}.{name}': expected shape {shape}, got {stored_shape}"
                )
            if wanted is None or stored_dtype != np.dtype(wanted):
                raise self.fail(
                    f"{kind} '{index}.{name}': expected dtype {wanted}"
                    f"{' (the model dtype)' if kind == 'parameter' else ''}, got {stored_dtype}"
                )

    def build_loss(self, entry: dict[str, Any]) -> Any:
        name, args = entry["class"], entry["args"]
        known = loss_classes()
        if name not in known:
            raise self.fail(f"unknown loss {name!r} (minnet's losses: {sorted(known)})")
        try:
            return known[name](**args)
        except Exception as err:
            raise self.fail(
                f"the loss {name} rejects the arguments {reprlib.repr(args)}: {err}"
            ) from None


def linear_without_weights(args: dict[str, Any]) -> Linear:
    """``Linear(**args)`` without drawing its random initial weights (the file's replace them):
    a ``Linear(1, 1)`` with the other arguments (so that Linear checks them), given the sizes,
    checked as Linear checks them, and ``W: (out, in)``, ``b: (out,)`` (values and gradients)
    of zeros that take no memory (one zero seen through every index, read-only): load gives
    them their arrays before it reads the file's values into them."""
    layer = Linear(**{**args, "in_features": 1, "out_features": 1})
    for name in ("in_features", "out_features"):
        setattr(layer, name, _checks.whole_number(name, args.get(name), low=1))
    for p, shape in (
        (layer.W, (layer.out_features, layer.in_features)),
        (layer.b, (layer.out_features,)),
    ):
        p.value = p.grad = np.broadcast_to(np.zeros((), layer.dtype), shape)
    return layer


# -- the architecture -----------------------------------------------------------------------------
def parse_json(text: str) -> Any:
    """JSON without NaN, infinities (``1e999`` too) or repeated keys: ``ValueError`` else, also
    for nesting deeper than Python's recursion allows."""

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not a finite number")

    def finite_float(digits: str) -> float:
        value = float(digits)
        if not math.isfinite(value):
            raise ValueError(f"{digits} is not a finite float")
        return value

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise ValueError(f"repeated keys in {reprlib.repr(pairs)}")
        return result

    try:
        return json.loads(
            text,
            parse_constant=refuse_constant,
            parse_float=finite_float,
            object_pairs_hook=unique_keys,
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _check_spec(spec: Any) -> dict[str, Any]:
    """The architecture, checked to be ``{"layers": [{"class": str, "args": {...}, "training":
    bool}, ...], "loss": {"class": str, "args": {...}}, "dtype": null or a float dtype name}``
    with plain arguments, and an optional ``"l2"``: the model's L2 penalty, a number >= 0 (0
    when missing)."""
    if isinstance(spec, dict):
        spec = {"l2": 0.0, **spec}
    if (
        not isinstance(spec, dict)
        or set(spec) != {"layers", "loss", "dtype", "l2"}
        or not isinstance(spec["layers"], list)
        or not spec["layers"]
        or spec["dtype"] not in (None, *SUPPORTED_DTYPES)
    ):
        raise ValueError(
            'the architecture must be {"layers": [non-empty list], "loss": {"class": str, '
            f'"args": dict}}, "dtype": null or one of {list(SUPPORTED_DTYPES)}}}, got '
            f"{reprlib.repr(spec)}"
        )
    l2 = spec["l2"]
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 <= l2 < float("inf"):
        raise ValueError(f'"l2" must be a number >= 0, got {reprlib.repr(l2)}')
    if len(spec["layers"]) > MAX_LAYERS:
        raise ValueError(
            f"the architecture has {len(spec['layers']):,} layers; minnet reads at most "
            f"{MAX_LAYERS:,}"
        )
    for i, entry in enumerate(spec["layers"]):
        _check_entry(entry, f"layer {i}", {"class", "args", "training"})
        if not isinstance(entry["training"], bool):
            raise ValueError(
                f"layer {i}: 'training' must be true or false, got {entry['training']!r}"
            )
    _check_entry(spec["loss"], "the loss", {"class", "args"})
    return spec


def _check_entry(entry: Any, what: str, keys: set[str]) -> None:
    if (
        not isinstance(entry, dict)
        or set(entry) != keys
        or not isinstance(entry["class"], str)
        or not isinstance(entry["args"], dict)
    ):
        wanted = ", ".join(f'"{key}"' for key in sorted(keys))
        raise ValueError(
            f"{what} must be an object with exactly {wanted}, got {reprlib.repr(entry)}"
        )
    for key, value in entry["args"].items():
        if not _is_plain(value):
            raise ValueError(
                f"{what}: argument {key!r} must be a number, string, bool, null or a list of "
                f"them (nested at most {MAX_ARGUMENT_DEPTH} deep), got {reprlib.repr(value)}"
            )


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return (
        isinstance(value, list)
        and depth < MAX_ARGUMENT_DEPTH
        and all(_is_plain(item, depth + 1) for item in value)
    )


#: Integer arguments that are seeds, not sizes: left out of :func:`declared_size`.
SEED_ARGUMENTS = ("seed", "rng", "random_state")


def declared_size(args: dict[str, Any], limit: int) -> int:
    """The size a layer's arguments declare: the product of its integer arguments (bools and
    ``SEED_ARGUMENTS`` aside), each counted as at least 1 so that a zero never cancels the
    others, computed only up to ``limit``: the first partial product above it is returned."""
    size = 1
    stack = [value for name, value in args.items() if name not in SEED_ARGUMENTS]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            size *= max(abs(item), 1)
            if size > limit:
                return size
    return size


def _check_declared_size(what: str, args: dict[str, Any], shapes: list[tuple[int, ...]]) -> None:
    """Refuse a layer whose integer arguments declare more entries than its stored tensors hold
    (and more than ``FREE_SIZE``): it would be built at a size the file does not back.
    ``shapes``: those of its stored tensors."""
    entries = sum(math.prod(shape) for shape in shapes)
    limit = max(entries, FREE_SIZE)
    declared = declared_size(args, limit)
    if declared > limit:
        ints = {k: v for k, v in args.items() if declared_size({k: v}, limit) != 1}
        raise ValueError(
            f"{what}: its integer arguments {reprlib.repr(ints)} declare more than {limit:,} "
            f"entries, but its tensors in the file hold {entries:,}: it is not built"
        )


# -- helpers --------------------------------------------------------------------------------------
def count_non_finite(array: np.ndarray, block: int = 1 << 16) -> int:
    """How many entries of a float array are NaN or infinite (0 for other dtypes), counted a
    block at a time so that no temporary of the array's size is made."""
    if array.dtype.kind != "f":
        return 0
    flat, bad = array.reshape(-1), 0
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        bad += part.size - int(np.count_nonzero(np.isfinite(part)))
    return bad


def header_length(start: bytes) -> int:
    """The length of the JSON header a safetensors file declares in its first 8 bytes
    (little-endian); 0 if there are fewer (safetensors then refuses the file)."""
    return int.from_bytes(start, "little") if len(start) == 8 else 0


def model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.safetensors`` appended unless it ends so already."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise TypeError("save and load take a str or os.PathLike path, not bytes")
    return Path(text if text.endswith(SUFFIX) else text + SUFFIX)


def _readable_path(path: str | os.PathLike[str]) -> Path:
    """The file :func:`load` reads: :func:`model_path`, or ``path`` itself when only it exists
    (an old ``.npz`` file, or a file named otherwise)."""
    full = model_path(path)
    given = Path(os.fspath(path))
    if given != full and not full.exists() and given.is_file():
        return given
    return full


__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "SUFFIX",
    "declared_size",
    "layer_registry",
    "linear_without_weights",
    "load",
    "load_state_dict",
    "loss_classes",
    "model_path",
    "register_layer",
    "save",
    "state_dict",
]
