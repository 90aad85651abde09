"""Saving a :class:`~minnet.Sequential` to an ``.npz`` file and loading it back.

The format
----------
The file is a zip archive of ``.npy`` arrays (what ``np.savez`` writes), stored uncompressed:

- ``"minnet_format"``: the text ``"minnet.Sequential"``, which marks a minnet model file;
- ``"format_version"``: an integer, currently ``2`` (version 1 files are still read);
- ``"architecture"``: a JSON text (a unicode array, never a pickled object) such as
  ``{"layers": [{"class": "Linear", "args": {"in_features": 2, "out_features": 1, "init": "he",
  "dtype": "float64"}}, {"class": "Sigmoid", "args": {}}], "loss": {"class": "BCELoss", "args":
  {}}, "dtype": "float64"}``; ``"dtype"`` is the model's (``null`` for a model without
  parameters). Version 1 wrote the loss as its bare class name, ``"loss": "BCELoss"``;
- one array per parameter under its model name (``"0.W"``, ``"0.b"``, ...), all in the model's
  dtype (float16, float32 or float64), and one per *buffer*: the plain arrays a layer keeps
  besides its parameters (a running mean), which it lists with an optional ``named_buffers()``
  method yielding ``(name, array)``. A buffer is stored in its own dtype (bool, int or float).

A layer's or the loss's ``args`` are its constructor arguments (``arguments()``: the
``__init__`` arguments it keeps as attributes of the same name) whose values are plain JSON
values; others, such as a random ``Generator``, are left out so the layer gets its default, and
the stored arrays then replace whatever it initialised.

What :func:`load` promises
--------------------------
- **No code from the file runs.** Nothing is unpickled (``allow_pickle=False`` semantics: an
  object array is refused from its header); only the layer classes of :mod:`minnet.layers` and
  the losses of :mod:`minnet.losses` are built, by name, from
  plain JSON arguments.
- **Its cost is bounded by the data, decided before anything large is allocated.** The zip's
  directory and each needed array's header (shape, dtype) are checked first: entries are stored
  uncompressed, so no entry can declare more bytes than the file holds. The architecture text is
  at most ``MAX_ARCHITECTURE_CHARS`` characters, with at most ``MAX_LAYERS`` layers. A layer is
  built only if the sizes its integer arguments declare (their product) are covered by the arrays
  stored for it (or are at most ``FREE_SIZE``), and then its parameters' names and shapes must
  match the headers exactly. An entry the architecture does not need is never read. A legitimate
  model's load peaks at about twice its weights (its values and gradients).
- **Any bad file gives a** ``ValueError`` (:class:`ModelFileError`) naming the file and the
  problem: a damaged or foreign zip, a wrong or missing array, NaN or infinite weights,
  non-finite or out-of-range arguments, arrays in another dtype than the model's. Only the
  operating system's own errors on the path (missing file, a directory, no permission) are
  ``OSError``.

:func:`save` refuses, before writing anything, a model that :func:`load` would refuse. It writes a
temporary file in the same folder and renames it over ``path`` only once it is complete and
flushed to disk, so a failed or interrupted save leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import inspect
import io as _io
import json
import math
import mmap
import os
import reprlib
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import numpy as np

from . import layers, losses
from .layers import Layer
from .model import Sequential

MARKER_KEY, MARKER = "minnet_format", "minnet.Sequential"
VERSION_KEY, FORMAT_VERSION = "format_version", 2
READABLE_VERSIONS = (1, 2)
ARCHITECTURE_KEY = "architecture"
SUPPORTED_DTYPES = ("float16", "float32", "float64")

#: The longest architecture text load reads (the JSON of 10,000 layers is about 1 MB).
MAX_ARCHITECTURE_CHARS = 1_000_000
#: The most layers load builds. Sequential's same-object check is quadratic in the number of
#: layers (10,000 layers: about 3 s; 1,000 layers: 0.03 s).
MAX_LAYERS = 1_000
#: The most arrays (parameters and buffers) one layer may have in a file.
MAX_ARRAYS_PER_LAYER = 64
#: A layer whose integer arguments multiply to at most this is built even without stored arrays
#: (an activation, a ``Softmax(axis=-1)``); above it, the arrays stored for the layer must hold
#: at least that many entries (``Linear(10**6, 10**6)`` needs 10**12).
FREE_SIZE = 4096
#: The most bytes of an .npy header (numpy's own limit for untrusted files).
MAX_NPY_HEADER = 10_000
#: Array data is read from the file this many bytes at a time.
CHUNK_BYTES = 1 << 20

_SKIP = object()  # a value with no plain JSON form
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_ENCRYPTED, _ZIP_UNSUPPORTED = 0x1, 0x20 | 0x40 | 0x2000  # patched data, strong/CD encryption


class ModelFileError(ValueError):
    """A file :func:`load` refuses; the message names the file and the problem."""


# -- saving -------------------------------------------------------------------------------
def save(model: Sequential, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.npz`` is appended if missing); return the path written.

    Refuses (``ValueError``, before writing anything) a model that :func:`load` would refuse:
    non-finite weights or arguments, mixed or unsupported dtypes, a layer or loss class that is not
    minnet's own. The file appears complete or not at all: see :func:`_write_atomically`.
    """
    path = _npz_path(path)
    entries = _entries_of(model)
    _write_atomically(path, lambda file: _write_npz(file, entries))
    return path


