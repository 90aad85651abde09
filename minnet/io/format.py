"""The file itself: its name, the dtypes it holds, the header's bound, the error load raises.

A minnet model file is a safetensors file (read and written by the ``safetensors`` package):
tensors, and string metadata holding the architecture (:mod:`.architecture`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUFFIX = ".safetensors"
SUPPORTED_DTYPES = ("float16", "float32", "float64")  # a model's dtype in a file
#: The largest JSON header (the architecture and the tensor table) load reads: checked from the
#: file's first 8 bytes, before safetensors parses the header (its own limit is 100 MB; a
#: 3.5 MB header took it 40 ms).
MAX_HEADER_BYTES = 3_000_000
#: safetensors' dtype names -> numpy's, for the dtypes numpy holds: "BOOL", "U8" ... "F64".
DTYPES = {
    ("BOOL" if d.kind == "b" else f"{d.kind.upper()}{8 * d.itemsize}"): d.name
    for d in map(np.dtype, "bool u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8".split())
}


class ModelFileError(ValueError):
    """A file :func:`load` refuses; the message names the file and the problem."""


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


def model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.safetensors`` appended unless it ends so already."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise TypeError("save and load take a str or os.PathLike path, not bytes")
    if os.path.basename(text) in ("", ".", ".."):  # "", "folder/", ".", "a/..": no file
        raise ValueError(f"a model's path names a file, got {text!r}")
    return Path(text if text.endswith(SUFFIX) else text + SUFFIX)
