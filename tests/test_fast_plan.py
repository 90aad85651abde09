"""The planned training step (minnet/_fast/plan.py) against the textbook path
(``use_fast_path(False)``): random nets, data and dtypes give the same losses, gradients and
parameters, bad data the same errors, and a model changed between steps (its loss, l2, layers,
parameters, a patched layer) the same numbers as the textbook model changed the same way."""

from __future__ import annotations

import pickle
from copy import deepcopy

import numpy as np
import pytest
from conftest import on_path

import minnet
from minnet import _fast
from minnet._fast.plan import Body

ACTIVATIONS = (minnet.ReLU, minnet.Sigmoid, minnet.Tanh)


def random_spec(rng: np.random.Generator) -> dict:
    widths = [int(rng.integers(1, 6))] + [
        int(rng.integers(1, 7)) for _ in range(rng.integers(0, 4))
    ]
    widths.append(int(rng.integers(1, 4)))
    spec = dict(
        dtype=[np.float32, np.float64][rng.integers(2)],
        widths=widths,
        activations=[int(rng.integers(3)) for _ in widths[1:-1]],
        first_relu=bool(rng.random() < 0.2),  # an activation first: it gets the data itself
        # BCELoss with a final Sigmoid; BCEWithLogitsLoss; CrossEntropyLoss with a final Softmax
        # or on the logits; NLLLoss with a final LogSoftmax (class losses: some with weights)
        loss=["bce", "logits", "ce", "ce logits", "nll"][
            rng.choice(5, p=[0.4, 0.2, 0.2, 0.1, 0.1])
        ],
        class_weights=bool(rng.random() < 0.3),
        reduction=["mean", "sum"][rng.integers(2)],
        l2=[0.0, 0.01][rng.integers(2)],
        momentum=[0.0, 0.9][rng.integers(2)],
        seed=int(rng.integers(1 << 30)),
    )
    if spec["loss"] in CLASS_LOSSES:
        spec["widths"][-1] += 1  # two classes at least
    return spec


CLASS_LOSSES = ("ce", "ce logits", "nll")


def build(spec: dict) -> tuple[minnet.Sequential, minnet.SGD]:
    widths, rng = spec["widths"], np.random.default_rng(spec["seed"])
    layers = [minnet.ReLU()] if spec["first_relu"] else []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layer = minnet.Linear(n_in, n_out, rng=rng, dtype=spec["dtype"])
        layer.b.value[...] = 0.1 * rng.standard_normal(n_out)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[spec["activations"][i]]())
    kind, reduction = spec["loss"], spec["reduction"]
    weight = rng.random(widths[-1]) + 0.5 if spec["class_weights"] else None
    if kind == "logits":
        loss = minnet.BCEWithLogitsLoss(reduction=reduction)
    elif kind == "bce":
        layers.append(minnet.Sigmoid())
        loss = minnet.BCELoss(reduction=reduction)
    elif kind == "nll":
        layers.append(minnet.LogSoftmax())
        loss = minnet.NLLLoss(weight, reduction=reduction)
    else:
        layers += [minnet.Softmax()] if kind == "ce" else []
        loss = minnet.CrossEntropyLoss(weight, reduction=reduction)
    model = minnet.Sequential(layers, loss=loss, dtype=spec["dtype"], l2=spec["l2"])
    return model, minnet.SGD(model.parameters(), lr=0.1, momentum=spec["momentum"])


def random_data(rng: np.random.Generator, spec: dict, m: int):
    n, k = spec["widths"][0], spec["widths"][-1]
    X = (rng.standard_normal((m, n)) * 3).astype(spec["dtype"])
    if spec["loss"] in CLASS_LOSSES:
        y = rng.integers(0, k, m)
        if rng.random() < 0.2:  # some rows ignored (not all: a mean needs one)
            y[rng.random(m) < 0.3] = -100
            y[0] = 0
        return X, y
    Y = rng.random((m, k)) if rng.random() < 0.3 else (rng.random((m, k)) < 0.5) * 1.0
    if k == 1 and rng.random() < 0.3:
        Y = Y[:, 0]
    return X, Y.astype(spec["dtype"])