def _entries_of(model: Sequential) -> dict[str, np.ndarray]:
    """The arrays of the file for ``model``, checked to be what :func:`load` accepts."""
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
    arrays = {}
    for i, layer in enumerate(model.layers):
        stored = _layer_arrays(i, layer, dtype)
        _check_declared_size(
            f"layer {i} ({type(layer).__name__})",
            spec["layers"][i]["args"],
            sum(a.size for a in stored.values()),
        )
        arrays.update({f"{i}.{name}": array for name, array in stored.items()})
    text = json.dumps(spec, allow_nan=False)
    if len(text) > MAX_ARCHITECTURE_CHARS:
        raise ValueError(
            f"cannot save the model: its architecture text has {len(text):,} characters, load "
            f"reads at most {MAX_ARCHITECTURE_CHARS:,}"
        )
    _check_spec(_parse_json(text), FORMAT_VERSION)  # what load checks, so that it loads back
    return {
        MARKER_KEY: np.array(MARKER),
        VERSION_KEY: np.array(FORMAT_VERSION),
        ARCHITECTURE_KEY: np.array(text),
        **arrays,
    }


def _model_dtype(model: Sequential) -> np.dtype | None:
    """The one dtype of all the model's parameters (``model.dtype`` if it has none)."""
    found = {p.value.dtype for p in model.parameters()}
    if len(found) > 1:
        raise ValueError(
            f"cannot save a model whose parameters have mixed dtypes {sorted(map(str, found))}: "
            "give it one with Sequential(..., dtype=)"
        )
    dtype = found.pop() if found else model.dtype
    if model.dtype is not None and dtype != model.dtype:
        raise ValueError(
            f"cannot save the model: model.dtype is {model.dtype} but its parameters are {dtype}"
        )
    if dtype is not None and dtype.name not in SUPPORTED_DTYPES:
        raise ValueError(
            f"cannot save a model of dtype {dtype}: load reads {', '.join(SUPPORTED_DTYPES)} "
            "(the size of longdouble differs between machines)"
        )
    return dtype


def _layer_arrays(index: int, layer: Layer, dtype: np.dtype | None) -> dict[str, np.ndarray]:
    """``{name: array}`` of one layer's parameters (in ``dtype``) and buffers, all finite."""
    arrays = {}
    for kind, name, array in _named_arrays(layer):
        what = f"{kind} '{index}.{name}'"
        if not isinstance(name, str) or not name.isidentifier() or name in arrays:
            raise ValueError(f"cannot save {what}: a name must be a new Python identifier")
        if not isinstance(array, np.ndarray):
            raise ValueError(f"cannot save {what}: expected a numpy array, got {type(array)}")
        if kind == "parameter" and array.dtype != dtype:
            raise ValueError(f"cannot save {what}: its dtype {array.dtype} is not the model's")
        if kind == "buffer" and not _is_plain_numeric(array.dtype):
            raise ValueError(f"cannot save {what}: dtype {array.dtype} is not bool, int or float")
        bad = _count_non_finite(array)
        if bad:
            raise ValueError(
                f"cannot save {what}: {bad} of its values are NaN or infinite (load refuses them)"
            )
        arrays[name] = array
    return arrays


