"""save then load gives the same model, bit for bit: weights, buffers, arguments, modes, dtypes;
and the file is a plain safetensors file that numpy and torch read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minnet
import minnet.io
from minnet import (
    BatchNorm1d,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)


def assert_same_model(loaded: Sequential, model: Sequential) -> None:
    """Same layers and arguments, loss, dtype, modes, and every array bit for bit."""
    assert str(loaded) == str(model)
    assert type(loaded.loss) is type(model.loss) and repr(loaded.loss) == repr(model.loss)
    assert loaded.dtype == model.dtype
    assert [layer.training for layer in loaded.layers] == [layer.training for layer in model.layers]
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(ours) == list(theirs)
    for name, array in ours.items():
        assert theirs[name].dtype == array.dtype, name
        assert theirs[name].tobytes() == array.tobytes(), name


def with_random_state(model: Sequential, seed: int = 0) -> Sequential:
    """Every parameter and float buffer set to random values, so that each one matters."""
    rng = np.random.default_rng(seed)
    for _, _, array in minnet.io.named_arrays(model):
        if array.dtype.kind == "f":
            array[...] = np.abs(rng.standard_normal(array.shape)) + 0.5
    return model


# -- random architectures of minnet's layers ----------------------------------------------------


@st.composite
def architectures(draw) -> Sequential:
    """A random chain of minnet's layers, loss, dtype and per-layer modes."""
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    width = draw(st.integers(1, 5))
    layers = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["linear", "bn", "ln", "relu", "leaky", "tanh", "drop"]))
        if kind == "linear":
            out = draw(st.integers(1, 5))
            init = draw(st.sampled_from(["he", "glorot"]))
            layers.append(Linear(width, out, init=init, rng=draw(st.integers(0, 99)), dtype=dtype))
            width = out
        elif kind == "bn":
            eps = draw(st.floats(1e-6, 1e-1))
            momentum = draw(st.floats(0.01, 1.0))
            layers.append(BatchNorm1d(width, eps, momentum, dtype=dtype))
        elif kind == "ln":
            layers.append(LayerNorm(width, draw(st.floats(1e-6, 1e-1)), dtype=dtype))
        elif kind == "leaky":
            layers.append(LeakyReLU(draw(st.floats(0.0, 1.0))))
        elif kind == "drop":
            layers.append(Dropout(draw(st.floats(0.0, 0.9)), seed=draw(st.integers(0, 9))))
        else:
            layers.append({"relu": ReLU, "tanh": Tanh}[kind]())
    final = draw(st.sampled_from(["none", "sigmoid", "softmax"]))
    if final == "sigmoid":
        layers.append(Sigmoid())
        loss = draw(st.sampled_from([BCELoss(), MSELoss()]))
    elif final == "softmax":
        layers.append(Softmax())
        loss = CrossEntropyLoss(label_smoothing=draw(st.floats(0.0, 0.5)))
    else:
        loss = draw(st.sampled_from([MSELoss(), BCEWithLogitsLoss()]))
    model = Sequential(layers, loss=loss, dtype=draw(st.sampled_from([None, dtype])))
    for layer in model.layers:
        layer.train(draw(st.booleans()))
    return with_random_state(model, draw(st.integers(0, 99)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=architectures())
def test_any_architecture_round_trips_bit_for_bit(tmp_path_factory, model) -> None:
    path = model.save(tmp_path_factory.mktemp("round") / "model")
    assert_same_model(minnet.load(path), model)


# -- one behaviour each -------------------------------------------------------------------------


def classifier(dtype) -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(
        [
            Linear(3, 6, rng=rng, dtype=dtype),
            BatchNorm1d(6, eps=1e-3, momentum=0.25, dtype=dtype),
            ReLU(),
            Linear(6, 4, rng=rng, dtype=dtype),
            Softmax(),
        ],
        loss=CrossEntropyLoss(label_smoothing=0.15),
    )


def test_a_trained_model_predicts_the_same_after_loading(tmp_path: Path) -> None:
    model = classifier(np.float64)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 4, 40)
    model.fit(X, y, epochs=3, batch_size=8, seed=0, progress=False)
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert_same_model(loaded, model)
    for net in (model, loaded):
        net.eval()
    assert loaded.forward(X).tobytes() == model.forward(X).tobytes()
    for net in (model, loaded):
        net.train()
    assert loaded.cost(X, y) == model.cost(X, y)  # batch statistics too


