"""fit decides before its first update whether the last batch can run: with a BatchNorm1d, a
last batch of one row (no batch variance) is merged into the one before."""

from __future__ import annotations

import numpy as np
import pytest

from minnet import BatchNorm1d, Linear, ReLU, Sequential, Sigmoid


def data(m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, 3))
    return X, (X[:, 0] > 0).astype(float)


def net(norm: bool) -> Sequential:
    middle = [BatchNorm1d(4)] if norm else []
    return Sequential([Linear(3, 4, rng=1), *middle, ReLU(), Linear(4, 1, rng=2), Sigmoid()])


def trained(norm: bool, m: int, batch_size: int) -> Sequential:
    model = net(norm)
    model.fit(*data(m), epochs=3, batch_size=batch_size, seed=0, progress=False)
    return model


def same_state(a: Sequential, b: Sequential) -> bool:
    return all(
        x.tobytes() == y.tobytes()
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


class CountingBatchNorm(BatchNorm1d):
    """A BatchNorm1d that records the rows of each training batch it sees."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            self.seen.append(len(x))
        return super().forward(x)


@pytest.mark.parametrize(
    "m, batch_size, sizes", [(33, 32, [33]), (17, 8, [8, 9]), (5, 2, [2, 3]), (34, 32, [32, 2])]
)
def test_a_one_row_last_batch_is_merged_into_the_one_before(m, batch_size, sizes) -> None:
    norm = CountingBatchNorm(4)
    norm.seen = []
    model = Sequential([Linear(3, 4, rng=1), norm, ReLU(), Linear(4, 1, rng=2), Sigmoid()])
    model.fit(*data(m), epochs=2, batch_size=batch_size, seed=0, progress=False)
    assert norm.seen == sizes * 2


def test_without_batch_statistics_the_one_row_batch_stays() -> None:
    assert not same_state(trained(False, 33, 32), trained(False, 33, 33))
    assert same_state(trained(True, 33, 32), trained(True, 33, 33))


def test_one_row_in_all_is_refused_before_any_update() -> None:
    model = net(True)
    before = model.state_dict()
    with pytest.raises(
        ValueError, match=r"layer 1 \(BatchNorm1d.*needs at least 2 rows, and X has 1"
    ):
        model.fit(*data(1), epochs=1, progress=False)
    assert all(
        a.tobytes() == b.tobytes()
        for a, b in zip(before.values(), model.state_dict().values(), strict=True)
    )
