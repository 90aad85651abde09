"""scikit-learn estimators that build and train a minnet MLP: :class:`NetClassifier` and
:class:`NetRegressor`.

They take the arguments of scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` that they share
(``hidden_layer_sizes``, ``activation``, ``alpha``, ``batch_size``, ``learning_rate_init``,
``max_iter``, ``random_state``, ``verbose``) and work wherever an estimator does:
``cross_val_score``, ``Pipeline``, ``GridSearchCV``, ``clone``, pickling. The fitted minnet
:class:`~minnet.Sequential` is ``model_``: ``est.model_.summary()``,
``est.model_.gradcheck(X, y)``, ``minnet.to_torch(est.model_)``, ``est.model_.save(path)``.

scikit-learn is optional (``pip install "minnet[sklearn]"``); ``import minnet`` does not
import this module, nor scikit-learn.

**The training** is minnet's :meth:`~minnet.Sequential.fit`: ``max_iter`` epochs (always all
of them: there is no early stopping on ``tol``), mini-batches of ``batch_size`` rows reshuffled
every epoch, Adam (``lr=learning_rate_init``, betas 0.9, 0.999, eps 1e-8, as MLPClassifier's),
weights initialized from ``random_state`` (normal, He scale for ``"relu"``, Glorot otherwise),
in float64.

**alpha** is MLPClassifier's L2 penalty, on the weights of the Linear layers (not the
biases): each step minimizes ``loss + alpha / (2 * n) * sum(W**2)``, ``n`` the rows of the
mini-batch, so the penalty's gradient ``alpha / n * W`` is added to each weight's gradient
before the Adam update (an L2 penalty, not AdamW's decoupled weight decay). For NetRegressor,
minnet's ``MSELoss`` is the plain mean of squares while MLPRegressor's squared error is half
of it: the penalty is doubled to match (``MSE + alpha / n * sum(W**2)`` is twice
MLPRegressor's objective: the same minimum, and the same Adam steps up to its ``eps``). It is
the model's own L2 penalty (``Sequential(..., l2=)``), set before each mini-batch to
``alpha / n`` (a callback of ``fit``), so the loss ``fit`` reports (``history_``) includes it,
as MLPClassifier's ``loss_curve_`` does. The fitted ``model_`` keeps the penalty of a full
mini-batch, ``model_.l2 = alpha / batch_size``: its ``cost`` and ``gradcheck`` are of that
objective (``model_.l2 = 0`` for the loss alone).

**sample_weight** (``fit(X, y, sample_weight=w)``, as MLPClassifier's): row ``i`` counts ``w_i``
times in the loss, its gradient and the penalty's ``n``, which becomes the batch's sum of
weights (MLPClassifier's ``sw_sum``). With the whole data in one batch, a weight of 2 trains
the same net as the row given twice; with mini-batches, the batches differ.

**loss_curve_** and **loss_** are MLPClassifier's: each epoch's loss with its penalty, on
scikit-learn's scale (for NetRegressor, half of minnet's ``history_.loss``: MLPRegressor's
half squared error), and the last one.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as err:  # missing, or older than 1.6 (validate_data)
    raise ImportError(
        "minnet.integrations.sklearn needs scikit-learn 1.6 or later: install it with "
        f'`pip install "minnet[sklearn]"` ({err})'
    ) from err

from minnet.callbacks import Callback
from minnet.layers import Layer, Linear, ReLU, Sigmoid, Softmax, Tanh
from minnet.losses import CrossEntropyLoss, Loss, MSELoss
from minnet.model import Sequential
from minnet.optim import Adam

#: The activation names MLPClassifier takes, and the minnet layer each one is.
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid, "identity": None}


class BatchPenalty(Callback):
    """MLPClassifier's L2 penalty ``penalty / (2 * n) * sum(W**2)``, ``n`` the rows of each
    mini-batch: sets the model's ``l2`` to ``penalty / n`` before each batch, and to
    ``penalty / full`` (a full batch's) at the end."""

    def __init__(self, penalty: float, full: int) -> None:
        self.penalty, self.full = penalty, full

    def on_train_batch_begin(self, batch: int, logs: dict[str, float]) -> None:
        # n is the batch's rows, or the sum of their sample weights (MLPClassifier's sw_sum)
        self.model.l2 = self.penalty / logs.get("weight", logs["size"])

    def on_train_end(self, logs: dict[str, float]) -> None:
        self.model.l2 = self.penalty / self.full


class _NetBase(BaseEstimator):
    """What the two estimators share: the arguments, the net, the training."""

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        alpha: float = 1e-4,
        batch_size: int | str = 32,
        learning_rate_init: float = 1e-3,
        max_iter: int = 200,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    #: Scales the L2 penalty to the loss (see the module's docstring): minnet's loss is
    #: ``penalty_factor`` times scikit-learn's.
    penalty_factor = 1.0

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            sizes = [sizes]
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}"
            )
        return [int(s) for s in sizes]

    def _check_parameters(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if not isinstance(self.alpha, numbers.Real) or not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if not (
            self.batch_size == "auto"
            or (isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1)
        ):
            raise ValueError(
                f"batch_size must be a positive int or 'auto', got {self.batch_size!r}"
            )
        if not isinstance(self.learning_rate_init, numbers.Real) or not self.learning_rate_init > 0:
            raise ValueError(
                f"learning_rate_init must be a number > 0, got {self.learning_rate_init!r}"
            )
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {self.max_iter!r}")

    def _train(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        outputs: int,
        head: list[Layer],
        loss: Loss,
        sample_weight: Any = None,
    ):
        """Build the net for ``outputs`` outputs ending in ``head``, train it on ``X``, ``Y``
        (rows weighted by ``sample_weight``, if given)."""
        self._check_parameters()
        hidden = self._hidden_sizes()
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=2)
        rng = np.random.default_rng(seeds[0])
        activation = ACTIVATIONS[self.activation]
        init = "he" if self.activation == "relu" else "glorot"
        layers: list[Layer] = []
        sizes = [X.shape[1], *hidden, outputs]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(Linear(n_in, n_out, init=init, rng=rng))
            if i < len(hidden) and activation is not None:
                layers.append(activation())
        model = Sequential([*layers, *head], loss=loss)
        optimizer = Adam(model.parameters(), lr=self.learning_rate_init)
        batch_size = min(200, len(X)) if self.batch_size == "auto" else int(self.batch_size)
        penalty = BatchPenalty(self.penalty_factor * float(self.alpha), min(batch_size, len(X)))
        self.history_ = model.fit(
            X,
            Y,
            optimizer=optimizer,
            epochs=int(self.max_iter),
            batch_size=batch_size,
            seed=int(seeds[1]),
            callbacks=[penalty],
            sample_weight=sample_weight,
            progress=bool(self.verbose),
        )
        self.model_ = model
        self.n_iter_ = int(self.max_iter)
        self.loss_curve_ = [loss / self.penalty_factor for loss in self.history_.loss]
        self.loss_ = self.loss_curve_[-1]
        return self


