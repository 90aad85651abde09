"""load refuses every malformed, lying or oversized file with a ValueError naming the file, in
little time and memory; only the operating system's errors on the path stay OSError."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crafted
import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minnet
import minnet.io

ROOT = Path(__file__).resolve().parent.parent


def refused(path: Path, match: str) -> ValueError:
    """``minnet.load(path)`` raises a ValueError naming the file and matching ``match``."""
    with pytest.raises(ValueError, match=match) as caught:
        minnet.load(path)
    assert isinstance(caught.value, minnet.io.ModelFileError)
    assert f"cannot load {path}" in str(caught.value)
    return caught.value


def small_net() -> minnet.Sequential:
    rng = np.random.default_rng(10)
    return minnet.Sequential(
        [
            minnet.Linear(3, 5, rng=rng),
            minnet.BatchNorm1d(5),
            minnet.LeakyReLU(0.2),
            minnet.Dropout(0.1),
            minnet.Linear(5, 1, rng=rng),
            minnet.Sigmoid(),
        ]
    )


def spec_of(meta: dict[str, str]) -> dict[str, Any]:
    return json.loads(meta["architecture"])


def with_spec(meta: dict[str, str], spec: Any) -> dict[str, str]:
    return {**meta, "architecture": json.dumps(spec)}


@pytest.fixture
def parts() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of small_net's file, to edit."""
    return minnet.io.contents(small_net())


def write(tmp_path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str] | None) -> Path:
    return crafted.write(tmp_path / "edited.safetensors", tensors, meta)


# -- files that declare far more than they hold ---------------------------------------------------

HUGE_MESSAGES = {
    "linear_1e12_no_tensors": r"layer 0 \(Linear\).*declare more than 4,096 entries.*hold 0",
    "linear_1e12_small_tensors": r"declare more than 1,000,001 entries.*hold 1,000,001",
    "linear_20000_with_rng_0": r"declare more than 4,096 entries.*hold 20: it is not built",
    "shape_1e12_declared": r"not a valid safetensors file \(.*invalid shape",
    "header_length_2e62": r"its header declares 4,611,686,018,427,387,904 bytes; minnet reads",
    "relu_64000_layers": r"its header declares 3,648,168 bytes; minnet reads at most 3,000,000",
    "nesting_400000_deep": r"the architecture is not valid JSON \(nested too deeply\)",
    "linear_4096_1000_layers_1MB": r"layer 0 \(Linear\).*declare more than 4,096 entries",
}


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("huge")
    return {name: make(folder / f"{name}.safetensors") for name, make in crafted.HUGE.items()}


@pytest.mark.parametrize("name", list(crafted.HUGE))
def test_huge_declarations_are_refused(huge_files, name: str) -> None:
    refused(huge_files[name], HUGE_MESSAGES[name])


MEASURE = """
import json, sys, time, tracemalloc
import minnet

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def refuse(path):
    try:
        minnet.load(path)
    except ValueError:
        return
    raise AssertionError(f"{path} loaded")

before, results = peak_mb(), {}
for path in sys.argv[1:]:
    start = time.perf_counter()
    refuse(path)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    refuse(path)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    results[path] = {"ms": 1000 * seconds, "traced_mb": traced}
print(json.dumps({"files": results, "rss_mb": peak_mb() - before}))
"""


def test_huge_declarations_cost_little_time_and_memory(huge_files) -> None:
    """In a fresh interpreter: each refusal's time and traced peak, and the process's peak
    resident memory over all of them (benchmarks/load_bench.py measures each in its own
    process). Goals: 50 ms and 20 MB; asserted with room for slow, shared machines."""
    paths = [str(path) for path in huge_files.values()]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", MEASURE, *paths]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    measured = json.loads(output.stdout)
    for name, path in zip(huge_files, paths, strict=True):
        row = measured["files"][path]
        print(f"{name}: {row['ms']:.2f} ms, traced peak {row['traced_mb']:.2f} MB")
        assert row["ms"] < 1000 and row["traced_mb"] < 20, (name, row)
    print(f"peak resident memory over all: +{measured['rss_mb']:.1f} MB")
    assert measured["rss_mb"] < 50


# -- the header and the metadata ------------------------------------------------------------------


