"""save refuses, before writing anything, a model that load would refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import minnet
from minnet import BCELoss, LeakyReLU, Linear, ReLU, Sequential


class OtherLoss(BCELoss):
    """A loss of the user's: load rebuilds only minnet's losses by name."""


def nan_weight() -> Sequential:
    model = Sequential([Linear(2, 2, rng=0)])
    model.layers[0].b.value[1] = np.inf
    return model


def nan_buffer() -> Sequential:
    model = Sequential([Linear(2, 2, rng=0), minnet.BatchNorm1d(2)])
    model.layers[1].running_var[0] = np.nan
    return model


def infinite_slope() -> Sequential:
    layer = LeakyReLU(0.1)
    layer.negative_slope = float("inf")
    return Sequential([Linear(2, 2, rng=0), layer])


def mixed_dtypes() -> Sequential:
    model = Sequential([Linear(2, 2, rng=0), Linear(2, 1, rng=1)])
    model.layers[1].W.value = model.layers[1].W.value.astype(np.float32)
    return model


def longdouble() -> Sequential:
    return Sequential([Linear(2, 2, rng=0)], dtype=np.longdouble)


REFUSED = {
    "nan_weight": (nan_weight, r"parameter '0.b': 1 of its values are NaN or infinite"),
    "nan_buffer": (nan_buffer, r"buffer '1.running_var': 1 of its values are NaN"),
    "infinite_argument": (infinite_slope, "argument 'negative_slope' is inf"),
    "mixed_dtypes": (mixed_dtypes, r"mixed dtypes \['float32', 'float64'\]"),
    "longdouble": (longdouble, "cannot save a model of dtype float128"),
    "loss_of_the_user": (
        lambda: Sequential([Linear(2, 1, rng=0)], loss=OtherLoss()),
        "only minnet's own can be saved",
    ),
    "1001_layers": (
        lambda: Sequential([ReLU() for _ in range(1001)]),
        "the architecture has 1,001 layers; minnet reads at most 1,000",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_load_would_refuse_is_not_saved(tmp_path: Path, name: str) -> None:
    build, match = REFUSED[name]
    if name == "longdouble" and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 here")
    with pytest.raises(ValueError, match=match):
        build().save(tmp_path / "model")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", ["", "folder/", ".", "..", "a/.."])
def test_save_refuses_a_path_that_names_no_file(tmp_path: Path, path: str) -> None:
    model = minnet.Sequential([minnet.Linear(2, 1, rng=0)])
    with pytest.raises(ValueError, match="a model's path names a file"):
        model.save(f"{tmp_path}/{path}" if path else path)
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    model = minnet.Sequential([minnet.Linear(2, 1, rng=0)])
    with pytest.raises(
        FileNotFoundError, match=r"cannot write .*m.safetensors: its folder .*nodir"
    ):
        model.save(tmp_path / "nodir" / "m")


def test_save_takes_a_sequential(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="save takes a minnet Sequential, got Linear"):
        minnet.io.save(Linear(2, 2), tmp_path / "model")


def test_tied_weights_are_saved_under_each_name_and_load_untied(tmp_path: Path) -> None:
    first, second = Linear(3, 3, rng=0), Linear(3, 3, rng=1)
    second.W = first.W
    model = Sequential([first, ReLU(), second], loss=minnet.MSELoss())
    loaded = minnet.load(model.save(tmp_path / "model"))
    assert loaded.layers[0].W.value.tobytes() == loaded.layers[2].W.value.tobytes()
    assert loaded.layers[0].W is not loaded.layers[2].W
