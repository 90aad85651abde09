"""Saving and loading models: exact round trips, and refusals of every kind of bad file."""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crafted
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minnet
import minnet.io

# -- models -----------------------------------------------------------------------------------


def relu_net(rng: np.random.Generator) -> minnet.Sequential:
    layers = [minnet.Linear(3, 5, rng=rng), minnet.ReLU(), minnet.Linear(5, 1, rng=rng)]
    return minnet.Sequential([*layers, minnet.Sigmoid()])


def leaky_tanh_net(rng: np.random.Generator) -> minnet.Sequential:
    return minnet.Sequential(
        [
            minnet.Linear(3, 4, rng=rng),
            minnet.LeakyReLU(negative_slope=0.2),
            minnet.Linear(4, 4, rng=rng),
            minnet.Tanh(),
            minnet.Linear(4, 2, rng=rng),
        ]
    )


def float32_net(rng: np.random.Generator) -> minnet.Sequential:
    return minnet.Sequential(leaky_tanh_net(rng).layers, dtype=np.float32)


def no_parameters_net(rng: np.random.Generator) -> minnet.Sequential:
    return minnet.Sequential([minnet.Tanh(), minnet.Sigmoid()])


def with_random_biases(build: Callable[[np.random.Generator], minnet.Sequential]):
    """``build``, then random biases so that every stored array matters."""

    def builder(rng: np.random.Generator) -> minnet.Sequential:
        model = build(rng)
        for name, p in model.named_parameters():
            if name.endswith(".b"):
                p.value[...] = rng.standard_normal(p.shape)
        return model

    return builder


BUILDERS = [relu_net, leaky_tanh_net, float32_net, no_parameters_net]


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_round_trip_is_exact(tmp_path: Path, build) -> None:
    rng = np.random.default_rng(0)
    model = with_random_biases(build)(rng)
    loaded = minnet.io.load(minnet.io.save(model, tmp_path / "model.npz"))

    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in model.layers]
    assert type(loaded.loss) is type(model.loss)
    original, restored = dict(model.named_parameters()), dict(loaded.named_parameters())
    assert list(restored) == list(original)
    for name, p in original.items():
        q = restored[name]
        assert q.value.dtype == p.value.dtype, name
        assert np.array_equal(q.value, p.value), name
        assert q.grad.dtype == q.value.dtype and not q.grad.any(), name
        assert q.value is not p.value
    X = rng.standard_normal((7, 3))
    expected, got = model.forward(X), loaded.forward(X)
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)  # bit-identical


def test_float32_parameters_stay_float32(tmp_path: Path) -> None:
    model = float32_net(np.random.default_rng(1))
    loaded = minnet.io.load(minnet.io.save(model, tmp_path / "model"))
    assert {p.value.dtype for p in loaded.parameters()} == {np.dtype(np.float32)}


def test_non_default_arguments_survive(tmp_path: Path) -> None:
    model = leaky_tanh_net(np.random.default_rng(2))
    loaded = minnet.io.load(minnet.io.save(model, tmp_path / "model"))
    assert loaded.layers[1].negative_slope == 0.2
    assert isinstance(loaded.layers[3], minnet.Tanh)


