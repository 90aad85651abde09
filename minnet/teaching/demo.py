"""What ``python -m minnet demo`` shows: the tutorial's checks through minnet, then training a
binary classifier (two moons) and a multi-class one (three spirals, Softmax + CrossEntropyLoss).

``python -m minnet demo --plot out.png`` also draws the trained nets' decision boundary and
regions over the data and the loss curves into one PNG (this needs matplotlib:
``pip install "minnet[plot]"``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from ..datasets import spirals, train_test_split, two_moons
from ..gradcheck import GradcheckReport
from ..layers import Layer, Linear, ReLU, Sigmoid, Softmax
from ..losses import CrossEntropyLoss
from ..model import Sequential
from ..optim import Adam
from ..training import History
from .tutorial import TutorialBCELoss, tutorial_case, tutorial_net

TUTORIAL_SETTINGS = {"epsilon": 1e-7, "threshold": 2e-7}


def tutorial_line(report: GradcheckReport) -> str:
    """The tutorial's one-line verdict."""
    if report.passed:
        return f"Backpropagation is correct! difference = {report.difference}"
    return f"Backpropagation has errors! difference = {report.difference}"


def gradient_check_demo(print_=print) -> None:
    """The tutorial's model checks, then the per-layer and per-parameter diagnosis."""
    X, Y, weights = tutorial_case()

    print_("== 1. The tutorial's check through minnet (epsilon=1e-7, threshold=2e-7) ==")
    buggy = tutorial_net(weights, bugs=True, loss=TutorialBCELoss())
    buggy_report = buggy.gradcheck(X, Y, **TUTORIAL_SETTINGS)
    print_("With the two backward bugs (dW2 doubled, db1 times four):")
    print_("  " + tutorial_line(buggy_report))
    fixed = tutorial_net(weights, loss=TutorialBCELoss())
    print_("Bugs fixed, with the tutorial's cost formula:")
    print_("  " + tutorial_line(fixed.gradcheck(X, Y, **TUTORIAL_SETTINGS)))

    stable = tutorial_net(weights)
    print_("Bugs fixed, with minnet's stable loss (computed from the logits), same epsilon:")
    print_("  " + tutorial_line(stable.gradcheck(X, Y, **TUTORIAL_SETTINGS)))
    print_("  The tutorial's 1.19e-07 is rounding in log(1 - A3), not an error in backprop.")

    print_("\n== 2. Where the bugs are: by parameter, by entry, and layer by layer ==")
    print_(str(buggy.gradcheck(X, Y)))

    print_("\n== 3. The corrected net with minnet's defaults (adaptive step, threshold 1e-6) ==")
    print_(str(stable.gradcheck(X, Y)))


# -- training ---------------------------------------------------------------------------------
#: The training demo's settings: a fixed seed everywhere, so every run prints the same accuracy.
MOONS = {"n_samples": 1000, "noise": 0.2, "seed": 0}
TRAINING = {"epochs": 50, "batch_size": 32, "lr": 1e-2, "seed": 0}
PLOT_INSTALL_HINT = (
    'the plot needs matplotlib: pip install "minnet[plot]" (or pip install matplotlib)'
)


@frozen
class TrainingResult:
    """What :func:`training_demo` made: the model, its history, and the data it saw."""

    model: Sequential
    history: History
    accuracy: float
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _hidden_2_16_16(rng: np.random.Generator) -> list[Layer]:
    """The demo nets' hidden layers: 2 inputs, two ReLU layers of 16 units."""
    return [Linear(2, 16, rng=rng), ReLU(), Linear(16, 16, rng=rng), ReLU()]


def _fit(model: Sequential, data: tuple, settings: dict, progress: bool) -> History:
    """``model.fit`` with Adam and the demo's ``settings``, validated on the held-out part."""
    X_train, X_test, y_train, y_test = data
    return model.fit(
        X_train,
        y_train,
        optimizer=Adam(model.parameters(), lr=settings["lr"]),
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=settings["seed"],
        validation_data=(X_test, y_test),
        progress=progress,
    )


