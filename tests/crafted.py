"""Model files an attacker could write: for tests/test_io.py and benchmarks/load_bench.py.

Each ``make_*`` function writes one file to the path it is given. ``HUGE`` lists the files that
declare far more than they hold; ``minnet.load`` must refuse each at once, in little memory.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

import minnet

# -- building blocks --------------------------------------------------------------------------


def npy(array: np.ndarray) -> bytes:
    """The ``.npy`` bytes of ``array`` (what np.save writes)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """An ``.npy`` header declaring ``shape`` and ``dtype``, with no data after it."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def small_model() -> minnet.Sequential:
    rng = np.random.default_rng(0)
    return minnet.Sequential(
        [minnet.Linear(3, 5, rng=rng), minnet.LeakyReLU(0.2), minnet.Linear(5, 1, rng=rng)]
    )


def model_entries(model: minnet.Sequential) -> dict[str, bytes]:
    """``{entry name: .npy bytes}`` of the file ``minnet.io.save`` writes for ``model``."""
    buffer = io.BytesIO()
    minnet.io._write_npz(buffer, minnet.io._entries_of(model))
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def architecture(layers: list[dict], dtype: str | None = "float64") -> bytes:
    """The ``architecture.npy`` entry for ``layers`` and minnet's BCELoss."""
    spec = {"layers": layers, "loss": {"class": "BCELoss", "args": {}}, "dtype": dtype}
    return npy(np.array(json.dumps(spec)))


def header_entries() -> dict[str, bytes]:
    """The marker and version entries of a minnet file."""
    return {
        "minnet_format.npy": npy(np.array("minnet.Sequential")),
        "format_version.npy": npy(np.array(2)),
    }


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A zip of ``entries`` stored uncompressed, as ``np.savez`` writes them."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def deflated(pieces: list[tuple[bytes, int]]) -> tuple[bytes, int, int]:
    """A raw deflate stream of each ``(chunk, times)`` piece repeated, its CRC-32 and its
    uncompressed size, made without compressing every repetition: after a full flush the
    compressor starts afresh, so the compressed block of a chunk repeats as it is."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream, crc, size = [], 0, 0
    for chunk, times in pieces:
        block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        stream.append(block * times)
        for _ in range(times):
            crc = zlib.crc32(chunk, crc)
        size += len(chunk) * times
    stream.append(compressor.flush(zlib.Z_FINISH))
    return b"".join(stream), crc, size


def append_raw_entry(path: Path, name: str, data: bytes, crc: int, size: int) -> None:
    """Add an entry of already compressed (deflate) ``data`` to the zip at ``path``, by hand:
    ``zipfile`` cannot write precompressed data. ``size`` is the uncompressed size (< 4 GiB)."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        start = archive.start_dir
    raw = path.read_bytes()
    directory = raw[start : raw.rindex(b"PK\x05\x06")]
    encoded = name.encode()
    fields = (20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded))
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields[:-1], len(encoded), 0) + encoded
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, start) + encoded
    directory += central
    count = len(infos) + 1
    end_start = start + len(local) + len(data)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), end_start, 0)
    path.write_bytes(raw[:start] + local + data + directory + end)


# -- the files --------------------------------------------------------------------------------

LINEAR_HUGE = {"class": "Linear", "args": {"in_features": 10**6, "out_features": 10**6}}


def make_huge_linear(path: Path) -> Path:
    """Architecture ``Linear(10**6, 10**6)`` (10**12 weights) and no arrays: 1 KB."""
    return write_zip(path, {**header_entries(), "architecture.npy": architecture([LINEAR_HUGE])})


def make_huge_linear_with_small_arrays(path: Path) -> Path:
    """``Linear(10**6, 10**6)`` with arrays of 10**6 entries (W: (1, 10**6)), 8 MB."""
    entries = {**header_entries(), "architecture.npy": architecture([LINEAR_HUGE])}
    entries["0.W.npy"] = npy(np.zeros((1, 10**6)))
    entries["0.b.npy"] = npy(np.zeros(1))
    return write_zip(path, entries)


def make_huge_header(path: Path, name: str = "0.W") -> Path:
    """A valid small model whose entry ``name`` is an .npy header declaring 10**12 float64
    (8 TB) with no data: a few KB."""
    entries = model_entries(small_model())
    entries[f"{name}.npy"] = npy_header((10**6, 10**6), "<f8")
    return write_zip(path, entries)


def make_huge_extra_entry(path: Path) -> Path:
    """The same 10**12-float64 header as an extra entry the architecture does not name."""
    return make_huge_header(path, "extra")


def make_zeros_bomb(path: Path) -> Path:
    """A valid small model plus a deflated entry of 1 GiB of zeros (an .npy array of 2**27
    float64): about 1 MB."""
    write_zip(path, model_entries(small_model()))
    header = npy_header((1 << 27,), "<f8")
    append_raw_entry(path, "zeros.npy", *deflated([(header, 1), (bytes(1 << 24), 64)]))
    return path


def make_padded_architecture(path: Path) -> Path:
    """The architecture JSON of a valid model followed by 2e8 spaces, deflated: under 1 MB.
    (Stored, it would be an 800 MB file.)"""
    entries = model_entries(small_model())
    text = str(np.load(io.BytesIO(entries.pop("architecture.npy"))))
    write_zip(path, entries)
    n_chars = len(text) + 200_000_000
    head = npy_header((), f"<U{n_chars}") + np.array(text).tobytes()
    spaces = np.array(" " * 250_000).tobytes()  # 1 MB: 250,000 characters of 4 bytes
    append_raw_entry(path, "architecture.npy", *deflated([(head, 1), (spaces, 800)]))
    return path


def make_padded_architecture_stored(path: Path) -> Path:
    """The same architecture header (2e8 characters declared), stored, with no data after it."""
    entries = model_entries(small_model())
    entries["architecture.npy"] = npy_header((), f"<U{200_000_100}")
    return write_zip(path, entries)


def make_many_relus(path: Path, count: int = 64_000) -> Path:
    """An architecture of ``count`` ReLU layers: 2 M characters of JSON (8 MB stored)."""
    relus = [{"class": "ReLU", "args": {}}] * count
    entries = {**header_entries(), "architecture.npy": architecture(relus, dtype=None)}
    return write_zip(path, entries)


#: name -> maker of a file that declares far more than it holds.
HUGE: dict[str, Callable[[Path], Path]] = {
    "linear_1e12_no_arrays": make_huge_linear,
    "linear_1e12_small_arrays": make_huge_linear_with_small_arrays,
    "npy_header_1e12_as_0.W": make_huge_header,
    "npy_header_1e12_extra": make_huge_extra_entry,
    "zeros_1GiB_deflated": make_zeros_bomb,
    "architecture_2e8_spaces_deflated": make_padded_architecture,
    "architecture_2e8_chars_declared": make_padded_architecture_stored,
    "relu_64000_layers": make_many_relus,
}
