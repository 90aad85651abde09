"""Training: fit and its History, evaluation and prediction, divergence, summary, save/load."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from attrs import define
from conftest import random_data, random_net
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minnet
from minnet import SGD, Adam, Layer, Linear, ReLU, Sequential, Sigmoid
from minnet.datasets import train_test_split, two_moons
from minnet.teaching.demo import moons_net
from minnet.training import DivergenceError, Evaluation, History


class Spy(Layer):
    """The identity, recording each input it sees and whether it was in training mode."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []
        self.modes: list[bool] = []

    def forward(self, x):
        self.seen.append(x.copy())
        self.modes.append(self.training)
        return x

    def backward(self, grad_output):
        return grad_output


@define(eq=False)
class Frozen(SGD):
    """An optimizer that never moves the parameters: the metrics are those of fixed weights."""

    def step(self):
        pass


def spied_net(n_in: int = 3, seed: int = 0) -> tuple[Sequential, Spy]:
    spy = Spy()
    rng = np.random.default_rng(seed)
    model = Sequential([spy, Linear(n_in, 4, rng=rng), ReLU(), Linear(4, 1, rng=rng), Sigmoid()])
    return model, spy


def values(model: Sequential) -> list[np.ndarray]:
    return [p.value.copy() for p in model.parameters()]


# --- the loop ---------------------------------------------------------------------------------


def test_history_has_one_entry_per_epoch():
    rng = np.random.default_rng(0)
    model = random_net(rng, [3, 5, 1])
    X, Y = random_data(rng, 20, 3)
    history = model.fit(X, Y, epochs=4, batch_size=8, progress=False)
    assert isinstance(history, History)
    assert history.epochs == 4
    assert len(history.loss) == len(history.accuracy) == 4
    assert history.val_loss == [] and history.val_accuracy == []
    assert all(isinstance(v, float) for v in history.loss + history.accuracy)
    assert all(0 <= a <= 1 for a in history.accuracy)
    assert history.seconds > 0
    assert "4 epochs" in str(history) and "loss" in str(history)


def test_every_row_is_seen_once_per_epoch_and_the_last_batch_is_partial():
    model, spy = spied_net()
    X = np.arange(30.0).reshape(10, 3)  # row i holds 3i, 3i+1, 3i+2
    Y = np.arange(10) % 2
    model.fit(X, Y, epochs=2, batch_size=4, seed=0, progress=False)
    assert [len(x) for x in spy.seen] == [4, 4, 2] * 2
    for epoch in range(2):
        rows = np.concatenate(spy.seen[3 * epoch : 3 * epoch + 3])
        assert sorted(rows[:, 0] // 3) == list(range(10))
    first, second = (np.concatenate(spy.seen[i : i + 3])[:, 0] for i in (0, 3))
    assert not np.array_equal(first, second), "each epoch is shuffled anew"
    assert all(spy.modes), "fit trains in training mode"


def test_without_shuffle_the_batches_follow_the_rows():
    model, spy = spied_net()
    X = np.arange(30.0).reshape(10, 3)
    model.fit(X, np.arange(10) % 2, epochs=2, batch_size=4, shuffle=False, progress=False)
    for x, (start, stop) in zip(spy.seen, [(0, 4), (4, 8), (8, 10)] * 2, strict=True):
        np.testing.assert_array_equal(x, X[start:stop])


@pytest.mark.parametrize(
    ("batch_size", "sizes"), [(None, [7]), (7, [7]), (100, [7]), (3, [3, 3, 1])]
)
def test_batch_size_none_or_larger_than_the_data_is_one_batch(batch_size, sizes):
    model, spy = spied_net()
    X, Y = random_data(np.random.default_rng(1), 7, 3)
    model.fit(X, Y, epochs=1, batch_size=batch_size, progress=False)
    assert [len(x) for x in spy.seen] == sizes


def test_the_same_seed_gives_the_same_training():
    X, Y = random_data(np.random.default_rng(2), 50, 3)
    runs = []
    for seed in (7, 7, 8):
        model = random_net(np.random.default_rng(0), [3, 6, 1])
        history = model.fit(X, Y, optimizer=SGD(model.parameters(), lr=0.1), epochs=3,
                            batch_size=8, seed=seed, progress=False)  # fmt: skip
        runs.append((values(model), history.loss))
    (a, loss_a), (b, loss_b), (c, loss_c) = runs
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True)) and loss_a == loss_b
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True)) and loss_a != loss_c


@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_is_exactly_the_hand_written_loop(shuffle):
    """zero_grad, cost, backward, step per batch; rows reordered by default_rng(seed) per epoch."""
    X, Y = random_data(np.random.default_rng(3), 21, 3)
    ours = random_net(np.random.default_rng(4), [3, 5, 4, 1])
    hand = random_net(np.random.default_rng(4), [3, 5, 4, 1])
    history = ours.fit(X, Y, optimizer=Adam(ours.parameters(), lr=0.05), epochs=3, batch_size=5,
                       shuffle=shuffle, seed=11, progress=False)  # fmt: skip

    optimizer, rng, losses = Adam(hand.parameters(), lr=0.05), np.random.default_rng(11), []
    for _ in range(3):
        order = rng.permutation(21) if shuffle else np.arange(21)
        total = 0.0
        for start in range(0, 21, 5):
            rows = order[start : start + 5]
            optimizer.zero_grad()
            total += hand.cost(X[rows], Y[rows]) * len(rows)
            hand.backward()
            optimizer.step()
        losses.append(total / 21)
    for p, q in zip(ours.parameters(), hand.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-14)


