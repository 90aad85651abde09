"""Model files an attacker could write: for the tests of minnet.io and benchmarks/load_bench.py.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and data offsets, and ``"__metadata__"``: strings), then the raw data. :func:`raw_file`
writes any header, however false, so that the files here can lie in ways the ``safetensors``
package would never write. ``HUGE`` lists the files that declare far more than they hold:
``minnet.load`` must refuse each at once, in little time and memory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

import minnet

# -- building blocks ------------------------------------------------------------------------------


def small_model() -> minnet.Sequential:
    rng = np.random.default_rng(0)
    return minnet.Sequential(
        [minnet.Linear(3, 5, rng=rng), minnet.LeakyReLU(0.2), minnet.Linear(5, 1, rng=rng)]
    )


def metadata(layers: list[dict], dtype: str | None = "float64", **extra: str) -> dict[str, str]:
    """minnet's metadata for ``layers`` (``{"class", "args"}``, training added) and BCELoss."""
    entries = [{"training": True, **layer} for layer in layers]
    spec = {"layers": entries, "loss": {"class": "BCELoss", "args": {}}, "dtype": dtype}
    return {
        "format": "minnet.Sequential",
        "format_version": "3",
        "architecture": json.dumps(spec),
        **extra,
    }


def write(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str] | None) -> Path:
    """A well-formed safetensors file (written by the safetensors package)."""
    path.write_bytes(safetensors.numpy.save(tensors, metadata=meta))
    return path


def model_parts(model: minnet.Sequential) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata ``minnet.io.save`` writes for ``model``."""
    return minnet.io.contents(model)


def raw_file(header: dict[str, Any], data: bytes = b"", length: int | None = None) -> bytes:
    """``length`` (the header's own by default) as 8 little-endian bytes, the JSON header, data."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def header_of(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header of a safetensors file's bytes, and its data."""
    (length,) = struct.unpack_from("<Q", data)
    return json.loads(data[8 : 8 + length]), data[8 + length :]


# -- the files that declare far more than they hold ----------------------------------------------

LINEAR_HUGE = {"class": "Linear", "args": {"in_features": 10**6, "out_features": 10**6}}


def make_huge_linear(path: Path) -> Path:
    """Architecture ``Linear(10**6, 10**6)`` (10**12 weights) and no tensors: under 1 KB."""
    return write(path, {}, metadata([LINEAR_HUGE]))


def make_huge_linear_with_small_tensors(path: Path) -> Path:
    """``Linear(10**6, 10**6)`` with tensors of 10**6 entries (W: (1, 10**6)): 8 MB."""
    tensors = {"0.W": np.zeros((1, 10**6)), "0.b": np.zeros(1)}
    return write(path, tensors, metadata([LINEAR_HUGE]))


def make_linear_with_a_zero_argument(path: Path) -> Path:
    """``Linear(20000, 20000)`` with ``"rng": 0`` (a zero once switched the size bound off),
    over the tensors of a ``Linear(3, 5)``: under 1 KB, 3.2 GB if built."""
    layer = {"class": "Linear", "args": {"in_features": 20000, "out_features": 20000, "rng": 0}}
    tensors = {"0.W": np.zeros((5, 3)), "0.b": np.zeros(5)}
    return write(path, tensors, metadata([layer]))


def make_huge_declared_shape(path: Path) -> Path:
    """A header declaring ``0.W`` of shape (10**6, 10**6) float64 over 8 bytes of data."""
    header = {
        "__metadata__": metadata(
            [{"class": "Linear", "args": {"in_features": 1, "out_features": 1}}]
        ),
        "0.W": {"dtype": "F64", "shape": [10**6, 10**6], "data_offsets": [0, 8]},
    }
    path.write_bytes(raw_file(header, bytes(8)))
    return path


def make_huge_header_length(path: Path) -> Path:
    """A header length of 2**62 bytes in a file of 100."""
    path.write_bytes(struct.pack("<Q", 2**62) + b"{" + b" " * 91)
    return path


def make_huge_architecture(path: Path) -> Path:
    """An architecture of 64,000 ReLU layers: 2.8 M characters of JSON."""
    return write(path, {}, metadata([{"class": "ReLU", "args": {}}] * 64_000, dtype=None))


def make_deep_nesting(path: Path) -> Path:
    """An architecture of 400,000 nested lists, under the size limit: 800 KB."""
    meta = metadata([])
    meta["architecture"] = "[" * 400_000 + "]" * 400_000
    return write(path, {}, meta)


def make_megabyte_of_layers(path: Path) -> Path:
    """1,000 ``Linear(4096, 4096)`` with no tensors, in just under 1 MB of JSON."""
    layer = {"class": "Linear", "args": {"in_features": 4096, "out_features": 4096, "init": "he"}}
    meta = metadata([layer] * 1000)
    padding = minnet.io.MAX_ARCHITECTURE_CHARS - len(meta["architecture"]) - 100
    meta["architecture"] = meta["architecture"][:-1] + " " * padding + "}"
    return write(path, {}, meta)


#: name -> maker of a file that declares far more than it holds.
HUGE: dict[str, Callable[[Path], Path]] = {
    "linear_1e12_no_tensors": make_huge_linear,
    "linear_1e12_small_tensors": make_huge_linear_with_small_tensors,
    "linear_20000_with_rng_0": make_linear_with_a_zero_argument,
    "shape_1e12_declared": make_huge_declared_shape,
    "header_length_2e62": make_huge_header_length,
    "relu_64000_layers": make_huge_architecture,
    "nesting_400000_deep": make_deep_nesting,
    "linear_4096_1000_layers_1MB": make_megabyte_of_layers,
}