def step(model, optimizer, X, Y) -> dict:
    model.zero_grad()
    loss = model.cost(X, Y)
    planned = type(model._pending) is Body
    parts = model.loss.parts(loss, len(X))  # what the loss keeps, fit reads
    model.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    optimizer.step()
    return dict(
        loss=loss,
        parts=parts,
        planned=planned,
        outputs=model.last_outputs.copy(),
        grads=grads,
        params=[p.value.copy() for p in model.parameters()],
    )


def assert_bits(a: np.ndarray, b: np.ndarray) -> None:
    """The same numbers to the bit (a -0.0 for a 0.0 too)."""
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
    assert a.tobytes() == b.tobytes()


def assert_same(fast: dict, textbook: dict) -> None:
    assert fast["loss"] == textbook["loss"]
    assert fast["parts"] == textbook["parts"]
    assert_bits(fast["outputs"], textbook["outputs"])
    for key in ("grads", "params"):
        assert len(fast[key]) == len(textbook[key])
        for a, b in zip(fast[key], textbook[key], strict=True):
            assert_bits(a, b)


def planned_pair(rng: np.random.Generator, spec: dict, m: int):
    """The fast and the textbook model of ``spec`` and data ``(X, Y)`` of ``m`` rows, after two
    steps on it that gave the same on both paths (checked): the fast model's plan exists."""
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    X, Y = random_data(rng, spec, m)
    for _ in range(2):
        assert_same(on_path(True, step, *fast, X, Y), on_path(False, step, *textbook, X, Y))
    return fast, textbook, X, Y


@pytest.mark.parametrize("seed", range(40))
def test_random_nets_train_to_the_same_numbers_as_the_textbook_path(seed):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng)
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    planned = []
    for _ in range(4):
        X, Y = random_data(rng, spec, int(rng.integers(1, 9)))
        result = on_path(True, step, *fast, X, Y)
        assert_same(result, on_path(False, step, *textbook, X, Y))
        ignored = spec["loss"] in CLASS_LOSSES and (Y < 0).any()  # (the textbook's)
        planned.append(result["planned"] or ignored)
    assert all(planned[1:])  # the plan is made after the first cost, then used


def bad_inputs(spec: dict, rng: np.random.Generator):
    """Pairs (X, Y) the textbook cost refuses or converts."""
    X, Y = random_data(rng, spec, 5)
    if spec["loss"] in CLASS_LOSSES:
        yield from bad_class_inputs(spec, X, Y)
        return
    Y = Y.reshape(5, -1)
    other = np.float64 if spec["dtype"] == np.float32 else np.float32
    nan, inf, big = X.copy(), X.copy(), X.copy()
    nan[2, 0], inf[1, -1], big[0, 0] = np.nan, -np.inf, 1e30
    yield nan, Y
    yield inf, Y
    yield big, Y  # finite: trains (overflows in float32 later, in both)
    yield X.astype(other), Y
    yield X.astype(other), Y.astype(other)
    yield X, Y.astype(other)
    yield np.rint(X).astype(int), Y
    yield X.tolist(), Y.tolist()
    yield X[:, :-1], Y
    yield X[:, 0], Y
    yield X[None], Y
    yield X[:0], Y[:0]
    yield X, Y[:-1]
    yield X, np.concatenate([Y, Y], axis=1)
    yield X, Y[:, 0] if Y.shape[1] > 1 else Y[:, 0].astype(int)
    # out of [0, 1], and edges its bit test must get right (-0.0 is in [0, 1]: accepted by
    # the textbook; the smallest number above 1, the negative smallest subnormal, -NaN)
    tiny = np.finfo(Y.dtype).smallest_subnormal
    edges = (-0.0, 0.0, 1.0, np.nextafter(Y.dtype.type(1), 2), -tiny, tiny, -np.nan)
    for value in (1.5, -0.25, np.nan, np.inf, -np.inf, *edges):
        wrong = Y.copy()
        wrong[3, 0] = value
        yield X, wrong
    yield X, Y.astype(bool)
    yield X, np.asfortranarray(Y)
    yield np.asfortranarray(X), Y


