"""``load``: the file's header checked, the model built without drawing weights, each tensor
read once, from the file load has open, into its final array.

The checks raise a plain ``ValueError`` saying what is wrong; :func:`load` names the file
(:class:`ModelFileError`), ``save`` the model it refuses to write.
"""

from __future__ import annotations

import contextlib
import math
import os
import reprlib
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import safetensors

from .. import _checks, _fast, layers
from .._fast.storage import FlatStorage
from ..layers import Layer, Linear
from ..model import Sequential
from .architecture import FREE_SIZE, declared_size, parse_json, read_architecture
from .registry import layer_registry, loss_classes
from .state import count_non_finite, layer_arrays

SUFFIX = ".safetensors"
#: The largest JSON header (the architecture and the tensor table) load reads: checked from the
#: file's first 8 bytes, before safetensors parses the header (its own limit is 100 MB; a
#: 3.5 MB header took it 40 ms).
MAX_HEADER_BYTES = 3_000_000
#: safetensors' dtype names -> numpy's, for the dtypes numpy holds: "BOOL", "U8" ... "F64".
DTYPES = {
    ("BOOL" if d.kind == "b" else f"{d.kind.upper()}{8 * d.itemsize}"): d.name
    for d in map(np.dtype, "bool u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8".split())
}
#: The most tensors (parameters and buffers) one layer may have in a file.
MAX_ARRAYS_PER_LAYER = 64
#: How many times load opens the path again when a save replaced the file while it was read.
REOPENINGS = 5

Tensors = dict[str, tuple[str, list[int]]]  # each tensor's safetensors dtype and shape, by key
Table = dict[str, tuple[tuple[int, ...], np.dtype]]  # a layer's tensors' shape and dtype, by name


class ModelFileError(ValueError):
    """A file :func:`load` refuses; the message names the file and the problem."""


def model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.safetensors`` appended unless it ends so already."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise TypeError("save and load take a str or os.PathLike path, not bytes")
    if os.path.basename(text) in ("", ".", ".."):  # "", "folder/", ".", "a/..": no file
        raise ValueError(f"a model's path names a file, got {text!r}")
    return Path(text if text.endswith(SUFFIX) else text + SUFFIX)


def load(path: str | os.PathLike[str]) -> Sequential:
    """Read a model written by :func:`save` (given the same ``path``).

    Raises :class:`ModelFileError` (a ``ValueError``) for any file that is not a valid minnet model
    file, and ``OSError`` only for the path itself (missing, a directory, no permission). See the
    package's docstring and docs/io.md for what it promises.
    """
    full, given = model_path(path), Path(os.fspath(path))
    if given != full and not full.exists() and given.is_file():
        full = given  # an old .npz file, or a file named otherwise
    for _ in range(REOPENINGS):
        with open(full, "rb") as handle:  # the operating system's errors stay OSError
            try:
                return _load(full, handle)
            except Replaced:
                continue  # the file at path was replaced after this open: open the new one
            except ValueError as err:
                raise ModelFileError(f"cannot load {full}: {err}") from None
    raise ModelFileError(
        f"cannot load {full}: it was replaced by another file {REOPENINGS} times while it was read"
    )


class Replaced(Exception):
    """The path was given another file (a ``save`` renamed one over it) between minnet's open
    and safetensors': the two read different files."""


