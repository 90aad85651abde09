"""Gradient checks for your own tests: ``assert_gradients`` for pytest, and the ``check`` command.

In a test file::

    from minnet.testing import assert_gradients

    def test_my_layer_backward():
        assert_gradients(MyLayer(4), random_input((5, 4)))

``assert_gradients`` takes what the matching check takes: a layer and its input, a model with
``X`` and ``Y``, a loss with outputs and targets, or a function with a point and its claimed
gradient. It raises ``AssertionError`` carrying the whole report when the check does not pass
(failed *or* inconclusive), and returns the report when it does.

From the shell, ``python -m minnet check my_layers.py`` checks every :class:`~minnet.Layer`
subclass defined in that file on its own (see :func:`check_file`).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from .gradcheck import GradcheckReport, check_function, check_layer, check_loss, check_model
from .gradcheck.targets import stream
from .layers import Layer
from .model import Sequential

#: The name of the optional dict in a user's file that says how to build each layer for
#: ``python -m minnet check``: ``{LayerClass: lambda: (layer, x)}``.
EXAMPLES_NAME = "CHECK_EXAMPLES"


def check(obj: Any, *inputs: Any, **options: Any) -> GradcheckReport:
    """The gradient check that fits ``obj``: a model, a layer, a loss, or a function."""
    if isinstance(obj, Sequential):
        return check_model(obj, *inputs, **options)
    if isinstance(obj, Layer):
        return check_layer(obj, *inputs, **options)
    if hasattr(obj, "forward") and hasattr(obj, "backward") and not isinstance(obj, type):
        return check_loss(obj, *inputs, **options)
    if callable(obj):
        return check_function(obj, *inputs, **options)
    raise TypeError(
        "assert_gradients checks a minnet Sequential, a Layer, a loss or a function, "
        f"got {type(obj).__name__}"
    )


def assert_gradients(obj: Any, *inputs: Any, **options: Any) -> GradcheckReport:
    """Assert that ``obj``'s gradients pass minnet's check; returns the report.

    ``assert_gradients(layer, x)``, ``assert_gradients(model, X, Y)``,
    ``assert_gradients(loss, outputs, targets)``, ``assert_gradients(f, x, grad)``; ``options``
    are the check's (``epsilon``, ``threshold``, ``fast``, ``samples``, ``seed``). A failed or
    inconclusive check raises ``AssertionError`` whose message is the full report.
    """
    report = check(obj, *inputs, **options)
    if not report.passed:
        raise AssertionError(f"gradient check {report.status}:\n{report}")
    return report


# --- python -m minnet check path/to/file.py -----------------------------------------------------


@frozen
class LayerResult:
    """The outcome of checking one layer class of a file."""

    name: str
    status: str  # "passed", "failed", "inconclusive", "not built" or "error"
    report: GradcheckReport | None
    detail: str = ""


def _load_module(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"minnet_check_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def layer_classes(module: Any) -> list[type[Layer]]:
    """The concrete Layer subclasses defined in ``module`` (not imported into it), in order."""
    found = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Layer) and cls.__module__ == module.__name__:
            if cls.forward is not Layer.forward and cls.backward is not Layer.backward:
                found.append(cls)
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


def random_input(shape: tuple[int, ...], seed: int | None = 0) -> np.ndarray:
    """A standard normal input for a check, from the seed's ``"input"`` stream: independent of
    the check's own draws (its upstream gradient ``G``) for any seed, so that the input can
    never be the ``G`` it is checked with."""
    return stream(seed, "input").standard_normal(shape)


def _default_example(cls: type[Layer], seed: int | None) -> tuple[Layer, np.ndarray]:
    """``cls()`` with no arguments, and a random ``(5, in_features)`` input (3 features when
    the layer does not say how many it takes)."""
    layer = cls()
    features = getattr(layer, "in_features", None) or 3
    return layer, random_input((5, int(features)), seed)


def check_file(path: str | Path, **options: Any) -> list[LayerResult]:
    """Check every Layer subclass defined in the Python file at ``path``, each on its own.

    A layer is built from the file's ``CHECK_EXAMPLES`` dict when it has an entry for the class
    (or its name): a callable returning ``(layer, x)``, or such a tuple. Otherwise the class is
    built with no arguments and checked on a random ``(5, in_features)`` input (``in_features``
    read from the layer, else 3). A class that cannot be built this way is reported as
    ``"not built"``, with the error; a layer whose check raises is reported as ``"error"``,
    with the error, and the other layers are still checked.
    """
    module = _load_module(Path(path))
    seed = options.get("seed", 0)
    examples: dict[Any, Any] = getattr(module, EXAMPLES_NAME, {}) or {}
    results = []
    for cls in layer_classes(module):
        make: Callable[[], Any] | Any = examples.get(cls, examples.get(cls.__name__))
        try:
            if make is None:
                layer, x = _default_example(cls, seed)
            else:
                layer, x = make() if callable(make) else make
        except Exception as err:  # a user's constructor: any error means "could not build"
            detail = (
                f"{type(err).__name__}: {err}. Give an example: {EXAMPLES_NAME} = "
                f"{{{cls.__name__}: lambda: ({cls.__name__}(...), x)}}"
            )
            results.append(LayerResult(cls.__name__, "not built", None, detail))
            continue
        try:
            report = check_layer(layer, x, **options)
        except Exception as err:  # a user's forward or backward: report it, check the others
            detail = f"the check raised {type(err).__name__}: {err}"
            results.append(LayerResult(cls.__name__, "error", None, detail))
            continue
        results.append(LayerResult(cls.__name__, report.status, report))
    return results


def main_check(path: str, **options: Any) -> int:
    """``python -m minnet check path``: one line per layer, the full report of each that does
    not pass; exit code 0 when every layer passes, 1 otherwise."""
    try:
        results = check_file(path, **options)
    except (OSError, ValueError, SyntaxError, ImportError) as err:
        print(f"minnet check: {err}", file=sys.stderr)
        return 1
    if not results:
        print(f"{path}: no Layer subclasses found (nothing checked)")
        return 1
    for result in results:
        summary = result.detail
        if result.report is not None:
            r = result.report
            summary = f"difference {r.difference:.3g}, {r.checked} entries, {r.decided} decided"
        print(f"{result.name:<28} {result.status.upper():<13} {summary}")
    for result in results:
        if result.report is not None and not result.report.passed:
            print(f"\n== {result.name} ==\n{result.report}")
    return 0 if all(result.status == "passed" for result in results) else 1


__all__ = [
    "EXAMPLES_NAME",
    "LayerResult",
    "assert_gradients",
    "check",
    "check_file",
    "random_input",
]
