"""Optimizers, learning-rate schedules and gradient clipping, with PyTorch's names and rules.

>>> opt = Adam(model.parameters(), lr=1e-3)  # doctest: +SKIP
>>> for X, Y in batches:  # doctest: +SKIP
...     opt.zero_grad()
...     model.cost(X, Y)
...     model.backward()
...     clip_grad_norm_(model.parameters(), max_norm=1.0)  # optional
...     opt.step()

- :mod:`~minnet.optim.optimizer`: the :class:`Optimizer` base class (the parameters, their
  state, the per-parameter and the flat path);
- one module per rule: :class:`SGD` (momentum, Nesterov), :class:`Adam` and :class:`AdamW`,
  :class:`RMSprop`, :class:`Adagrad`; each matches ``torch.optim`` step for step;
- :mod:`~minnet.optim.schedules`: :class:`StepLR`, :class:`ExponentialLR`,
  :class:`CosineAnnealingLR`, :class:`ReduceLROnPlateau`;
- :mod:`~minnet.optim.clip`: :func:`clip_grad_norm_`.
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .schedules import CosineAnnealingLR, ExponentialLR, LRScheduler, ReduceLROnPlateau, StepLR
from .sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "clip_grad_norm_",
]
