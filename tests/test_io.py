"""Saving and loading models: exact round trips, and refusals of every kind of bad file."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attrs import define, field

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
    model = leaky_tanh_net(rng)
    for _, p in model.named_parameters():
        p.value = p.value.astype(np.float32)
        p.grad = np.zeros_like(p.value)
    return model


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
    assert spec["loss"] == "BCELoss"
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


@define(eq=False)
class Scale(minnet.Layer):
    """A stand-in for a layer added to minnet.layers later: a parameter, a seed, a private field."""

    factor: float
    _offset: float = 0.0
    seed: np.random.Generator | int | None = field(default=None, converter=np.random.default_rng)
    gain: minnet.Parameter = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.gain = minnet.Parameter(self.seed.standard_normal(2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.factor * self.gain.value * x + self._offset


Scale.__module__ = minnet.layers.__name__


def test_layers_added_to_minnet_later_round_trip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(minnet.layers, "Scale", Scale, raising=False)
    model = minnet.Sequential([minnet.Linear(3, 2), Scale(1.5, offset=-0.25, seed=7)])
    path = minnet.io.save(model, tmp_path / "model")
    with np.load(path, allow_pickle=False) as contents:
        spec = json.loads(str(contents["architecture"]))
    assert spec["layers"][1] == {"class": "Scale", "args": {"factor": 1.5, "offset": -0.25}}

    loaded = minnet.io.load(path)
    assert (loaded.layers[1].factor, loaded.layers[1]._offset) == (1.5, -0.25)
    X = np.ones((4, 3))
    assert np.array_equal(loaded.forward(X), model.forward(X))


@define(eq=False)
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
    valid["format_version"] = np.array(2)
    refused(write(tmp_path, valid), "unsupported format version 2")
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


@pytest.mark.parametrize("extra", ["4.W", "notes"])
def test_refuses_unknown_array(tmp_path: Path, valid, extra: str) -> None:
    valid[extra] = np.zeros(2)
    refused(write(tmp_path, valid), rf"unknown array\(s\) \['{extra}'\]")


def test_refuses_parameter_of_wrong_shape(tmp_path: Path, valid) -> None:
    valid["0.W"] = valid["0.W"].T
    refused(write(tmp_path, valid), r"parameter '0.W': expected shape \(5, 3\), got \(3, 5\)")


def test_refuses_non_float_parameter(tmp_path: Path, valid) -> None:
    valid["0.b"] = np.zeros(5, dtype=np.int64)
    refused(write(tmp_path, valid), "parameter '0.b': expected a float array, got dtype int64")


@pytest.mark.parametrize(
    "name", ["Evil", "Layer", "Parameter", "sigmoid", "_as_rng", "__class__", "np", "Sequential"]
)
def test_refuses_unknown_layer_class(tmp_path: Path, valid, name: str) -> None:
    spec = spec_of(valid)
    spec["layers"][1]["class"] = name
    refused(write(tmp_path, valid, spec), f"layer 1: '{name}' is not a layer class")


@pytest.mark.parametrize("loss", ["MSELoss", "Sequential", "__import__"])
def test_refuses_unknown_loss(tmp_path: Path, valid, loss: str) -> None:
    spec = spec_of(valid)
    spec["loss"] = loss
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


@pytest.mark.parametrize(
    "spec, match",
    [
        ([LINEAR], "architecture must be"),
        ({"layers": [LINEAR]}, "architecture must be"),
        ({"layers": [], "loss": "BCELoss"}, "architecture must be"),
        ({"layers": LINEAR, "loss": "BCELoss"}, "architecture must be"),
        ({"layers": [LINEAR], "loss": None}, "architecture must be"),
        ({"layers": [LINEAR], "loss": "BCELoss", "code": "..."}, "architecture must be"),
        ({"layers": [LINEAR], "loss": "BCELoss", "dtype": "object"}, "architecture must be"),
        ({"layers": [LINEAR], "loss": "BCELoss", "dtype": 32}, "architecture must be"),
        ({"layers": ["Linear"], "loss": "BCELoss"}, "layer 0 must be"),
        ({"layers": [{"class": "ReLU"}], "loss": "BCELoss"}, "layer 0 must be"),
        ({"layers": [{"class": 1, "args": {}}], "loss": "BCELoss"}, "layer 0 must be"),
        ({"layers": [{"class": "ReLU", "args": [3]}], "loss": "BCELoss"}, "layer 0 must be"),
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
    refused(write(tmp_path, valid, spec), "the layers do not form a model: layers do not chain")