def _load(path: Path, handle: BinaryIO) -> Sequential:
    """:func:`load` from ``handle``, the file open at ``path``: every tensor read from it."""
    start = handle.read(8)
    if start.startswith(b"PK\x03\x04"):  # a zip: an .npz file
        raise ValueError(
            "it is an .npz model file of minnet 0.1, which this version no longer reads. Its "
            "weights are plain arrays under the same names: build the same model here (its "
            "architecture is the JSON text in np.load(path)['architecture']), then call "
            "model.load_state_dict({k: v for k, v in np.load(path).items() if k[0].isdigit()}) "
            "and save it again"
        )
    length = int.from_bytes(start, "little")  # safetensors refuses a file shorter than 8 bytes
    if length > MAX_HEADER_BYTES:
        raise ValueError(
            f"its header declares {length:,} bytes; minnet reads at most {MAX_HEADER_BYTES:,}"
        )
    # safetensors opens by name: through /proc/self/fd (Linux) it opens the very file of
    # ``handle``, even if a save has renamed another over ``path`` since; elsewhere ``path``
    own = f"/proc/self/fd/{handle.fileno()}"
    try:
        file = safetensors.safe_open(own if os.path.exists(own) else str(path), framework="numpy")
    except (safetensors.SafetensorError, ValueError, TypeError, OverflowError) as err:
        raise ValueError(f"not a valid safetensors file ({type(err).__name__}: {err})") from None
    with file:  # each slice let go at once (kept to the end of load: +2 MB of resident peak)
        tensors = {
            k: (s.get_dtype(), s.get_shape()) for k in file.keys() for s in [file.get_slice(k)]
        }
        metadata = file.metadata()  # a new dict at each call
    spec, table, classes, loss = check_header(metadata, tensors)
    places = _places(path, handle, length, metadata, tensors)
    built = [
        build_layer(i, cls, entry, table[i], spec["dtype"])
        for i, (cls, entry) in enumerate(zip(classes, spec["layers"], strict=True))
    ]
    parameters = {f"{i}.{n}": p for i, x in enumerate(built) for n, p in x.named_parameters()}
    # each parameter gets its final array unread: a view of the flat storage of minnet._fast,
    # kept alive here until Sequential finds it, or (the fast path off) an array of its own
    storage = _fast.fast_path_enabled() and FlatStorage.empty([*parameters.values()], spec["dtype"])
    if not storage:
        for p in parameters.values():
            p.value, p.grad = np.empty(p.shape, p.dtype), np.zeros(p.shape, p.dtype)
    for key, p in parameters.items():  # and the file's values are read into it
        _read_into(handle, places[key], key, p.value)
    try:
        model = Sequential(built, loss=loss, dtype=spec["dtype"], l2=spec["l2"])
    except Exception as err:  # TypeError, ValueError: layers that do not chain
        raise ValueError(f"the layers do not form a model: {err}") from None
    del storage  # the model holds it now
    for i, layer in enumerate(model.layers):  # buffers are read, then copied in place
        for name, array in layer.named_buffers():
            key = f"{i}.{name}"
            array[...] = _read_into(handle, places[key], key, np.empty(*table[i][name]))
    return model


def check_header(
    metadata: dict[str, str] | None, tensors: Tensors
) -> tuple[dict[str, Any], list[Table], list[type[Layer]], Any]:
    """All that is checked from a file's header alone, before anything is built: the
    architecture in ``metadata``, the ``tensors`` against it, each layer's class and the size its
    arguments declare against its own tensors, the loss. Returns the architecture, each layer's
    tensors (by name), the layers' classes and the loss."""
    spec = read_architecture(metadata or {})
    table: list[Table] = [{} for _ in spec["layers"]]
    indices = {str(i): i for i in range(len(table))}  # "4", never "04" nor "9" of 5 layers
    unknown = []
    for key, (stored, shape) in tensors.items():
        index, _, name = key.partition(".")
        if index not in indices or not name:
            unknown.append(key)
        elif stored not in DTYPES:
            raise ValueError(
                f"tensor {key!r} has dtype {stored}, which minnet does not hold "
                f"(it reads {', '.join(DTYPES)})"
            )
        else:
            table[indices[index]][name] = (tuple(shape), np.dtype(DTYPES[stored]))
    if unknown:
        raise ValueError(
            f"unknown tensor(s) {reprlib.repr(sorted(unknown))} (the architecture has "
            f"{len(table)} layers; their tensors are named '<layer index>.<name>')"
        )
    registry, classes = layer_registry(), []
    for i, (entry, stored) in enumerate(zip(spec["layers"], table, strict=True)):
        name, args = entry["class"], entry["args"]
        if name not in registry:
            raise ValueError(
                f"layer {i}: class {name!r} is not registered in this process. minnet's "
                f"layers are {sorted(layers.layer_classes())}; a layer of your own must be "
                f"registered before loading: minnet.register_layer({name})"
            )
        if len(stored) > MAX_ARRAYS_PER_LAYER:
            raise ValueError(
                f"layer {i} has {len(stored)} tensors in the file; minnet reads at most "
                f"{MAX_ARRAYS_PER_LAYER} per layer"
            )
        # built only at a size its stored tensors back (Linear(10**6, 10**6) needs 10**12
        # entries), or at most FREE_SIZE (an activation, Softmax(axis=-1))
        entries = sum(math.prod(shape) for shape, _ in stored.values())
        limit = max(entries, FREE_SIZE)
        if declared_size(args, limit) > limit:
            raise ValueError(
                f"layer {i} ({name}): its arguments {reprlib.repr(args)} declare more than "
                f"{limit:,} entries, but its tensors in the file hold {entries:,}: it is not built"
            )
        classes.append(registry[name])
    name, args, known = spec["loss"]["class"], spec["loss"]["args"], loss_classes()
    if name not in known:
        raise ValueError(f"unknown loss {name!r} (minnet's losses: {sorted(known)})")
    try:
        loss = known[name](**args)
    except Exception as err:
        raise ValueError(
            f"the loss {name} rejects the arguments {reprlib.repr(args)}: {err}"
        ) from None
    return spec, table, classes, loss


