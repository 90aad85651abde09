"""Optimizer updates of one block of the flat vectors, fused: the textbook rule's operations, in
its order, written into two scratch blocks with ``out=`` instead of fresh temporaries.

Each function here is the twin of an ``update`` in :mod:`minnet.optim` and must give its bits:
it performs the same roundings (the same products and sums of the same operands, ``a + b`` for
``b + a`` at most, which IEEE arithmetic rounds alike), only without allocating. The optimizer
calls it on the flat path (:meth:`~minnet.optim.Optimizer.update_block`); ``tests/test_optim.py``
compares the two paths bit for bit over random settings.
"""

from __future__ import annotations

import numpy as np


def blocks(scratches: list[np.ndarray], count: int, like: np.ndarray) -> list[np.ndarray]:
    """``count`` blocks of ``like``'s size and dtype, from the reusable ``scratches`` (an
    optimizer's), which grow to the largest block seen and are cut to ``like``'s size."""
    n = like.size
    if len(scratches) == count:  # the usual case, tested first: blocks of like's size and dtype
        first = scratches[0]
        if first.size == n and first.dtype is like.dtype:  # (another equal dtype: below)
            return scratches
    if len(scratches) < count or scratches[0].size < n or scratches[0].dtype != like.dtype:
        scratches[:] = [np.empty(n, dtype=like.dtype) for _ in range(count)]
    if scratches[0].size == n:  # (always, for a model of one block)
        return scratches if len(scratches) == count else scratches[:count]
    return [s[:n] for s in scratches[:count]]


def lerp_(start: np.ndarray, end: np.ndarray, weight: float, work: np.ndarray) -> None:
    """:func:`minnet.optim.lerp_` (``start += weight * (end - start)``, from the nearer end),
    its temporaries written into ``work``."""
    if weight < 0.5:
        start += np.multiply(np.subtract(end, start, out=work), weight, out=work)
    else:
        np.subtract(
            end, np.multiply(np.subtract(end, start, out=work), 1 - weight, out=work), out=start
        )


def sgd_update(
    block: tuple[np.ndarray, ...],
    scratch: list[np.ndarray],
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first: bool,
) -> None:
    """:meth:`minnet.optim.SGD.update` of one flat block ``(p, g)`` or ``(p, g, velocity)``
    (``first``: on the first step), with ``scratch`` the optimizer's. ``grad`` is the gradient
    being made, as ``g`` is in ``update``: ``g`` itself until a step changes it, then the
    scratch block ``a`` (``g`` is read, never written); ``c`` holds a product with the velocity
    ``b``."""
    p, g = block[0], block[1]
    a, c = blocks(scratch, 2, p)
    grad = g
    if weight_decay != 0:
        np.multiply(p, weight_decay, out=a)
        grad = np.add(g, a, out=a)  # g + weight_decay * p
    if len(block) == 3:
        b = block[2]
        if first:
            np.copyto(b, grad)
        else:
            b *= momentum
            if dampening:
                b += np.multiply(grad, 1 - dampening, out=c)
            else:
                b += grad
        if nesterov:
            grad = np.add(grad, np.multiply(b, momentum, out=c), out=a)  # g + momentum * b
        else:
            grad = b
    p -= np.multiply(grad, lr, out=a)


def rmsprop_update(
    block: tuple[np.ndarray, ...],
    scratch: list[np.ndarray],
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    """:meth:`minnet.optim.RMSprop.update` of one flat block, with ``scratch`` the calling
    thread's: ``t`` holds the gradient with weight decay, ``u`` each temporary in turn (the
    square, the root ``avg``, then the step)."""
    p, g, s = block[0], block[1], block[2]  # then a (centered), then b (momentum)
    t, u = blocks(scratch, 2, p)
    a = block[3] if centered else None
    b = block[-1] if momentum > 0 else None
    if weight_decay != 0:
        g = np.add(g, np.multiply(p, weight_decay, out=t), out=t)  # g + weight_decay * p
    s *= alpha
    s += np.multiply(np.multiply(g, 1 - alpha, out=u), g, out=u)  # (1 - alpha) * g * g
    if a is not None:
        lerp_(a, g, 1 - alpha, u)
        avg = np.sqrt(np.subtract(s, np.multiply(a, a, out=u), out=u), out=u)  # sqrt(s - a a)
    else:
        avg = np.sqrt(s, out=u)
    avg += eps
    step = np.divide(g, avg, out=u)  # g / avg
    if b is not None:
        b *= momentum
        b += step
        step = np.multiply(b, lr, out=u)  # lr * b
    else:
        step = np.multiply(step, lr, out=u)  # lr * (g / avg)
    p -= step


def adam_update(
    block: tuple[np.ndarray, ...],
    scratch: list[np.ndarray],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled: bool,
    steps: int,
) -> None:
    """:meth:`minnet.optim.Adam.update` (``decoupled``: :meth:`minnet.optim.AdamW.update`) of
    one flat block ``(p, g, m, v)`` or ``(p, g, m, v, v_max)`` (AMSGrad), on step ``steps``, with
    ``scratch`` the calling thread's: ``t`` holds the gradient with weight decay, ``u`` each
    temporary in turn (``g - m`` for the lerp, the square, then the denominator and the step)."""
    p, g, m, v = block[0], block[1], block[2], block[3]
    t, u = blocks(scratch, 2, p)
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = np.add(g, np.multiply(p, weight_decay, out=t), out=t)  # g + weight_decay * p
    beta1, beta2 = betas
    lerp_(m, g, 1 - beta1, u)
    v *= beta2
    v += np.multiply(np.multiply(g, 1 - beta2, out=u), g, out=u)  # (1 - beta2) * g * g
    if len(block) == 5:  # AMSGrad: the largest second moment so far
        v = np.maximum(block[4], v, out=block[4])
    step_size = lr / (1 - beta1**steps)
    denom = np.sqrt(v, out=u)
    denom /= (1 - beta2**steps) ** 0.5
    denom += eps  # sqrt(v) / sqrt(1 - beta2^t) + eps
    p -= np.multiply(np.divide(m, denom, out=u), step_size, out=u)  # step_size * (m / denom)


__all__ = ["adam_update", "blocks", "lerp_", "rmsprop_update", "sgd_update"]