class NetClassifier(ClassifierMixin, _NetBase):
    """A minnet MLP classifier with scikit-learn's interface (``MLPClassifier``'s arguments).

    The net is ``Linear -> activation`` for each hidden layer, then ``Linear`` to one output
    per class and a ``Softmax``, trained with ``CrossEntropyLoss`` (which fuses with that
    ``Softmax``: computed from the logits). Two classes are two outputs as well (a softmax over
    two logits is a sigmoid of their difference: the same models as MLPClassifier's one
    logistic output, one redundant logit). Labels may be anything ``np.unique`` sorts (strings,
    ints...): ``classes_`` holds them, and the model is trained on their indices in
    ``classes_``, so ``est.model_.gradcheck(X, np.searchsorted(est.classes_, y))`` checks the
    fitted net's gradients.

    Parameters
    ----------
    hidden_layer_sizes
        The width of each hidden layer, ``(100,)`` by default.
    activation
        ``"relu"`` (default), ``"tanh"``, ``"logistic"`` (a sigmoid) or ``"identity"`` (none).
    alpha
        L2 penalty on the weights, as MLPClassifier's (see :mod:`minnet.integrations.sklearn`).
    batch_size
        Rows per mini-batch, 32 by default; ``"auto"``: ``min(200, n_samples)`` as in sklearn.
    learning_rate_init
        Adam's learning rate.
    max_iter
        Epochs, all of them run.
    random_state
        Seeds the initial weights and the shuffling (int, RandomState or None).
    verbose
        Show minnet's progress bar (only in a terminal).

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_ (given DataFrame columns), n_iter_ (epochs),
    model_ (the fitted :class:`~minnet.Sequential`), history_ (its
    :class:`~minnet.training.History`), loss_curve_ (each epoch's loss, MLPClassifier's),
    loss_ (the last).
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetClassifier:
        """Train a new net on ``X: (n_samples, n_features)`` and labels ``y: (n_samples,)``,
        row ``i`` counted ``sample_weight[i]`` times (non-negative, ``(n_samples,)``) if given."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, got 1 class "
                f"({self.classes_[0]!r})"
            )
        return self._train(
            X, indices, len(self.classes_), [Softmax()], CrossEntropyLoss(), sample_weight
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, ``(n_samples,)``, from ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.classes_[self.model_.predict(X)]


class NetRegressor(RegressorMixin, _NetBase):
    """A minnet MLP regressor with scikit-learn's interface (``MLPRegressor``'s arguments).

    The net is ``Linear -> activation`` for each hidden layer, then ``Linear`` to one output
    per target (no output activation), trained with ``MSELoss``. ``y`` is ``(n_samples,)`` or
    ``(n_samples, n_targets)``; ``predict`` gives the same shape (``(n_samples,)`` for a
    single target, as MLPRegressor). The parameters and attributes are
    :class:`NetClassifier`'s, without ``classes_``; ``est.model_.gradcheck(X, y)`` checks the
    fitted net's gradients.
    """

    penalty_factor = 2.0  # MSELoss is twice MLPRegressor's squared error: see the module

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetRegressor:
        """Train a new net on ``X: (n_samples, n_features)`` and ``y``, row ``i`` counted
        ``sample_weight[i]`` times if given (see :class:`NetClassifier`)."""
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return self._train(X, Y, Y.shape[1], [], MSELoss(), sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n_samples,)``, or ``(n_samples, n_targets)`` for several targets."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = self.model_.predict(X)
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


__all__ = ["ACTIVATIONS", "BatchPenalty", "NetClassifier", "NetRegressor"]
