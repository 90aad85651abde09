"""save/load of the layers with buffers and the new losses: round trips bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import minnet
from minnet import (
    BatchNorm1d,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    LayerNorm,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Softmax,
    Tanh,
)


def classifier(dtype) -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(
        [
            Linear(3, 6, rng=rng, dtype=dtype),
            BatchNorm1d(6, eps=1e-3, momentum=0.25, dtype=dtype),
            ReLU(),
            Linear(6, 5, rng=rng, dtype=dtype),
            LayerNorm(5, eps=1e-4, dtype=dtype),
            Tanh(),
            Linear(5, 4, rng=rng, dtype=dtype),
            Softmax(),
        ],
        loss=CrossEntropyLoss(label_smoothing=0.15),
    )


def regressor(loss) -> Sequential:
    rng = np.random.default_rng(1)
    return Sequential(
        [Linear(2, 4, rng=rng), BatchNorm1d(4), Tanh(), Linear(4, 3, rng=rng)], loss=loss
    )


def trained(model: Sequential, classes: int | None) -> Sequential:
    """A few steps, so that every parameter and running statistic is away from its start."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, model.in_features))
    if classes is not None:
        Y = rng.integers(0, classes, 40)
    elif isinstance(model.loss, BCEWithLogitsLoss):
        Y = (rng.random((40, model.out_features)) < 0.5).astype(float)
    else:
        Y = rng.standard_normal((40, model.out_features))
    model.fit(X, Y, epochs=3, batch_size=8, seed=0, progress=False)
    return model


CASES = {
    "softmax-bn-ln-float64": lambda: trained(classifier(np.float64), 4),
    "softmax-bn-ln-float32": lambda: trained(classifier(np.float32), 4),
    "mse": lambda: trained(regressor(MSELoss()), None),
    "bce-with-logits": lambda: trained(regressor(BCEWithLogitsLoss()), None),
}


@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_bit_for_bit_buffers_included(tmp_path: Path, case) -> None:
    model = CASES[case]()
    path = model.save(tmp_path / "model")
    loaded = minnet.load(path)

    assert str(loaded) == str(model)  # layers with their arguments, and the loss with its own
    assert type(loaded.loss) is type(model.loss)
    assert repr(loaded.loss) == repr(model.loss)
    for (name, p), (name2, q) in zip(
        model.named_parameters(), loaded.named_parameters(), strict=True
    ):
        assert name == name2 and q.value.dtype == p.value.dtype
        np.testing.assert_array_equal(q.value, p.value)
    norms = [(a, b) for a, b in zip(model.layers, loaded.layers, strict=True) if a is not b]
    for ours, theirs in norms:
        if isinstance(ours, BatchNorm1d):
            assert (ours.eps, ours.momentum) == (theirs.eps, theirs.momentum)
            for (name, array), (name2, array2) in zip(
                ours.named_buffers(), theirs.named_buffers(), strict=True
            ):
                assert name == name2 and array2.dtype == array.dtype
                assert array2.tobytes() == array.tobytes(), name  # bit for bit
                assert not np.array_equal(array, np.zeros_like(array))
                assert not np.array_equal(array, np.ones_like(array))
        if isinstance(ours, LayerNorm):
            assert ours.eps == theirs.eps

    X = np.random.default_rng(3).standard_normal((7, model.in_features)).astype(model.dtype)
    for net in (model, loaded):
        net.eval()  # running statistics: outputs independent of the batch
    assert loaded.forward(X).tobytes() == model.forward(X).tobytes()
    if model.loss.task == "multiclass":
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for net in (model, loaded):
        net.train()
    assert loaded.forward(X).tobytes() == model.forward(X).tobytes()  # batch statistics
    # and the loaded model trains on as the original does
    Y = model.predict(X) if model.loss.task == "multiclass" else None
    if Y is not None:
        assert loaded.cost(X, Y) == model.cost(X, Y)


def test_the_file_holds_the_buffers_and_the_loss_arguments(tmp_path: Path) -> None:
    model = CASES["softmax-bn-ln-float64"]()
    with safetensors.safe_open(model.save(tmp_path / "model"), framework="numpy") as file:
        spec = json.loads(file.metadata()["architecture"])
        names = set(file.keys())
    assert {"1.running_mean", "1.running_var", "1.gamma", "1.beta", "4.gamma"} <= names
    assert spec["layers"][1] == {
        "class": "BatchNorm1d",
        "args": {"num_features": 6, "eps": 0.001, "momentum": 0.25, "dtype": "float64"},
        "training": True,
    }
    assert spec["loss"] == {"class": "CrossEntropyLoss", "args": {"label_smoothing": 0.15}}


def test_a_file_missing_a_running_statistic_is_refused(tmp_path: Path) -> None:
    model = CASES["softmax-bn-ln-float64"]()
    path = model.save(tmp_path / "model")
    with safetensors.safe_open(path, framework="numpy") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys() if key != "1.running_var"}
    broken = tmp_path / "broken.safetensors"
    safetensors.numpy.save_file(tensors, broken, metadata=metadata)
    with pytest.raises(ValueError, match=r"missing tensor\(s\) \['1.running_var'\]"):
        minnet.load(broken)
