"""Writing a file so that it appears complete or not at all, safely in a shared folder."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
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
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cannot write {path}: its folder {path.parent} does not exist"
            ) from None
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
