"""Layers of your own in model files: minnet.register_layer, and the refusals around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import minnet
import minnet.io
from minnet import Layer, Linear, Parameter, Sequential


@minnet.register_layer
class Affine(Layer):
    """``y = x * scale + shift`` per feature, with a count of the batches seen (an int buffer)
    and a float buffer; ``init`` draws the scale at random, as a user's layer would."""

    def __init__(self, features: int, init_scale: float = 1.0, *, seed=None, tag="affine") -> None:
        self.features, self.init_scale, self.tag = features, init_scale, tag
        rng = np.random.default_rng(seed)
        self.scale = Parameter(init_scale * rng.standard_normal(features))
        self.shift = Parameter(np.zeros(features))
        self.batches = np.zeros((), np.int64)
        self.mean_seen = np.zeros(features)

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        yield "batches", self.batches
        yield "mean_seen", self.mean_seen

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        if self.training:
            self.batches += 1
            self.mean_seen[...] = x.mean(axis=0)
        return x * self.scale.value + self.shift.value

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.scale.grad += (grad_output * self.x).sum(axis=0)
        self.shift.grad += grad_output.sum(axis=0)
        return grad_output * self.scale.value


class Unregistered(Layer):
    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output


def custom_model() -> Sequential:
    model = Sequential(
        [Linear(2, 3, rng=0), Affine(3, 0.5, seed=1, tag="mine"), Linear(3, 1, rng=2)],
        loss=minnet.MSELoss(),
    )
    rng = np.random.default_rng(3)
    model.fit(rng.standard_normal((12, 2)), rng.standard_normal(12), epochs=2, progress=False)
    return model


def test_a_registered_layer_round_trips_with_its_arguments_and_buffers(tmp_path: Path) -> None:
    model = custom_model()
    model.layers[1].eval()
    loaded = minnet.load(model.save(tmp_path / "model"))
    layer = loaded.layers[1]
    assert type(layer) is Affine and (layer.features, layer.init_scale, layer.tag) == (
        3,
        0.5,
        "mine",
    )
    assert not layer.training
    assert layer.batches.dtype == np.int64 and int(layer.batches) == 2
    for name, array in model.state_dict().items():
        assert loaded.state_dict()[name].tobytes() == array.tobytes(), name


def test_register_layer_works_as_a_call_and_returns_the_class() -> None:
    class Doubling(Layer):
        def forward(self, x):
            return 2 * x

    assert minnet.register_layer(Doubling) is Doubling
    assert minnet.io.layer_registry()["Doubling"] is Doubling


def test_saving_an_unregistered_layer_says_how_to_register_it(tmp_path: Path) -> None:
    model = Sequential([Linear(2, 2, rng=0), Unregistered()])
    with pytest.raises(ValueError, match=r"minnet.register_layer\(Unregistered\)"):
        model.save(tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_loading_a_class_not_registered_in_this_process_names_it(tmp_path, monkeypatch) -> None:
    path = custom_model().save(tmp_path / "model")
    monkeypatch.delitem(
        minnet.io.registry._REGISTERED, "Affine"
    )  # a process that never registered it
    with pytest.raises(ValueError, match=r"class 'Affine' is not registered in this process"):
        minnet.load(path)


def test_a_name_taken_by_minnet_or_another_class_is_refused() -> None:
    class Linear(Layer):  # noqa: F811 - the clash is the point
        pass

    with pytest.raises(ValueError, match="'Linear' is minnet's own layer"):
        minnet.register_layer(Linear)
    other = type("Affine", (Layer,), {"__module__": "somewhere.else"})
    with pytest.raises(ValueError, match="the name 'Affine' is taken by"):
        minnet.register_layer(other)


def test_a_new_definition_of_the_same_class_replaces_it() -> None:
    """A re-run notebook cell defines the class again, with the same module and name."""
    again = type("Affine", (Affine,), {"__module__": Affine.__module__, "__qualname__": "Affine"})
    try:
        assert minnet.register_layer(again) is again
        assert minnet.io.layer_registry()["Affine"] is again
    finally:
        minnet.register_layer(Affine)


@pytest.mark.parametrize("thing", [Layer, int, "Affine", Affine(2)])
def test_register_layer_takes_only_layer_subclasses(thing) -> None:
    with pytest.raises(TypeError, match="register_layer takes a subclass of minnet.Layer"):
        minnet.register_layer(thing)


def test_an_argument_without_json_form_or_default_is_refused_at_save(tmp_path: Path) -> None:
    @minnet.register_layer
    class Masked(Layer):
        def __init__(self, mask: np.ndarray) -> None:
            self.mask = mask

        def forward(self, x):
            return x * self.mask

    with pytest.raises(ValueError, match=r"argument 'mask' is a ndarray, which has no JSON form"):
        Sequential([Masked(np.ones(2))]).save(tmp_path / "model")


def test_a_registered_layer_whose_arguments_lie_about_its_size_is_not_built(tmp_path: Path) -> None:
    """The file says Affine(10**8) over the tensors of an Affine(3): refused before building."""
    model = custom_model()
    tensors, meta = minnet.io.contents(model)
    meta["architecture"] = meta["architecture"].replace('"features": 3', '"features": 100000000')
    import safetensors.numpy

    path = tmp_path / "lying.safetensors"
    safetensors.numpy.save_file(tensors, path, metadata=meta)
    with pytest.raises(ValueError, match=r"layer 1 \(Affine\).*declare more than 4,096 entries"):
        minnet.load(path)


def test_an_integer_seed_is_not_taken_for_a_size(tmp_path: Path) -> None:
    @minnet.register_layer
    class Noisy(Layer):
        def __init__(self, features: int, seed: int = 0) -> None:
            self.features, self.seed = features, seed
            self.w = Parameter(np.random.default_rng(seed).standard_normal(features))

        def forward(self, x):
            return x * self.w.value

    model = Sequential([Noisy(3, seed=123_456_789)], loss=minnet.MSELoss())
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert loaded.layers[0].seed == 123_456_789
    assert loaded.layers[0].w.value.tobytes() == model.layers[0].w.value.tobytes()
