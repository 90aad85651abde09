"""``load``: the file's header checked, the model built without drawing weights, each tensor
read once, from the file load has open, into its final array."""

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
from .architecture import FREE_SIZE, MAX_ARCHITECTURE_CHARS, check_spec, declared_size, parse_json
from .format import (
    DTYPES,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    ModelFileError,
    count_non_finite,
    model_path,
)
from .registry import layer_registry, loss_classes
from .state import layer_arrays

#: The most tensors (parameters and buffers) one layer may have in a file.
MAX_ARRAYS_PER_LAYER = 64
#: How many times load opens the path again when a save replaced the file while it was read.
REOPENINGS = 5


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
    raise ModelFileError(
        f"cannot load {full}: it was replaced by another file {REOPENINGS} times while it was read"
    )


class Replaced(Exception):
    """The path was given another file (a ``save`` renamed one over it) between minnet's open
    and safetensors': the two read different files."""


def _load(path: Path, handle: BinaryIO) -> Sequential:
    """:func:`load` from ``handle``, the file open at ``path``: every tensor read from it."""
    reader, start = Reader(path), handle.read(8)
    if start.startswith(b"PK\x03\x04"):  # a zip: an .npz file
        raise reader.fail(
            "it is an .npz model file of minnet 0.1, which this version no longer reads. Its "
            "weights are plain arrays under the same names: build the same model here (its "
            "architecture is the JSON text in np.load(path)['architecture']), then call "
            "model.load_state_dict({k: v for k, v in np.load(path).items() if k[0].isdigit()}) "
            "and save it again"
        )
    length = int.from_bytes(start, "little")  # safetensors refuses a file shorter than 8 bytes
    if length > MAX_HEADER_BYTES:
        raise reader.fail(
            f"its header declares {length:,} bytes; minnet reads at most {MAX_HEADER_BYTES:,}"
        )
    try:
        file = safetensors.safe_open(str(path), framework="numpy")
    except safetensors.SafetensorError as err:
        raise reader.fail(f"not a valid safetensors file ({err})") from None
    except (ValueError, TypeError, OverflowError, UnicodeError) as err:
        raise reader.fail(f"not a valid safetensors file ({type(err).__name__}: {err})") from None
    with file:
        tensors = {key: _described(file.get_slice(key)) for key in file.keys()}
        metadata = file.metadata()  # a new dict at each call
    spec, table, classes, loss = reader.header(metadata, tensors)
    places = reader.places(handle, length, metadata)
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


def _described(part: Any) -> tuple[str, list[int]]:
    """A tensor's dtype and shape as safetensors read them from the header. The slice is let go
    at once: one kept to the end of load raised its resident peak by 2 MB on load_bench's net."""
    return part.get_dtype(), part.get_shape()


