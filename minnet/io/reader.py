"""The checks of one file being loaded, each refusal a ``ModelFileError`` naming the file."""

from __future__ import annotations

import contextlib
import math
import os
import reprlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import safetensors

from .. import _checks, layers
from ..layers import Layer, Linear
from .architecture import (
    MAX_ARCHITECTURE_CHARS,
    MAX_ARRAYS_PER_LAYER,
    check_declared_size,
    check_spec,
    parse_json,
)
from .format import (
    ARCHITECTURE_KEY,
    DTYPES,
    FORMAT,
    FORMAT_KEY,
    FORMAT_VERSION,
    VERSION_KEY,
    ModelFileError,
    count_non_finite,
)
from .registry import layer_registry, loss_classes


class Replaced(Exception):
    """The path was given another file (a ``save`` renamed one over it) between minnet's open
    and safetensors': the two read different files."""


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
        spec = self.architecture(metadata)
        table = self.tensor_table(len(spec["layers"]))
        classes = [self.layer_class(i, entry, table[i]) for i, entry in enumerate(spec["layers"])]
        return spec, table, classes, self.build_loss(spec["loss"])

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
        """The checked architecture (see :func:`check_spec`) from the file's metadata."""
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
            return check_spec(spec)
        except ValueError as err:
            raise self.fail(str(err)) from None

    def tensor_table(self, n_layers: int) -> list[dict[str, tuple[tuple, np.dtype]]]:
        """For each layer, ``{name: (shape, dtype)}`` of the tensors named ``"<index>.<name>"``;
        any other tensor, or a dtype numpy does not hold, is refused."""
        table: list[dict[str, tuple[tuple, np.dtype]]] = [{} for _ in range(n_layers)]
        unknown = []
        for key, (stored, shape) in self.checked.items():
            index, _, name = key.partition(".")
            canonical = index.isascii() and index.isdigit() and (index == "0" or index[0] != "0")
            if not (canonical and len(index) <= len(str(n_layers)) and int(index) < n_layers):
                unknown.append(key)
                continue
            if not name:
                unknown.append(key)
                continue
            dtype = DTYPES.get(stored)
            if dtype is None:
                raise self.fail(
                    f"tensor {key!r} has dtype {stored}, which minnet does not hold "
                    f"(it reads {', '.join(DTYPES)})"
                )
            table[int(index)][name] = (tuple(shape), np.dtype(dtype))
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
            check_declared_size(f"layer {index} ({name})", entry["args"], shapes)
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
            changed = err
        if changed:
            with contextlib.suppress(OSError):
                if not os.path.samestat(os.fstat(handle.fileno()), os.stat(self.path)):
                    raise Replaced(self.path)  # a save replaced it: load reads the new file
            detail = f" ({changed})" if isinstance(changed, Exception) else ""
            raise self.fail(f"its header changed while it was read{detail}")
        data_size, end = os.fstat(handle.fileno()).st_size - 8 - length, 0
        for key in sorted(spans, key=spans.get):
            dtype, shape = self.checked[key]
            size = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
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