def moons_net(seed: int = 0) -> Sequential:
    """The 2-16-16-1 ReLU net with a Sigmoid output, its weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return Sequential([*_hidden_2_16_16(rng), Linear(16, 1, rng=rng), Sigmoid()])


def training_demo(print_=print, progress: bool = True) -> TrainingResult:
    """Train :func:`moons_net` on two moons, held out a quarter of it, print the accuracy."""
    X, y = two_moons(**MOONS)
    data = train_test_split(X, y, 0.25, seed=MOONS["seed"])
    X_train, X_test, y_train, y_test = data
    model = moons_net(TRAINING["seed"])
    print_(
        f"\n== 4. Training: a 2-16-16-1 ReLU net on two moons (noise {MOONS['noise']}), "
        f"{len(X_train)} points, {len(X_test)} held out =="
    )
    print_(model.summary())
    history = _fit(model, data, TRAINING, progress)
    loss, accuracy = model.evaluate(X_test, y_test)
    print_(
        f"Trained {history.epochs} epochs (Adam, lr {TRAINING['lr']:g}, batches of "
        f"{TRAINING['batch_size']}) in {history.seconds:.2f} s: training loss "
        f"{history.loss[0]:.3f} -> {history.loss[-1]:.3f}"
    )
    print_(f"Held-out accuracy: {accuracy:.1%} ({len(X_test)} points never trained on)")
    return TrainingResult(model, history, accuracy, X_train, y_train, X_test, y_test)


#: The multi-class demo's settings, fixed seeds everywhere.
SPIRALS = {"n_samples": 600, "classes": 3, "noise": 0.2, "seed": 0}
SPIRALS_TRAINING = {"epochs": 60, "batch_size": 32, "lr": 2e-2, "seed": 0}


def spirals_net(seed: int = 0, classes: int = 3) -> Sequential:
    """The 2-16-16-C ReLU net with a Softmax output and CrossEntropyLoss (fused with it)."""
    rng = np.random.default_rng(seed)
    layers = [*_hidden_2_16_16(rng), Linear(16, classes, rng=rng), Softmax()]
    return Sequential(layers, loss=CrossEntropyLoss())


def multiclass_demo(print_=print, progress: bool = True) -> TrainingResult:
    """Gradient-check :func:`spirals_net` on a few rows, train it on three spirals, held out a
    quarter of them, and print the top-1 accuracy."""
    X, y = spirals(**SPIRALS)
    data = train_test_split(X, y, 0.25, seed=SPIRALS["seed"])
    X_train, X_test, y_train, y_test = data
    model = spirals_net(SPIRALS_TRAINING["seed"], SPIRALS["classes"])
    print_(
        f"\n== 5. Multi-class: a 2-16-16-3 net with Softmax + CrossEntropyLoss on "
        f"{SPIRALS['classes']} spirals, {len(X_train)} points, {len(X_test)} held out =="
    )
    report = model.gradcheck(X_train[:8], y_train[:8])
    verdict = "passed" if report.passed else "FAILED"
    print_(
        f"Gradient check before training (8 rows, every parameter): {verdict}, "
        f"difference {report.difference:.1e}"
    )
    history = _fit(model, data, SPIRALS_TRAINING, progress)
    loss, accuracy = model.evaluate(X_test, y_test)
    print_(
        f"Trained {history.epochs} epochs in {history.seconds:.2f} s: training loss "
        f"{history.loss[0]:.3f} -> {history.loss[-1]:.3f}"
    )
    print_(
        f"Held-out top-1 accuracy: {accuracy:.1%} ({len(X_test)} points, "
        f"{SPIRALS['classes']} classes; chance is {1 / SPIRALS['classes']:.0%})"
    )
    return TrainingResult(model, history, accuracy, X_train, y_train, X_test, y_test)


def _matplotlib() -> Any | None:
    try:
        import matplotlib
    except ImportError:
        return None
    return matplotlib


def plot_training(
    result: TrainingResult,
    path: str | os.PathLike[str],
    multiclass: TrainingResult | None = None,
) -> Path:
    """One figure: the decision boundary over the data, and the loss curves; with
    ``multiclass``, also its decision regions over the spirals. Saved to ``path``.

    Draws with matplotlib's Agg canvas directly, so it never opens a window nor changes the
    backend pyplot uses.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width_ratios = [1.15, 1] + [1] * (multiclass is not None)
    fig = Figure(figsize=(5.5 * len(width_ratios), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    boundary, curves, *regions = fig.subplots(
        1, len(width_ratios), gridspec_kw={"width_ratios": width_ratios}
    )

    X_all = np.concatenate([result.X_train, result.X_test])
    (x0, y0), (x1, y1) = X_all.min(axis=0) - 0.5, X_all.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    proba = result.model.predict_proba(np.column_stack([gx.ravel(), gy.ravel()]))
    proba = proba.reshape(gx.shape)
    filled = boundary.contourf(
        gx, gy, proba, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45
    )
    boundary.contour(gx, gy, proba, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(filled, ax=boundary, label="predicted P(class 1)")
    for X, y, where, style in [
        (result.X_train, result.y_train, "training", {"marker": "o", "s": 14, "alpha": 0.8}),
        (result.X_test, result.y_test, "held-out", {"marker": "^", "s": 36}),
    ]:
        for label, color in [(0, "#2166ac"), (1, "#b2182b")]:
            points = X[y == label]
            boundary.scatter(
                *points.T, color=color, edgecolors="black", linewidths=0.4,
                label=f"class {label}, {where}", **style,
            )  # fmt: skip
    boundary.set(
        title=f"Decision boundary (black line, P = 0.5); held-out accuracy {result.accuracy:.1%}",
        xlabel="x0",
        ylabel="x1",
        xlim=(x0, x1),
        ylim=(y0, y1),
    )
    boundary.legend(loc="lower left", fontsize="small", framealpha=0.9)

    history = result.history
    epochs = np.arange(1, history.epochs + 1)
    lines = curves.plot(epochs, history.loss, label="training loss (mean over the epoch)")
    lines += curves.plot(epochs, history.val_loss, label="held-out loss (after the epoch)")
    curves.set(title="Loss per epoch", xlabel="epoch", ylabel="binary cross-entropy")
    curves.set_ylim(bottom=0)
    curves.grid(alpha=0.3)
    accuracy = curves.twinx()
    lines += accuracy.plot(
        epochs, history.val_accuracy, color="tab:green", ls="--", lw=1, label="held-out accuracy"
    )
    accuracy.set_ylabel("accuracy")
    accuracy.set_ylim(0.5, 1.0)
    curves.legend(handles=lines, loc="center right", fontsize="small")
    if multiclass is not None:
        plot_regions(regions[0], multiclass)

    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


CLASS_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def plot_regions(axes: Any, result: TrainingResult) -> None:
    """A multi-class model's decision regions (the predicted class over a grid) and the data."""
    from matplotlib.colors import ListedColormap

    X_all = np.concatenate([result.X_train, result.X_test])
    (x0, y0), (x1, y1) = X_all.min(axis=0) - 0.2, X_all.max(axis=0) + 0.2
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    classes = result.model.out_features
    predicted = result.model.predict(np.column_stack([gx.ravel(), gy.ravel()]))
    colors = ListedColormap(CLASS_COLORS[:classes])
    axes.contourf(gx, gy, predicted.reshape(gx.shape), levels=np.arange(classes + 1) - 0.5,
                  cmap=colors, alpha=0.3)  # fmt: skip
    for X, y, where, style in [
        (result.X_train, result.y_train, "training", {"marker": "o", "s": 12, "alpha": 0.8}),
        (result.X_test, result.y_test, "held-out", {"marker": "^", "s": 30}),
    ]:
        for k in range(classes):
            axes.scatter(*X[y == k].T, color=CLASS_COLORS[k], edgecolors="black", linewidths=0.4,
                         label=f"class {k}, {where}", **style)  # fmt: skip
    axes.set(
        title=f"Spirals: Softmax decision regions\nheld-out top-1 accuracy {result.accuracy:.1%}",
        xlabel="x0",
        ylabel="x1",
        xlim=(x0, x1),
        ylim=(y0, y1),
    )
    axes.legend(loc="best", fontsize="x-small", framealpha=0.9, ncol=2)


def main(plot: str | os.PathLike[str] | None = None) -> int:
    """The whole demo; with ``plot``, also write the training figure to that path."""
    if plot is not None and _matplotlib() is None:
        print(PLOT_INSTALL_HINT, file=sys.stderr)
        return 1
    gradient_check_demo()
    result = training_demo()
    multiclass = multiclass_demo()
    if plot is not None:
        written = plot_training(result, plot, multiclass)
        print(
            f"Wrote {written}: the decision boundary over the data, the loss curves, and the "
            "multi-class decision regions."
        )
    return 0


__all__ = [
    "PLOT_INSTALL_HINT",
    "TrainingResult",
    "gradient_check_demo",
    "main",
    "moons_net",
    "multiclass_demo",
    "plot_regions",
    "spirals_net",
    "plot_training",
    "training_demo",
    "tutorial_line",
]