class Reader:
    """The checks of one file being loaded (``doing="load"``), or of the file ``save`` is about to
    write (``doing="save"``: it must load back); every refusal is a :class:`ModelFileError`
    naming the file (``path``) and the problem."""

    def __init__(self, path: Path | str, doing: str = "load") -> None:
        self.path, self.doing = path, doing
        self.classes = layer_registry()  # the layer classes it builds, by name
        self.checked: dict[str, tuple[str, list[int]]] = {}  # each tensor's dtype and shape

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"cannot {self.doing} {self.path}: {problem}")

    def header(
        self, metadata: dict[str, str] | None, tensors: dict[str, tuple[str, list[int]]]
    ) -> tuple[dict[str, Any], list[dict[str, tuple[tuple, np.dtype]]], list[type[Layer]], Any]:
        """All that is checked from the header alone, before anything is built: the
        architecture in ``metadata``, the tensor table (``tensors``: each one's safetensors
        dtype and shape) against it, each layer's class and declared size, the loss. Returns
        the architecture, each layer's tensor table, the layers' classes and the loss."""
        self.checked = dict(tensors)
        spec = self.architecture(metadata or {})
        table = self.tensor_table(len(spec["layers"]))
        classes = [self.layer_class(i, entry, table[i]) for i, entry in enumerate(spec["layers"])]
        return spec, table, classes, self.build_loss(spec["loss"])

    def architecture(self, metadata: dict[str, str]) -> dict[str, Any]:
        """The checked architecture (see :func:`check_spec`) from the file's metadata."""
        if metadata.get("format") != "minnet.Sequential":
            raise self.fail(
                "not a minnet model file (its metadata has no 'format': 'minnet.Sequential'); the "
                "weights of any safetensors file open with safetensors.numpy.load_file, and "
                "model.load_state_dict takes them"
            )
        if metadata.get("format_version") != FORMAT_VERSION:
            raise self.fail(
                f"format version {reprlib.repr(metadata.get('format_version'))}; this minnet reads "
                f"version {FORMAT_VERSION}"
            )
        text = metadata.get("architecture")
        if text is None:
            raise self.fail("its metadata has no 'architecture'")
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
            return check_spec(spec)
        except ValueError as err:
            raise self.fail(str(err)) from None

    def tensor_table(self, n_layers: int) -> list[dict[str, tuple[tuple, np.dtype]]]:
        """For each layer, ``{name: (shape, dtype)}`` of the tensors named ``"<index>.<name>"``;
        any other tensor, or a dtype numpy does not hold, is refused."""
        table: list[dict[str, tuple[tuple, np.dtype]]] = [{} for _ in range(n_layers)]
        indices = {str(i): i for i in range(n_layers)}  # "4", never "04" nor "9" of 5 layers
        unknown = []
        for key, (stored, shape) in self.checked.items():
            index, _, name = key.partition(".")
            if index not in indices or not name:
                unknown.append(key)
            elif stored not in DTYPES:
                raise self.fail(
                    f"tensor {key!r} has dtype {stored}, which minnet does not hold "
                    f"(it reads {', '.join(DTYPES)})"
                )
            else:
                table[indices[index]][name] = (tuple(shape), np.dtype(DTYPES[stored]))
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
        # a layer is built only at a size its stored tensors back (Linear(10**6, 10**6) needs
        # 10**12 entries), or at most FREE_SIZE (an activation, Softmax(axis=-1))
        entries = sum(math.prod(shape) for shape, _ in table.values())
        limit = max(entries, FREE_SIZE)
        if declared_size(entry["args"], limit) > limit:
            ints = {k: v for k, v in entry["args"].items() if declared_size({k: v}, limit) != 1}
            raise self.fail(
                f"layer {index} ({name}): its integer arguments {reprlib.repr(ints)} declare more "
                f"than {limit:,} entries, but its tensors in the file hold {entries:,}: it is not "
                "built"
            )
        return cls

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
            changed = err
        if changed:
            with contextlib.suppress(OSError):
                if not os.path.samestat(os.fstat(handle.fileno()), os.stat(self.path)):
                    raise Replaced(self.path)  # a save replaced it: load reads the new file
            detail = f" ({changed})" if isinstance(changed, Exception) else ""
            raise self.fail(f"its header changed while it was read{detail}")
        end = 0
        for key in sorted(spans, key=spans.get):
            dtype, shape = self.checked[key]
            size = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
            if spans[key] != (end, end + size):
                raise self.fail(
                    f"tensor {key!r}: its data offsets {spans[key]} are not {end, end + size}"
                )
            end += size
        data_size = os.fstat(handle.fileno()).st_size - 8 - length
        if end != data_size:
            raise self.fail(f"its tensors hold {end:,} bytes of data, the file {data_size:,}")
        return {key: 8 + length + begin for key, (begin, _) in spans.items()}

    def build_layer(
        self,
        index: int,
        cls: type[Layer],
        entry: dict[str, Any],
        table: dict[str, tuple[tuple, np.dtype]],
        dtype: str | None,
    ) -> Layer:
        """Layer ``index`` from its arguments, in its saved mode; its parameters (in the model's
        ``dtype``) and buffers (in their own) must be exactly the stored tensors (``table``:
        their shapes and dtypes), which load then reads into them."""
        what = f"layer {index} ({cls.__name__})"
        args = entry["args"]
        try:
            layer = linear_without_weights(args) if cls is Linear else cls(**args)
            expected = {}  # parameters in the model's dtype, buffers in their own
            for kind, name, array in layer_arrays(layer):
                wanted = dtype if kind == "parameter" else getattr(array, "dtype", None)
                expected[name] = (kind, np.shape(array), wanted)
        except Exception as err:  # TypeError, ValueError, OverflowError, even MemoryError
            raise self.fail(
                f"{what} rejects the arguments {reprlib.repr(args)}: {type(err).__name__}: {err}"
            ) from None
        missing = [f"{index}.{name}" for name in expected if name not in table]
        if missing:
            raise self.fail(f"missing tensor(s) {missing}")
        extra = sorted(f"{index}.{name}" for name in table if name not in expected)
        if extra:
            raise self.fail(
                f"unknown tensor(s) {extra} ({what} has no parameter or buffer of that name)"
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
        return layer.train(entry["training"])

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