def _named_arrays(layer: Layer) -> Iterator[tuple[str, str, Any]]:
    """``("parameter" | "buffer", name, array)`` for each array a layer keeps."""
    for name, p in layer.named_parameters():
        yield "parameter", name, p.value
    for name, array in layer.named_buffers():
        yield "buffer", name, array


def _layer_spec(index: int, layer: Layer) -> dict[str, Any]:
    """``{"class": name, "args": {...}}`` for one layer, from its ``arguments()``."""
    cls = type(layer)
    what = f"layer {index} ({cls.__qualname__})"
    if _layer_class(cls.__name__) is not cls:
        raise ValueError(
            f"cannot save {what}: load rebuilds layers by name, so only the layer classes of "
            "minnet.layers can be saved"
        )
    return {"class": cls.__name__, "args": _init_args(layer, what)}


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
    """The constructor arguments of a layer or loss (its ``arguments()``) that have plain JSON
    values; others (a random ``Generator``) are left out, so the default is used."""
    args = {}
    for name, value in obj.arguments().items():
        value = _to_json(value)
        if value is _SKIP:
            continue
        if not _all_finite(value):
            raise ValueError(
                f"cannot save {what}: its argument {name!r} is {value!r}, and load refuses "
                "non-finite arguments"
            )
        args[name] = value
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
    """No float inside a JSON value is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(item) for item in value)
    return True


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a new temporary file beside ``path``, then put it at ``path``.

    The temporary file is flushed to disk (``os.fsync``) and renamed over ``path``
    (``os.replace``, atomic): ``path`` holds either its old contents or the complete new file,
    never a part. On any failure, the temporary file is removed and the error raised. A symbolic
    link at ``path`` is followed: the file it points to is replaced, keeping its permissions.
    """
    target = Path(os.path.realpath(path))
    temporary = tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    try:
        with temporary:
            write(temporary)
            temporary.flush()
            os.fsync(temporary.fileno())
        os.chmod(temporary.name, _file_mode(target))
        os.replace(temporary.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary.name)
        raise
    _sync_folder(target.parent)


