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

import difflib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from .gradcheck import (
    DEFAULT_THRESHOLD,
    GradcheckReport,
    check_function,
    check_layer,
    check_loss,
    check_model,
)
from .gradcheck.inputs import check_options
from .gradcheck.targets import stream
from .layers import Layer
from .model import Sequential

#: The name of the optional dict in a user's file that says how to build each layer for
#: ``python -m minnet check``: ``{LayerClass: lambda: (layer, x)}``.
EXAMPLES_NAME = "CHECK_EXAMPLES"
#: The check's options and their defaults (:func:`minnet.gradcheck.check_layer`).
DEFAULT_OPTIONS = dict(epsilon=None, threshold=DEFAULT_THRESHOLD, fast=False, samples=None, seed=0)


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
    status: str  # "passed", "failed", "inconclusive", "not built", "skipped" or "error"
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
    """The Layer subclasses defined in ``module`` (not imported into it), in order of
    definition: every one that defines or inherits a ``forward``, and every one that has none
    and no subclass in ``module`` (a layer whose ``forward`` is missing or misspelled; a class
    that others in the file build on may leave ``forward`` to them)."""
    defined = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Layer) and cls is not Layer and cls.__module__ == module.__name__
    ]
    found = [
        cls for cls in defined if cls.forward is not Layer.forward or not _subclasses(cls, defined)
    ]
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


def _subclasses(cls: type, classes: list[type]) -> list[type]:
    """The classes among ``classes`` that build on ``cls``."""
    return [other for other in classes if other is not cls and issubclass(other, cls)]


def missing_method(cls: type[Layer]) -> str | None:
    """Why ``cls`` cannot be checked when it keeps :class:`Layer`'s ``forward`` or
    ``backward`` (which raise ``NotImplementedError``), with the near-miss name it defines
    instead, if any (``backwards``); ``None`` when it has both."""
    for method, signature in (("forward", "forward(x)"), ("backward", "backward(grad_output)")):
        if getattr(cls, method) is getattr(Layer, method):
            reason = f"{cls.__name__} does not define {signature}"
            near = _near_miss(cls, method)
            if near is not None:
                reason += f": it defines {near!r}; did you mean {method!r}?"
            return reason
    return None


def _near_miss(cls: type, method: str) -> str | None:
    """A name ``cls`` (or a base of it other than Layer) defines that is a likely misspelling of
    ``method``: ``backwards``, ``Backward``, ``backword``."""
    own = {
        name
        for klass in cls.__mro__
        if klass not in Layer.__mro__
        for name, value in vars(klass).items()
        if callable(value) and name != method
    }
    by_lower = {name.lower(): name for name in sorted(own)}
    close = difflib.get_close_matches(method, list(by_lower), n=1, cutoff=0.75)
    return by_lower[close[0]] if close else None


def abstract_base(cls: type, classes: list[type], err: BaseException) -> str | None:
    """If ``err`` (raised while building or checking ``cls``) says that ``cls`` cannot run
    because it lacks a method its subclasses in ``classes`` define (an ``AttributeError`` for
    it, or a ``NotImplementedError`` raised in it), why ``cls`` is a base class to skip;
    else ``None``."""
    subclasses = _subclasses(cls, classes)
    given = {name for sub in subclasses for name in vars(sub)}
    if isinstance(err, AttributeError):
        names = {getattr(err, "name", None)} | set(re.findall(r"'(\w+)'", str(err)))
    elif isinstance(err, NotImplementedError):
        frames = traceback.extract_tb(err.__traceback__)
        names = {frames[-1].name} if frames else set()
    else:
        return None
    needed = sorted(name for name in names if name in given)
    if not needed:
        return None
    return (
        f"base class: it needs {', '.join(needed)}, which its subclasses "
        f"({', '.join(sub.__name__ for sub in subclasses)}) define; they are checked instead"
    )


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
    read from the layer, else 3). Each class of :func:`layer_classes` gets a result:

    - ``"failed"`` with no report when it keeps Layer's ``forward`` or ``backward`` (it does
      not define one, or misspelled it: ``backwards``);
    - ``"not built"``, with the error, when it cannot be built this way;
    - ``"skipped"`` for a **base class**: other classes of the file subclass it, and it cannot
      run on its own because it lacks a method they define (an ``AttributeError`` for it, or
      a ``NotImplementedError`` raised in it); its subclasses are checked instead;
    - ``"error"``, with the error, when its check raises otherwise;
    - else the check's status. The other layers are checked whatever one of them does.

    The options are the check's (``epsilon``, ``threshold``, ``fast``, ``samples``, ``seed``),
    validated before anything is built.
    """
    options = check_options(**{**DEFAULT_OPTIONS, **options})
    module = _load_module(Path(path))
    seed = options["seed"]
    examples: dict[Any, Any] = getattr(module, EXAMPLES_NAME, {}) or {}
    classes = layer_classes(module)
    results = []
    for cls in classes:
        missing = missing_method(cls)
        if missing is not None:
            results.append(LayerResult(cls.__name__, "failed", None, missing))
            continue
        make: Callable[[], Any] | Any = examples.get(cls, examples.get(cls.__name__))
        try:
            if make is None:
                layer, x = _default_example(cls, seed)
            else:
                layer, x = make() if callable(make) else make
        except Exception as err:  # a user's constructor: any error means "could not build"
            base = abstract_base(cls, classes, err)
            if base is not None:
                results.append(LayerResult(cls.__name__, "skipped", None, base))
                continue
            detail = (
                f"{type(err).__name__}: {err}. Give an example: {EXAMPLES_NAME} = "
                f"{{{cls.__name__}: lambda: ({cls.__name__}(...), x)}}"
            )
            results.append(LayerResult(cls.__name__, "not built", None, detail))
            continue
        try:
            report = check_layer(layer, x, **options)
        except Exception as err:  # a user's forward or backward: report it, check the others
            base = abstract_base(cls, classes, err)
            if base is not None:
                results.append(LayerResult(cls.__name__, "skipped", None, base))
                continue
            detail = f"the check raised {type(err).__name__}: {err}"
            results.append(LayerResult(cls.__name__, "error", None, detail))
            continue
        results.append(LayerResult(cls.__name__, report.status, report))
    return results


def main_check(path: str, **options: Any) -> int:
    """``python -m minnet check path``: one line per layer, the full report of each that does
    not pass; exit code 0 when every layer passes (base classes skipped), 1 otherwise, 2 for
    options the check does not take."""
    try:
        check_options(**{**DEFAULT_OPTIONS, **options})
    except (TypeError, ValueError) as err:
        print(f"minnet check: {err}", file=sys.stderr)
        return 2
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
    return 0 if all(result.status in ("passed", "skipped") for result in results) else 1


__all__ = [
    "EXAMPLES_NAME",
    "LayerResult",
    "assert_gradients",
    "check",
    "check_file",
    "random_input",
]
