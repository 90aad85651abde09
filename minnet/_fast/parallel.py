"""An elementwise update of the flat vectors' blocks on two threads: the caller's and one worker.

numpy releases the GIL while a ufunc loops over a large array, so two threads calling ufuncs on
different blocks run on two cores at once. Both threads take the next block not yet taken (a
shared counter), so a thread that the system holds back (the machine is busy) simply does fewer
blocks. Every block is updated by exactly one thread with the same operations as on one thread:
the same bits, in any order (the update is elementwise).

Each call of a ufunc must last long enough that the other thread gets the GIL back between two
calls (a thread woken for the GIL takes some microseconds to run; a call shorter than that lets
the caller take the GIL back first, again and again, and the two threads run one after the
other): hence blocks of ``THREAD_BLOCK_BYTES``, the same bytes in every dtype (float32 blocks
have twice float64's entries): the arrays one SGD step touches per block (2.5 MiB) stay in the
last-level cache, not a core's L2 (1 MiB per core on the development machine; blocks of 128 to
256 KiB, which would fit it, were no faster). There, with the machine otherwise idle, a
float32 step of 1.86M parameters with Nesterov momentum and weight decay took about 0.7x its
one-thread time in a bare loop, 0.85x in SGD; float32 blocks of 65,536 entries took 1.0x.
When another process keeps the second core busy the worker gets little time and the step takes
about its one-thread time (within 10% either way).

The worker is started on the first update that uses it, and again in a child process after a
fork (a thread does not survive a fork). Each thread gets its own scratch list, for the fused
updates of :mod:`.fused`, and runs with the caller's numpy error settings (``np.errstate``).
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: The bytes of one block of each flat vector on the threaded path (65,536 float64 entries).
THREAD_BLOCK_BYTES = 1 << 19
#: Fewer blocks than this (vectors under 4 MiB): all on the caller's thread, as handing work
#: over to the worker and back costs tens of microseconds.
MIN_BLOCKS = 8

_worker: ThreadPoolExecutor | None = None
_worker_pid: int | None = None
_worker_lock = threading.Lock()


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


def block_entries(dtype: np.dtype) -> int:
    """Entries of one block of a flat vector of ``dtype`` on the threaded path."""
    return max(1, THREAD_BLOCK_BYTES // np.dtype(dtype).itemsize)


def _the_worker() -> ThreadPoolExecutor:
    global _worker, _worker_pid
    with _worker_lock:
        if _worker is None or _worker_pid != os.getpid():  # none yet, or a fork's dead copy
            _worker = ThreadPoolExecutor(1, thread_name_prefix="minnet-update")
            _worker_pid = os.getpid()
        return _worker


def for_each_block(
    update: Callable[..., None],
    blocks: Sequence[tuple[np.ndarray, ...]],
    scratches: Sequence[list[np.ndarray]],
) -> None:
    """``update(block, scratch)`` for every block, on two threads when there are at least
    ``MIN_BLOCKS`` blocks and two cores, else on this one; ``scratches``: one list per thread
    (two), for ``update`` to keep its scratch blocks in. Returns when every block is done; an
    exception of either thread is raised here (after both threads have stopped)."""
    if len(blocks) < MIN_BLOCKS or available_cores() < 2:
        for block in blocks:
            update(block, scratches[0])
        return
    taken = itertools.count()  # next() on it is atomic under the GIL
    stop = threading.Event()

    def work(scratch: list[np.ndarray]) -> None:
        try:
            for i in taken:
                if i >= len(blocks) or stop.is_set():
                    return
                update(blocks[i], scratch)
        except BaseException:
            stop.set()  # the other thread stops after its block
            raise

    helper = _the_worker().submit(contextvars.copy_context().run, work, scratches[1])
    try:
        work(scratches[0])
    finally:
        if not helper.cancel():  # (cancelled: it never started, all blocks are done)
            helper.result()


__all__ = ["MIN_BLOCKS", "THREAD_BLOCK_BYTES", "available_cores", "block_entries", "for_each_block"]