def bad_class_inputs(spec: dict, X: np.ndarray, y: np.ndarray):
    """Pairs (X, y) of class indices that the textbook cost refuses or converts."""
    k = spec["widths"][-1]
    nan = X.copy()
    nan[1, 0] = np.nan
    yield nan, y
    yield X, y.astype(np.int32)
    yield X, y.astype(np.float64)  # whole numbers: converted
    yield X, y + 0.5
    yield X, y.tolist()
    yield X, y[:-1]
    yield X, y.reshape(-1, 1)
    yield X, np.eye(k)[np.clip(y, 0, k - 1)]  # one-hot rows instead of indices
    for value in (k, -1, -100, 2**40, -(2**63), 2**63 - 1):
        wrong = y.copy()
        wrong[2] = value
        yield X, wrong
    yield X, np.full_like(y, -100)  # every row ignored
    yield X.astype(np.float32 if spec["dtype"] == np.float64 else np.float64), y


def outcome(model, X, Y):
    try:
        return ("value", model.cost(X, Y))
    except Exception as err:  # noqa: BLE001  (the error itself is what is compared)
        return (type(err), str(err))


@pytest.mark.parametrize("seed", range(12))
def test_bad_data_gets_the_textbook_errors_and_conversions(seed):
    rng = np.random.default_rng(100 + seed)
    spec = random_spec(rng)
    fast, textbook, X, Y = planned_pair(rng, spec, 4)
    with np.errstate(over="ignore", invalid="ignore"):
        for bad_X, bad_Y in bad_inputs(spec, rng):
            got = on_path(True, outcome, fast[0], bad_X, bad_Y)
            assert got == on_path(False, outcome, textbook[0], bad_X, bad_Y), (bad_X, bad_Y)
            # and the next good step agrees again
            assert_same(on_path(True, step, *fast, X, Y), on_path(False, step, *textbook, X, Y))


def _scaled_forward(layer):
    original = type(layer).forward
    return lambda x: original(layer, 2 * x)


CHANGES = {
    "loss": lambda model: setattr(model, "loss", type(model.loss)(reduction="sum")),
    "l2": lambda model: setattr(model, "l2", 0.05),
    "a value array": lambda model: _replace_value(model),
    "a parameter": lambda model: _replace_parameter(model),
    "a patched forward": lambda model: _patch(model),
    "a layer inserted": lambda model: _insert(model),
    "eval and train": lambda model: model.eval().train(),
    "a parameter added": lambda model: _add_parameter(model),
}


def _linears(model):
    return [layer for layer in model if isinstance(layer, minnet.Linear)]


def _replace_value(model):
    layer = _linears(model)[0]
    layer.W.value = layer.W.value * 0.5  # a new array: the flat storage no longer holds it
    layer.W.grad = np.zeros_like(layer.W.value)


def _replace_parameter(model):
    layer = _linears(model)[-1]
    layer.b = minnet.Parameter(layer.b.value + 0.25)


def _patch(model):
    layer = _linears(model)[-1]
    layer.forward = _scaled_forward(layer)


def _insert(model):
    for i, layer in enumerate(model.layers[:-1]):
        if isinstance(layer, minnet.Linear):
            model.insert(i + 1, minnet.Tanh())
            return


def _add_parameter(model):
    layer = _linears(model)[0]
    layer.extra = minnet.Parameter(np.ones(2, dtype=layer.W.dtype))
    layer.extra.grad[...] = 5.0  # zero_grad must reach it


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("seed", range(4))
def test_a_model_changed_between_steps_trains_as_the_textbook_model(change, seed):
    rng = np.random.default_rng(200 + seed)
    spec = random_spec(rng)
    spec["logits"] = False  # a final Sigmoid after the last Linear
    fast, textbook, X, Y = planned_pair(rng, spec, 6)
    CHANGES[change](fast[0])
    CHANGES[change](textbook[0])
    for _ in range(2):
        assert_same(on_path(True, step, *fast, X, Y), on_path(False, step, *textbook, X, Y))
        for p in fast[0].parameters():  # zero_grad reached every parameter, the new ones too
            fast[0].zero_grad()
            assert not np.any(p.grad)


