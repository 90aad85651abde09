"""The architecture: a model described as JSON in its file's metadata (its layers, their
arguments and modes, the loss, the dtype, the L2 penalty), and that description checked before
anything is built from it."""

from __future__ import annotations

import inspect
import json
import math
import reprlib
from typing import Any

import numpy as np

from .registry import layer_registry, loss_classes

SUPPORTED_DTYPES = ("float16", "float32", "float64")  # a model's dtype in a file
FORMAT_VERSION = "3"  # the metadata's "format_version"; its "format" is "minnet.Sequential"
#: The longest architecture text load reads (the JSON of 1,000 layers is about 100 KB).
MAX_ARCHITECTURE_CHARS = 1_000_000
#: The most layers load builds (Sequential's same-object check is quadratic in their number).
MAX_LAYERS = 1_000
#: How deeply a list may nest inside an argument.
MAX_ARGUMENT_DEPTH = 4
#: A layer whose integer arguments declare at most this many entries is built even without
#: stored tensors (an activation, a ``Softmax(axis=-1)``); above it, its stored tensors must
#: hold at least as many entries (``Linear(10**6, 10**6)`` needs 10**12).
FREE_SIZE = 4096
#: Integer arguments that are seeds, not sizes: left out of :func:`declared_size`.
SEED_ARGUMENTS = ("seed", "rng", "random_state")
_SKIP = object()  # an argument with no plain JSON form


def describe(model: Any, dtype: np.dtype | None) -> dict[str, str]:
    """The metadata of ``model``'s file (a ``Sequential`` whose parameters are of ``dtype``):
    ``format``, ``format_version`` and ``architecture``, the JSON :func:`read_architecture`
    checks."""
    layers, registry = [], layer_registry()
    for i, layer in enumerate(model.layers):
        cls = type(layer)
        if registry.get(cls.__name__) is not cls:
            raise ValueError(
                f"cannot save layer {i} ({cls.__module__}.{cls.__qualname__}): load rebuilds "
                f"layers by class name, and this class is not registered. Register it with "
                f"minnet.register_layer({cls.__name__}) (or put @minnet.register_layer above its "
                "class), in the program that saves and in the one that loads"
            )
        args = _init_args(layer, f"layer {i} ({cls.__name__})")
        layers.append({"class": cls.__name__, "args": args, "training": layer.training})
    cls = type(model.loss)
    if loss_classes().get(cls.__name__) is not cls:
        raise ValueError(
            f"cannot save a model with loss {cls.__qualname__}: load rebuilds losses by name, so "
            f"only minnet's own can be saved ({sorted(loss_classes())})"
        )
    loss = {"class": cls.__name__, "args": _init_args(model.loss, f"the loss {cls.__name__}")}
    spec = {"layers": layers, "loss": loss, "dtype": None if dtype is None else dtype.name}
    if model.l2:  # the L2 penalty, written only when there is one
        spec["l2"] = model.l2
    text = json.dumps(spec, allow_nan=False)
    return {"format": "minnet.Sequential", "format_version": FORMAT_VERSION, "architecture": text}


def _init_args(obj: Any, what: str) -> dict[str, Any]:
    """The constructor arguments of a layer or loss (``arguments()``) that have plain JSON
    values. One without (a random ``Generator``) is left out if ``__init__`` has a default for
    it, and refused otherwise: load could not call the constructor."""
    parameters = inspect.signature(type(obj).__init__).parameters
    args = {}
    for name, value in obj.arguments().items():
        plain = _to_json(value)
        if plain is _SKIP:
            if name in parameters and parameters[name].default is inspect.Parameter.empty:
                raise ValueError(
                    f"cannot save {what}: its argument {name!r} is a {type(value).__name__}, "
                    "which has no JSON form, and __init__ has no default for it"
                )
            continue
        try:
            json.dumps(plain, allow_nan=False)  # NaN and infinities have no JSON form
        except ValueError:
            raise ValueError(
                f"cannot save {what}: its argument {name!r} is {plain!r}, and load refuses "
                "non-finite arguments"
            ) from None
        args[name] = plain
    return args


def _to_json(value: Any) -> Any:
    """``value`` as a plain JSON value (dtypes as their name), or ``_SKIP`` if it has none."""
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return str(np.dtype(value))
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [_to_json(item) for item in value]
        return _SKIP if any(item is _SKIP for item in items) else items
    return _SKIP