def test_epoch_metrics_are_the_batch_size_weighted_means():
    """With weights that never move, the epoch's loss and accuracy are those of the whole set."""
    rng = np.random.default_rng(5)
    model = random_net(rng, [3, 6, 1])
    X, Y = random_data(rng, 23, 3)
    X_val, Y_val = random_data(rng, 9, 3)
    history = model.fit(X, Y, optimizer=Frozen(model.parameters(), lr=1.0), epochs=2,
                        batch_size=5, validation_data=(X_val, Y_val), progress=False)  # fmt: skip
    whole = model.evaluate(X, Y)
    np.testing.assert_allclose(history.loss, [whole.loss] * 2, rtol=1e-12)
    assert history.accuracy == [whole.accuracy] * 2
    expected = np.mean((model.predict_proba(X) > 0.5) == Y)
    assert whole.accuracy == pytest.approx(expected)
    assert history.val_loss == [model.evaluate(X_val, Y_val).loss] * 2
    assert history.val_accuracy == [model.evaluate(X_val, Y_val).accuracy] * 2


def test_validation_runs_in_eval_mode_and_fit_leaves_training_mode():
    model, spy = spied_net()
    X, Y = random_data(np.random.default_rng(6), 8, 3)
    model.eval()
    history = model.fit(X, Y, epochs=2, batch_size=8, validation_data=(X[:3], Y[:3]),
                        progress=False)  # fmt: skip
    # validation_data is run once before training (in eval mode), to refuse data the model
    # overflows on before a learning rate can be blamed; then each epoch trains and validates.
    assert spy.modes == [False, True, False, True, False]
    assert len(history.val_loss) == len(history.val_accuracy) == 2
    assert all(layer.training for layer in model.layers)


def test_a_partial_optimizer_leaves_the_other_parameters_fixed():
    rng = np.random.default_rng(7)
    model = random_net(rng, [3, 5, 1])
    X, Y = random_data(rng, 12, 3)
    before = values(model)
    model.fit(X, Y, optimizer=SGD(model.layers[2].parameters(), lr=0.5), epochs=2,
              progress=False)  # fmt: skip
    after = values(model)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])


def test_default_optimizer_is_adam_and_learns():
    X, Y = two_moons(200, seed=1)
    model = moons_net(1)
    history = model.fit(X, Y, epochs=20, seed=0, progress=False)
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert minnet.training.DEFAULT_LR == 1e-2


def test_nothing_the_user_passed_is_modified():
    rng = np.random.default_rng(8)
    model = random_net(rng, [3, 4, 1])
    X, Y = random_data(rng, 10, 3)
    X_val, Y_val = random_data(rng, 4, 3)
    copies = [a.copy() for a in (X, Y, X_val, Y_val)]
    model.fit(X, Y, epochs=2, batch_size=3, validation_data=(X_val, Y_val), progress=False)
    model.evaluate(X, Y)
    model.predict(X)
    for a, b in zip((X, Y, X_val, Y_val), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_integer_data_and_column_labels_are_accepted():
    model = random_net(np.random.default_rng(9), [2, 3, 1])
    X = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    history = model.fit(X, np.array([[1], [1], [0], [0]]), epochs=2, progress=False)
    assert history.epochs == 2


# --- bad arguments ----------------------------------------------------------------------------

X_OK, Y_OK = np.zeros((6, 3)), np.array([0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"epochs": 0}, ValueError, r"epochs must be a positive int, got 0"),
        ({"epochs": 2.5}, ValueError, r"epochs must be a positive int, got 2\.5"),
        ({"epochs": True}, ValueError, r"epochs must be a positive int, got True"),
        ({"batch_size": 0}, ValueError, r"batch_size must be a positive int, got 0"),
        ({"batch_size": "8"}, ValueError, r"batch_size must be a positive int, got '8'"),
        ({"optimizer": "adam"}, TypeError, r"minnet Optimizer.*got str"),
        ({"validation_data": X_OK}, ValueError, r"a pair \(X_val, Y_val\), got a ndarray"),
        ({"validation_data": (X_OK,)}, ValueError, r"got a tuple of length 1"),
        (
            {"validation_data": (np.zeros((2, 4)), [0, 1])},
            ValueError,
            r"validation_data: X has 4 features but layer 0 \(Linear.*\) expects 3",
        ),
        (
            {"validation_data": (np.zeros((2, 3)), [0, 1, 1])},
            ValueError,
            r"validation_data: Y: BCELoss needs targets of shape \(2,\) or \(2, 1\).*got \(3,\)",
        ),
    ],
)
def test_bad_arguments_are_refused_before_training(options, error, pattern):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    before = values(model)
    with pytest.raises(error, match=pattern):
        model.fit(X_OK, Y_OK, progress=False, **options)
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model), strict=True))


