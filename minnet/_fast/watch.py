"""Checks, made once, that objects still hold what they held: the accelerator's guard before it
uses what it planned.

The accelerator plans with a model's arrays (a parameter's ``value`` and ``grad`` as views of
the flat storage, a layer's ``W``) and must notice before each step when a user has put another
array in their place (``p.value = ...``, ``layer.W = Parameter(...)``). A loop over the
parameters that tests each one costs a small model's step a few percent; the same tests written
out once as one Python expression (``P0.value is V0 and P0.grad is G0 and ...``) cost a sixth of
that. :func:`same_attributes` writes that expression.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def guard_expression(
    triples: Sequence[tuple[object, str, object]],
    sizes: Sequence[tuple[dict, int]],
    names: dict[str, object],
    prefix: str = "",
) -> str:
    """The Python expression that :func:`same_attributes` evaluates (for ``triples``), for code
    written elsewhere, which also tests, first, that each dict of ``sizes`` (``(dict, size)``)
    still has ``size`` items (one comparison of a tuple of their lengths). The owners, expected
    objects and dicts are bound in ``names`` (as ``{prefix}O0``, ``{prefix}E0``,
    ``{prefix}S0``, ...). It raises ``KeyError`` for an item a dict owner no longer has.
    ``"True"`` when there is nothing to test."""
    tests = []
    if sizes:
        for i, (owner, _) in enumerate(sizes):
            names[f"{prefix}S{i}"] = owner
        lengths = "".join(f"len({prefix}S{i}), " for i in range(len(sizes)))
        tests.append(f"({lengths}) == {tuple(size for _, size in sizes)}")
    for i, (owner, name, expected) in enumerate(triples):
        if not name.isidentifier():
            raise ValueError(f"name must be an identifier, got {name!r}")
        o, e = f"{prefix}O{i}", f"{prefix}E{i}"
        names[o], names[e] = owner, expected
        tests.append(f"{o}[{name!r}] is {e}" if type(owner) is dict else f"{o}.{name} is {e}")
    return " and ".join(tests) or "True"


def same_attributes(triples: Sequence[tuple[object, str, object]]) -> Callable[[], bool]:
    """A function of no arguments telling whether ``getattr(owner, name) is expected`` for every
    ``(owner, name, expected)`` of ``triples`` (``name`` an identifier), or ``owner[name] is
    expected`` for an owner that is a ``dict`` (an object's ``vars()``, read faster than its
    attributes when its class has a ``__getattr__``; an item it no longer has: ``False``); it
    holds the owners and the expected objects."""
    names: dict[str, object] = {}
    expression = guard_expression(triples, (), names)
    # (an item no longer in its dict: not the expected object)
    source = (
        f"def same():\n    try:\n        return {expression}\n"
        "    except KeyError:\n        return False\n"
    )
    exec(compile(source, "<minnet: same attributes>", "exec"), names)
    return names["same"]


__all__ = ["guard_expression", "same_attributes"]