def test_switching_the_accelerator_off_between_cost_and_backward_changes_no_number():
    rng = np.random.default_rng(7)
    spec = random_spec(rng)
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    X, Y = random_data(rng, spec, 5)
    for _ in range(2):
        on_path(True, step, *fast, X, Y)
        on_path(False, step, *textbook, X, Y)
    for model in (fast[0], textbook[0]):
        model.zero_grad()
    assert on_path(True, fast[0].cost, X, Y) == on_path(False, textbook[0].cost, X, Y)
    on_path(False, fast[0].backward)
    on_path(False, textbook[0].backward)
    for a, b in zip(fast[0].parameters(), textbook[0].parameters(), strict=True):
        assert_bits(a.grad, b.grad)


def test_the_plan_is_made_only_for_models_it_knows():
    X, Y = np.ones((3, 2)), np.array([0.0, 1.0, 1.0])
    known = minnet.Sequential(
        [minnet.Linear(2, 3), minnet.ReLU(), minnet.Linear(3, 1), minnet.Sigmoid()]
    )
    unknown = [
        minnet.Sequential(
            [minnet.Linear(2, 3), minnet.LeakyReLU(), minnet.Linear(3, 1), minnet.Sigmoid()]
        ),
        minnet.Sequential([minnet.Linear(2, 1)], loss=minnet.MSELoss()),
    ]
    for model in [known, *unknown]:
        for _ in range(2):
            model.cost(X, Y)
    assert type(known._pending) is Body
    assert id(known) in _fast._PLANS
    for model in unknown[:2]:
        assert type(model._pending) is not Body
    sample_weight = np.array([1.0, 2.0, 0.5])
    known.cost(X, Y, sample_weight)  # sample weights: the textbook path
    assert type(known._pending) is not Body


def test_a_backward_patched_between_cost_and_backward_is_the_one_that_runs():
    rng = np.random.default_rng(8)
    spec = random_spec(rng)
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    X, Y = random_data(rng, spec, 5)
    for _ in range(2):
        on_path(True, step, *fast, X, Y)
        on_path(False, step, *textbook, X, Y)
    for path, (model, _) in ((True, fast), (False, textbook)):
        model.zero_grad()
        on_path(path, model.cost, X, Y)
        layer = _linears(model)[-1]
        original = type(layer).backward
        layer.backward = lambda g, layer=layer, original=original: original(layer, 3 * g)
        on_path(path, model.backward)
    for a, b in zip(fast[0].parameters(), textbook[0].parameters(), strict=True):
        assert_bits(a.grad, b.grad)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_dead_unit_gets_the_textbook_zero_gradient_not_a_negative_zero(dtype, sign):
    # Unit 0 of the hidden layer is dead (its input is -1 for any x): its bias's gradient is
    # (sigmoid(z) - 1) * W2[0, 0] * 0, a -0.0 for W2[0, 0] > 0, which the textbook adds to 0
    # and so makes 0.
    def make():
        first, second = (
            minnet.Linear(2, 3, rng=0, dtype=dtype),
            minnet.Linear(3, 1, rng=1, dtype=dtype),
        )
        first.W.value[0], first.b.value[0], second.W.value[0, 0] = 0, -1, sign
        model = minnet.Sequential([first, minnet.ReLU(), second, minnet.Sigmoid()], dtype=dtype)
        return model, minnet.SGD(model.parameters(), lr=0.1)

    fast, textbook = on_path(True, make), on_path(False, make)
    X, Y = np.array([[0.5, -2.0]], dtype=dtype), np.ones((1, 1), dtype=dtype)
    for _ in range(3):
        result = on_path(True, step, *fast, X, Y)
        assert_same(result, on_path(False, step, *textbook, X, Y))
    assert result["planned"]
    assert result["grads"][1][0] == 0 and result["grads"][2][0, 0] == 0  # the dead unit's


def cost_and_backward_twice(model, X, Y) -> list[np.ndarray]:
    """Two costs and backwards without a zero_grad between: the gradients add up."""
    model.zero_grad()
    for _ in range(2):
        model.cost(X, Y)
        model.backward()
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("seed", range(12))
def test_gradients_add_up_over_two_backwards_as_in_the_textbook(seed):
    # the second backward adds to what the first wrote (the plan's "first" write only after a
    # zero_grad); also for a model past FIRST_WRITE parameters, which always adds
    rng = np.random.default_rng(300 + seed)
    spec = random_spec(rng)
    if seed % 3 == 0:
        spec["widths"], spec["activations"] = [300, 250, 1], [0]  # 75,501 parameters: more
        # than plan.FIRST_WRITE
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    for _ in range(2):
        X, Y = random_data(rng, spec, int(rng.integers(1, 9)))
        grads = on_path(True, cost_and_backward_twice, fast[0], X, Y)
        expected = on_path(False, cost_and_backward_twice, textbook[0], X, Y)
        for a, b in zip(grads, expected, strict=True):
            assert_bits(a, b)
    assert type(fast[0]._pending) is not Body  # (backward ran: nothing pending)