@pytest.mark.parametrize(
    ("X", "Y", "pattern"),
    [
        (np.zeros((6, 2)), Y_OK, r"fit: X has 2 features but layer 0 \(Linear.*\) expects 3"),
        (X_OK, Y_OK[:5], r"fit: Y: BCELoss needs targets of shape \(6,\) or \(6, 1\).*got \(5,\)"),
        (X_OK, Y_OK * 2, r"fit: Y: BCELoss needs targets in \[0, 1\]"),
        (np.full((6, 3), np.nan), Y_OK, r"fit: X must be finite, but 18 entries"),
        (np.zeros((0, 3)), np.zeros(0), r"fit: X must have at least one row, got shape \(0, 3\)"),
    ],
)
def test_bad_data_is_refused_naming_expected_and_got(X, Y, pattern):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    with pytest.raises(ValueError, match=pattern):
        model.fit(X, Y, progress=False)


def test_an_optimizer_of_another_model_is_refused():
    rng = np.random.default_rng(0)
    model, other = random_net(rng, [3, 4, 1]), random_net(rng, [3, 4, 1])
    with pytest.raises(ValueError, match=r"4 of 4 parameters that are not this model's"):
        model.fit(X_OK, Y_OK, optimizer=Adam(other.parameters()), progress=False)


def test_a_model_without_parameters_cannot_be_trained():
    with pytest.raises(ValueError, match="no parameters to train"):
        Sequential([Sigmoid()]).fit(np.zeros((2, 1)), [0, 1], progress=False)


# --- divergence -------------------------------------------------------------------------------


def test_a_huge_learning_rate_stops_with_the_epoch_and_batch():
    rng = np.random.default_rng(0)
    model = random_net(rng, [3, 16, 16, 1], activation=minnet.LeakyReLU)
    X, Y = random_data(rng, 40, 3)
    optimizer = SGD(model.parameters(), lr=10, momentum=0.9)
    with pytest.raises(DivergenceError) as caught:
        model.fit(X, Y, optimizer=optimizer, epochs=50, batch_size=10, seed=0, progress=False)
    err = caught.value
    message = str(err)
    assert re.search(r"training diverged at epoch \d+ of 50, batch \d of 4: ", message), message
    assert f"epoch {err.epoch} of 50, batch {err.batch} of 4" in message
    assert "numpy reports overflow" in message and " in the " in message
    assert "SGD lr=10" in message and "too large" in message
    assert 1 < err.epoch < 50
    assert err.history.epochs == err.epoch - 1


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_non_finite_weight_is_refused_before_the_first_batch(bad):
    # Not a DivergenceError blaming the learning rate: no learning rate repairs a NaN weight.
    rng = np.random.default_rng(1)
    model = random_net(rng, [3, 4, 1])
    model.layers[0].W.value[0, 0] = bad
    X, Y = random_data(rng, 12, 3)
    with pytest.raises(ValueError, match=r"parameter '0.W' holds 1 NaN or infinite values"):
        model.fit(X, Y, epochs=3, batch_size=4, seed=0, progress=False)


def test_divergence_is_checked_on_the_validation_data_too():
    rng = np.random.default_rng(2)
    model = random_net(rng, [3, 4, 1])
    X, Y = random_data(rng, 8, 3)
    large = np.full((2, 3), 1e160)  # fine for the initial weights, not for the 1e150 of a step
    optimizer = SGD(model.parameters(), lr=1e150)
    with pytest.raises(DivergenceError, match=r"epoch 1 of 2, evaluating validation_data"):
        model.fit(
            X,
            Y,
            optimizer=optimizer,
            epochs=2,
            batch_size=None,
            validation_data=(large, [0, 1]),
            progress=False,
        )


# --- predicting and evaluating ----------------------------------------------------------------


def test_predict_proba_predict_and_evaluate_shapes_and_values():
    rng = np.random.default_rng(3)
    model = random_net(rng, [3, 5, 1])
    X, Y = random_data(rng, 9, 3)
    proba = model.predict_proba(X)
    assert proba.shape == (9,) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(proba, model.forward(X)[:, 0])
    labels = model.predict(X)
    assert labels.shape == (9,) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, (proba > 0.5).astype(int))
    np.testing.assert_array_equal(model.predict(X, threshold=0.0), (proba > 0).astype(int))
    np.testing.assert_array_equal(model.predict(X, threshold=1.0), np.zeros(9, dtype=int))

    result = model.evaluate(X, Y)
    assert isinstance(result, Evaluation)
    loss, accuracy = result
    assert loss == pytest.approx(model.cost(X, Y), rel=1e-15)
    assert accuracy == pytest.approx(np.mean(labels == Y))
    assert model.evaluate(X, Y.reshape(-1, 1)) == result


def test_several_outputs_keep_their_column():
    rng = np.random.default_rng(4)
    model = Sequential([Linear(3, 2, rng=rng), Sigmoid()])
    X = rng.standard_normal((5, 3))
    Y = (rng.random((5, 2)) < 0.5).astype(float)
    assert model.predict_proba(X).shape == (5, 2) and model.predict(X).shape == (5, 2)
    _, accuracy = model.evaluate(X, Y)
    assert accuracy == pytest.approx(np.mean(model.predict(X) == Y))


def test_soft_labels_count_by_their_class():
    model = Sequential([Linear.from_weights([[1.0]], [0.0]), Sigmoid()])
    X = np.array([[2.0], [-2.0], [3.0], [-1.0]])  # predictions 1, 0, 1, 0
    _, accuracy = model.evaluate(X, [0.9, 0.2, 0.4, 0.6])  # classes 1, 0, 0, 1
    assert accuracy == 0.5


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.5", np.nan])
def test_bad_threshold_is_refused(threshold):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\], got"):
        model.predict(X_OK, threshold=threshold)


