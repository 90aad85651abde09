"""The flat path's two threads (minnet/_fast/parallel.py): every block once, each thread with its
own scratch, errors and numpy's error settings carried over, a fork's child served too; and a
threaded optimizer's steps on a model large enough to use both threads give the bits of the
per-parameter path."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import minnet
from minnet import SGD, Linear, ReLU, Sequential, Sigmoid
from minnet._fast import parallel

pytestmark = pytest.mark.skipif(
    parallel.available_cores() < 2, reason="one core: the flat path stays on one thread"
)


def blocks_of(n_blocks, size=4):
    values = np.arange(n_blocks * size, dtype=np.float64)
    return values, [(values[i * size : (i + 1) * size],) for i in range(n_blocks)]


def test_every_block_once_each_thread_its_own_scratch():
    values, blocks = blocks_of(12)
    seen, scratch_of = [], {}

    def update(block, scratch):
        # (the sleep lets the other thread run: both take blocks however busy the machine is)
        time.sleep(0.005)
        (values,) = block  # (value, grad, *state): here a value only
        seen.append(values[0])
        scratch_of.setdefault(threading.get_ident(), set()).add(id(scratch))
        values += 1

    scratches = ([], [])
    parallel.for_each_block(update, blocks, scratches)
    assert sorted(seen) == [4 * i for i in range(12)]
    np.testing.assert_array_equal(values, np.arange(48) + 1)
    assert len(scratch_of) == 2  # two threads took blocks
    assert sorted(map(tuple, scratch_of.values())) == sorted((id(s),) for s in scratches)


def test_few_blocks_stay_on_the_calling_thread():
    _, blocks = blocks_of(parallel.MIN_BLOCKS - 1)
    threads = set()
    parallel.for_each_block(
        lambda block, scratch: threads.add(threading.get_ident()), blocks, ([], [])
    )
    assert threads == {threading.get_ident()}


def test_an_error_in_either_thread_is_raised_after_both_stop():
    _, blocks = blocks_of(40)
    done = []

    def update(block, scratch):
        time.sleep(0.002)
        if block[0][0] == 4 * 5:
            raise ValueError("block 5")
        done.append(block[0][0])

    with pytest.raises(ValueError, match="block 5"):
        parallel.for_each_block(update, blocks, ([], []))
    count = len(done)
    time.sleep(0.05)
    assert len(done) == count  # nothing still running
    assert count < 39  # both stopped early


def test_the_callers_numpy_error_settings_hold_on_the_worker():
    big = np.full(1000, 1e308)
    blocks = [(big[i * 100 : (i + 1) * 100],) for i in range(10)]
    caller = threading.get_ident()

    def update(block, scratch):
        time.sleep(0.002)
        if threading.get_ident() != caller:
            block[0][...] *= 10.0  # overflows, on the worker only

    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        parallel.for_each_block(update, blocks, ([], []))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_gets_a_worker_of_its_own():
    """(Without one, the caller would do every block itself: the same numbers, one thread.)"""
    _, blocks = blocks_of(12)
    parallel.for_each_block(lambda block, scratch: None, blocks, ([], []))  # the parent's worker
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its copy of the parent's worker has no thread
        try:
            signal.alarm(30)  # (a child waiting for that thread forever dies instead)
            values, blocks = blocks_of(12)
            threads = set()

            def update(block, scratch):
                time.sleep(0.005)
                threads.add(threading.get_ident())
                block[0][...] += 1

            parallel.for_each_block(update, blocks, ([], []))
            ok = np.array_equal(values, np.arange(48) + 1) and len(threads) == 2
            os.write(write, b"ok" if ok else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 10) == b"ok"
    assert status == 0


def big_model(dtype):
    # 1024 * 1024 + 1024 + 1024 + 1 = 1,050,625 parameters: 9 blocks of 512 KiB in float32
    return Sequential(
        [Linear(1024, 1024, rng=0), ReLU(), Linear(1024, 1, rng=1), Sigmoid()], dtype=dtype
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("optimizer_class", "kwargs"),
    [
        (SGD, {"lr": 0.01}),
        (SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
        (SGD, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
        (minnet.Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 1e-3}),
        (minnet.AdamW, {"lr": 0.01}),
        (minnet.RMSprop, {"lr": 0.01}),
        (
            minnet.RMSprop,
            {"lr": 0.01, "alpha": 0.6, "centered": True, "momentum": 0.9, "weight_decay": 1e-3},
        ),
        (minnet.RMSprop, {"lr": 0.01, "alpha": 0.3, "centered": True}),
        (minnet.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 1e-3}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_two_threads_give_the_per_parameter_bits(dtype, optimizer_class, kwargs):
    flat, twin = big_model(dtype), big_model(dtype)
    optimizer = optimizer_class(flat.parameters(), **kwargs)
    assert optimizer_class.threaded
    assert len(optimizer._flat_blocks) >= parallel.MIN_BLOCKS
    per_parameter = optimizer_class(twin.parameters(), flat=False, **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(4):
        for p, q in zip(flat.parameters(), twin.parameters(), strict=True):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape)
        optimizer.step()
        per_parameter.step()
    for p, q in zip(flat.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    for state, other in zip(optimizer.state, per_parameter.state, strict=True):
        for a, b in zip(state, other, strict=True):
            np.testing.assert_array_equal(a, b)