def negative_zero_grads_then_backward(model, X, Y) -> list[np.ndarray]:
    """A zero_grad, every gradient then set to -0.0 (zero, but -0.0 + -0.0 is -0.0), one
    cost and backward: the gradients."""
    model.zero_grad()
    for p in model.parameters():
        p.grad[...] = -0.0
    model.cost(X, Y)
    model.backward()
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_of_negative_zero_add_up_as_in_the_textbook(dtype):
    # the plan writes a small model's gradients only over +0.0 and adds over anything else,
    # -0.0 included (-0.0 + -0.0 is -0.0); unit 0 of the hidden layer is tanh(-30) = -1
    # exactly, its gradients zeros of either sign
    def make():
        first, second = (
            minnet.Linear(2, 3, rng=0, dtype=dtype),
            minnet.Linear(3, 1, rng=1, dtype=dtype),
        )
        first.W.value[0], first.b.value[0], second.W.value[0, 0] = 0, -30, 1
        return (minnet.Sequential([first, minnet.Tanh(), second, minnet.Sigmoid()], dtype=dtype),)

    fast, textbook = on_path(True, make), on_path(False, make)
    X, Y = np.array([[0.5, -2.0]], dtype=dtype), np.ones((1, 1), dtype=dtype)
    for _ in range(3):  # (the plan exists after the first)
        grads = on_path(True, negative_zero_grads_then_backward, fast[0], X, Y)
        expected = on_path(False, negative_zero_grads_then_backward, textbook[0], X, Y)
        for a, b in zip(grads, expected, strict=True):
            assert_bits(a, b)
    assert expected[1][0] == 0


def copied_between_cost_and_backward(model, X, Y, how) -> list[list[np.ndarray]]:
    """A step whose backward runs on a deep copy (or an unpickled copy) of the model made
    after its cost: the gradients of the copy, then of the original."""
    model.zero_grad()
    model.cost(X, Y)
    copy = deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    copy.backward()
    return [[p.grad.copy() for p in m.parameters()] for m in (copy, model)]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_model_copied_between_cost_and_backward_runs_its_own_backward(how):
    # the planned cost leaves model._pending a Body, whose plan's written-out code holds the
    # original layers: a copy's backward must add to the copy's gradients, not the original's,
    # and pickling must not fail on the plan
    rng = np.random.default_rng(9)
    spec = random_spec(rng)
    fast, textbook = on_path(True, build, spec), on_path(False, build, spec)
    X, Y = random_data(rng, spec, 5)
    for _ in range(2):  # the plan exists after these
        on_path(True, step, *fast, X, Y)
        on_path(False, step, *textbook, X, Y)
    got = on_path(True, copied_between_cost_and_backward, fast[0], X, Y, how)
    expected = on_path(False, copied_between_cost_and_backward, textbook[0], X, Y, how)
    for grads, expected_grads in zip(got, expected, strict=True):
        for a, b in zip(grads, expected_grads, strict=True):
            assert_bits(a, b)
    assert any(np.any(g) for g in got[0])  # (the copy got its gradients)