def test_an_npz_file_of_minnet_0_1_says_how_to_convert_it(tmp_path: Path) -> None:
    model = small_net()
    path = tmp_path / "old.npz"
    np.savez(path, architecture=np.array("{}"), **model.state_dict())
    error = refused(path, r"an \.npz model file of minnet 0\.1.*load_state_dict")
    assert "save it again" in str(error)
    recipe = "{k: v for k, v in np.load(path).items() if k[0].isdigit()}"
    assert recipe in str(error)
    fresh = small_net()
    fresh.layers[0].W.value[...] = 0
    fresh.load_state_dict(eval(recipe, {"np": np, "path": path}))  # the message's recipe
    assert all(
        a.tobytes() == b.tobytes()
        for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 7, b"not a model file at all", struct.pack("<Q", 5) + b"[1,2]"],
    ids=["empty", "seven_bytes", "text", "json_list_header"],
)
def test_files_that_are_not_safetensors_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    refused(path, "not a valid safetensors file|its header declares")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda meta: None, "not a minnet model file"),
        (lambda meta: {**meta, "format": "torch"}, "not a minnet model file"),
        (lambda meta: {**meta, "format_version": "2"}, "format version '2'; this minnet reads"),
        (lambda meta: {k: v for k, v in meta.items() if k != "architecture"}, "no 'architecture'"),
        (lambda meta: {**meta, "architecture": "{'layers': []"}, "not valid JSON"),
        (lambda meta: {**meta, "architecture": meta["architecture"] + "x"}, "not valid JSON"),
    ],
    ids=["none", "foreign", "version", "no_architecture", "python_repr", "trailing_junk"],
)
def test_bad_metadata_is_refused(tmp_path: Path, parts, edit, match: str) -> None:
    tensors, meta = parts
    refused(write(tmp_path, tensors, edit(meta)), match)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_the_architecture_are_refused(tmp_path: Path, parts, text) -> None:
    tensors, meta = parts
    architecture = meta["architecture"].replace(
        '"negative_slope": 0.2', f'"negative_slope": {text}'
    )
    refused(write(tmp_path, tensors, {**meta, "architecture": architecture}), "not valid JSON")


def test_repeated_keys_in_the_architecture_are_refused(tmp_path: Path, parts) -> None:
    tensors, meta = parts
    architecture = meta["architecture"].replace(
        '"dtype": "float64"}', '"dtype": "float64", "dtype": null}'
    )
    refused(write(tmp_path, tensors, {**meta, "architecture": architecture}), "repeated keys")


def edit_spec(change: Callable[[dict], Any]) -> Callable[[dict], dict]:
    """An edit of the architecture in place (what ``change`` returns is ignored)."""

    def edit(spec: dict) -> dict:
        change(spec)
        return spec

    return edit


SPEC_EDITS = {
    "a_list": (lambda s: [s], "the architecture must be"),
    "no_loss": (edit_spec(lambda s: s.pop("loss")), "the architecture must be"),
    "extra_key": (edit_spec(lambda s: s.update(code="import os")), "the architecture must be"),
    "no_layers": (edit_spec(lambda s: s.update(layers=[])), "the architecture must be"),
    "dtype_complex": (
        edit_spec(lambda s: s.update(dtype="complex128")),
        "the architecture must be",
    ),
    "layer_a_string": (
        edit_spec(lambda s: s["layers"].__setitem__(0, "Linear")),
        "layer 0 must be",
    ),
    "no_training": (edit_spec(lambda s: s["layers"][0].pop("training")), "layer 0 must be"),
    "training_1": (
        edit_spec(lambda s: s["layers"][2].update(training=1)),
        "layer 2: 'training' must be true or false",
    ),
    "args_a_list": (edit_spec(lambda s: s["layers"][0].update(args=[3, 5])), "layer 0 must be"),
    "arg_an_object": (
        edit_spec(lambda s: s["layers"][2]["args"].update(negative_slope={"x": 1})),
        "argument 'negative_slope' must be a number",
    ),
    "arg_nested_deep": (
        edit_spec(lambda s: s["layers"][2]["args"].update(negative_slope=[[[[[0.2]]]]])),
        "nested at most 4 deep",
    ),
    "unknown_class": (
        edit_spec(lambda s: s["layers"][2].update({"class": "Evil"})),
        r"layer 2: class 'Evil' is not registered in this process",
    ),
    "base_class": (
        edit_spec(lambda s: s["layers"][2].update({"class": "Layer"})),
        "class 'Layer' is not registered",
    ),
    "builtin_function": (
        edit_spec(lambda s: s["layers"][2].update({"class": "__import__"})),
        "class '__import__' is not registered",
    ),
    "unknown_loss": (
        edit_spec(lambda s: s["loss"].update({"class": "Sequential"})),
        "unknown loss 'Sequential'",
    ),
    "loss_argument": (
        edit_spec(lambda s: s["loss"]["args"].update(weight=2)),
        "the loss BCELoss rejects the arguments",
    ),
    "slope_text": (
        edit_spec(lambda s: s["layers"][2]["args"].update(negative_slope="steep")),
        r"layer 2 \(LeakyReLU\) rejects the arguments",
    ),
    "dropout_p_1": (
        edit_spec(lambda s: s["layers"][3]["args"].update(p=1.0)),
        r"layer 3 \(Dropout\) rejects the arguments",
    ),
    "unknown_argument": (
        edit_spec(lambda s: s["layers"][0]["args"].update(bias=False)),
        r"layer 0 \(Linear\) rejects the arguments.*unexpected keyword argument 'bias'",
    ),
    "no_chain": (
        edit_spec(lambda s: s["layers"].insert(4, s["layers"][2])),
        r"unknown tensor\(s\) \['4.W', '4.b'\] \(layer 4 \(LeakyReLU\)",  # indices moved
    ),
    "dtype_float32": (
        edit_spec(lambda s: s.update(dtype="float32")),
        r"parameter '0.W': expected dtype float32 \(the model dtype\), got float64",
    ),
    "dtype_null": (
        edit_spec(lambda s: s.update(dtype=None)),
        r"parameter '0.W': expected dtype None",
    ),
    "layer_1001": (
        edit_spec(lambda s: s.update(layers=[s["layers"][2]] * 1001)),
        "the architecture has 1,001 layers; minnet reads at most 1,000",
    ),
}