def _file_mode(target: Path) -> int:
    """The permissions of the file being replaced; for a new file, those ``open(path, "w")``
    gives (``0o666`` less the umask)."""
    with contextlib.suppress(FileNotFoundError):
        return os.stat(target).st_mode & 0o7777
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entry for a renamed file to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _write_npz(file: Any, entries: dict[str, np.ndarray]) -> None:
    """What ``np.savez(file, **entries)`` writes (stored, not compressed), without pickling and
    with a fixed timestamp: the same model always gives the same bytes."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in entries.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=array.nbytes > (1 << 30)) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


# -- loading ------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> Sequential:
    """Read a model written by :func:`save` (given the same ``path``).

    Raises :class:`ModelFileError` (a ``ValueError``) for any file that is not a valid minnet model
    file, and ``OSError`` only for the path itself (missing, a directory, no permission). See the
    module's docstring for what it promises.
    """
    path = _npz_path(path)
    with open(path, "rb") as handle, _ModelFile(path, handle) as file:
        spec, version = _read_architecture(file)
        headers = [
            {name: file.header(entry) for name, entry in group.items()}
            for group in _group_layer_entries(file, len(spec["layers"]))
        ]
        if version == 1 and spec["dtype"] is None:  # version 1 could leave the dtype out
            spec["dtype"] = _common_dtype(headers)
        built = [
            _build_layer(file, i, entry, headers[i], spec["dtype"])
            for i, entry in enumerate(spec["layers"])
        ]
        loss = _build_loss(file, spec["loss"])
        try:
            model = Sequential(built, loss=loss, dtype=spec["dtype"], l2=spec["l2"])
        except (MemoryError, RecursionError):
            raise
        except Exception as err:  # TypeError, ValueError
            raise file.fail(f"the layers do not form a model: {err}") from None
        _read_layer_arrays(file, model, headers)
    return model


class _ModelFile:
    """An open model file: its zip directory, checked, and readers of its ``.npy`` entries.

    Every error of the zip or ``.npy`` machinery (truncation, bad offsets, CRC, encryption...)
    comes out as a :class:`ModelFileError` naming the file and the entry.
    """

    def __init__(self, path: Path, handle: Any) -> None:
        self.path = path
        size = os.fstat(handle.fileno()).st_size
        with self.reading("not an .npz file"):
            self.zip = zipfile.ZipFile(handle)
        self.infos = self._check_directory(size)

    def __enter__(self) -> _ModelFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            self.zip.close()

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"cannot load {self.path}: {problem}")

    @contextlib.contextmanager
    def reading(self, what: str) -> Iterator[None]:
        """Turn any error inside the block into a ModelFileError about ``what``."""
        try:
            yield
        except (ModelFileError, MemoryError, RecursionError):
            raise
        except Exception as err:  # a damaged file can make the zip reader fail in any way
            raise self.fail(f"{what} ({type(err).__name__}: {err})") from None

    def _check_directory(self, size: int) -> dict[str, zipfile.ZipInfo]:
        """``{array name: zip entry}``, each entry checked from the zip's directory alone."""
        infos, total = {}, 0
        for info in self.zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise self.fail(f"entry {name!r} is not a numpy array (.npy)")
            if name[:-4] in infos:
                raise self.fail(f"entry {name!r} appears twice")
            if info.flag_bits & _ZIP_ENCRYPTED:
                raise self.fail(f"entry {name!r} is encrypted")
            if info.flag_bits & _ZIP_UNSUPPORTED:
                raise self.fail(
                    f"entry {name!r} uses zip features minnet does not read "
                    f"(flags {info.flag_bits:#06x})"
                )
            if info.compress_type != zipfile.ZIP_STORED:
                raise self.fail(
                    f"entry {name!r} is compressed (zip method {info.compress_type}); minnet "
                    "files store arrays uncompressed, as np.savez does, so that no entry can "
                    "declare more data than the file holds"
                )
            if info.file_size != info.compress_size:
                raise self.fail(
                    f"entry {name!r}: an uncompressed entry of {info.file_size} bytes cannot "
                    f"take {info.compress_size} bytes"
                )
            if info.header_offset + info.compress_size > size:
                raise self.fail(
                    f"entry {name!r} claims bytes past the end of the file ({size} bytes)"
                )
            total += info.compress_size
            infos[name[:-4]] = info
        if total > size:
            raise self.fail(f"the entries add up to {total} bytes, more than the file's {size}")
        return infos

    def header(self, name: str) -> _Header:
        """The checked ``.npy`` header of entry ``name`` (reads at most ``MAX_NPY_HEADER``
        bytes): its declared size must be exactly what the entry holds."""
        info = self.infos[name]
        with (
            self.reading(f"entry {name!r} has no valid .npy header"),
            self.zip.open(info) as member,
        ):
            prefix = _read_exact(member, len(_NPY_MAGIC) + 2)
            if prefix[:6] != _NPY_MAGIC or prefix[6:] not in (b"\x01\x00", b"\x02\x00"):
                raise ValueError(f"starts with {prefix!r}, not an .npy version 1 or 2 magic")
            length_bytes = _read_exact(member, 2 if prefix[6] == 1 else 4)
            length = int.from_bytes(length_bytes, "little")
            if length > MAX_NPY_HEADER:
                raise ValueError(f"declares a header of {length} bytes; at most {MAX_NPY_HEADER}")
            text = _read_exact(member, length)
            read_header = (
                np.lib.format.read_array_header_1_0
                if prefix[6] == 1
                else np.lib.format.read_array_header_2_0
            )
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a header that needs repairs is refused
                shape, fortran_order, dtype = read_header(_io.BytesIO(length_bytes + text))
        offset = len(prefix) + len(length_bytes) + length
        header = _Header(name, shape, dtype, offset, fortran_order and len(shape) > 1)
        self._check_header(header, info.file_size)
        return header

    def _check_header(self, header: _Header, stored: int) -> None:
        name, shape, dtype = header.name, header.shape, header.dtype
        if dtype.hasobject:
            raise self.fail(
                f"entry {name!r} cannot be read (it holds Python objects, which only unpickling "
                "could read); minnet files hold only plain numeric and text arrays, never pickled "
                "objects"
            )
        if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufU":
            raise self.fail(f"entry {name!r} has dtype {dtype}, not a plain number or text type")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise self.fail(f"entry {name!r} declares an invalid shape {shape!r}")
        if header.data_offset + header.nbytes != stored:
            raise self.fail(
                f"entry {name!r} declares shape {shape} of {dtype} ({header.nbytes:,} bytes of "
                f"data) but holds {stored - header.data_offset:,} bytes"
            )

    def read_into(self, header: _Header, out: np.ndarray) -> None:
        """Read an entry's data into ``out`` (C-contiguous, of the header's shape and dtype),
        a chunk at a time: no copy of the array is made."""
        raw = memoryview(out.reshape(-1).view(np.uint8))
        info = self.infos[header.name]
        with self.reading(f"entry {header.name!r} cannot be read"), self.zip.open(info) as member:
            _read_exact(member, header.data_offset)
            done = 0
            while done < header.nbytes:
                count = member.readinto(raw[done : done + CHUNK_BYTES])
                if not count:
                    raise EOFError(f"the data ends after {done} of {header.nbytes} bytes")
                done += count
            if member.read(1):  # also where zipfile checks the CRC, if not done yet
                raise ValueError("more data than its header declares")

    def read_scalar(self, header: _Header, kinds: str, max_bytes: int) -> np.ndarray | None:
        """The entry of ``header`` if it is a 0-d array of one of the dtype ``kinds`` of at
        most ``max_bytes``, else ``None``."""
        if header.shape != () or header.dtype.kind not in kinds or header.nbytes > max_bytes:
            return None
        out = np.empty((), header.dtype)
        self.read_into(header, out)
        return out

    def read_entry(self, name: str, kinds: str, max_bytes: int) -> np.ndarray | None:
        """:meth:`read_scalar` of entry ``name``; ``None`` if there is no such entry."""
        return self.read_scalar(self.header(name), kinds, max_bytes) if name in self.infos else None