def test_a_float32_model_of_float64_layers_keeps_its_batch_norm(tmp_path: Path) -> None:
    """The model's dtype given to Sequential: the running statistics are stored (and come back)
    in float32, as a BatchNorm1d made in float32 keeps them."""
    model = Sequential(
        [Linear(3, 4, rng=0), BatchNorm1d(4), ReLU()], loss=MSELoss(), dtype="float32"
    )
    rng = np.random.default_rng(2)
    model.fit(rng.standard_normal((16, 3)), rng.standard_normal((16, 4)), epochs=2, progress=False)
    path = model.save(tmp_path / "model")
    loaded = minnet.load(path)
    stored = safetensors.numpy.load_file(path)
    assert {array.dtype for array in stored.values()} == {np.dtype(np.float32)}
    norm = loaded.layers[1]
    assert norm.running_mean.dtype == np.float32
    np.testing.assert_array_equal(norm.running_var, model.layers[1].running_var.astype(np.float32))
    assert minnet.load(loaded.save(tmp_path / "again")).state_dict().keys() == stored.keys()


def test_a_model_saved_in_eval_mode_comes_back_in_eval_mode(tmp_path: Path) -> None:
    model = classifier(np.float32).eval()
    model.layers[2].train()  # modes are per layer
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert [layer.training for layer in loaded.layers] == [False, False, True, False, False]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_each_dtype_is_stored_as_it_is(tmp_path: Path, dtype) -> None:
    model = with_random_state(classifier(dtype))
    path = model.save(tmp_path / "model")
    assert {a.dtype for a in safetensors.numpy.load_file(path).values()} == {np.dtype(dtype)}
    assert_same_model(minnet.load(path), model)


def test_a_model_without_parameters_round_trips(tmp_path: Path) -> None:
    model = Sequential([Tanh(), Sigmoid()])
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert_same_model(loaded, model) and loaded.dtype is None


def test_the_suffix_is_added_when_missing_and_the_path_returned(tmp_path: Path) -> None:
    model = classifier(np.float64)
    assert model.save(tmp_path / "a") == tmp_path / "a.safetensors"
    assert model.save(tmp_path / "b.safetensors") == tmp_path / "b.safetensors"
    assert model.save(str(tmp_path / "c.npz")) == tmp_path / "c.npz.safetensors"
    assert_same_model(minnet.load(tmp_path / "a"), model)
    assert_same_model(minnet.load(tmp_path / "c.npz"), model)


def test_the_same_model_gives_the_same_data_and_metadata(tmp_path: Path) -> None:
    """(safetensors keeps the metadata in a hash map: its keys' order in the header varies.)"""
    model = classifier(np.float64)
    first, second = model.save(tmp_path / "a").read_bytes(), model.save(tmp_path / "b").read_bytes()
    assert len(first) == len(second)
    (length,) = np.frombuffer(first[:8], "<u8")
    assert first[8 + int(length) :] == second[8 + int(length) :]
    opened = [
        safetensors.safe_open(tmp_path / n, "numpy") for n in ("a.safetensors", "b.safetensors")
    ]
    assert opened[0].metadata() == opened[1].metadata()


def test_the_metadata_holds_the_architecture_as_json(tmp_path: Path) -> None:
    model = classifier(np.float64)
    model.layers[1].eval()
    with safetensors.safe_open(model.save(tmp_path / "m"), framework="numpy") as file:
        metadata = file.metadata()
    assert metadata["format"] == "minnet.Sequential" and metadata["format_version"] == "3"
    spec = json.loads(metadata["architecture"])
    assert spec["dtype"] == "float64"
    assert spec["layers"][1] == {
        "class": "BatchNorm1d",
        "args": {"num_features": 6, "eps": 0.001, "momentum": 0.25, "dtype": "float64"},
        "training": False,
    }
    assert spec["loss"] == {"class": "CrossEntropyLoss", "args": {"label_smoothing": 0.15}}


def test_numpy_reads_the_weights_under_their_model_names(tmp_path: Path) -> None:
    model = with_random_state(classifier(np.float64))
    stored = safetensors.numpy.load_file(model.save(tmp_path / "model"))
    state = model.state_dict()
    assert sorted(stored) == sorted(state)
    for name, array in state.items():
        assert stored[name].tobytes() == array.tobytes()