@pytest.mark.parametrize("name", list(SPEC_EDITS))
def test_lying_or_malformed_architectures_are_refused(tmp_path: Path, parts, name: str) -> None:
    tensors, meta = parts
    edit, match = SPEC_EDITS[name]
    refused(write(tmp_path, tensors, with_spec(meta, edit(spec_of(meta)))), match)


def test_layers_that_do_not_chain_are_refused(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(3, 4, rng=0), minnet.Linear(4, 2, rng=1)])
    tensors, meta = minnet.io.contents(model)
    spec = spec_of(meta)
    spec["layers"][1]["args"]["in_features"] = 5
    tensors["1.W"] = np.zeros((2, 5))
    refused(write(tmp_path, tensors, with_spec(meta, spec)), "the layers do not form a model")


def test_a_header_over_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "long.safetensors"
    path.write_bytes(crafted.raw_file({}, length=minnet.io.MAX_HEADER_BYTES + 1) + b" " * 100)
    refused(path, "its header declares 3,000,001 bytes; minnet reads at most 3,000,000")


def test_save_refuses_a_header_load_would_not_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(minnet.io.saving, "MAX_HEADER_BYTES", 500)
    with pytest.raises(ValueError, match="header .* would have .* bytes; load reads at most 500"):
        small_net().save(tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_the_architecture_text_has_a_limit(tmp_path: Path, parts) -> None:
    tensors, meta = parts
    padded = meta["architecture"][:-1] + " " * minnet.io.MAX_ARCHITECTURE_CHARS + "}"
    refused(write(tmp_path, tensors, {**meta, "architecture": padded}), "characters; minnet reads")


# -- the tensor table -----------------------------------------------------------------------------


def drop(name: str) -> Callable[[dict], None]:
    return lambda tensors: tensors.pop(name)


TENSOR_EDITS = {
    "missing_parameter": (drop("4.W"), r"missing tensor\(s\) \['4.W'\]"),
    "missing_buffer": (drop("1.running_var"), r"missing tensor\(s\) \['1.running_var'\]"),
    "extra_in_a_layer": (
        lambda t: t.update({"0.extra": np.zeros(1)}),
        r"unknown tensor\(s\) \['0.extra'\] \(layer 0 \(Linear\) has no parameter",
    ),
    "extra_layer_index": (
        lambda t: t.update({"9.W": np.zeros(1)}),
        r"unknown tensor\(s\) \['9.W'\]",
    ),
    "extra_not_indexed": (lambda t: t.update({"W": np.zeros(1)}), r"unknown tensor\(s\) \['W'\]"),
    "index_with_zero": (
        lambda t: t.update({"04.W": t.pop("4.W")}),
        r"unknown tensor\(s\) \['04.W'\]",
    ),
    "index_only": (lambda t: t.update({"0.": np.zeros(1)}), r"unknown tensor\(s\) \['0.'\]"),
    "wrong_shape": (
        lambda t: t.update({"0.W": np.zeros((3, 5))}),
        r"parameter '0.W': expected shape \(5, 3\), got \(3, 5\)",
    ),
    "transposed_bias": (
        lambda t: t.update({"0.b": np.zeros((5, 1))}),
        r"parameter '0.b': expected shape \(5,\), got \(5, 1\)",
    ),
    "float32_parameter": (
        lambda t: t.update({"4.b": t["4.b"].astype(np.float32)}),
        "parameter '4.b': expected dtype float64",
    ),
    "int_parameter": (
        lambda t: t.update({"4.b": t["4.b"].astype(np.int64)}),
        "parameter '4.b': expected dtype float64",
    ),
    "float16_buffer": (
        lambda t: t.update({"1.running_mean": t["1.running_mean"].astype(np.float16)}),
        "buffer '1.running_mean': expected dtype float64, got float16",
    ),
    "nan_weight": (
        lambda t: t["0.W"].__setitem__((1, 2), np.nan),
        r"'0.W' holds 1 NaN or infinite",
    ),
    "inf_bias": (lambda t: t["4.b"].__setitem__(0, np.inf), r"'4.b' holds 1 NaN or infinite"),
    "nan_buffer": (
        lambda t: t["1.running_var"].__setitem__(0, -np.inf),
        r"'1.running_var' holds 1 NaN or infinite",
    ),
    "65_tensors": (
        lambda t: t.update({f"2.extra{k}": np.zeros(1) for k in range(65)}),
        "layer 2 has 65 tensors in the file; minnet reads at most 64",
    ),
}


@pytest.mark.parametrize("name", list(TENSOR_EDITS))
def test_tensors_that_do_not_fit_the_architecture_are_refused(tmp_path: Path, parts, name) -> None:
    tensors, meta = parts
    tensors = {key: array.copy() for key, array in tensors.items()}
    edit, match = TENSOR_EDITS[name]
    edit(tensors)
    refused(write(tmp_path, tensors, meta), match)


def raw_edit(
    tmp_path: Path, parts, change: Callable[[dict[str, Any], bytes], bytes | None]
) -> Path:
    """The file of ``parts`` with its JSON header changed by ``change(header, data)`` (which may
    return new data), written as is."""
    tensors, meta = parts
    header, data = crafted.header_of(safetensors.numpy.save(tensors, metadata=meta))
    new_data = change(header, data)
    path = tmp_path / "raw.safetensors"
    path.write_bytes(crafted.raw_file(header, data if new_data is None else new_data))
    return path


RAW_EDITS = {
    "bfloat16": (
        lambda h, d: h["4.b"].update(dtype="BF16", shape=[4]),
        "tensor '4.b' has dtype BF16, which minnet does not hold",
    ),
    "float8": (
        lambda h, d: h["4.b"].update(dtype="F8_E4M3", shape=[8]),
        "not a valid safetensors file|has dtype F8_E4M3",
    ),
    "offsets_overlap": (
        lambda h, d: h["4.b"].update(data_offsets=h["4.W"]["data_offsets"][:1] * 2),
        "not a valid safetensors file",
    ),
    "offsets_shifted": (
        lambda h, d: h["4.b"].update(data_offsets=[o + 8 for o in h["4.b"]["data_offsets"]]),
        "not a valid safetensors file",
    ),
    "shape_larger": (lambda h, d: h["0.W"].update(shape=[6, 3]), "not a valid safetensors file"),
    "shape_negative": (
        lambda h, d: h["0.W"].update(shape=[-5, -3]),
        "not a valid safetensors file",
    ),
    "data_missing": (lambda h, d: d[:-8], "not a valid safetensors file"),
    "data_extra": (lambda h, d: d + bytes(8), "not a valid safetensors file"),
    "metadata_number": (
        lambda h, d: h["__metadata__"].update(format_version=3),
        "not a valid safetensors file",
    ),
    "metadata_nested": (
        lambda h, d: h["__metadata__"].update(architecture=spec_of(h["__metadata__"])),
        "not a valid safetensors file",
    ),
}


@pytest.mark.parametrize("name", list(RAW_EDITS))
def test_headers_that_lie_about_the_data_are_refused(tmp_path: Path, parts, name: str) -> None:
    change, match = RAW_EDITS[name]
    refused(raw_edit(tmp_path, parts, change), match)


def test_operating_system_errors_stay_os_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        minnet.load(tmp_path / "missing")
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(IsADirectoryError):
        minnet.load(tmp_path / "folder")


# -- mutations ------------------------------------------------------------------------------------


def mutants(data: bytes, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    """Seeded mutations of a file: byte changes anywhere, in the header above all, truncations,
    and bytes appended."""
    (length,) = struct.unpack_from("<Q", data)
    header_end = 8 + length
    for i in range(1600):
        out = bytearray(data)
        high = header_end if i % 4 else len(data)
        for place in rng.integers(0, high, 1 + i % 3):
            out[place] = (out[place] + rng.integers(1, 256)) % 256  # a different byte
        yield "mutated", bytes(out)
    for cut in range(0, len(data), 4):
        yield "truncated", data[:cut]
    for extra in [b"\0", b" ", data]:
        yield "appended", data + extra


def loads_as_the_file_says_or_refuses(path: Path) -> str:
    """``"refused"`` (a ValueError naming the file) or ``"loaded"``: a model holding exactly the
    tensors safetensors reads from the file (a changed data byte is a changed weight: the format
    has no checksum)."""
    try:
        model = minnet.load(path)
    except ValueError as err:
        assert f"cannot load {path}" in str(err), err
        return "refused"
    stored = safetensors.numpy.load_file(path)
    state = model.state_dict()
    assert sorted(state) == sorted(stored)
    for name, array in state.items():
        assert array.tobytes() == stored[name].tobytes(), name
    return "loaded"


def test_2000_mutants_are_each_refused_or_loaded_as_the_file_says(tmp_path: Path) -> None:
    data = small_net().save(tmp_path / "original").read_bytes()
    path = tmp_path / "mutant.safetensors"
    outcomes: dict[tuple[str, str], int] = {}
    slowest, most = 0.0, 0
    for i, (kind, mutant) in enumerate(mutants(data, np.random.default_rng(11))):
        path.write_bytes(mutant)
        start = time.perf_counter()
        key = (kind, loads_as_the_file_says_or_refuses(path))
        slowest = max(slowest, time.perf_counter() - start)
        outcomes[key] = outcomes.get(key, 0) + 1
        if i % 10 == 0:  # the memory numpy and Python allocate for one load, on every tenth
            tracemalloc.start()
            with contextlib.suppress(ValueError):
                minnet.load(path)
            most = max(most, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    print(outcomes, f"slowest: {1000 * slowest:.1f} ms, most memory: {most / 2**20:.2f} MB")
    assert sum(outcomes.values()) > 2000
    assert outcomes[("mutated", "refused")] > 1000 and outcomes[("mutated", "loaded")] > 20
    assert slowest < 1.0  # 50 ms is the goal; room for a loaded machine
    assert most < 20 * 2**20 + len(data)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.sampled_from([0, 1, 3, 5, 10**6, 10**12, -1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["he", "glorot", "auto", "float32", "float64", "float128", "O", "x"]),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)
ARG_NAMES = ["in_features", "out_features", "num_features", "init", "dtype", "negative_slope", "p"]
LAYER_NAMES = [
    "Linear",
    "ReLU",
    "LeakyReLU",
    "BatchNorm1d",
    "LayerNorm",
    "Dropout",
    "Layer",
    "Evil",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(
        st.fixed_dictionaries(
            {
                "class": st.sampled_from(LAYER_NAMES),
                "args": st.dictionaries(st.sampled_from(ARG_NAMES), JSON_VALUES, max_size=3),
                "training": st.booleans(),
            }
        ),
        min_size=1,
        max_size=6,
    ),
    dtype=st.sampled_from([None, "float16", "float32", "float64"]),
)
def test_any_architecture_over_real_tensors_is_refused_or_holds_them(
    tmp_path_factory, layers, dtype
) -> None:
    tensors, meta = minnet.io.contents(small_net())
    path = tmp_path_factory.mktemp("spec") / "crafted.safetensors"
    crafted.write(
        path, tensors, with_spec(meta, {**spec_of(meta), "layers": layers, "dtype": dtype})
    )
    assert loads_as_the_file_says_or_refuses(path) in ("refused", "loaded")
