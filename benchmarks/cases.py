"""The workloads: nets, data, and one callable per (framework, task) to time.

Every net is LINEAR -> RELU -> ... -> LINEAR -> SIGMOID with the mean binary cross-entropy,
computed from the logits. All frameworks of a case start from the same weights and data (drawn
here from a seed, or the tutorial's test case for 4-5-3-1), so their losses must agree: every
step returns its loss, and report.py compares the first three across frameworks.

torch is imported only inside the torch builders, so the numpy workers never load its thread
pool; minnet only inside the minnet builders, so the other workers still run while minnet is
broken.
"""

from __future__ import annotations

import inspect

import numpy as np
import tutorial_loop

LR = 0.01
SGD_BLOCK = 1 << 16  # entries updated at once by the hand-written SGD (512 KiB in float64)


# --- nets and data ---------------------------------------------------------------------------


def sizes_of(net: str) -> list[int]:
    return [int(n) for n in net.split("-")]


def make_case(net: str, batch: int):
    """``X: (batch, in)``, ``Y: (batch, 1)`` of 0/1 labels, float64 ``[(W, b)]``.

    4-5-3-1 is the tutorial's test case (batch 3); other nets get He-initialised weights, small
    random biases and standard normal inputs from a fixed seed.
    """
    if net == "4-5-3-1":
        if batch != 3:
            raise ValueError(f"the tutorial's case has batch 3, not {batch}")
        return tutorial_case()
    rng = np.random.default_rng(sum(sizes_of(net)) * 1000 + batch)
    sizes = sizes_of(net)
    weights = [
        (rng.standard_normal((n_out, n_in)) * np.sqrt(2 / n_in), 0.1 * rng.standard_normal(n_out))
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    X = rng.standard_normal((batch, sizes[0]))
    Y = (rng.random((batch, 1)) < 0.5).astype(np.float64)
    return X, Y, weights


def tutorial_case():
    """The tutorial's ``gradient_check_n_test_case()`` (``np.random.seed(1)``), batch-first.

    The same as ``minnet.teaching.tutorial.tutorial_case()``, with ``Y`` as a float column: kept
    here so that the numpy and torch workers do not import minnet.
    """
    rng = np.random.RandomState(1)  # the legacy generator np.random.seed(1) sets up
    x = rng.randn(4, 3)
    y = np.array([[1.0], [1.0], [0.0]])
    W1, b1 = rng.randn(5, 4), rng.randn(5, 1)
    W2, b2 = rng.randn(3, 5), rng.randn(3, 1)
    W3, b3 = rng.randn(1, 3), rng.randn(1, 1)
    return x.T, y, [(W1, b1.ravel()), (W2, b2.ravel()), (W3, b3.ravel())]


def cast(X, Y, weights, dtype):
    dtype = np.dtype(dtype)
    return (
        X.astype(dtype),
        Y.astype(dtype),
        [(W.astype(dtype), b.astype(dtype)) for W, b in weights],
    )


# --- minnet ----------------------------------------------------------------------------------


def minnet_model(weights, dtype=np.float64):
    """A minnet Sequential holding copies of ``weights`` in ``dtype``, and how dtype was set.

    Prefers ``Sequential(..., dtype=)``; without it, ``Linear(..., dtype=)``; if the parameters
    still are not in ``dtype``, converts them (``p.value.astype``) before the optimizer is made.
    """
    import minnet

    dtype = np.dtype(dtype)
    layers = []
    for i, (W, _) in enumerate(weights):
        layers.append(minnet.Linear(W.shape[1], W.shape[0], init="he", dtype=dtype, rng=0))
        layers.append(minnet.ReLU() if i + 1 < len(weights) else minnet.Sigmoid())
    if "dtype" in inspect.signature(minnet.Sequential).parameters:
        model, how = minnet.Sequential(layers, dtype=dtype), "Sequential(dtype=)"
    else:
        model, how = minnet.Sequential(layers), "Linear(dtype=); Sequential has no dtype"
    if any(p.value.dtype != dtype for p in model.parameters()):
        for p in model.parameters():
            p.value = p.value.astype(dtype)
            p.grad = np.zeros_like(p.value)
        how += ", parameters converted"
    # The weights go in last, so that no init rescaling in Sequential can touch them.
    linears = [layer for layer in model.layers if isinstance(layer, minnet.Linear)]
    for layer, (W, b) in zip(linears, weights, strict=True):
        layer.W.value[...] = W
        layer.b.value[...] = b
    return model, how


def minnet_step(X, Y, weights, dtype):
    import minnet

    model, how = minnet_model(weights, dtype)
    opt = minnet.SGD(model.parameters(), lr=LR)

    def step():
        model.zero_grad()
        loss = model.cost(X, Y)
        model.backward()
        opt.step()
        return loss

    return step, {"dtype_via": how}


# --- the hand-written floor ------------------------------------------------------------------


class NumpyStep:
    """The tightest plain-numpy training step we could write for the same net: the floor.

    - Batch-first like minnet (``Z = A @ W.T + b``); activations are made fresh each step and
      rectified in place; the backward's ReLU mask is taken from the activation (``A > 0``).
    - All parameters are views of one flat vector and all gradients views of another, kept
      between steps (as minnet's and torch's ``.grad``) and written with ``out=``, so there is
      nothing to zero; SGD works on the flat vectors a block at a time (two in-place
      operations per block of ``SGD_BLOCK`` entries: one block for a small net), so its scratch
      buffer stays small.
    - Reductions by ``np.add.reduce``: ``np.sum`` and ``np.mean`` add microseconds of Python.
    - The loss ``mean(softplus(z) - y z)``, with ``softplus(z) = logaddexp(0, z)``, and its
      gradient ``(sigmoid(z) - y) / m``, with ``sigmoid(z) = exp(z - softplus(z))``.
    """

    def __init__(self, X, Y, weights, lr=LR):
        self.X, self.Y, self.lr = X, Y, lr
        dtype = weights[0][0].dtype
        shapes = [array.shape for pair in weights for array in pair]
        size = sum(int(np.prod(shape)) for shape in shapes)
        self.flat_params = np.concatenate([array.ravel() for pair in weights for array in pair])
        self.flat_grads = np.zeros(size, dtype=dtype)
        self.work = np.empty(min(size, SGD_BLOCK), dtype=dtype)
        params, grads, start = [], [], 0
        for shape in shapes:
            stop = start + int(np.prod(shape))
            params.append(self.flat_params[start:stop].reshape(shape))
            grads.append(self.flat_grads[start:stop].reshape(shape))
            start = stop
        self.W, self.b = params[0::2], params[1::2]
        self.dW, self.db = grads[0::2], grads[1::2]

    def __call__(self) -> float:
        W, b, Y = self.W, self.b, self.Y
        # forward: A[k+1] = relu(A[k] @ W[k].T + b[k]); the last layer gives the logits z
        A = [self.X]
        for k in range(len(W) - 1):
            z = A[k] @ W[k].T
            z += b[k]
            A.append(np.maximum(z, 0, out=z))
        z = A[-1] @ W[-1].T
        z += b[-1]
        # loss, then its gradient in the same buffer: exp(z - softplus(z)) = sigmoid(z)
        softplus = np.logaddexp(0, z)
        loss = float(np.add.reduce(softplus - Y * z, axis=None)) / len(Y)
        dz = np.subtract(z, softplus, out=softplus)
        np.exp(dz, out=dz)
        dz -= Y
        dz *= 1 / len(Y)
        # backward
        for k in range(len(W) - 1, -1, -1):
            np.matmul(dz.T, A[k], out=self.dW[k])
            np.add.reduce(dz, axis=0, out=self.db[k])  # np.sum, without its Python wrapper
            if k:
                dz = dz @ W[k]
                dz *= A[k] > 0
        # SGD, a block at a time through a small scratch buffer
        for start in range(0, len(self.flat_params), SGD_BLOCK):
            grads = self.flat_grads[start : start + SGD_BLOCK]
            work = self.work[: len(grads)]
            np.multiply(grads, self.lr, out=work)
            self.flat_params[start : start + SGD_BLOCK] -= work
        return loss


def numpy_step(X, Y, weights, dtype):
    return NumpyStep(X, Y, weights), {}


# --- PyTorch ---------------------------------------------------------------------------------


def torch_model(weights, dtype):
    import torch

    layers = []
    for i, (W, b) in enumerate(weights):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=getattr(torch, np.dtype(dtype).name))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i + 1 < len(weights):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_step(X, Y, weights, dtype):
    import torch

    model = torch_model(weights, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    X, Y = torch.from_numpy(X), torch.from_numpy(Y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        opt.step()
        return loss

    return step, {}


TRAIN_STEPS = {"minnet": minnet_step, "numpy": numpy_step, "torch": torch_step}


def optimizer_step(framework: str, net: str, optimizer: str, kwargs: dict, dtype: str):
    """``(step, info)``: one ``optimizer.step()`` of minnet's or torch's ``optimizer`` class over
    the parameters of ``net``, from the gradients of one backward pass (which stay fixed)."""
    X, Y, weights = cast(*make_case(net, 1), dtype)
    if framework == "minnet":
        import minnet

        model, how = minnet_model(weights, dtype)
        model.cost(X, Y)
        model.backward()
        return getattr(minnet, optimizer)(model.parameters(), **kwargs).step, {"dtype_via": how}
    import torch

    model = torch_model(weights, dtype)
    loss = torch.nn.BCEWithLogitsLoss()(model(torch.from_numpy(X)), torch.from_numpy(Y))
    loss.backward()
    return getattr(torch.optim, optimizer)(model.parameters(), **kwargs).step, {}


def train_step(framework: str, net: str, batch: int, dtype: str):
    """``(step, info)``: a callable running one training step, and notes on how it was built."""
    X, Y, weights = cast(*make_case(net, batch), dtype)
    return TRAIN_STEPS[framework](X, Y, weights, dtype)


# --- gradient checks -------------------------------------------------------------------------


def torch_gradcheck(X, Y, weights, fast_mode):
    import torch
    import torch.nn.functional as F

    X, Y = torch.from_numpy(X), torch.from_numpy(Y)
    params = tuple(
        torch.tensor(array, dtype=torch.float64, requires_grad=True)
        for pair in weights
        for array in pair
    )

    def cost(*params):
        a = X
        for i in range(0, len(params), 2):
            a = F.linear(a, params[i], params[i + 1])
            if i + 2 < len(params):
                a = F.relu(a)
        return F.binary_cross_entropy_with_logits(a, Y)

    def check():
        return torch.autograd.gradcheck(cost, params, fast_mode=fast_mode, raise_exception=False)

    return check, lambda ok: {"passed": bool(ok)}


def gradcheck_task(method: str, net: str, batch: int):
    """``(check, describe)``: a callable running one full gradient check, and a function that
    turns its result into a few facts (passed, difference) for the report."""
    X, Y, weights = make_case(net, batch)
    if method in ("minnet", "minnet-fast"):
        model, _ = minnet_model(weights)
        fast = method == "minnet-fast"

        def check():
            return model.gradcheck(X, Y, fast=fast)

        return check, lambda r: {"passed": bool(r.passed), "difference": float(r.difference)}
    if method == "tutorial":
        args = tutorial_loop.prepare(weights, X, Y)
        return lambda: tutorial_loop.full_check(*args), lambda d: {"difference": float(d)}
    if method in ("torch", "torch-fast"):
        return torch_gradcheck(X, Y, weights, fast_mode=method == "torch-fast")
    raise ValueError(f"unknown gradcheck method {method!r}")


# --- a softmax classifier, trained with Adam -------------------------------------------------
#
# LINEAR -> RELU -> ... -> LINEAR (-> SOFTMAX in minnet, fused with its CrossEntropyLoss) with
# the mean softmax cross-entropy against class indices, one Adam step (lr 1e-3, PyTorch's
# defaults otherwise). The weights come from make_case; the labels are classes in [0, C).

ADAM_LR = 1e-3


def make_softmax_case(net: str, batch: int, dtype: str):
    X, _, weights = cast(*make_case(net, batch), dtype)
    rng = np.random.default_rng(batch)
    y = rng.integers(0, sizes_of(net)[-1], batch)
    return X, y, weights


def minnet_softmax_step(X, y, weights, dtype):
    import minnet

    layers = minnet_model(weights, dtype)[0].layers[:-1]  # the Linears and ReLUs, weights set
    model = minnet.Sequential([*layers, minnet.Softmax()], loss=minnet.CrossEntropyLoss())
    opt = minnet.Adam(model.parameters(), lr=ADAM_LR)

    def step():
        opt.zero_grad()
        loss = model.cost(X, y)
        model.backward()
        opt.step()
        return loss

    return step, {}


class NumpySoftmaxAdamStep(NumpyStep):
    """The hand-written floor for the softmax net: NumpyStep's forward and backward, the softmax
    cross-entropy from the logits (``log_softmax`` by the max shift, the gradient
    ``(softmax(z) - one_hot(y)) / m`` written in place), and PyTorch's Adam update in place on
    the flat vectors, with one scratch vector."""

    def __init__(self, X, y, weights, lr=ADAM_LR, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(X, None, weights, lr)
        self.y, self.rows = y, np.arange(len(y))
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = np.zeros_like(self.flat_params)
        self.v = np.zeros_like(self.flat_params)
        self.scratch = np.empty_like(self.flat_params)

    def __call__(self) -> float:
        W, b, y, m = self.W, self.b, self.y, len(self.y)
        A = [self.X]
        for k in range(len(W) - 1):
            z = A[k] @ W[k].T
            z += b[k]
            A.append(np.maximum(z, 0, out=z))
        z = A[-1] @ W[-1].T
        z += b[-1]
        z -= np.maximum.reduce(z, axis=1, keepdims=True)  # shifted logits, all <= 0
        exp = np.exp(z)
        sums = np.add.reduce(exp, axis=1, keepdims=True)
        loss = float(np.add.reduce(np.log(sums[:, 0]) - z[self.rows, y])) / m
        dz = np.divide(exp, sums, out=exp)
        dz[self.rows, y] -= 1
        dz *= 1 / m
        for k in range(len(W) - 1, -1, -1):
            np.matmul(dz.T, A[k], out=self.dW[k])
            np.add.reduce(dz, axis=0, out=self.db[k])
            if k:
                dz = dz @ W[k]
                dz *= A[k] > 0
        # Adam, PyTorch's operations in its order
        self.t += 1
        beta1, beta2 = self.betas
        g, mean, var, work = self.flat_grads, self.m, self.v, self.scratch
        np.subtract(g, mean, out=work)
        work *= 1 - beta1
        mean += work
        var *= beta2
        np.multiply(g, g, out=work)
        work *= 1 - beta2
        var += work
        np.sqrt(var, out=work)
        work /= (1 - beta2**self.t) ** 0.5
        work += self.eps
        np.divide(mean, work, out=work)
        work *= self.lr / (1 - beta1**self.t)
        self.flat_params -= work
        return loss


def numpy_softmax_step(X, y, weights, dtype):
    return NumpySoftmaxAdamStep(X, y, weights), {}


def torch_softmax_step(X, y, weights, dtype):
    import torch

    model = torch_model(weights, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss

    return step, {}


SOFTMAX_STEPS = {"minnet": minnet_softmax_step, "numpy": numpy_softmax_step,
                 "torch": torch_softmax_step}  # fmt: skip


def softmax_step(framework: str, net: str, batch: int, dtype: str):
    """``(step, info)`` for the softmax net with Adam."""
    return SOFTMAX_STEPS[framework](*make_softmax_case(net, batch, dtype), dtype)


# --- fit on scikit-learn's digits --------------------------------------------------------------
#
# 1,347 training images (a stratified quarter held out, random_state 0), pixels / 16; a
# 64-128-10 ReLU net, Adam lr 1e-3, batches of 32, 30 epochs, shuffled each epoch, no weight
# decay, no early stopping. One call trains a fresh net from the same seed; it returns the
# held-out accuracy.

DIGITS = {"hidden": 128, "epochs": 30, "batch": 32, "lr": 1e-3, "seed": 0}


def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=450, random_state=0, stratify=y)


def minnet_fit():
    import minnet

    X_train, X_test, y_train, y_test = digits_data()
    h = DIGITS["hidden"]

    def fit():
        rng = np.random.default_rng(DIGITS["seed"])
        model = minnet.Sequential(
            [minnet.Linear(64, h, rng=rng), minnet.ReLU(), minnet.Linear(h, 10, rng=rng)],
            loss=minnet.CrossEntropyLoss(),
        )
        model.fit(X_train, y_train, optimizer=minnet.Adam(model.parameters(), lr=DIGITS["lr"]),
                  epochs=DIGITS["epochs"], batch_size=DIGITS["batch"], seed=DIGITS["seed"],
                  progress=False)  # fmt: skip
        return model.evaluate(X_test, y_test).accuracy

    return fit


def sklearn_fit():
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_train, X_test, y_train, y_test = digits_data()

    def fit():
        model = MLPClassifier(
            hidden_layer_sizes=(DIGITS["hidden"],), solver="adam", alpha=0.0,
            learning_rate_init=DIGITS["lr"], batch_size=DIGITS["batch"],
            max_iter=DIGITS["epochs"], early_stopping=False, tol=0.0, n_iter_no_change=10**9,
            shuffle=True, random_state=DIGITS["seed"],
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: as asked
            model.fit(X_train, y_train)
        return float(model.score(X_test, y_test))

    return fit


def torch_fit():
    import torch

    X_train, X_test, y_train, y_test = digits_data()
    X_train, X_test = torch.from_numpy(X_train), torch.from_numpy(X_test)
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    h, batch = DIGITS["hidden"], DIGITS["batch"]

    def fit():
        torch.manual_seed(DIGITS["seed"])
        model = torch.nn.Sequential(
            torch.nn.Linear(64, h), torch.nn.ReLU(), torch.nn.Linear(h, 10)
        ).double()
        opt = torch.optim.Adam(model.parameters(), lr=DIGITS["lr"])
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(DIGITS["epochs"]):
            order = torch.randperm(len(X_train))
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                opt.zero_grad()
                loss_fn(model(X_train[rows]), y_train[rows]).backward()
                opt.step()
        with torch.no_grad():
            return float((model(X_test).argmax(1) == y_test).double().mean())

    return fit


FITS = {"minnet": minnet_fit, "sklearn": sklearn_fit, "torch": torch_fit}