def test_predicting_uses_eval_mode_and_restores_each_layers_mode():
    model, spy = spied_net()
    X, Y = random_data(np.random.default_rng(5), 4, 3)
    model.train()
    model.layers[2].eval()  # a mixed state must come back as it was
    modes = [layer.training for layer in model.layers]
    model.predict_proba(X)
    model.predict(X)
    model.evaluate(X, Y)
    assert spy.modes == [False, False, False]
    assert [layer.training for layer in model.layers] == modes


def test_dropout_is_random_in_training_and_off_for_predicting_and_evaluating():
    rng = np.random.default_rng(7)
    model = Sequential([Linear(3, 16, rng=rng), ReLU(), minnet.Dropout(0.5, seed=0),
                        Linear(16, 1, rng=rng), Sigmoid()])  # fmt: skip
    X, Y = random_data(rng, 20, 3)
    frozen = Frozen(model.parameters(), lr=1.0)
    first, second = (model.fit(X, Y, optimizer=frozen, epochs=1, batch_size=None, progress=False)
                     for _ in range(2))  # fmt: skip
    assert first.loss != second.loss, "training draws a new dropout mask each time"
    assert model.layers[2].training
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))
    assert model.evaluate(X, Y) == model.evaluate(X, Y)
    model.eval()
    np.testing.assert_array_equal(model.predict_proba(X), model.forward(X)[:, 0])


def test_predicting_does_not_leave_a_backward_pending():
    model = random_net(np.random.default_rng(6), [3, 4, 1])
    X, Y = random_data(np.random.default_rng(6), 5, 3)
    for use in (model.predict, model.predict_proba, lambda X: model.evaluate(X, Y[:2])):
        model.cost(X, Y)
        use(X[:2])  # the layers' caches now hold these two rows, not the cost's five
        with pytest.raises(RuntimeError, match="needs a cost"):
            model.backward()


def test_predict_checks_its_input():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    with pytest.raises(ValueError, match=r"X has 2 features but layer 0 \(Linear.*\) expects 3"):
        model.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"evaluate: Y: BCELoss needs targets of shape \(4,\)"):
        model.evaluate(np.zeros((4, 3)), [0, 1])


# --- the progress bar -------------------------------------------------------------------------


def test_no_output_with_progress_false(capsys):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    model.fit(X_OK, Y_OK, epochs=3, validation_data=(X_OK, Y_OK), progress=False)
    assert capsys.readouterr() == ("", "")


def test_no_output_when_stderr_is_not_a_terminal(capsys):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    model.fit(X_OK, Y_OK, epochs=3, progress=True)
    assert capsys.readouterr() == ("", "")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_shows_loss_and_accuracy(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    model.fit(X_OK, Y_OK, epochs=3, validation_data=(X_OK, Y_OK))
    shown = terminal.getvalue()
    assert "3/3" in shown and "epoch" in shown
    for key in ("loss=", "acc=", "val_loss=", "val_acc="):
        assert key in shown, shown
    terminal.truncate(0)
    model.fit(X_OK, Y_OK, epochs=3, progress=False)
    assert terminal.getvalue() == ""


# --- the acceptance bar: two moons ------------------------------------------------------------


def test_two_moons_reaches_95_percent_held_out_in_well_under_a_few_seconds():
    X, y = two_moons(1000, noise=0.2, seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=0)
    X_fresh, y_fresh = two_moons(4000, noise=0.2, seed=12345)  # more held-out points
    model = moons_net(0)
    history = model.fit(X_train, y_train, optimizer=Adam(model.parameters(), lr=1e-2), epochs=50,
                        batch_size=32, seed=0, progress=False)  # fmt: skip
    assert model.evaluate(X_test, y_test).accuracy >= 0.95
    assert model.evaluate(X_fresh, y_fresh).accuracy >= 0.95
    assert history.seconds < 10  # about 0.5 s here; generous for a loaded CI machine


# --- seeing it, and saving it -----------------------------------------------------------------


def test_summary_is_a_table_with_totals():
    text = moons_net(0).summary()
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Output", "shape", "Params"]
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert rows == [
        ["0", "Linear", "(None,", "16)", "48"],
        ["1", "ReLU", "(None,", "16)", "0"],
        ["2", "Linear", "(None,", "16)", "272"],
        ["3", "ReLU", "(None,", "16)", "0"],
        ["4", "Linear", "(None,", "1)", "17"],
        ["5", "Sigmoid", "(None,", "1)", "0"],
    ]
    assert "Total params: 337" in lines
    assert lines[-1].startswith("Loss: BCELoss")


def test_summary_of_a_model_with_no_fixed_width():
    text = Sequential([minnet.Tanh(), Sigmoid()]).summary()
    assert "(None, None)" in text and "Total params: 0" in text


def test_print_shows_one_layer_per_line():
    text = str(moons_net(0))
    lines = text.splitlines()
    assert lines[0] == "Sequential("
    assert lines[1].startswith("  (0): Linear(in_features=2, out_features=16")
    assert lines[2] == "  (1): ReLU()"
    assert lines[6] == "  (5): Sigmoid()"
    assert lines[-2] == "  loss: BCELoss()" and lines[-1] == ")"


def test_save_and_load_give_the_same_predictions(tmp_path):
    X, y = two_moons(200, seed=3)
    model = moons_net(3)
    model.fit(X, y, epochs=5, seed=0, progress=False)
    written = model.save(tmp_path / "moons")
    assert written == tmp_path / "moons.safetensors" and written.exists()
    restored = minnet.load(tmp_path / "moons")
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.evaluate(X, y) == model.evaluate(X, y)
    assert restored.summary() == model.summary()


# --- validation_split, callbacks, early stopping, schedules, sample weights ------------------


def test_validation_split_holds_out_the_last_rows_as_keras():
    """floor(m * (1 - split)) rows train; the rest validate: the same as validation_data."""
    X, Y = random_data(np.random.default_rng(20), 10, 3)
    split = 7  # floor(10 * 0.75)
    ours = random_net(np.random.default_rng(21), [3, 4, 1])
    theirs = random_net(np.random.default_rng(21), [3, 4, 1])
    history = ours.fit(X, Y, optimizer=SGD(ours.parameters(), lr=0.1), epochs=3, batch_size=3,
                       seed=1, validation_split=0.25, progress=False)  # fmt: skip
    expected = theirs.fit(X[:split], Y[:split], optimizer=SGD(theirs.parameters(), lr=0.1),
                          epochs=3, batch_size=3, seed=1, validation_data=(X[split:], Y[split:]),
                          progress=False)  # fmt: skip
    assert history.loss == expected.loss and history.val_loss == expected.val_loss
    assert len(history.val_loss) == 3
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)