def read_architecture(metadata: dict[str, str]) -> dict[str, Any]:
    """The architecture in a file's ``metadata``, checked to be ``{"layers": [{"class": str,
    "args": {...}, "training": bool}, ...], "loss": {"class": str, "args": {...}}, "dtype": null
    or a float dtype name}`` with plain arguments, and an optional ``"l2"``: the model's L2
    penalty, a number >= 0 (0 when missing)."""
    if metadata.get("format") != "minnet.Sequential":
        raise ValueError(
            "not a minnet model file (its metadata has no 'format': 'minnet.Sequential'); the "
            "weights of any safetensors file open with safetensors.numpy.load_file, and "
            "model.load_state_dict takes them"
        )
    if (version := metadata.get("format_version")) != FORMAT_VERSION:
        raise ValueError(
            f"format version {reprlib.repr(version)}; this minnet reads version {FORMAT_VERSION}"
        )
    if (text := metadata.get("architecture")) is None:
        raise ValueError("its metadata has no 'architecture'")
    if len(text) > MAX_ARCHITECTURE_CHARS:
        raise ValueError(
            f"the architecture text has {len(text):,} characters; minnet reads at most "
            f"{MAX_ARCHITECTURE_CHARS:,}"
        )
    try:
        spec = parse_json(text)
    except ValueError as err:
        raise ValueError(f"the architecture is not valid JSON ({err})") from None
    if isinstance(spec, dict):
        spec = {"l2": 0.0, **spec}
    if (
        not isinstance(spec, dict)
        or set(spec) != {"layers", "loss", "dtype", "l2"}
        or not isinstance(spec["layers"], list)
        or not spec["layers"]
        or spec["dtype"] not in (None, *SUPPORTED_DTYPES)
    ):
        raise ValueError(
            'the architecture must be {"layers": [non-empty list], "loss": {"class": str, '
            f'"args": dict}}, "dtype": null or one of {list(SUPPORTED_DTYPES)}}}, got '
            f"{reprlib.repr(spec)}"
        )
    l2 = spec["l2"]
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 <= l2 < float("inf"):
        raise ValueError(f'"l2" must be a number >= 0, got {reprlib.repr(l2)}')
    if len(spec["layers"]) > MAX_LAYERS:
        raise ValueError(
            f"the architecture has {len(spec['layers']):,} layers; minnet reads at most "
            f"{MAX_LAYERS:,}"
        )
    for i, entry in enumerate(spec["layers"]):
        _check_entry(entry, f"layer {i}", {"class", "args", "training"})
    _check_entry(spec["loss"], "the loss", {"class", "args"})
    return spec


def parse_json(text: str) -> Any:
    """JSON without NaN, infinities (``1e999`` too) or repeated keys: ``ValueError`` else, also
    for nesting deeper than Python's recursion allows."""

    def finite(digits: str) -> float:  # a float's digits, or NaN and Infinity
        if not math.isfinite(value := float(digits)):
            raise ValueError(f"{digits} is not a finite number")
        return value

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(result := dict(pairs)) != len(pairs):
            raise ValueError(f"repeated keys in {reprlib.repr(pairs)}")
        return result

    try:
        return json.loads(
            text, parse_constant=finite, parse_float=finite, object_pairs_hook=unique_keys
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _check_entry(entry: Any, what: str, keys: set[str]) -> None:
    if (
        not isinstance(entry, dict)
        or set(entry) != keys
        or not isinstance(entry["class"], str)
        or not isinstance(entry["args"], dict)
    ):
        wanted = ", ".join(f'"{key}"' for key in sorted(keys))
        raise ValueError(
            f"{what} must be an object with exactly {wanted}, got {reprlib.repr(entry)}"
        )
    if not isinstance(entry.get("training", False), bool):
        raise ValueError(f"{what}: 'training' must be true or false, got {entry['training']!r}")
    for key, value in entry["args"].items():
        if not _is_plain(value):
            raise ValueError(
                f"{what}: argument {key!r} must be a number, string, bool, null or a list of "
                f"them (nested at most {MAX_ARGUMENT_DEPTH} deep), got {reprlib.repr(value)}"
            )


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return (
        isinstance(value, list)
        and depth < MAX_ARGUMENT_DEPTH
        and all(_is_plain(item, depth + 1) for item in value)
    )


def declared_size(args: dict[str, Any], limit: int) -> int:
    """The size a layer's arguments declare: the product of its integer arguments (bools and
    ``SEED_ARGUMENTS`` aside), each counted as at least 1 so that a zero never cancels the
    others, computed only up to ``limit``: the first partial product above it is returned."""
    size = 1
    stack = [value for name, value in args.items() if name not in SEED_ARGUMENTS]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            size *= max(abs(item), 1)
            if size > limit:
                return size
    return size
