"""load reads each tensor once, from the file it has open, into the model's final arrays; a
file replaced between safetensors' check of its header and minnet's read is refused."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import crafted
import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minnet
import minnet.io
from minnet import _fast


def random_mlp(seed: int, widths: list[int], dtype: str) -> minnet.Sequential:
    rng = np.random.default_rng(seed)
    layers: list[minnet.Layer] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [minnet.Linear(n_in, n_out, rng=rng, dtype=dtype), minnet.Tanh()]
    layers.insert(1, minnet.BatchNorm1d(widths[1]))
    model = minnet.Sequential(layers[:-1], loss=minnet.MSELoss(), dtype=dtype)
    model.layers[1].running_mean[...] = rng.standard_normal(widths[1])
    return model


widths = st.lists(st.integers(1, 30), min_size=2, max_size=5)
dtypes = st.sampled_from(["float16", "float32", "float64"])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), widths=widths, dtype=dtypes, fast=st.booleans())
def test_parameters_are_read_into_their_final_arrays(
    tmp_path: Path, seed: int, widths: list[int], dtype: str, fast: bool
) -> None:
    """With the accelerator on, the parameters are views of the flat storage the model uses
    (load made it; Sequential found it, nothing copied), and hold the file's values bit for bit;
    with it off, each parameter owns its array. The gradients start at zero."""
    path = random_mlp(seed, widths, dtype).save(tmp_path / f"m{seed}")
    stored = safetensors.numpy.load_file(path)
    _fast.use_fast_path(fast)
    try:
        model = minnet.load(path)
    finally:
        _fast.use_fast_path(True)
    storage = _fast._STORAGE_OF.get(model)
    assert (storage is not None) == fast
    for name, p in model.named_parameters():
        assert p.value.tobytes() == stored[name].tobytes() and p.value.dtype == stored[name].dtype
        assert not p.grad.any() and p.value.flags.writeable
        if fast:
            assert p.value.base is storage.values and p.grad.base is storage.grads
        else:
            assert p.value.base is None and p.grad.base is None
    if fast:
        assert storage.holds(model.parameters())
    assert model.layers[1].running_mean.tobytes() == stored["1.running_mean"].tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_allocates_the_values_and_their_gradients_once(tmp_path: Path, dtype: str) -> None:
    """What load allocates at its peak (tracemalloc) is the model's values and gradients (2x the
    weights: the gradients are zeros the system gives pages only when written) and less than
    1 MB more: no copy of a tensor, no random weights drawn."""
    model = random_mlp(0, [300, 400, 500, 10], dtype)
    path = model.save(tmp_path / "model")
    weights = sum(p.value.nbytes for p in model.parameters())
    minnet.load(path)  # imports and caches warmed
    tracemalloc.start()
    try:
        loaded = minnet.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert weights > 2**20 and loaded is not None
    assert peak < 2 * weights + 2**20, (peak, weights)


SAFE_OPEN = safetensors.safe_open


def swapped(monkeypatch, checked: Path) -> None:
    """Make safetensors check the header of ``checked`` whatever path load opens: as if the
    file at the path were replaced between minnet's open and safetensors'."""
    monkeypatch.setattr(
        minnet.io.loading.safetensors,
        "safe_open",
        lambda path, **kwargs: SAFE_OPEN(str(checked), **kwargs),
    )


def test_a_file_replaced_by_another_model_is_refused(tmp_path: Path, monkeypatch) -> None:
    first = random_mlp(1, [3, 4, 2], "float64").save(tmp_path / "first")
    second = random_mlp(2, [3, 4, 2], "float64").eval().save(tmp_path / "second")
    swapped(monkeypatch, second)
    with pytest.raises(minnet.io.ModelFileError, match="its header changed while it was read"):
        minnet.load(first)
    swapped(monkeypatch, first)  # the same header: the model is the file load has open
    loaded, stored = minnet.load(first).state_dict(), safetensors.numpy.load_file(first)
    assert all(loaded[name].tobytes() == stored[name].tobytes() for name in stored)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_offsets_that_lie_in_the_file_read_are_refused(tmp_path: Path, monkeypatch, data) -> None:
    """safetensors checked a valid file; the one load has open has the same tensor table and
    metadata but other offsets (random: overlapping, out of the data, of another length, not
    integers) or less data: refused before a byte is read outside a tensor's own span."""
    valid = random_mlp(3, [3, 4, 2], "float64").save(tmp_path / "valid")
    header, body = crafted.header_of(valid.read_bytes())
    keys = sorted(key for key in header if key != "__metadata__")
    key = data.draw(st.sampled_from(keys))
    begin, end = header[key]["data_offsets"]
    lie = data.draw(
        st.one_of(
            st.tuples(st.integers(-10, len(body) + 10), st.integers(-10, len(body) + 10)),
            st.tuples(st.floats(0, len(body)), st.integers(0, len(body))),
            st.just([begin, end, end]),
            st.just([begin]),
            st.just("offsets"),
        )
    )
    cut = data.draw(st.sampled_from([0, 1, 8]))
    if (list(lie) if not isinstance(lie, str) else lie) == [begin, end] and cut == 0:
        return  # no lie: a valid file
    header[key]["data_offsets"] = list(lie) if not isinstance(lie, str) else lie
    text = json.dumps(header).encode()
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes(struct.pack("<Q", len(text)) + text + body[: len(body) - cut])
    swapped(monkeypatch, valid)
    with pytest.raises(minnet.io.ModelFileError, match=f"cannot load {lying}") as caught:
        minnet.load(lying)
    assert any(
        words in str(caught.value)
        for words in ("header changed", "data offsets", "tensors hold", "ends before")
    )


@pytest.mark.parametrize("proc", [True, False], ids=["proc-self-fd", "no-proc"])
def test_a_file_replaced_by_a_save_while_it_is_read_gives_one_whole_model(
    tmp_path: Path, monkeypatch, proc: bool
) -> None:
    """A save renames another model over the path after load opened it and before safetensors
    opens it: with /proc/self/fd, safetensors opens the file load holds, and the old model is
    read whole; without it, load sees the change, opens the path again and reads the new one."""
    old = random_mlp(1, [3, 4, 2], "float64")
    path = old.save(tmp_path / "shared")
    new = random_mlp(2, [3, 5, 2], "float32").eval()
    replaced = []

    def save_then_open(name: str, **kwargs):
        if not replaced:
            replaced.append(new.save(tmp_path / "shared"))  # os.replace over the path
        return SAFE_OPEN(name, **kwargs)

    monkeypatch.setattr(minnet.io.loading.safetensors, "safe_open", save_then_open)
    if not proc:
        exists = os.path.exists
        monkeypatch.setattr(
            minnet.io.loading.os.path,
            "exists",
            lambda p: not str(p).startswith("/proc") and exists(p),
        )
    elif not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd on this system")
    loaded = minnet.load(path)
    assert replaced
    expected = new if not proc else old
    assert loaded.layers[0].training == expected.layers[0].training
    assert all(
        np.array_equal(a, b) and a.dtype == b.dtype
        for a, b in zip(loaded.state_dict().values(), expected.state_dict().values(), strict=True)
    )