def test_torch_reads_the_weights_into_the_module_to_torch_gives(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import safetensors.torch

    model = with_random_state(classifier(np.float64)).eval()
    tensors = safetensors.torch.load_file(model.save(tmp_path / "model"))
    module, _ = minnet.to_torch(model)
    for parameter in module.parameters():
        torch.nn.init.zeros_(parameter)
    torch_names = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
    state = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state[f"{index}.{torch_names.get(name, name)}"] = tensor
    module.load_state_dict(state)  # strict (torch fills in its batch count)
    X = np.random.default_rng(3).standard_normal((5, 3))
    with torch.no_grad():
        logits = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(logits, model.run(model.check_inputs(X)), rtol=1e-12, atol=1e-12)


# -- state_dict -----------------------------------------------------------------------------------


def test_state_dict_is_copies_in_model_order() -> None:
    model = classifier(np.float64)
    state = model.state_dict()
    assert list(state) == ["0.W", "0.b", "1.gamma", "1.beta", "1.running_mean", "1.running_var",
                           "3.W", "3.b"]  # fmt: skip
    state["0.W"][...] = 7
    assert not np.any(model.layers[0].W.value == 7)


def test_load_state_dict_copies_into_the_models_arrays() -> None:
    source = with_random_state(classifier(np.float64), seed=5)
    target = classifier(np.float64)
    weights = target.layers[0].W.value
    target.load_state_dict(source.state_dict())
    assert_same_model(target, source)
    assert target.layers[0].W.value is weights  # in place: the flat storage is kept


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("1.running_var"), r"missing \['1.running_var'\]"),
        (lambda s: s.update(extra=np.zeros(1)), r"unexpected \['extra'\]"),
        (
            lambda s: s.update({"0.W": np.zeros((3, 6))}),
            r"'0.W': expected float64 of shape \(6, 3\)",
        ),
        (lambda s: s.update({"0.b": s["0.b"].astype(np.float32)}), "got float32"),
        (lambda s: s.update({"0.b": [0.0] * 6}), "expected a numpy array"),
        (lambda s: s["0.W"].__setitem__((0, 0), np.inf), r"'0.W' holds 1 NaN or infinite"),
        (lambda s: s["1.running_mean"].fill(np.nan), r"'1.running_mean' holds 6 NaN"),
    ],
)
def test_load_state_dict_refuses_a_mismatch_and_changes_nothing(edit, match) -> None:
    model = classifier(np.float64)
    before = model.state_dict()
    state = with_random_state(classifier(np.float64), seed=6).state_dict()
    edit(state)
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    for name, array in model.state_dict().items():
        assert array.tobytes() == before[name].tobytes()


@settings(max_examples=40, deadline=None)
@given(
    in_features=st.integers(1, 40),
    out_features=st.integers(1, 40),
    init=st.sampled_from(["he", "glorot"]),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
)
def test_load_builds_a_linear_as_its_init_does_without_drawing(
    in_features, out_features, init, dtype
) -> None:
    args = {"in_features": in_features, "out_features": out_features, "init": init, "dtype": dtype}
    built, reference = minnet.io.linear_without_weights(args), Linear(**args, rng=0)
    assert vars(built).keys() == vars(reference).keys()
    assert built.arguments() == reference.arguments() and repr(built) == repr(reference)
    for (name, p), (name2, q) in zip(
        built.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert name == name2 and p.value.shape == q.value.shape and p.value.dtype == q.value.dtype
        assert p.grad.shape == q.grad.shape and p.grad.dtype == q.grad.dtype


@pytest.mark.parametrize(
    "args, match",
    [
        ({"in_features": 0, "out_features": 2}, "in_features must be a whole number >= 1"),
        ({"in_features": 2.5, "out_features": 2}, "in_features must be a whole number"),
        ({"out_features": 2}, "in_features must be a whole number, got None"),
        ({"in_features": 2, "out_features": 2, "init": "xavier"}, "init"),
    ],
)
def test_load_checks_a_linears_arguments_as_its_init_does(args, match) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        minnet.io.linear_without_weights(args)


def test_the_page_on_files_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    """docs/io.md: its python blocks run in order, each printing what the page shows."""
    pytest.importorskip("torch")
    from test_docs import ROOT, examples, matches

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for line, code, expected in examples((ROOT / "docs" / "io.md").read_text()):
        exec(compile(code, f"docs/io.md:{line}", "exec"), namespace)
        printed = capsys.readouterr().out
        if expected is not None:
            assert matches(expected, printed), (line, printed)