def trained_state(model: Sequential, optimizer, schedule) -> list:
    """Everything a refused fit must leave alone: parameters and buffers, each layer's mode,
    the optimizer's step count, rate and state, the schedule's epoch."""
    return [
        minnet.callbacks.snapshot(model),
        [layer.training for layer in model.layers],
        (optimizer.steps, optimizer.lr, schedule.last_epoch),
        [np.array(a, copy=True) for state in optimizer.state for a in state],
    ]


REFUSED_LATE = {  # (options, the refusal): each from a different check, some after most passed
    "non-positive epochs": (lambda model, other: {"epochs": 0}, "epochs must be"),
    "validation_split and validation_data": (
        lambda model, other: {"validation_split": 0.5, "validation_data": (X_OK, Y_OK)},
        "not both",
    ),
    "negative sample_weight": (
        lambda model, other: {"sample_weight": -np.ones(6)},
        "sample_weight must be >= 0",
    ),
    "not a callback": (
        lambda model, other: {"callbacks": [Recorder(), object()]},
        r"callbacks\[1\] must be an object",
    ),
    "a schedule of another optimizer": (
        lambda model, other: {"scheduler": minnet.StepLR(SGD(model.parameters(), lr=0.1), 1)},
        "made for another optimizer",
    ),
    "an optimizer of another model": (
        lambda model, other: {"optimizer": SGD(other.parameters(), lr=0.1), "scheduler": None},
        "not this model's",
    ),
    "validation data the model overflows on": (
        lambda model, other: {"validation_data": (np.full((2, 3), 1e308), [0, 1])},
        "arithmetic fails on the data before any update",
    ),
}