def _places(
    path: Path, handle: BinaryIO, length: int, metadata: Any, tensors: Tensors
) -> dict[str, int]:
    """Where each tensor's data starts in the file open as ``handle``, from its header of
    ``length`` bytes, read again from ``handle``: it must be exactly the one safetensors
    checked (``metadata`` and ``tensors``; the path may have been replaced since), and its
    offsets must tile the data, each tensor's span holding its shape in its dtype."""
    handle.seek(8)
    try:
        header = parse_json(handle.read(length).decode("utf-8"))
        changed = header.pop("__metadata__", None) != metadata
        spans = {key: tuple(entry["data_offsets"]) for key, entry in header.items()}
        changed |= {k: (v["dtype"], v["shape"]) for k, v in header.items()} != tensors
        changed |= not all(len(v) == 2 and {*map(type, v)} == {int} for v in spans.values())
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        changed = err
    if changed:
        with contextlib.suppress(OSError):
            if not os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                raise Replaced(path)  # a save replaced it: load reads the new file
        detail = f" ({changed})" if isinstance(changed, Exception) else ""
        raise ValueError(f"its header changed while it was read{detail}")
    end, places = 0, {}
    for key in sorted(spans, key=spans.get):
        dtype, shape = tensors[key]
        size = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if spans[key] != (end, end + size):
            raise ValueError(
                f"tensor {key!r}: its data offsets {spans[key]} are not {end, end + size}"
            )
        places[key], end = 8 + length + end, end + size
    data_size = os.fstat(handle.fileno()).st_size - 8 - length
    if end != data_size:
        raise ValueError(f"its tensors hold {end:,} bytes of data, the file {data_size:,}")
    return places


def build_layer(
    index: int, cls: type[Layer], entry: dict[str, Any], stored: Table, dtype: str | None
) -> Layer:
    """Layer ``index`` from its arguments, in its saved mode; its parameters (in the model's
    ``dtype``) and buffers (in their own) must be exactly the ``stored`` tensors (their shapes
    and dtypes), which load then reads into them."""
    what, args = f"layer {index} ({cls.__name__})", entry["args"]
    try:
        layer = linear_without_weights(args) if cls is Linear else cls(**args)
        arrays = layer_arrays(layer)
    except Exception as err:  # TypeError, ValueError, OverflowError, even MemoryError
        raise ValueError(
            f"{what} rejects the arguments {reprlib.repr(args)}: {type(err).__name__}: {err}"
        ) from None
    names = [name for _, name, _ in arrays]
    if missing := [f"{index}.{name}" for name in names if name not in stored]:
        raise ValueError(f"missing tensor(s) {missing}")
    if extra := sorted(f"{index}.{name}" for name in stored if name not in names):
        raise ValueError(
            f"unknown tensor(s) {extra} ({what} has no parameter or buffer of that name)"
        )
    for kind, name, array in arrays:  # parameters in the model's dtype, buffers in their own
        key, (shape, stored_dtype) = f"{index}.{name}", stored[name]
        if shape != np.shape(array):
            raise ValueError(f"{kind} '{key}': expected shape {np.shape(array)}, got {shape}")
        wanted = dtype if kind == "parameter" else getattr(array, "dtype", None)
        if wanted is None or stored_dtype != np.dtype(wanted):
            model = " (the model dtype)" if kind == "parameter" else ""
            raise ValueError(f"{kind} '{key}': expected dtype {wanted}{model}, got {stored_dtype}")
    return layer.train(entry["training"])


def _read_into(handle: BinaryIO, start: int, key: str, array: np.ndarray) -> np.ndarray:
    """Read tensor ``key``, from byte ``start`` of the file, into ``array`` (C-contiguous, of its
    shape and dtype): refused if the file ends early or it holds NaN or infinite values."""
    handle.seek(start)
    if array.nbytes and handle.readinto(memoryview(array).cast("B")) != array.nbytes:
        raise ValueError(f"tensor {key!r}: the file ends before its data does")
    if sys.byteorder == "big":  # safetensors stores little-endian
        array.byteswap(inplace=True)
    if bad := count_non_finite(array):
        raise ValueError(
            f"tensor {key!r} holds {bad} NaN or infinite values; minnet loads only finite weights"
        )
    return array


def linear_without_weights(args: dict[str, Any]) -> Linear:
    """``Linear(**args)`` without drawing its random initial weights (the file's replace them):
    a ``Linear(1, 1)`` with the other arguments (Linear checks them), given the sizes (checked
    as Linear checks them) and ``W: (out, in)``, ``b: (out,)`` (values and gradients) that take
    no memory, one read-only zero seen through every index, until load gives them arrays."""
    layer = Linear(**{**args, "in_features": 1, "out_features": 1})
    for name in ("in_features", "out_features"):
        setattr(layer, name, _checks.whole_number(name, args.get(name), low=1))
    zero, n_out = np.zeros((), layer.dtype), layer.out_features
    layer.W.value = layer.W.grad = np.broadcast_to(zero, (n_out, layer.in_features))
    layer.b.value = layer.b.grad = np.broadcast_to(zero, (n_out,))
    return layer
