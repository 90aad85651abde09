"""The classes load builds, by name: minnet's layers and losses, and the layers registered."""

from __future__ import annotations

import inspect

from .. import layers, losses
from ..layers import Layer

_REGISTERED: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Let :func:`save` and :func:`load` handle the layer class ``cls``; returns ``cls``, so it
    works as a decorator (``@minnet.register_layer`` above the class).

    The class is stored by its ``__name__``, which must not be one of minnet's layers or another
    registered class (registering a class again, or a new definition of it from the same module
    and name, as a re-run notebook cell makes, replaces it). ``load`` calls ``cls(**args)`` with
    the arguments saved from ``arguments()``, then puts the stored parameters and buffers in.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or cls is Layer:
        raise TypeError(f"register_layer takes a subclass of minnet.Layer, got {cls!r}")
    name, where = cls.__name__, f"{cls.__module__}.{cls.__qualname__}"
    builtin = layers.layer_classes().get(name)
    if builtin is not None and builtin is not cls:
        raise ValueError(
            f"cannot register {where}: {name!r} is minnet's own layer "
            f"({builtin.__module__}.{name}); give your class another name"
        )
    known = _REGISTERED.get(name, cls)
    if (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"cannot register {where}: the name {name!r} is taken by "
            f"{known.__module__}.{known.__qualname__}, and files name layers by class name"
        )
    if builtin is None:
        _REGISTERED[name] = cls
    return cls


def layer_registry() -> dict[str, type[Layer]]:
    """Every layer class :func:`load` builds, by name: minnet's and the registered ones."""
    return {**layers.layer_classes(), **_REGISTERED}


def loss_classes() -> dict[str, type]:
    """minnet's own losses by name: the public subclasses of :class:`~minnet.Loss` defined in
    :mod:`minnet.losses` (the base class aside)."""
    return {
        name: cls
        for name, cls in vars(losses).items()
        if not name.startswith("_")
        and isinstance(cls, type)
        and cls.__module__ == losses.__name__
        and issubclass(cls, losses.Loss)
        and cls is not losses.Loss
        and not inspect.isabstract(cls)
    }