@pytest.mark.parametrize("case", REFUSED_LATE)
def test_a_refused_fit_leaves_model_optimizer_schedule_and_callbacks_untouched(case):
    """A model with batch norm (running statistics, set to eval mode while its other layers
    train), an SGD with momentum that has stepped, a schedule: after each refusal all of it is
    as it was, and no callback was called."""
    rng = np.random.default_rng(29)
    model = random_net(rng, [3, 6, 1], norm_after_first=minnet.BatchNorm1d)
    other = random_net(rng, [3, 6, 1])
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = minnet.StepLR(optimizer, step_size=1, gamma=0.5)
    X, Y = random_data(rng, 8, 3)
    model.fit(X, Y, optimizer=optimizer, scheduler=schedule, epochs=2, progress=False)
    model.layers[1].eval()
    recorder = Recorder()
    before = trained_state(model, optimizer, schedule)
    options = {"optimizer": optimizer, "scheduler": schedule, "callbacks": [recorder]}
    make_options, refusal = REFUSED_LATE[case]
    options |= make_options(model, other)
    with pytest.raises((ValueError, TypeError), match=refusal):
        model.fit(X_OK, Y_OK, epochs=options.pop("epochs", 3), progress=False, **options)
    after = trained_state(model, optimizer, schedule)
    for arrays, expected in ((after[0], before[0]), (after[3], before[3])):
        assert len(arrays) == len(expected)
        for a, b in zip(arrays, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert after[1:3] == before[1:3]
    assert recorder.calls == []
    for callback in options.get("callbacks", []):
        assert getattr(callback, "calls", []) == []


class Recorder(minnet.Callback):
    """Keeps every call: the epochs, their logs and the weights at each epoch's end."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.epochs: list[int] = []
        self.logs: list[dict] = []
        self.weights: list[list[np.ndarray]] = []
        self.stop_after = stop_after

    def on_train_begin(self, logs):
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs):
        self.calls.append("epoch")
        self.epochs.append(epoch)
        self.logs.append(logs)
        self.weights.append(minnet.callbacks.snapshot(self.model))
        if self.stop_after is not None and epoch + 1 == self.stop_after:
            self.model.stop_training = True

    def on_train_end(self, logs):
        self.calls.append("end")


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"validation_split": 1.0}, r"validation_split must be .*\[0, 1\), got 1.0"),
        ({"validation_split": -0.1}, r"validation_split must be"),
        ({"validation_split": float("nan")}, r"validation_split must be"),
        ({"validation_split": 1e-17}, r"validation_split=1e-17 of 6 rows leaves no validation"),
        ({"validation_split": 0.99}, r"leaves no training rows"),
        ({"validation_split": 0.5, "validation_data": (X_OK, Y_OK)}, r"not both"),
        ({"sample_weight": np.ones(5)}, r"fit: sample_weight must have shape \(6,\).*got \(5,\)"),
        ({"sample_weight": -np.ones(6)}, r"sample_weight must be >= 0, got 6 negative"),
        ({"sample_weight": np.full(6, np.nan)}, r"sample_weight must be finite"),
        ({"sample_weight": np.zeros(6)}, r"sample_weight must not be all zero"),
        (
            {"sample_weight": [1, 1, 1, 1, 0, 0], "validation_split": 0.3},
            r"sample_weight is zero on every validation row",
        ),
        ({"scheduler": "StepLR"}, r"scheduler must be a minnet learning-rate schedule"),
        ({"callbacks": [object()]}, r"callbacks\[0\] must be an object with an on_epoch_end"),
        ({"callbacks": minnet.EarlyStopping()}, r"callbacks must be a list"),
        (
            {"callbacks": [minnet.EarlyStopping()]},
            r"callbacks\[0\] \(EarlyStopping\) monitors 'val_loss'.*need validation_data",
        ),
        (
            {"callbacks": [Recorder(), minnet.EarlyStopping("val_acc")], "validation_split": 0.3},
            r"callbacks\[1\].*'val_acc'.*logs \['loss', 'accuracy', 'lr', 'val_loss', 'val_acc",
        ),
    ],
)
def test_bad_training_options_are_refused_before_training(options, pattern):
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    before = values(model)
    with pytest.raises((ValueError, TypeError), match=pattern):
        model.fit(X_OK, Y_OK, progress=False, **options)
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model), strict=True))


def test_a_scheduler_must_schedule_the_optimizer_given():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    optimizer = SGD(model.parameters(), lr=0.1)
    other = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no optimizer was given"):
        model.fit(X_OK, Y_OK, scheduler=minnet.StepLR(optimizer, 2), progress=False)
    with pytest.raises(ValueError, match="made for another optimizer"):
        model.fit(X_OK, Y_OK, optimizer=other, scheduler=minnet.StepLR(optimizer, 2),
                  progress=False)  # fmt: skip


def test_callbacks_see_each_epoch_and_can_stop_training():
    rng = np.random.default_rng(22)
    model = random_net(rng, [3, 4, 1])
    X, Y = random_data(rng, 12, 3)
    recorder, plain = Recorder(stop_after=3), []

    class OnlyEpochs:  # a plain object with one hook is a callback too
        def on_epoch_end(self, epoch, logs):
            plain.append((epoch, sorted(logs)))

    history = model.fit(X, Y, epochs=10, validation_split=0.25, callbacks=[recorder, OnlyEpochs()],
                        progress=False)  # fmt: skip
    assert recorder.calls == ["begin", "epoch", "epoch", "epoch", "end"]
    assert recorder.epochs == [0, 1, 2] and history.epochs == 3
    keys = ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert plain == [(epoch, keys) for epoch in range(3)]
    for epoch, logs in enumerate(recorder.logs):
        assert logs["loss"] == history.loss[epoch] and logs["val_loss"] == history.val_loss[epoch]
        assert logs["lr"] == history.lr[epoch] == minnet.training.DEFAULT_LR


def test_a_callback_that_raises_is_named():
    class Broken:
        def on_epoch_end(self, epoch, logs):
            raise KeyError("val_f1")

    model = random_net(np.random.default_rng(0), [3, 4, 1])
    with pytest.raises(RuntimeError, match=r"callbacks\[1\] \(Broken\) raised KeyError in "
                       r"on_epoch_end: 'val_f1'") as caught:  # fmt: skip
        model.fit(X_OK, Y_OK, callbacks=[minnet.Callback(), Broken()], progress=False)
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("hook", "steps_before"),
    [
        ("set_model", 0),
        ("on_train_begin", 0),
        ("on_train_batch_begin", 0),
        ("on_epoch_end", 2),  # after the first epoch's two batches
        ("on_train_end", 6),  # after all three epochs
    ],
)
def test_a_callback_raising_in_any_hook_is_named_and_stops_where_it_raised(hook, steps_before):
    """The error names the callback, its class, the exception and the hook; the optimizer took
    exactly the steps before the hook (none when it raises before training: the weights are
    the ones fit was given)."""
    rng = np.random.default_rng(30)
    model = random_net(rng, [3, 4, 1])
    X, Y = random_data(rng, 8, 3)
    start = values(model)
    optimizer = SGD(model.parameters(), lr=0.1)

    class Raises:
        def on_epoch_end(self, epoch, logs):  # (a callback needs one of the hooks)
            pass

    def fail(*args):
        raise ArithmeticError("no")

    broken = Raises()
    setattr(broken, hook, fail)
    pattern = rf"callbacks\[1\] \(Raises\) raised ArithmeticError in {hook}: no"
    with pytest.raises(RuntimeError, match=pattern) as caught:
        model.fit(X, Y, optimizer=optimizer, epochs=3, batch_size=4, shuffle=False,
                  callbacks=[Recorder(), broken], progress=False)  # fmt: skip
    assert isinstance(caught.value.__cause__, ArithmeticError)
    assert optimizer.steps == steps_before
    if steps_before == 0:
        assert all(np.array_equal(a, b) for a, b in zip(start, values(model), strict=True))


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    stopper = minnet.EarlyStopping(monitor="loss", patience=2)
    frozen = SGD(model.parameters(), lr=0.0)  # the loss never improves after the first epoch
    history = model.fit(X_OK, Y_OK, optimizer=frozen, epochs=20, callbacks=[stopper],
                        progress=False)  # fmt: skip
    assert history.epochs == 3 and stopper.stopped_epoch == 2 and stopper.best_epoch == 0


def test_early_stopping_on_a_sequence_of_values_as_keras():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    stopper = minnet.EarlyStopping(patience=2, min_delta=0.1)
    stopper.set_model(model)
    model.stop_training = False
    for epoch, value in enumerate([1.0, 0.95, 0.85, 0.8]):  # 0.95: not better by > 0.1
        stopper.on_epoch_end(epoch, {"val_loss": value})
        assert not model.stop_training
    assert stopper.best == 0.85 and stopper.best_epoch == 2
    stopper.on_epoch_end(4, {"val_loss": 0.9})
    assert model.stop_training and stopper.stopped_epoch == 4
    rising = minnet.EarlyStopping(monitor="val_accuracy", patience=0)
    assert rising.mode == "max"
    rising.set_model(model)
    rising.on_epoch_end(0, {"val_accuracy": 0.5})
    assert rising.best == 0.5
    with pytest.raises(ValueError, match=r"no such metric.*need validation data"):
        minnet.EarlyStopping().on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="patience"):
        minnet.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="min_delta"):
        minnet.EarlyStopping(min_delta=-0.1)


def test_early_stopping_restores_the_weights_and_buffers_of_the_best_epoch():
    rng = np.random.default_rng(23)
    model = random_net(rng, [3, 8, 1], norm_after_first=minnet.BatchNorm1d)
    X, Y = random_data(rng, 40, 3)
    X_val, Y_val = random_data(rng, 10, 3)  # noise: the validation loss wanders
    recorder = Recorder()
    stopper = minnet.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(X, Y, optimizer=SGD(model.parameters(), lr=0.5, momentum=0.9),
                        epochs=30, batch_size=8, validation_data=(X_val, Y_val),
                        callbacks=[recorder, stopper], progress=False)  # fmt: skip
    best = int(np.argmin(history.val_loss))
    assert stopper.best_epoch == best and best < history.epochs - 1
    assert model.evaluate(X_val, Y_val).loss == pytest.approx(history.val_loss[best], rel=1e-12)
    for now, then in zip(minnet.callbacks.snapshot(model), recorder.weights[best], strict=True):
        np.testing.assert_array_equal(now, then)  # parameters, running mean and variance


def test_the_scheduler_is_stepped_once_per_epoch_and_history_records_lr():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    optimizer = SGD(model.parameters(), lr=0.4)
    schedule = minnet.StepLR(optimizer, step_size=2, gamma=0.5)
    history = model.fit(X_OK, Y_OK, optimizer=optimizer, scheduler=schedule, epochs=5,
                        progress=False)  # fmt: skip
    assert history.lr == [0.4, 0.4, 0.2, 0.2, 0.1]
    assert optimizer.lr == 0.1 and schedule.last_epoch == 5  # 0.4 * 0.5 ** (5 // 2)


def test_reduce_lr_on_plateau_in_fit_follows_the_validation_loss():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    optimizer = Frozen(model.parameters(), lr=0.1)  # a constant loss: a plateau from epoch 1
    schedule = minnet.ReduceLROnPlateau(optimizer, patience=1, factor=0.5)
    history = model.fit(X_OK, Y_OK, optimizer=optimizer, scheduler=schedule, epochs=5,
                        validation_split=0.5, progress=False)  # fmt: skip
    assert history.lr == [0.1, 0.1, 0.1, 0.05, 0.05] and optimizer.lr == 0.025
    assert schedule.best == history.val_loss[0] != history.loss[0]


def repeated(X, Y, counts):
    """Each row ``i`` of X and Y ``counts[i]`` times."""
    return np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0)


HEADS = {
    "binary": lambda rng: (random_net(rng, [3, 5, 1]), (rng.random(9) < 0.5).astype(float)),
    "multiclass": lambda rng: (
        Sequential(
            [Linear(3, 5, rng=rng), ReLU(), Linear(5, 4, rng=rng), minnet.Softmax()],
            loss=minnet.CrossEntropyLoss(),
        ),  # fmt: skip
        rng.integers(0, 4, 9),
    ),
    "regression": lambda rng: (
        Sequential([Linear(3, 5, rng=rng), ReLU(), Linear(5, 2, rng=rng)], loss=minnet.MSELoss()),
        rng.standard_normal((9, 2)),
    ),
}


@pytest.mark.parametrize("head", HEADS)
@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32 - 1),
    counts=st.lists(st.integers(0, 3), min_size=9, max_size=9),
    l2=st.sampled_from([0.0, 0.3]),
)
def test_a_weight_of_k_is_the_row_repeated_k_times_in_the_cost_and_its_gradient(
    head, seed, counts, l2
):
    """With or without an L2 penalty (counted once, whatever the weights, as with repeated rows)."""
    assume(sum(counts) > 0)
    rng = np.random.default_rng(seed)
    model, Y = HEADS[head](rng)
    model.l2 = l2
    X = rng.standard_normal((9, 3))
    weighted = model.cost(X, Y, sample_weight=counts)
    model.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    X_rep, Y_rep = repeated(X, Y, counts)
    assert weighted == pytest.approx(model.cost(X_rep, Y_rep), rel=1e-12)
    model.backward()
    for p, grad in zip(model.parameters(), grads, strict=True):
        np.testing.assert_allclose(grad, p.grad, rtol=1e-10, atol=1e-14)
    assert model.evaluate(X, Y, sample_weight=counts).loss == pytest.approx(
        model.evaluate(X_rep, Y_rep).loss, rel=1e-12
    )


def test_fit_with_sample_weights_is_fit_on_repeated_rows():
    rng = np.random.default_rng(24)
    X, Y = random_data(rng, 12, 3)
    counts = rng.integers(0, 4, 12)
    ours = random_net(np.random.default_rng(25), [3, 5, 1])
    theirs = random_net(np.random.default_rng(25), [3, 5, 1])
    history = ours.fit(X, Y, optimizer=SGD(ours.parameters(), lr=0.3), epochs=5,
                       batch_size=None, sample_weight=counts, progress=False)  # fmt: skip
    expected = theirs.fit(*repeated(X, Y, counts), optimizer=SGD(theirs.parameters(), lr=0.3),
                          epochs=5, batch_size=None, progress=False)  # fmt: skip
    np.testing.assert_allclose(history.loss, expected.loss, rtol=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-14)


def test_batches_of_zero_weight_are_skipped_and_validation_weights_apply():
    model, spy = spied_net()
    X, Y = random_data(np.random.default_rng(26), 8, 3)
    weights = [0, 0, 0, 0, 1, 2, 1, 3]
    history = model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, sample_weight=weights,
                        validation_split=0.25, progress=False)  # fmt: skip
    # rows 0-5 train in batches of 2: the first two batches weigh nothing; the check of the
    # validation rows, one batch, then the validation of the epoch.
    assert [len(x) for x in spy.seen] == [2, 2, 2]
    X_val, Y_val = repeated(X[6:], Y[6:], [1, 3])
    assert history.val_loss[0] == pytest.approx(model.evaluate(X_val, Y_val).loss, rel=1e-12)


def test_evaluate_refuses_bad_sample_weights():
    model = random_net(np.random.default_rng(0), [3, 4, 1])
    with pytest.raises(ValueError, match=r"evaluate: sample_weight must have shape \(6,\)"):
        model.evaluate(X_OK, Y_OK, sample_weight=np.ones((6, 1)))
    with pytest.raises(TypeError, match="sample_weight must hold real numbers"):
        model.evaluate(X_OK, Y_OK, sample_weight=["a"] * 6)


def test_on_train_batch_begin_runs_before_each_step_with_its_size():
    seen = []

    class Batches:
        def set_model(self, model):
            self.model = model

        def on_train_batch_begin(self, batch, logs):
            seen.append((batch, logs["size"], self.model.l2))
            self.model.l2 = 0.5 * logs["size"]  # the step that follows uses it

    rng = np.random.default_rng(27)
    model = random_net(rng, [3, 4, 1])
    X, Y = random_data(rng, 10, 3)
    twin = random_net(np.random.default_rng(27), [3, 4, 1])
    model.fit(X, Y, optimizer=SGD(model.parameters(), lr=0.1), epochs=1, batch_size=4,
              shuffle=False, callbacks=[Batches()], progress=False)  # fmt: skip
    assert seen == [(0, 4, 0.0), (1, 4, 2.0), (2, 2, 2.0)]
    optimizer = SGD(twin.parameters(), lr=0.1)
    for start, size in ((0, 4), (4, 4), (8, 2)):
        twin.l2 = 0.5 * size
        optimizer.zero_grad()
        twin.cost(X[start : start + size], Y[start : start + size])
        twin.backward()
        optimizer.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)


@pytest.mark.parametrize("head", ["binary", "regression"])
def test_the_epoch_metrics_are_those_of_the_rows_trained_on(head):
    """Batches of weight 0 are skipped: the accuracy (or R^2) is of the other rows, each
    counted as many times as its weight says."""
    rng = np.random.default_rng(28)
    model, Y = HEADS[head](rng)
    X = rng.standard_normal((9, 3))
    weights = [0, 0, 0, 1, 1, 2, 1, 1, 1]
    frozen = Frozen(model.parameters(), lr=1.0)
    history = model.fit(X, Y, optimizer=frozen, epochs=2, batch_size=3, shuffle=False,
                        sample_weight=weights,
                        progress=False)  # fmt: skip
    metric = history.r2 if head == "regression" else history.accuracy
    X_rep, Y_rep = repeated(X, Y, weights)
    np.testing.assert_allclose(metric, [model.evaluate(X_rep, Y_rep)[1]] * 2, rtol=1e-12)
    weighted = model.evaluate(X[3:], Y[3:], sample_weight=weights[3:])[1]
    np.testing.assert_allclose(metric, [weighted] * 2, rtol=1e-12)
    np.testing.assert_allclose(history.loss, [model.evaluate(X_rep, Y_rep).loss] * 2, rtol=1e-12)