@attrs.frozen
class _Header:
    """What an ``.npy`` header declares: ``shape``, ``dtype``, and whether the data is in
    Fortran order (2-d and up); the data starts at ``data_offset`` and has ``nbytes`` bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int
    fortran_order: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _read_exact(member: Any, count: int) -> bytes:
    data = member.read(count)
    if len(data) != count:
        raise EOFError(f"expected {count} bytes, got {len(data)}")
    return data


def _read_architecture(file: _ModelFile) -> tuple[dict[str, Any], int]:
    """The architecture spec, checked (see :func:`_check_spec`), and the format version, once
    the marker and the version are checked."""
    marker = file.read_entry(MARKER_KEY, "U", 4 * len(MARKER))
    if marker is None or _text(file, marker, MARKER_KEY) != MARKER:
        raise file.fail(f"not a minnet model file (no {MARKER_KEY!r} entry saying {MARKER!r})")
    version = file.read_entry(VERSION_KEY, "iu", 8)
    if version is None:
        raise file.fail(f"no integer {VERSION_KEY!r} entry")
    if int(version) not in READABLE_VERSIONS:
        raise file.fail(
            f"unsupported format version {int(version)}; minnet reads {list(READABLE_VERSIONS)}"
        )
    if ARCHITECTURE_KEY not in file.infos:
        raise file.fail(f"no {ARCHITECTURE_KEY!r} entry holding a JSON text")
    header = file.header(ARCHITECTURE_KEY)
    if header.dtype.kind == "U" and header.nbytes // 4 > MAX_ARCHITECTURE_CHARS:
        raise file.fail(
            f"the architecture text declares {header.nbytes // 4:,} characters; minnet reads at "
            f"most {MAX_ARCHITECTURE_CHARS:,}"
        )
    array = file.read_scalar(header, "U", 4 * MAX_ARCHITECTURE_CHARS)
    if array is None:
        raise file.fail(f"no {ARCHITECTURE_KEY!r} entry holding a JSON text")
    try:
        spec = _parse_json(_text(file, array, ARCHITECTURE_KEY))
    except ValueError as err:
        raise file.fail(f"the architecture is not valid JSON ({err})") from None
    try:
        return _check_spec(spec, int(version)), int(version)
    except ValueError as err:
        raise file.fail(str(err)) from None


def _common_dtype(headers: list[dict[str, _Header]]) -> str | None:
    """The dtype of all the stored arrays if they share a supported one, else ``None``."""
    names = {h.dtype.name for group in headers for h in group.values() if h.dtype.isnative}
    return names.pop() if len(names) == 1 and names <= set(SUPPORTED_DTYPES) else None


def _text(file: _ModelFile, array: np.ndarray, name: str) -> str:
    with file.reading(f"entry {name!r} is not valid text"):
        return str(array[()])


def _parse_json(text: str) -> Any:
    """JSON without NaN, infinities (``1e999`` too) or repeated keys: ``ValueError`` else."""

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


def _check_spec(spec: Any, version: int) -> dict[str, Any]:
    """The architecture, checked to be ``{"layers": [{"class", "args"}, ...], "loss": {"class",
    "args"}, "dtype": null or a float dtype name}`` with plain arguments; version 1 files have
    ``"loss": "<class name>"``. A missing ``"dtype"`` is null, a missing ``"l2"`` (the model's
    L2 penalty, a number >= 0) 0. Returns the version 2 form."""
    if isinstance(spec, dict):
        spec = {"dtype": None, "l2": 0.0, **spec}
        if version == 1 and isinstance(spec.get("loss"), str):
            spec["loss"] = {"class": spec["loss"], "args": {}}
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
        _check_class_and_args(entry, f"layer {i}")
    _check_class_and_args(spec["loss"], "the loss")
    return spec


def _check_class_and_args(entry: Any, what: str) -> None:
    if (
        not isinstance(entry, dict)
        or set(entry) != {"class", "args"}
        or not isinstance(entry["class"], str)
        or not isinstance(entry["args"], dict)
    ):
        raise ValueError(
            f'{what} must be {{"class": str, "args": dict}}, got {reprlib.repr(entry)}'
        )
    for key, value in entry["args"].items():
        if not _is_plain(value):
            raise ValueError(
                f"{what}: argument {key!r} must be a number, string, bool, null or a list of "
                f"them, got {reprlib.repr(value)}"
            )


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list) and depth < 4 and all(_is_plain(v, depth + 1) for v in value)


def _group_layer_entries(file: _ModelFile, n_layers: int) -> list[dict[str, str]]:
    """For each layer, ``{array name: entry name}`` of the entries named ``"<index>.<name>"``;
    any other entry is refused, unread."""
    groups: list[dict[str, str]] = [{} for _ in range(n_layers)]
    unknown = []
    for entry in file.infos:
        if entry in (MARKER_KEY, VERSION_KEY, ARCHITECTURE_KEY):
            continue
        index, _, name = entry.partition(".")
        canonical = index.isascii() and index.isdigit() and (index == "0" or index[0] != "0")
        if (
            canonical
            and len(index) <= len(str(n_layers))
            and int(index) < n_layers
            and (name.isidentifier())
        ):
            groups[int(index)][name] = entry
        else:
            unknown.append(entry)
    if unknown:
        raise file.fail(
            f"unknown array(s) {reprlib.repr(sorted(unknown))} (the architecture has {n_layers} "
            "layers; their arrays are named '<layer index>.<name>')"
        )
    for i, group in enumerate(groups):
        if len(group) > MAX_ARRAYS_PER_LAYER:
            raise file.fail(
                f"layer {i} has {len(group)} arrays in the file; minnet reads at most "
                f"{MAX_ARRAYS_PER_LAYER} per layer"
            )
    return groups


def _layer_class(name: str) -> type[Layer] | None:
    """The layer class of :mod:`minnet.layers` called ``name``, or ``None``."""
    return layers.layer_classes().get(name)


def loss_classes() -> dict[str, type]:
    """minnet's own losses by name: the public subclasses of :class:`~minnet.Loss` defined in
    :mod:`minnet.losses` (the base class aside). A new loss there is found as is."""
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


def _declared_size(args: dict[str, Any]) -> int:
    """The product of the integer arguments (bools aside): the size a layer declares."""
    size = 1
    for value in args.values():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                size *= abs(item)
    return size


def _check_declared_size(what: str, args: dict[str, Any], stored: int) -> None:
    """Refuse a layer whose integer arguments declare more entries than its stored arrays hold
    (and more than ``FREE_SIZE``): it would be built at a size the file does not back."""
    declared = _declared_size(args)
    if declared > max(stored, FREE_SIZE):
        ints = {k: v for k, v in args.items() if _declared_size({k: v}) != 1}
        raise ValueError(
            f"{what}: its integer arguments {reprlib.repr(ints)} declare {_amount(declared)} "
            f"entries, but its arrays in the file hold {stored:,}: it is not built"
        )


def _amount(count: int) -> str:
    """``1,000,000`` for a count up to 10**15, ``about 10**400`` above."""
    return f"{count:,}" if count <= 10**15 else f"about 10**{int(math.log10(count))}"


def _build_layer(
    file: _ModelFile,
    index: int,
    entry: dict[str, Any],
    headers: dict[str, _Header],
    dtype: str | None,
) -> Layer:
    """Layer ``index``, built only once its declared size is checked against the headers of
    its stored arrays; its parameters and buffers then match the headers (names, shapes, the
    model's ``dtype``), and its parameters hold untouched zeros until the data is read."""
    name, args = entry["class"], entry["args"]
    cls = _layer_class(name)
    if cls is None:
        raise file.fail(f"layer {index}: {name!r} is not a layer class of minnet.layers")
    for header in headers.values():
        if not _is_plain_numeric(header.dtype):
            raise file.fail(f"array {header.name!r} has dtype {header.dtype}, not a number type")
    what = f"layer {index} ({name})"
    try:
        _check_declared_size(what, args, sum(h.size for h in headers.values()))
    except ValueError as err:
        raise file.fail(str(err)) from None
    try:
        layer = cls(**args)
    except (MemoryError, RecursionError):
        raise
    except Exception as err:  # TypeError, ValueError, OverflowError... from the arguments
        raise file.fail(f"{what} rejects the arguments {reprlib.repr(args)}: {err}") from None
    _match_arrays(file, index, layer, headers, dtype)
    for _, p in layer.named_parameters():  # free the initial weights: the file's replace them
        p.value = _untouched_zeros(p.shape, p.value.dtype)
        p.grad = _untouched_zeros(p.shape, p.value.dtype)
    return layer


def _untouched_zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros in fresh memory from the operating system (an anonymous ``mmap``), which takes
    no room until written: a placeholder for a parameter until the model's flat storage holds
    it. (``np.zeros`` may reuse, and so clear and occupy, memory freed a moment ago.)"""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < mmap.PAGESIZE or not hasattr(mmap, "MAP_PRIVATE"):  # Windows: no MAP_PRIVATE
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE), dtype).reshape(shape)


def _match_arrays(
    file: _ModelFile, index: int, layer: Layer, headers: dict[str, _Header], dtype: str | None
) -> None:
    """The layer's parameters and buffers are exactly the stored arrays, in shape (and, for
    parameters, in the model's dtype)."""
    expected = {}
    with file.reading(f"layer {index} ({type(layer).__name__}) does not list its arrays"):
        for kind, name, array in _named_arrays(layer):
            if not isinstance(array, np.ndarray):
                raise TypeError(f"its {kind} {name!r} is a {type(array).__name__}, not an array")
            expected[name] = (kind, array)
    missing = {kind: [] for kind in ("parameter", "buffer")}
    for name, (kind, array) in expected.items():
        full = f"{index}.{name}"
        header = headers.get(name)
        if header is None:
            missing[kind].append(full)
        elif header.shape != array.shape:
            raise file.fail(f"{kind} {full!r}: expected shape {array.shape}, got {header.shape}")
        elif kind == "parameter" and dtype is None:
            raise file.fail(
                f"parameter {full!r}: the architecture's dtype is null, which only a model "
                "without parameters may have"
            )
        elif kind == "parameter" and header.dtype != np.dtype(dtype):
            raise file.fail(
                f"parameter {full!r}: expected dtype {dtype} (the model's), got {header.dtype}"
            )
    for kind, names in missing.items():
        if names:
            raise file.fail(f"missing {kind} array(s) {names}")
    extra = sorted(f"{index}.{name}" for name in set(headers) - set(expected))
    if extra:
        raise file.fail(
            f"unknown array(s) {extra} (layer {index} ({type(layer).__name__}) has no "
            "parameter or buffer of that name)"
        )


def _build_loss(file: _ModelFile, entry: dict[str, Any]) -> Any:
    name, args = entry["class"], entry["args"]
    known = loss_classes()
    if name not in known:
        raise file.fail(f"unknown loss {name!r} (known: {sorted(known)})")
    try:
        return known[name](**args)
    except (MemoryError, RecursionError):
        raise
    except Exception as err:
        raise file.fail(
            f"the loss {name} rejects the arguments {reprlib.repr(args)}: {err}"
        ) from None


def _read_layer_arrays(
    file: _ModelFile, model: Sequential, headers: list[dict[str, _Header]]
) -> None:
    """Read every parameter and buffer in place (the parameters live in the model's flat
    storage); refuse NaN and infinite values."""
    for index, layer in enumerate(model.layers):
        for kind, name, target in _named_arrays(layer):
            header = headers[index][name]
            if header.dtype != target.dtype or header.shape != target.shape:
                raise file.fail(
                    f"{kind} {header.name!r}: expected {target.dtype} of shape {target.shape}, "
                    f"got {header.dtype} of shape {header.shape}"
                )
            if target.flags.c_contiguous and target.flags.writeable and not header.fortran_order:
                file.read_into(header, target)
            else:  # Fortran-order data (np.savez of a transposed array) is the C-order transpose
                shape = header.shape[::-1] if header.fortran_order else header.shape
                scratch = np.empty(shape, header.dtype)
                file.read_into(header, scratch)
                target[...] = scratch.T if header.fortran_order else scratch
            bad = _count_non_finite(target)
            if bad:
                raise file.fail(
                    f"{kind} {header.name!r} holds {bad} NaN or infinite values; minnet loads "
                    "only finite weights"
                )


def _is_plain_numeric(dtype: np.dtype) -> bool:
    """bool, an int or a float of at most 8 bytes, in native byte order, not structured."""
    return dtype.kind in "biuf" and dtype.itemsize <= 8 and dtype.isnative and dtype.names is None


def _count_non_finite(array: np.ndarray, block: int = 1 << 16) -> int:
    """How many entries of a float array are NaN or infinite (0 for other dtypes), counted a
    block at a time so that no temporary of the array's size is made."""
    if array.dtype.kind != "f":
        return 0
    flat, bad = array.reshape(-1), 0
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        bad += part.size - int(np.count_nonzero(np.isfinite(part)))
    return bad


def _npz_path(path: str | os.PathLike[str]) -> Path:
    """The file ``np.savez`` writes for ``path``: ``path`` + ``.npz`` unless it ends so already."""
    text = os.fspath(path)
    return Path(text if text.endswith(".npz") else text + ".npz")