def pos_weight_set_later(loss_type, X, Y) -> list[float]:
    model = minnet.Sequential(
        [minnet.Linear(2, 3, rng=0), minnet.ReLU(), minnet.Linear(3, 1, rng=1)]
        + ([minnet.Sigmoid()] if loss_type is minnet.BCELoss else []),
        loss=loss_type(),
    )
    costs = []
    for i in range(4):
        if i == 2:  # after the plan was made (without pos_weight)
            model.loss.pos_weight = np.array([3.0])
        if i == 3:
            model.loss.pos_weight = None
        model.zero_grad()
        costs.append(model.cost(X, Y))
        model.backward()
    return costs + [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("loss_type", [minnet.BCELoss, minnet.BCEWithLogitsLoss])
def test_a_pos_weight_set_on_the_loss_after_planning_counts(loss_type):
    X, Y = np.array([[0.5, -2.0], [1.0, 0.25]]), np.array([1.0, 0.0])
    got = on_path(True, pos_weight_set_later, loss_type, X, Y)
    expected = on_path(False, pos_weight_set_later, loss_type, X, Y)
    assert got[:4] == expected[:4]
    assert got[2] != got[1]  # (pos_weight changed the cost)
    for a, b in zip(got[4:], expected[4:], strict=True):
        assert_bits(a, b)


def _with_bias(model, value):
    layer = _linears(model)[-1]
    layer.b.value = value(layer.b.value)


BIASES = {
    "float64 in float32": lambda b: b.astype(np.float64),  # x @ W.T + b is float64 then
    "float16 in float32": lambda b: b.astype(np.float16),
    "big-endian": lambda b: b.astype(b.dtype.newbyteorder(">")),
    "(1, k)": lambda b: b[None, :].copy(),
    "too long": lambda b: np.zeros(len(b) + 2, b.dtype),
    "(m, 1, k)": lambda b: np.zeros((6, 1, len(b)), b.dtype),
}


@pytest.mark.parametrize("bias", sorted(BIASES))
def test_a_bias_of_another_dtype_or_shape_gives_the_textbook_numbers_and_errors(bias):
    # the plan adds the bias in place, into the product's dtype and shape: a bias that the
    # textbook's x @ W.T + b would widen (float64 in a float32 model) or broadcast otherwise
    # must not be narrowed or refused another way
    rng = np.random.default_rng(11)
    spec = random_spec(rng)
    spec["dtype"] = np.float32
    fast, textbook, X, Y = planned_pair(rng, spec, 6)
    _with_bias(fast[0], BIASES[bias])
    _with_bias(textbook[0], BIASES[bias])
    got = on_path(True, outcome, fast[0], X, Y)
    assert got == on_path(False, outcome, textbook[0], X, Y)
    if got[0] == "value":
        fast[0].zero_grad()
        textbook[0].zero_grad()
        assert_same(on_path(True, step, *fast, X, Y), on_path(False, step, *textbook, X, Y))


def _swap_attribute(layer, name):
    """``name`` deleted and another attribute added: the layer's number of attributes, which
    the plan watches, is the same."""
    delattr(layer, name)
    layer.unrelated = 1


BETWEEN_COST_AND_BACKWARD = {
    "a Linear's x deleted": lambda model: _swap_attribute(_linears(model)[-1], "x"),
    "a Linear's W deleted": lambda model: _swap_attribute(_linears(model)[-1], "W"),
    "a ReLU's out deleted": lambda model: _swap_attribute(
        next(layer for layer in model if type(layer) is minnet.ReLU), "out"
    ),
    "a Linear's x wider": lambda model: setattr(
        _linears(model)[-1], "x", np.hstack([_linears(model)[-1].x] * 2)
    ),
    "a Linear's x of one column": lambda model: setattr(
        _linears(model)[-1], "x", _linears(model)[-1].x[:, :1].copy()
    ),
}


@pytest.mark.parametrize("change", sorted(BETWEEN_COST_AND_BACKWARD))
def test_a_layer_changed_between_cost_and_backward_gets_the_textbook_outcome(change):
    # the same errors (a deleted attribute: the layer's MissingForwardError, not a KeyError;
    # a wider x: numpy's error of the textbook's +=) or the same numbers (an x of one column:
    # the textbook's += broadcasts it), after a zero_grad (the plan's writing backward)
    rng = np.random.default_rng(12)
    spec = random_spec(rng)
    spec.update(widths=[3, 4, 3, 2], activations=[0, 0], first_relu=False, loss="logits")
    fast, textbook, X, Y = planned_pair(rng, spec, 5)
    results = []
    for path, (model, _) in ((True, fast), (False, textbook)):
        model.zero_grad()
        on_path(path, model.cost, X, Y)
        assert type(model._pending) is (Body if path else list)
        BETWEEN_COST_AND_BACKWARD[change](model)
        try:
            on_path(path, model.backward)
            error = None
        except Exception as err:  # noqa: BLE001  (the error itself is what is compared)
            error = (type(err), str(err))
        results.append((error, [p.grad.copy() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert_bits(a, b)


def test_a_model_planned_again_and_again_keeps_one_finalizer():
    """A model whose plan is made again at every step (its l2 changes) registers one finalizer
    that drops its entries when it is gone, not one per plan."""
    import gc
    import weakref

    from minnet import _fast

    model = minnet.Sequential(
        [minnet.Linear(3, 2, rng=0), minnet.ReLU(), minnet.Linear(2, 1, rng=1), minnet.Sigmoid()]
    )
    X, Y = np.ones((4, 3)), np.ones((4, 1))
    before = len(weakref.finalize._registry)
    for step in range(20):
        model.l2 = 0.01 * step  # drops the plan: the next cost plans again
        model.zero_grad()
        model.cost(X, Y)
        model.backward()
    assert len(weakref.finalize._registry) - before <= 2
    key = id(model)
    assert key in _fast._PLANS
    del model
    gc.collect()
    assert key not in _fast._PLANS and key not in _fast._PLACES


def _widened(model):
    """The first hidden layer made wider by new parameters, the next Linear's W too, their
    in_features left as they were (the textbook's forward refuses the wider input)."""
    first, second = _linears(model)[:2]
    width = first.out_features + 2
    first.W = minnet.Parameter(np.ones((width, first.in_features), dtype=first.W.dtype))
    first.b = minnet.Parameter(np.zeros(width, dtype=first.b.dtype))
    second.W = minnet.Parameter(np.ones((second.out_features, width), dtype=second.W.dtype))


def _in_features_changed(model):
    _linears(model)[1].in_features += 1


def _in_features_swapped(model):
    _swap_attribute(_linears(model)[1], "in_features")


@pytest.mark.parametrize("change", [_widened, _in_features_changed, _in_features_swapped])
def test_a_hidden_linear_given_input_of_another_width_refuses_it_as_the_textbook(change):
    # the plan's product x @ W.T succeeds for a W as wide as x, but the textbook's Linear
    # first checks x against its in_features: the same error, the same state after it
    rng = np.random.default_rng(13)
    spec = random_spec(rng)
    spec.update(widths=[3, 4, 2], activations=[0], first_relu=False, loss="bce")
    fast, textbook, X, Y = planned_pair(rng, spec, 5)
    results = []
    for path, (model, _) in ((True, fast), (False, textbook)):
        change(model)
        model.zero_grad()
        got = on_path(path, outcome, model, X, Y)
        layers = [
            {k: v.copy() for k, v in vars(layer).items() if k in ("x", "out")} for layer in model
        ]
        results.append((got, layers, model._pending))
    assert results[0][0] == results[1][0]
    assert results[0][0][0] in (ValueError, minnet.layers.base.MissingForwardError, AttributeError)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert_bits(a[key], b[key])


def _wide_gradient_models():
    # the loss's gradient wider than the model's float32 (NLLLoss's class weights are float64),
    # reaching a Linear of one output; and a float32 model given float64 values
    rng = np.random.default_rng(14)
    layers = [minnet.Linear(3, 1, rng=rng, dtype=np.float32), minnet.ReLU()]
    layers += [minnet.Linear(1, 3, rng=rng, dtype=np.float32), minnet.LogSoftmax()]
    yield minnet.Sequential(layers, loss=minnet.NLLLoss([1.0, 2.0, 0.3]), dtype=np.float32)
    layers = [minnet.Linear(3, 4, rng=rng, dtype=np.float32), minnet.Tanh()]
    layers += [minnet.Linear(4, 1, rng=rng, dtype=np.float32), minnet.Sigmoid()]
    model = minnet.Sequential(layers, dtype=np.float32)
    X = np.ones((2, 3), dtype=np.float32)
    model.cost(X, np.ones(2, dtype=np.float32))  # (planned with the float32 values)
    model.cost(X, np.ones(2, dtype=np.float32))
    for layer in _linears(model):  # e.g. weights loaded from a float64 file
        layer.W.value = layer.W.value.astype(np.float64)
        layer.b.value = layer.b.value.astype(np.float64)
    yield model


@pytest.mark.parametrize("which", [0, 1])
def test_a_gradient_wider_than_the_parameters_is_summed_as_in_the_textbook(which):
    # after a zero_grad the plan writes b.grad as the sum of the gradient's rows; numpy sums
    # into a float32 out= in float32 (by blocks), where the textbook sums in float64 and then
    # rounds once: over many rows, another float32
    def run():
        model = list(_wide_gradient_models())[which]
        rng = np.random.default_rng(15)
        m = 20_000
        X = rng.standard_normal((m, 3)).astype(np.float32)
        if which == 0:
            Y = rng.integers(0, 3, m)
        else:
            Y = (rng.random(m) < 0.5).astype(np.float32)
        grads = []
        for _ in range(3):  # (the plan exists after the first)
            model.zero_grad()
            model.cost(X, Y)
            planned = type(model._pending) is Body
            model.backward()
            grads.append([p.grad.copy() for p in model.parameters()])
        return planned, grads

    (planned, got), (_, expected) = on_path(True, run), on_path(False, run)
    assert planned
    for grads, expected_grads in zip(got, expected, strict=True):
        for a, b in zip(grads, expected_grads, strict=True):
            assert_bits(a, b)


def test_a_parameter_appended_to_a_list_on_a_layer_is_zeroed_by_zero_grad():
    # the layer's number of attributes does not change: zero_grad must still reach it
    def run():
        model = minnet.Sequential(
            [
                minnet.Linear(3, 4, rng=0),
                minnet.ReLU(),
                minnet.Linear(4, 1, rng=1),
                minnet.Sigmoid(),
            ]
        )
        model[0].extras = []
        X, Y = np.ones((2, 3)), np.ones(2)
        for _ in range(2):  # (the plan, or the cached places of the parameters, after these)
            model.zero_grad()
            model.cost(X, Y)
            model.backward()
        extra = minnet.Parameter(np.ones(2))
        extra.grad[...] = 5.0
        model[0].extras.append(extra)
        model.zero_grad()
        return extra.grad.copy()

    assert_bits(on_path(True, run), on_path(False, run))


def test_two_relus_in_a_row_keep_outputs_of_their_own():
    # the plan's ReLU works in place on a Linear's fresh output; a second ReLU after it must
    # not work in place on the first one's out (the textbook's two outs are two arrays)
    def run():
        layers = [minnet.Linear(3, 4, rng=0), minnet.ReLU(), minnet.ReLU()]
        model = minnet.Sequential([*layers, minnet.Linear(4, 1, rng=1), minnet.Sigmoid()])
        X, Y = np.linspace(-1, 1, 6).reshape(2, 3), np.ones(2)
        for _ in range(3):
            model.zero_grad()
            model.cost(X, Y)
            planned = type(model._pending) is Body
            model.backward()
        return planned, model[1].out is model[2].out

    assert on_path(True, run) == (True, False)
    assert on_path(False, run) == (False, False)


@pytest.mark.parametrize("widths", [(784, 335), (64, 4097)])
def test_a_large_weight_gradient_added_by_blocks_is_the_textbook_product(widths):
    # add_product adds W.grad's product a block of rows at a time past PRODUCT_BLOCK entries:
    # a block of one row is a matrix-vector product for numpy (another BLAS routine, another
    # rounding) where the textbook's whole product is a matrix product. 784 -> 335: blocks of
    # 334 rows and one; 64 -> 4097: blocks of 4096 and one
    n, k = widths

    def run():
        rng = np.random.default_rng(16)
        layers = [minnet.Linear(n, k, rng=rng), minnet.Tanh(), minnet.Linear(k, 1, rng=rng)]
        model = minnet.Sequential([*layers, minnet.Sigmoid()])
        X, Y = rng.standard_normal((3, n)), np.array([0.0, 1.0, 1.0])
        grads = []
        for _ in range(2):  # (planned the second time)
            model.zero_grad()
            model.cost(X, Y)
            model.backward()
            grads.append(model[0].W.grad.copy())
        return grads

    for a, b in zip(on_path(True, run), on_path(False, run), strict=True):
        assert_bits(a, b)