def test_loaded_model_trains(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    loaded = minnet.io.load(minnet.io.save(relu_net(rng), tmp_path / "model"))
    X, Y = rng.standard_normal((6, 3)), (rng.random(6) < 0.5).astype(float)
    loaded.cost(X, Y)
    loaded.backward()
    assert all(p.grad.any() for p in loaded.parameters())


def test_path_without_suffix(tmp_path: Path) -> None:
    model = relu_net(np.random.default_rng(4))
    written = minnet.io.save(model, str(tmp_path / "model"))
    assert written == tmp_path / "model.npz" and written.is_file()
    assert not (tmp_path / "model").exists()
    X = np.ones((2, 3))
    for path in [str(tmp_path / "model"), tmp_path / "model", written, str(written)]:
        assert np.array_equal(minnet.io.load(path).forward(X), model.forward(X))


def test_file_holds_plain_arrays_and_json(tmp_path: Path) -> None:
    path = minnet.io.save(leaky_tanh_net(np.random.default_rng(5)), tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        arrays = {key: contents[key] for key in contents.files}
    assert set(arrays) == {
        "minnet_format",
        "format_version",
        "architecture",
        *("0.W", "0.b", "2.W", "2.b", "4.W", "4.b"),
    }
    assert arrays["architecture"].dtype.kind == "U"
    spec = json.loads(str(arrays["architecture"]))
    assert spec["loss"] == {"class": "BCELoss", "args": {}}
    assert spec["layers"][0] == {
        "class": "Linear",
        "args": {"in_features": 3, "out_features": 4, "init": "he", "dtype": "float64"},
    }
    assert spec["layers"][1] == {"class": "LeakyReLU", "args": {"negative_slope": 0.2}}
    assert spec["dtype"] == "float64"


def test_a_float32_model_comes_back_float32_in_flat_storage(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    layers = [minnet.Linear(3, 4, rng=rng), minnet.ReLU(), minnet.Linear(4, 1, rng=rng)]
    model = minnet.Sequential([*layers, minnet.Sigmoid()], dtype=np.float32)
    loaded = minnet.load(model.save(tmp_path / "f32"))
    assert loaded.dtype == np.float32
    assert minnet._fast.FlatStorage.find(loaded.parameters()) is not None
    X = rng.standard_normal((5, 3))
    assert np.array_equal(loaded.forward(X), model.forward(X))
    assert loaded.forward(X).dtype == np.float32


class Scale(minnet.Layer):
    """A stand-in for a layer added to minnet.layers later: a parameter, a seed, a default."""

    def __init__(self, factor: float, offset: float = 0.0, seed=None) -> None:
        self.factor, self.offset = factor, offset
        self.seed = np.random.default_rng(seed)
        self.gain = minnet.Parameter(self.seed.standard_normal(2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.factor * self.gain.value * x + self.offset


Scale.__module__ = minnet.layers.__name__


def test_layers_added_to_minnet_later_round_trip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(minnet.layers, "Scale", Scale, raising=False)
    model = minnet.Sequential([minnet.Linear(3, 2), Scale(1.5, offset=-0.25, seed=7)])
    path = minnet.io.save(model, tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        spec = json.loads(str(contents["architecture"]))
    assert spec["layers"][1] == {"class": "Scale", "args": {"factor": 1.5, "offset": -0.25}}

    loaded = minnet.io.load(path)
    assert (loaded.layers[1].factor, loaded.layers[1].offset) == (1.5, -0.25)
    X = np.ones((4, 3))
    assert np.array_equal(loaded.forward(X), model.forward(X))


class Doubler(minnet.Layer):
    """A layer from outside minnet.layers: it cannot be rebuilt by name, so it is not saved."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * x


def test_save_refuses_layers_from_outside_minnet(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(3, 2), Doubler()])
    with pytest.raises(ValueError, match=r"layer 1 \(Doubler\).*minnet\.layers"):
        minnet.io.save(model, tmp_path / "model")
    assert not (tmp_path / "model.npz").exists()


# -- refusals ---------------------------------------------------------------------------------


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, np.ndarray]:
    """The arrays of a valid file for ``relu_net``: Linear(3, 5), ReLU, Linear(5, 1), Sigmoid."""
    path = minnet.io.save(relu_net(np.random.default_rng(6)), tmp_path / "valid")
    with np.load(path, allow_pickle=False) as contents:
        return {key: contents[key] for key in contents.files}


def write(tmp_path: Path, arrays: dict[str, Any], spec: Any = None) -> Path:
    """An npz file of ``arrays``; ``spec`` (if given) replaces the architecture, as JSON."""
    if spec is not None:
        arrays = {**arrays, "architecture": np.array(json.dumps(spec))}
    path = tmp_path / "crafted.npz"
    np.savez(path, **arrays)
    return path


def spec_of(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(arrays["architecture"]))


def refused(path: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        minnet.io.load(path)
    assert str(path) in str(info.value)


def write_npy(path: Path) -> None:
    """A single ``.npy`` array (what ``np.save`` writes), under an ``.npz`` name."""
    with path.open("wb") as file:
        np.save(file, np.zeros(3))


@pytest.mark.parametrize(
    "writer",
    [
        lambda path: path.write_text("not a model"),
        lambda path: path.write_bytes(b""),
        lambda path: path.write_bytes(b"PK\x03\x04 truncated zip"),
        write_npy,
    ],
    ids=["text", "empty", "truncated_zip", "npy"],
)
def test_refuses_files_that_are_not_npz(tmp_path: Path, writer) -> None:
    path = tmp_path / "bad.npz"
    writer(path)
    refused(path, "not an .npz file")


def test_refuses_zip_member_that_is_not_an_array(tmp_path: Path, valid) -> None:
    path = write(tmp_path, valid)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "hello")
    refused(path, "entry 'notes.txt' is not a numpy array")


def test_refuses_npz_without_marker(tmp_path: Path, valid) -> None:
    del valid["minnet_format"]
    refused(write(tmp_path, valid), "not a minnet model file")
    refused(write(tmp_path, {"x": np.zeros(3)}), "not a minnet model file")


def test_refuses_wrong_marker(tmp_path: Path, valid) -> None:
    valid["minnet_format"] = np.array("something.Else")
    refused(write(tmp_path, valid), "not a minnet model file")


def test_refuses_unsupported_version(tmp_path: Path, valid) -> None:
    valid["format_version"] = np.array(3)
    refused(write(tmp_path, valid), "unsupported format version 3")
    valid["format_version"] = np.array("1")
    refused(write(tmp_path, valid), "no integer 'format_version'")


class Payload:
    """Unpickling this creates the directory ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("key", ["0.W", "architecture"])
def test_refuses_object_arrays_without_running_them(tmp_path: Path, valid, key: str) -> None:
    marker = tmp_path / "payload_ran"
    valid[key] = np.array([Payload(marker)], dtype=object)  # np.savez pickles it
    path = write(tmp_path, valid)

    refused(path, f"entry '{key}' cannot be read.*never pickled")
    assert not marker.exists()

    # The payload is live: unpickling the file (what load must never do) runs it.
    with np.load(path, allow_pickle=True) as contents:
        contents[key]
    assert marker.exists()


def test_refuses_missing_parameter(tmp_path: Path, valid) -> None:
    del valid["2.b"]
    refused(write(tmp_path, valid), r"missing parameter array\(s\) \['2.b'\]")


@pytest.mark.parametrize(
    "extra", ["4.W", "notes", "01.W", "1.W.x", "9" * 5000 + ".W"], ids=lambda name: name[:8]
)
def test_refuses_unknown_array(tmp_path: Path, valid, extra: str) -> None:
    valid[extra] = np.zeros(2)
    refused(write(tmp_path, valid), rf"unknown array\(s\) \['{extra[:10]}")


def test_refuses_parameter_of_wrong_shape(tmp_path: Path, valid) -> None:
    valid["0.W"] = valid["0.W"].T
    refused(write(tmp_path, valid), r"parameter '0.W': expected shape \(5, 3\), got \(3, 5\)")


def test_refuses_non_float_parameter(tmp_path: Path, valid) -> None:
    valid["0.b"] = np.zeros(5, dtype=np.int64)
    refused(write(tmp_path, valid), "parameter '0.b': expected dtype float64 .*, got int64")


@pytest.mark.parametrize(
    "name", ["Evil", "Layer", "Parameter", "sigmoid", "_as_rng", "__class__", "np", "Sequential"]
)
def test_refuses_unknown_layer_class(tmp_path: Path, valid, name: str) -> None:
    spec = spec_of(valid)
    spec["layers"][1]["class"] = name
    refused(write(tmp_path, valid, spec), f"layer 1: '{name}' is not a layer class")


@pytest.mark.parametrize("loss", ["HingeLoss", "Sequential", "__import__", "Loss"])
def test_refuses_unknown_loss(tmp_path: Path, valid, loss: str) -> None:
    spec = spec_of(valid)
    spec["loss"] = {"class": loss, "args": {}}
    refused(write(tmp_path, valid, spec), f"unknown loss '{loss}'")


@pytest.mark.parametrize(
    "architecture", [np.array('{"layers": [}'), np.array(""), np.array("[" * 100_000)]
)
def test_refuses_malformed_json(tmp_path: Path, valid, architecture) -> None:
    valid["architecture"] = architecture
    refused(write(tmp_path, valid), "not valid JSON")


@pytest.mark.parametrize("architecture", [None, np.array(3), np.array(["{}", "{}"])])
def test_refuses_architecture_that_is_not_text(tmp_path: Path, valid, architecture) -> None:
    if architecture is None:
        del valid["architecture"]
    else:
        valid["architecture"] = architecture
    refused(write(tmp_path, valid), "no 'architecture' entry holding a JSON text")


LINEAR = {"class": "Linear", "args": {"in_features": 3, "out_features": 5}}
BCE = {"class": "BCELoss", "args": {}}


@pytest.mark.parametrize(
    "spec, match",
    [
        ([LINEAR], "architecture must be"),
        ({"layers": [LINEAR]}, "architecture must be"),
        ({"layers": [], "loss": BCE}, "architecture must be"),
        ({"layers": LINEAR, "loss": BCE}, "architecture must be"),
        ({"layers": [LINEAR], "loss": None}, "the loss must be"),
        ({"layers": [LINEAR], "loss": BCE, "code": "..."}, "architecture must be"),
        ({"layers": [LINEAR], "loss": BCE, "dtype": "object"}, "architecture must be"),
        ({"layers": [LINEAR], "loss": BCE, "dtype": 32}, "architecture must be"),
        ({"layers": ["Linear"], "loss": BCE}, "layer 0 must be"),
        ({"layers": [{"class": "ReLU"}], "loss": BCE}, "layer 0 must be"),
        ({"layers": [{"class": 1, "args": {}}], "loss": BCE}, "layer 0 must be"),
        ({"layers": [{"class": "ReLU", "args": [3]}], "loss": BCE}, "layer 0 must be"),
        ({"layers": [LINEAR], "loss": "BCELoss"}, "the loss must be"),
        ({"layers": [LINEAR], "loss": {"class": "BCELoss"}}, "the loss must be"),
        ({"layers": [{"class": "ReLU", "args": {"x": {"a": 1}}}], "loss": BCE}, "argument 'x'"),
        ({"layers": [LINEAR], "loss": {"class": "BCELoss", "args": {"x": [[[[[1]]]]]}}}, "'x'"),
    ],
)
def test_refuses_wrong_spec_structure(tmp_path: Path, valid, spec, match: str) -> None:
    refused(write(tmp_path, valid, spec), match)


@pytest.mark.parametrize(
    "index, args",
    [
        (0, {"in_features": -3, "out_features": 5}),
        (0, {"in_features": 3}),
        (0, {"in_features": 3, "out_features": 5, "bias": False}),
        (0, {"in_features": 3, "out_features": 5, "dtype": "no-such-dtype"}),
        (1, {"training": False}),
        (1, {"negative_slope": 0.1}),
    ],
)
def test_refuses_arguments_the_class_rejects(tmp_path: Path, valid, index, args) -> None:
    spec = spec_of(valid)
    spec["layers"][index]["args"] = args
    refused(write(tmp_path, valid, spec), rf"layer {index} \(\w+\) rejects the arguments")


@pytest.mark.parametrize("slope", ["steep", -1.0])
def test_refuses_bad_leaky_relu_slope(tmp_path: Path, valid, slope) -> None:
    spec = spec_of(valid)
    spec["layers"][1] = {"class": "LeakyReLU", "args": {"negative_slope": slope}}
    refused(write(tmp_path, valid, spec), r"layer 1 \(LeakyReLU\) rejects the arguments")


def test_refuses_layers_that_do_not_chain(tmp_path: Path, valid) -> None:
    spec = spec_of(valid)
    spec["layers"][2]["args"]["in_features"] = 4
    valid["2.W"] = valid["2.W"][:, :4].copy()  # the arrays fit the layers, which do not chain
    refused(write(tmp_path, valid, spec), "the layers do not form a model: layers do not chain")


# -- issue 11: bad values, dtypes, buffers, losses --------------------------------------------


def small_net(rng: np.random.Generator) -> minnet.Sequential:
    """Linear(3, 4), LeakyReLU(0.2), Dropout(0.25), Linear(4, 1), Sigmoid; random biases."""
    layers = [
        minnet.Linear(3, 4, rng=rng),
        minnet.LeakyReLU(0.2),
        minnet.Dropout(0.25),
        minnet.Linear(4, 1, rng=rng),
        minnet.Sigmoid(),
    ]
    return with_random_biases(lambda rng: minnet.Sequential(layers))(rng)


def assert_same_model(loaded: minnet.Sequential, model: minnet.Sequential) -> None:
    """The same layers with the same arguments, loss and dtype; parameters bit for bit."""
    assert [minnet.io._layer_spec(i, layer) for i, layer in enumerate(loaded.layers)] == [
        minnet.io._layer_spec(i, layer) for i, layer in enumerate(model.layers)
    ]
    assert minnet.io._loss_spec(loaded.loss) == minnet.io._loss_spec(model.loss)
    assert loaded.dtype == model.dtype
    original, restored = dict(model.named_parameters()), dict(loaded.named_parameters())
    assert list(restored) == list(original)
    for name, p in original.items():
        q = restored[name]
        assert q.value.dtype == p.value.dtype and q.value.shape == p.value.shape, name
        assert q.value.tobytes() == p.value.tobytes(), name


def edit_architecture_text(path: Path, edit: Callable[[str], str]) -> Path:
    """Rewrite the file's architecture JSON text with ``edit`` (other entries unchanged)."""
    with np.load(path, allow_pickle=False) as contents:
        arrays = {key: contents[key] for key in contents.files}
    arrays["architecture"] = np.array(edit(str(arrays["architecture"])))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["0.W", "3.b"])
def test_refuses_non_finite_weights(tmp_path: Path, name: str, value: float) -> None:
    model = small_net(np.random.default_rng(0))
    path = model.save(tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        arrays = {key: contents[key] for key in contents.files}
    arrays[name].reshape(-1)[-1] = value
    np.savez(path, **arrays)
    refused(path, rf"parameter '{name}' holds 1 NaN or infinite values")


@pytest.mark.parametrize(
    "slope", ["Infinity", "-Infinity", "NaN", "1e999", "-1e400", "1" + "0" * 400]
)
def test_refuses_non_finite_arguments(tmp_path: Path, slope: str) -> None:
    path = small_net(np.random.default_rng(0)).save(tmp_path / "model")
    edit_architecture_text(
        path, lambda text: text.replace('"negative_slope": 0.2', f'"negative_slope": {slope}')
    )
    with pytest.raises(
        ValueError, match=r"not a finite|layer 1 \(LeakyReLU\).*(rejects|declare)"
    ) as info:
        minnet.io.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("p", [1.0, -0.1, 2.5, "half"])
def test_refuses_out_of_range_dropout(tmp_path: Path, p) -> None:
    path = small_net(np.random.default_rng(0)).save(tmp_path / "model")
    edit_architecture_text(path, lambda text: text.replace('"p": 0.25', f'"p": {json.dumps(p)}'))
    refused(path, r"layer 2 \(Dropout\) rejects the arguments")


def test_refuses_repeated_json_keys(tmp_path: Path) -> None:
    path = small_net(np.random.default_rng(0)).save(tmp_path / "model")
    edit_architecture_text(path, lambda text: text.replace('{"p": 0.25', '{"p": 0.5, "p": 0.25'))
    refused(path, "repeated keys")


@pytest.mark.parametrize("dtype", ["float32", ">f8", "float16", "int64", "complex128"])
def test_refuses_arrays_in_another_dtype_than_the_models(tmp_path: Path, valid, dtype) -> None:
    valid["2.W"] = valid["2.W"].astype(dtype)
    refused(write(tmp_path, valid), r"'2.W'.*(expected dtype float64|not a (plain )?number)")


def test_refuses_parameters_when_the_architecture_has_no_dtype(tmp_path: Path, valid) -> None:
    spec = spec_of(valid)
    spec["dtype"] = None
    refused(write(tmp_path, valid, spec), r"parameter '0.W': the architecture's dtype is null")


def test_reads_fortran_order_arrays(tmp_path: Path, valid) -> None:
    expected = valid["0.W"].copy()
    valid["0.W"] = np.asfortranarray(expected)  # np.savez writes it in Fortran order
    loaded = minnet.io.load(write(tmp_path, valid))
    assert np.array_equal(loaded.layers[0].W.value, expected)
    assert loaded.layers[0].W.value.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_round_trip_of_each_supported_dtype(tmp_path: Path, dtype) -> None:
    rng = np.random.default_rng(7)
    model = minnet.Sequential(small_net(rng).layers, dtype=dtype)
    assert_same_model(minnet.load(model.save(tmp_path / "model")), model)


def test_version_1_files_still_load(tmp_path: Path, valid) -> None:
    spec = spec_of(valid)
    spec["loss"] = "BCELoss"  # version 1 wrote the loss's bare name, and no model dtype
    del spec["dtype"]
    valid["format_version"] = np.array(1)
    loaded = minnet.io.load(write(tmp_path, valid, spec))
    assert isinstance(loaded.loss, minnet.BCELoss)
    assert np.array_equal(loaded.layers[0].W.value, valid["0.W"])
    assert loaded.dtype == np.float64


def test_same_model_same_bytes(tmp_path: Path) -> None:
    model = small_net(np.random.default_rng(8))
    first = model.save(tmp_path / "a").read_bytes()
    assert model.save(tmp_path / "b").read_bytes() == first


# -- save refuses what load would refuse, before writing anything -------------------------------


def refused_by_save(tmp_path: Path, model: minnet.Sequential, match: str) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(b"the previous model")
    with pytest.raises(ValueError, match=match):
        minnet.io.save(model, path)
    assert path.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_save_refuses_non_finite_weights(tmp_path: Path, value: float) -> None:
    model = small_net(np.random.default_rng(0))
    model.layers[3].W.value[0, 1] = value
    refused_by_save(tmp_path, model, r"parameter '3.W': 1 of its values are NaN or infinite")


def test_save_refuses_non_finite_arguments(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(3, 2), minnet.LeakyReLU()])
    model.layers[1].negative_slope = np.inf  # LeakyReLU(np.inf) itself is refused now
    refused_by_save(tmp_path, model, r"layer 1 \(LeakyReLU\).*'negative_slope' is inf")


def test_save_refuses_longdouble(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(3, 2)], dtype=np.longdouble)
    refused_by_save(tmp_path, model, "cannot save a model of dtype (float128|float96|float64)")


def test_save_refuses_mixed_dtypes(tmp_path: Path) -> None:
    model = small_net(np.random.default_rng(0))
    model.layers[0].W.value = model.layers[0].W.value.astype(np.float32)
    refused_by_save(tmp_path, model, r"mixed dtypes \['float32', 'float64'\]")
    model = minnet.Sequential([minnet.Linear(3, 2)])
    for p in model.parameters():
        p.value = p.value.astype(np.float32)
    refused_by_save(tmp_path, model, "model.dtype is float64 but its parameters are float32")


class OtherLoss(minnet.BCELoss):
    """A loss from outside minnet.losses."""


def test_save_refuses_a_loss_from_outside_minnet(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(3, 1)], loss=OtherLoss())
    refused_by_save(tmp_path, model, r"loss OtherLoss.*only minnet's own.*'BCELoss'")


def test_save_refuses_too_many_layers(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.ReLU() for _ in range(minnet.io.MAX_LAYERS + 1)])
    refused_by_save(tmp_path, model, f"{minnet.io.MAX_LAYERS + 1} layers")


# -- buffers and losses found by name -------------------------------------------------------------
class Normalize(minnet.Layer):
    """A stand-in for a layer with buffers (BatchNorm1d): a running mean and a step counter."""

    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        self.num_features, self.momentum = num_features, momentum
        self.scale = minnet.Parameter(np.ones(self.num_features))
        self.running_mean = np.zeros(self.num_features)
        self.steps = np.zeros((), dtype=np.int64)

    def named_buffers(self):
        yield "running_mean", self.running_mean
        yield "steps", self.steps

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.running_mean) * self.scale.value


Normalize.__module__ = minnet.layers.__name__


@pytest.fixture
def normalize_net(monkeypatch) -> minnet.Sequential:
    monkeypatch.setattr(minnet.layers, "Normalize", Normalize, raising=False)
    rng = np.random.default_rng(9)
    model = minnet.Sequential([minnet.Linear(3, 4, rng=rng), Normalize(4, momentum=0.3)])
    model.layers[1].running_mean[...] = rng.standard_normal(4)
    model.layers[1].steps[...] = 12
    model.layers[1].scale.value[...] = rng.standard_normal(4)
    return model


def test_buffers_round_trip(tmp_path: Path, normalize_net) -> None:
    path = normalize_net.save(tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        assert contents["1.steps"].dtype == np.int64 and contents["1.steps"] == 12
        spec = json.loads(str(contents["architecture"]))
    assert spec["layers"][1] == {"class": "Normalize", "args": {"num_features": 4, "momentum": 0.3}}

    loaded = minnet.load(path)
    assert_same_model(loaded, normalize_net)
    layer = loaded.layers[1]
    assert np.array_equal(layer.running_mean, normalize_net.layers[1].running_mean)
    assert layer.steps == 12 and layer.steps.dtype == np.int64
    X = np.ones((2, 3))
    assert np.array_equal(loaded.forward(X), normalize_net.forward(X))


def test_refuses_missing_or_wrong_buffers(tmp_path: Path, normalize_net) -> None:
    path = normalize_net.save(tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        arrays = {key: contents[key] for key in contents.files}
    for edit, match in [
        (lambda a: a.pop("1.running_mean"), r"missing buffer array\(s\) \['1.running_mean'\]"),
        (lambda a: a.update({"1.steps": np.zeros(2, np.int64)}), r"buffer '1.steps': expected sh"),
        (lambda a: a.update({"1.steps": np.array(1.5)}), r"'1.steps': expected int64 of shape"),
        (lambda a: a["1.running_mean"].fill(np.nan), r"buffer '1.running_mean' holds 4 NaN"),
    ]:
        changed = {key: value.copy() for key, value in arrays.items()}
        edit(changed)
        refused(write(tmp_path, changed), match)


def test_save_refuses_non_finite_buffers(tmp_path: Path, normalize_net) -> None:
    normalize_net.layers[1].running_mean[0] = np.inf
    refused_by_save(tmp_path, normalize_net, r"buffer '1.running_mean': 1 of its values are NaN")


class WeightedLoss(minnet.BCELoss):
    """A stand-in for a loss added to minnet.losses later, with an argument."""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight


WeightedLoss.__module__ = minnet.losses.__name__


def test_losses_are_found_in_minnet_losses(tmp_path: Path, monkeypatch) -> None:
    found = minnet.io.loss_classes()
    assert found["BCELoss"] is minnet.BCELoss and "Loss" not in found
    monkeypatch.setattr(minnet.losses, "WeightedLoss", WeightedLoss, raising=False)
    monkeypatch.setattr(minnet.losses, "_Private", WeightedLoss, raising=False)
    monkeypatch.setattr(minnet.losses, "np", np)  # a module: not a loss
    assert minnet.io.loss_classes() == {**found, "WeightedLoss": WeightedLoss}

    model = minnet.Sequential([minnet.Linear(3, 1)], loss=WeightedLoss(weight=0.5))
    path = model.save(tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        spec = json.loads(str(contents["architecture"]))
    assert spec["loss"] == {"class": "WeightedLoss", "args": {"weight": 0.5}}
    loaded = minnet.load(path)
    assert type(loaded.loss) is WeightedLoss and loaded.loss.weight == 0.5

    edit_architecture_text(path, lambda text: text.replace('"weight": 0.5', '"weight": "x"'))
    minnet.load(path)  # attrs does not check types: the loss takes any weight
    edit_architecture_text(path, lambda text: text.replace('"weight": "x"', '"wait": 1'))
    refused(path, "the loss WeightedLoss rejects the arguments")


# -- malformed zips: one-field edits and a seeded fuzz --------------------------------------------


def zip_offsets(data: bytes) -> tuple[list[int], list[int], int]:
    """Offsets of the local headers, of the central-directory entries and of the end record."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = [info.header_offset for info in archive.infolist()]
        position = archive.start_dir
    central = []
    while data[position : position + 4] == b"PK\x01\x02":
        central.append(position)
        name, extra, comment = struct.unpack_from("<3H", data, position + 28)
        position += 46 + name + extra + comment
    return local, central, data.rindex(b"PK\x05\x06")


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def set_bits(data: bytes, offset: int, bits: int) -> bytes:
    return patch(data, offset, "<H", struct.unpack_from("<H", data, offset)[0] | bits)


# (name, edit of the file's bytes, what the error must say); entry 3 is "0.W".
ZIP_EDITS = [
    ("encrypted_flag", lambda d, lo, cd, end: set_bits(d, cd[3] + 8, 0x1), "is encrypted"),
    ("strong_encryption", lambda d, lo, cd, end: set_bits(d, cd[3] + 8, 0x40), "zip features"),
    ("method_99", lambda d, lo, cd, end: patch(d, cd[3] + 10, "<H", 99), "zip method 99"),
    ("method_deflate", lambda d, lo, cd, end: patch(d, cd[3] + 10, "<H", 8), "zip method 8"),
    ("bad_crc", lambda d, lo, cd, end: patch(d, cd[3] + 16, "<L", 1234), "Bad CRC-32"),
    ("size_minus_1", lambda d, lo, cd, end: patch(d, cd[3] + 24, "<L", 283), "uncompressed"),
    (
        "both_sizes_minus_8",
        lambda d, lo, cd, end: patch(patch(d, cd[3] + 20, "<L", 276), cd[3] + 24, "<L", 276),
        "CRC",
    ),
    (
        "sizes_huge",
        lambda d, lo, cd, end: patch(patch(d, cd[3] + 20, "<L", 2**31), cd[3] + 24, "<L", 2**31),
        "past the end",
    ),
    (
        "sizes_overlap",  # within the file, but the entries' sizes add up to more than it
        lambda d, lo, cd, end: patch(
            patch(d, cd[3] + 20, "<L", len(d) - lo[3] - 200), cd[3] + 24, "<L", len(d) - lo[3] - 200
        ),
        "add up to",
    ),
    (
        "entry_offset_plus_1",
        lambda d, lo, cd, end: patch(d, cd[3] + 42, "<L", lo[3] + 1),
        "cannot load",
    ),
    ("entry_offset_huge", lambda d, lo, cd, end: patch(d, cd[3] + 42, "<L", 2**31), "past"),
    (
        "name_changed",
        lambda d, lo, cd, end: d[: cd[3] + 46] + b"1" + d[cd[3] + 47 :],
        "cannot load",
    ),
    ("name_length_long", lambda d, lo, cd, end: patch(d, cd[3] + 28, "<H", 300), "cannot load"),
    ("local_name_length", lambda d, lo, cd, end: patch(d, lo[3] + 26, "<H", 60000), "cannot load"),
    ("local_extra_length", lambda d, lo, cd, end: patch(d, lo[3] + 28, "<H", 60000), "cannot load"),
    ("local_patched_flag", lambda d, lo, cd, end: set_bits(d, lo[3] + 6, 0x20), None),
    (
        "directory_offset_plus_1",
        lambda d, lo, cd, end: patch(d, end + 16, "<L", cd[0] + 1),
        "cannot load",
    ),
    (
        "directory_offset_huge",
        lambda d, lo, cd, end: patch(d, end + 16, "<L", 2**32 - 1),
        "cannot load",
    ),
    (
        "directory_size_huge",
        lambda d, lo, cd, end: patch(d, end + 12, "<L", 2**32 - 1),
        "cannot load",
    ),
    ("entry_count_plus_1", lambda d, lo, cd, end: patch(d, end + 10, "<H", len(cd) + 1), None),
    ("comment_length", lambda d, lo, cd, end: patch(d, end + 20, "<H", 1000), None),
    ("utf8_name_flag", lambda d, lo, cd, end: set_bits(d, cd[3] + 8, 0x800), None),
    ("local_encrypted_flag", lambda d, lo, cd, end: set_bits(d, lo[3] + 6, 0x1), None),
    ("local_method_99", lambda d, lo, cd, end: patch(d, lo[3] + 8, "<H", 99), None),
]


@pytest.fixture
def model_file(tmp_path: Path) -> tuple[minnet.Sequential, bytes]:
    model = small_net(np.random.default_rng(10))
    return model, model.save(tmp_path / "original").read_bytes()


def loads_exactly_or_refuses(path: Path, model: minnet.Sequential) -> str:
    """``"refused"`` (a ValueError naming the file) or ``"loaded"`` (the very same model)."""
    try:
        loaded = minnet.io.load(path)
    except ValueError as err:
        assert str(path) in str(err), err
        return "refused"
    assert_same_model(loaded, model)
    return "loaded"


@pytest.mark.parametrize("name, edit, match", ZIP_EDITS, ids=[e[0] for e in ZIP_EDITS])
def test_zip_edits_give_value_errors(tmp_path: Path, model_file, name, edit, match) -> None:
    model, data = model_file
    path = tmp_path / "edited.npz"
    path.write_bytes(edit(data, *zip_offsets(data)))
    if match is None:  # fields the zip reader ignores: the model loads, unchanged
        assert loads_exactly_or_refuses(path, model) == "loaded"
    else:
        refused(path, match)


def mutants(data: bytes, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    """Seeded mutations of a file: byte changes anywhere and in the zip's own records,
    truncations, and bytes appended."""
    local, central, end = zip_offsets(data)
    records = [o + k for o in local for k in range(30)] + [
        o + k for o in [*central, end] for k in range(46)
    ]
    records = [o for o in records if o < len(data)]
    for i in range(1500):
        out = bytearray(data)
        places = rng.choice(records, 1 + i % 3) if i % 2 else rng.integers(0, len(data), 1 + i % 4)
        for place in places:
            out[place] = (out[place] + rng.integers(1, 256)) % 256  # a different byte
        yield "mutated", bytes(out)
    for length in range(0, len(data), 5):
        yield "truncated", data[:length]
    for extra in [b"\0", b"PK\x05\x06" + bytes(18), data]:
        yield "appended", data + extra


def test_fuzz_every_mutant_is_refused_or_loads_exactly(tmp_path: Path, model_file) -> None:
    model, data = model_file
    path = tmp_path / "mutant.npz"
    outcomes: dict[tuple[str, str], int] = {}
    for kind, mutant in mutants(data, np.random.default_rng(11)):
        path.write_bytes(mutant)
        key = (kind, loads_exactly_or_refuses(path, model))
        outcomes[key] = outcomes.get(key, 0) + 1
    print(outcomes)
    assert sum(outcomes.values()) > 2000
    assert outcomes[("mutated", "refused")] > 1000 and outcomes[("mutated", "loaded")] > 100


@settings(max_examples=60)
@given(st.data())
def test_fuzz_with_hypothesis(tmp_path_factory, data) -> None:
    model = small_net(np.random.default_rng(12))
    folder = tmp_path_factory.mktemp("hypothesis")
    original = bytearray(model.save(folder / "original").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(original) - 1))
        original[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    path = folder / "mutant.npz"
    path.write_bytes(bytes(original[:cut]))
    loads_exactly_or_refuses(path, model)


# -- files that declare far more than they hold ----------------------------------------------

ROOT = Path(minnet.__file__).resolve().parent.parent  # this checkout, for child processes


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("huge")
    return {name: make(folder / f"{name}.npz") for name, make in crafted.HUGE.items()}


HUGE_MESSAGES = {
    "linear_1e12_no_arrays": r"layer 0 \(Linear\).*declare 1,000,000,000,000 entries.*hold 0",
    "linear_1e12_small_arrays": r"declare 1,000,000,000,000 entries.*hold 1,000,001",
    "npy_header_1e12_as_0.W": r"'0.W' declares shape \(1000000, 1000000\).*holds 0 bytes",
    "npy_header_1e12_extra": r"unknown array\(s\) \['extra'\]",
    "zeros_1GiB_deflated": r"'zeros.npy' is compressed",
    "architecture_2e8_spaces_deflated": r"'architecture.npy' is compressed",
    "architecture_2e8_chars_declared": r"'architecture' declares shape \(\) of <U200000100",
    "relu_64000_layers": r"declares 1,984,069 characters; minnet reads at most 1,000,000",
}


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
        assert row["ms"] < 1000 and row["traced_mb"] < 50, (name, row)
    print(f"peak resident memory over all: +{measured['rss_mb']:.1f} MB")
    assert measured["rss_mb"] < 50


def test_layer_count_limit(tmp_path: Path) -> None:
    relu = {"class": "ReLU", "args": {}}
    for count in [minnet.io.MAX_LAYERS, minnet.io.MAX_LAYERS + 1]:
        path = tmp_path / f"{count}.npz"
        crafted.write_zip(
            path,
            {
                **crafted.header_entries(),
                "architecture.npy": crafted.architecture([relu] * count, None),
            },
        )
        if count == minnet.io.MAX_LAYERS:
            assert len(minnet.load(path).layers) == count
        else:
            refused(path, f"the architecture has {count:,} layers; minnet reads at most 1,000")


def test_architecture_text_limit(tmp_path: Path, valid) -> None:
    text = str(valid["architecture"])
    limit = minnet.io.MAX_ARCHITECTURE_CHARS
    valid["architecture"] = np.array(text + " " * (limit - len(text)))
    minnet.io.load(write(tmp_path, valid))  # at the limit: loads
    valid["architecture"] = np.array(text + " " * (limit + 1 - len(text)))
    refused(write(tmp_path, valid), f"declares {limit + 1:,} characters")


def test_arrays_per_layer_limit(tmp_path: Path, valid) -> None:
    for i in range(minnet.io.MAX_ARRAYS_PER_LAYER + 1):
        valid[f"1.extra{i}"] = np.zeros(1)
    refused(write(tmp_path, valid), "layer 1 has 65 arrays in the file; minnet reads at most 64")


def test_refuses_compressed_files(tmp_path: Path, valid) -> None:
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **valid)
    refused(path, r"entry '.*' is compressed \(zip method 8\)")


def test_refuses_repeated_entries(tmp_path: Path, valid) -> None:
    path = write(tmp_path, valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("0.W.npy", crafted.npy(valid["0.W"]))
    refused(path, "entry '0.W.npy' appears twice")


@pytest.mark.parametrize(
    "header, match",
    [
        (b"\x93NUMPY\x03\x00" + bytes(4), "not an .npy version 1 or 2"),
        (b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little"), "declares a header of"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    ", "no valid .npy header"),
        (b"NOTNUMPY", "not an .npy"),
        (crafted.npy_header((-1, 5), "<f8"), "invalid shape"),
        (crafted.npy_header((5, 3), "V8"), "not a plain number"),
        (crafted.npy_header((5, 3), "<f16") + bytes(240), "not a number type"),
    ],
)
def test_refuses_bad_npy_headers(tmp_path: Path, valid, header: bytes, match: str) -> None:
    path = write(tmp_path, {k: v for k, v in valid.items() if k != "0.W"})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("0.W.npy", header)
    refused(path, match)


# -- OS errors on the path stay OSErrors ---------------------------------------------------------


def test_os_errors_on_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        minnet.load(tmp_path / "missing")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        minnet.load(tmp_path / "folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_permission_error(tmp_path: Path) -> None:
    path = relu_net(np.random.default_rng(0)).save(tmp_path / "model")
    path.chmod(0)
    with pytest.raises(PermissionError):
        minnet.load(path)


# -- atomic saves -------------------------------------------------------------------------------


@pytest.fixture
def old_file(tmp_path: Path) -> tuple[Path, bytes]:
    """A model file already at ``tmp_path / "model.npz"``, and its bytes."""
    path = relu_net(np.random.default_rng(13)).save(tmp_path / "model")
    return path, path.read_bytes()


def assert_untouched(old_file: tuple[Path, bytes]) -> None:
    path, data = old_file
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.npz"]  # no temporary left
    minnet.load(path)


def big_net() -> minnet.Sequential:
    return minnet.Sequential([minnet.Linear(100, 100, rng=0), minnet.Sigmoid()])


FILE_SIZE_LIMIT = """
import resource, signal, sys
import minnet
model = minnet.Sequential([minnet.Linear(100, 100, rng=0), minnet.Sigmoid()])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
try:
    model.save(sys.argv[1])
except OSError as err:
    print("OSError", err.errno)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_save_that_hits_a_file_size_limit_leaves_the_old_file(old_file) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-c", FILE_SIZE_LIMIT, str(old_file[0])]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    assert output.stdout.split() == ["OSError", str(errno.EFBIG)]
    assert_untouched(old_file)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_a_save_that_fails_midway_leaves_the_old_file(old_file, monkeypatch, error) -> None:
    write_npz = minnet.io._write_npz

    def fail_midway(file, entries) -> None:
        write_npz(file, dict(list(entries.items())[:3]))  # part of the file...
        raise error  # ...then the disk is full, or the user presses Ctrl-C

    monkeypatch.setattr(minnet.io, "_write_npz", fail_midway)
    with pytest.raises(type(error)):
        big_net().save(old_file[0])
    assert_untouched(old_file)


def test_a_failed_rename_leaves_the_old_file(old_file, monkeypatch) -> None:
    def refuse(source, target) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(minnet.io.os, "replace", refuse)
    with pytest.raises(PermissionError):
        big_net().save(old_file[0])
    assert_untouched(old_file)


def test_save_into_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        big_net().save(tmp_path / "missing" / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_saved_file_has_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        path = big_net().save(tmp_path / "model")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640
    path.chmod(0o600)
    big_net().save(path)  # replacing a file keeps its permissions
    assert path.stat().st_mode & 0o777 == 0o600


def test_save_through_a_symbolic_link_replaces_its_target(tmp_path: Path, old_file) -> None:
    link = tmp_path / "link.npz"
    link.symlink_to(old_file[0])
    model = big_net()
    model.save(link)
    assert link.is_symlink()
    assert_same_model(minnet.load(old_file[0]), model)


def test_load_of_a_real_model_peaks_near_twice_its_weights(tmp_path: Path) -> None:
    """values + gradients is 2x; the issue measured 5x before. Asserted below 3.5x."""
    rng = np.random.default_rng(14)
    model = minnet.Sequential(
        [minnet.Linear(512, 1024, rng=rng), minnet.ReLU(), minnet.Linear(1024, 1, rng=rng)]
    )
    path = model.save(tmp_path / "model")
    weights_mb = sum(p.value.nbytes for p in model.parameters()) / 2**20
    code = MEASURE.split("def refuse")[0] + (
        "before = peak_mb()\nmodel = minnet.load(sys.argv[1])\nprint(peak_mb() - before)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", code, str(path)]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    ratio = float(output.stdout) / weights_mb
    print(f"load peak: {ratio:.2f}x the weights ({weights_mb:.1f} MB)")
    assert ratio < 3.5


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
ARG_NAMES = ["in_features", "out_features", "init", "dtype", "negative_slope", "p", "seed", "rng"]
LAYER_NAMES = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout", "Layer", "Evil"]


@functools.cache
def relu_net_entries() -> dict[str, bytes]:
    return crafted.model_entries(relu_net(np.random.default_rng(15)))


@settings(max_examples=80)
@given(
    layers=st.lists(
        st.fixed_dictionaries(
            {
                "class": st.sampled_from(LAYER_NAMES),
                "args": st.dictionaries(st.sampled_from(ARG_NAMES), JSON_VALUES, max_size=3),
            }
        ),
        min_size=1,
        max_size=5,
    ),
    dtype=st.sampled_from([None, "float16", "float32", "float64"]),
)
def test_fuzz_crafted_architectures(tmp_path_factory, layers, dtype) -> None:
    """Any architecture, with the arrays of a valid Linear(3, 5) ... Linear(5, 1) net: a
    ValueError naming the file, or a model whose parameters are the stored arrays."""
    entries = dict(relu_net_entries())
    entries["architecture.npy"] = crafted.architecture(layers, dtype)
    path = crafted.write_zip(tmp_path_factory.mktemp("spec") / "crafted.npz", entries)
    try:
        model = minnet.io.load(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    for name, p in model.named_parameters():
        stored = np.load(io.BytesIO(entries[f"{name}.npy"]))
        assert p.value.tobytes() == stored.tobytes()


def test_docs_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    """docs/io.md: its python block runs and prints what the page shows."""
    text = (ROOT / "docs" / "io.md").read_text()
    code = text.split("```python\n")[1].split("```")[0]
    expected = text.split("```text\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/io.md", "exec"), {})
    assert capsys.readouterr().out == expected
