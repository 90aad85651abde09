"""Moving a model to PyTorch and back: :func:`to_torch` and :func:`from_torch`.

PyTorch is optional: it is imported inside the functions, and a missing install is an
``ImportError`` that says ``pip install "minnet[torch]"``.

**The pair.** ``to_torch(model)`` returns ``(module, loss)``, a :class:`TorchModel`: a
``torch.nn.Sequential`` and the torch loss such that ``loss(module(X), y)`` *is*
``model.cost(X, y)`` (to rounding), as every torch training loop computes it, with the same
gradients. Most layers and losses have a twin of the same name; the two places where the two
frameworks say it differently are a fused final activation and the L2 penalty:

- minnet writes a classifier as ``[..., Sigmoid()]`` with ``BCELoss()`` (or ``[..., Softmax()]``
  with ``CrossEntropyLoss()``) and computes the loss from the *logits*, the input of that final
  activation (``model.fused``); PyTorch writes it as a module that outputs the logits, with
  ``BCEWithLogitsLoss`` (``CrossEntropyLoss``). ``to_torch`` exports the torch form: the
  module is ``model.body`` (all layers but the fused activation) and the loss takes its
  logits. The numbers are then the same computation (``log(1 + exp(z)) - y z``, ``log_softmax``)
  in both, equal to rounding for any logits, where a torch ``Sigmoid`` + ``BCELoss`` would
  round probabilities near 0 or 1 and clamp their logs. ``torch.sigmoid(module(X))`` (or
  ``softmax(dim=1)``) is ``model.predict_proba(X)``. ``[..., LogSoftmax()]`` with ``NLLLoss``
  is written the same way in both: the module keeps its ``nn.LogSoftmax``, the loss is
  ``nn.NLLLoss``.
- ``from_torch(module, loss=BCEWithLogitsLoss())`` goes back to minnet's form: it appends the
  activation the loss implies (``Sigmoid``, ``Softmax``) and uses minnet's ``BCELoss``
  (``CrossEntropyLoss``), which fuses with it. So ``from_torch(*to_torch(model))`` rebuilds a
  fused model. A minnet model whose loss takes logits *without* that activation
  (``BCEWithLogitsLoss``, or ``CrossEntropyLoss`` on a last ``Linear``) exports to the same
  torch pair; ``final_activation=False`` keeps the layers one for one and rebuilds it.
- ``Sequential(..., l2=lam)`` adds ``lam / 2 * sum(||W||^2)`` over its weight matrices to the
  cost. Its loss is then an ``L2Penalty`` (``minnet.integrations.torch.L2Penalty``, a
  ``torch.nn.Module``): the torch loss (``loss.loss``) plus that penalty over the module's own
  ``.weight`` tensors of each ``nn.Linear`` and ``nn.Conv2d`` (``loss.weights``, the same
  objects, named in ``loss.names``), which ``from_torch`` turns back into ``l2``. Training
  with it is training with ``weight_decay=lam`` on those tensors only: to use torch's
  ``weight_decay`` instead, train on ``loss.loss``. A layer of yours with a parameter named
  ``W`` (which ``l2`` covers) exported by a hook is refused with ``l2`` (minnet cannot know
  which torch tensor is its ``W``): export with ``l2=0`` and give those tensors torch's
  ``weight_decay``.

So ``from_torch(*to_torch(model), final_activation=model.fused)`` gives back the model, for
every model of the layers and losses below: the same layers, loss (with its arguments) and
``l2``, each layer in its mode, the weights bit for bit in their dtype. Weights are copied
(neither side shares memory with the other); a ``BatchNorm1d`` keeps its running statistics
(torch's ``num_batches_tracked`` is left at 0 on export and ignored on import: it only matters
for ``momentum=None``, which minnet does not have and refuses). Class weights are copied too,
in the model's dtype on the torch side (torch wants its input's): in a ``float32`` model, a
class weight that ``float32`` cannot hold (``0.1``) comes back rounded to ``float32``.
A parameter shared by several layers (``b.W = a.W``) is one tensor shared by their twins, both
ways (refused when a hook of yours converts one of those layers). Not carried over: a dropout
layer's random masks (the two draw their own).

**Layers** (minnet <-> torch): ``Linear`` <-> ``nn.Linear`` (with a bias), ``ReLU``,
``LeakyReLU(negative_slope)``, ``Sigmoid``, ``Tanh``, ``Dropout(p)``, ``Softmax`` and
``LogSoftmax`` <-> ``nn.Softmax`` and ``nn.LogSoftmax`` (``dim`` the last axis), ``BatchNorm1d(
num_features, eps, momentum)`` <-> ``nn.BatchNorm1d`` (affine, with running statistics),
``LayerNorm(num_features, eps)`` <-> ``nn.LayerNorm`` over the last dimension with
``elementwise_affine`` and a bias; images: ``Conv2d`` <-> ``nn.Conv2d`` (zero padding given as
numbers, no dilation, no groups), ``MaxPool2d`` and ``AvgPool2d`` <-> their namesakes (no
``ceil_mode``; ``count_include_pad=True``), ``Flatten`` <-> ``nn.Flatten()``, ``BatchNorm2d``
as ``BatchNorm1d``. **Losses**, each with its ``reduction``: ``MSELoss``, ``L1Loss``,
``HuberLoss(reduction, delta)``, ``BCELoss``, ``BCEWithLogitsLoss``, ``CrossEntropyLoss(weight,
ignore_index, label_smoothing)``, ``NLLLoss(weight, ignore_index)``, ``MultiMarginLoss(p,
margin, weight)``. Anything else is refused with a ``ValueError`` that names it, and so is an
argument minnet's twin lacks (the binary cross-entropies' per-entry ``weight``, a
softmax over another ``dim``...). ``reduction="none"`` converts, and ``Sequential`` refuses
it (a cost is one number).

**Your own layers and losses.** Export: give the minnet class a method ``to_torch(self)``
returning the torch module (a loss: the torch loss, taking what the minnet loss takes, the
logits when it fuses), or register a function with :func:`register_to_torch`. Import:
register a function from the torch class with :func:`register_from_torch` (or give the torch
class a method ``to_minnet(self)``). A registered class is matched exactly, not its subclasses:
a subclass may compute something else::

    @minnet.integrations.torch.register_from_torch(MyTorchSwish)
    def _(module):
        return MySwish(beta=module.beta)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from ..losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
)
from ..model import Sequential
from ..parameter import Parameter

if TYPE_CHECKING:
    import torch

INSTALL_HINT = (
    "PyTorch is not installed: minnet.to_torch and minnet.from_torch need it. Install it with "
    '`pip install "minnet[torch]"` (or see https://pytorch.org for a GPU build).'
)


def _torch():
    try:
        import torch
    except ImportError as err:  # a missing or a broken install
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return torch


class TorchModel(NamedTuple):
    """What :func:`to_torch` returns: ``module, loss = to_torch(model)``.

    ``loss(module(X), y)`` is ``model.cost(X, y)``: for a model whose loss fuses with its final
    ``Sigmoid`` or ``Softmax``, ``module`` stops before that activation and ``loss`` takes its
    logits; with ``l2``, ``loss`` is an ``L2Penalty``.
    """

    module: torch.nn.Sequential
    loss: torch.nn.Module


# -- registries: minnet class -> function(minnet object) -> torch module, and back ----------------
_TO_TORCH: dict[type, Callable[[Any], Any]] = {}
_FROM_TORCH: dict[type, Callable[[Any], Any]] = {}
_BUILTINS_REGISTERED = False
#: minnet or torch class -> (its built-in conversion, {parameter name: its twin's name})
_PARAMETER_NAMES: dict[type, tuple[Callable[[Any], Any], dict[str, str]]] = {}


def register_to_torch(minnet_class: type) -> Callable[[Callable], Callable]:
    """Decorator: ``fn(layer_or_loss) -> torch module`` exports objects of exactly
    ``minnet_class`` (a :class:`~minnet.Layer` or a :class:`~minnet.Loss`). A loss's function
    returns the torch loss taking what the minnet loss takes (the logits when it fuses)."""

    def decorate(fn: Callable) -> Callable:
        _TO_TORCH[minnet_class] = fn
        return fn

    return decorate


def register_from_torch(torch_class: type) -> Callable[[Callable], Callable]:
    """Decorator: ``fn(torch_module) -> minnet Layer`` (or ``-> minnet Loss`` for a torch loss
    class) imports modules of exactly ``torch_class``. Refuse what you cannot convert with a
    ``ValueError``."""

    def decorate(fn: Callable) -> Callable:
        _FROM_TORCH[torch_class] = fn
        return fn

    return decorate


def _tensor(array: np.ndarray, torch_module: Any) -> Any:
    """A torch tensor holding a copy of ``array``, in its dtype."""
    return torch_module.tensor(np.array(array, copy=True))


def _array(tensor: Any) -> np.ndarray:
    """A numpy copy of a torch tensor, in its dtype."""
    return tensor.detach().cpu().numpy().copy()


def _float_dtype_of(tensor: Any) -> np.dtype:
    dtype = _array(tensor[:0]).dtype
    if dtype.kind != "f":
        raise ValueError(f"minnet needs floating-point weights, got {tensor.dtype}")
    return dtype


def _register_builtins() -> None:
    global _BUILTINS_REGISTERED
    if _BUILTINS_REGISTERED:
        return
    torch = _torch()
    nn = torch.nn

    def set_weights(torch_param: Any, value: np.ndarray) -> None:
        with torch.no_grad():
            torch_param.copy_(_tensor(value, torch))

    # -- export -------------------------------------------------------------------------------
    @register_to_torch(Linear)
    def linear_to_torch(layer: Linear) -> Any:
        # skip_init: no random initial weights drawn (from torch's global generator) to be
        # overwritten at once.
        out = torch.nn.utils.skip_init(
            nn.Linear, layer.in_features, layer.out_features, dtype=_torch_dtype(layer.W.dtype)
        )
        set_weights(out.weight, layer.W.value)
        set_weights(out.bias, layer.b.value)
        return out

    register_to_torch(ReLU)(lambda layer: nn.ReLU())
    register_to_torch(LeakyReLU)(lambda layer: nn.LeakyReLU(layer.negative_slope))
    register_to_torch(Sigmoid)(lambda layer: nn.Sigmoid())
    register_to_torch(Tanh)(lambda layer: nn.Tanh())
    register_to_torch(Dropout)(lambda layer: nn.Dropout(layer.p))
    register_to_torch(Softmax)(lambda layer: nn.Softmax(dim=layer.dim))
    register_to_torch(LogSoftmax)(lambda layer: nn.LogSoftmax(dim=layer.dim))

    @register_to_torch(Conv2d)
    def conv_to_torch(layer: Conv2d) -> Any:
        out = torch.nn.utils.skip_init(
            nn.Conv2d,
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            bias=layer.bias,
            dtype=_torch_dtype(layer.W.dtype),
        )
        set_weights(out.weight, layer.W.value)
        if layer.bias:
            set_weights(out.bias, layer.b.value)
        return out

    register_to_torch(MaxPool2d)(
        lambda layer: nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    )
    register_to_torch(AvgPool2d)(
        lambda layer: nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    )
    register_to_torch(Flatten)(lambda layer: nn.Flatten())

    @register_to_torch(BatchNorm1d)
    @register_to_torch(BatchNorm2d)
    def batch_norm_to_torch(layer: BatchNorm1d) -> Any:
        out = getattr(nn, type(layer).__name__)(
            layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            dtype=_torch_dtype(layer.gamma.dtype),
        )
        set_weights(out.weight, layer.gamma.value)
        set_weights(out.bias, layer.beta.value)
        set_weights(out.running_mean, layer.running_mean)
        set_weights(out.running_var, layer.running_var)
        return out

    @register_to_torch(LayerNorm)
    def layer_norm_to_torch(layer: LayerNorm) -> Any:
        out = nn.LayerNorm(layer.num_features, eps=layer.eps, dtype=_torch_dtype(layer.gamma.dtype))
        set_weights(out.weight, layer.gamma.value)
        set_weights(out.bias, layer.beta.value)
        return out

    register_to_torch(MSELoss)(lambda loss: nn.MSELoss(reduction=loss.reduction))
    register_to_torch(L1Loss)(lambda loss: nn.L1Loss(reduction=loss.reduction))
    register_to_torch(HuberLoss)(
        lambda loss: nn.HuberLoss(reduction=loss.reduction, delta=loss.delta)
    )
    register_to_torch(BCEWithLogitsLoss)(
        lambda loss: nn.BCEWithLogitsLoss(reduction=loss.reduction, pos_weight=_pos_weight(loss))
    )

    # BCELoss: nn.BCEWithLogitsLoss when it fuses with the final Sigmoid, decided in to_torch.
    @register_to_torch(BCELoss)
    def _(loss: BCELoss) -> Any:
        if loss.pos_weight is not None:
            raise ValueError(
                f"{loss!r} on probabilities has no torch twin (torch's BCELoss has no "
                "pos_weight): end the model with a Sigmoid, which BCELoss fuses with (exported "
                "as nn.BCEWithLogitsLoss), or give it logits with BCEWithLogitsLoss"
            )
        return nn.BCELoss(reduction=loss.reduction)

    register_to_torch(CrossEntropyLoss)(
        lambda loss: nn.CrossEntropyLoss(
            _class_weight(loss),
            ignore_index=loss.ignore_index,
            label_smoothing=loss.label_smoothing,
            reduction=loss.reduction,
        )
    )
    # NLLLoss: nn.CrossEntropyLoss when it fuses with the final LogSoftmax, decided in to_torch.
    register_to_torch(NLLLoss)(
        lambda loss: nn.NLLLoss(
            _class_weight(loss), ignore_index=loss.ignore_index, reduction=loss.reduction
        )
    )
    register_to_torch(MultiMarginLoss)(
        lambda loss: nn.MultiMarginLoss(
            p=loss.p, margin=loss.margin, weight=_class_weight(loss), reduction=loss.reduction
        )
    )

    # -- import -------------------------------------------------------------------------------
    @register_from_torch(nn.Linear)
    def linear_from_torch(module: Any) -> Linear:
        if module.bias is None:
            raise ValueError(
                f"{module!r} has no bias, and a minnet Linear always has one (and trains it)"
            )
        return Linear.from_weights(_array(module.weight), _array(module.bias))

    register_from_torch(nn.ReLU)(lambda module: ReLU())
    register_from_torch(nn.LeakyReLU)(lambda module: LeakyReLU(module.negative_slope))
    register_from_torch(nn.Sigmoid)(lambda module: Sigmoid())
    register_from_torch(nn.Tanh)(lambda module: Tanh())
    register_from_torch(nn.Dropout)(lambda module: Dropout(module.p))

    @register_from_torch(nn.Softmax)
    def _(module: Any) -> Softmax:
        if module.dim is None or module.dim < -1 or module.dim == 0:
            raise ValueError(
                f"{module!r}: minnet's Softmax is over the last axis (dim=-1, or 1 for rows), "
                f"got dim={module.dim}"
            )
        return Softmax(module.dim)

    @register_from_torch(nn.Conv2d)
    def conv_from_torch(module: Any) -> Conv2d:
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise ValueError(
                f"{module!r}: minnet's Conv2d pads with a number of zeros, got padding="
                f"{module.padding!r}, padding_mode={module.padding_mode!r}"
            )
        if tuple(module.dilation) != (1, 1) or module.groups != 1:
            raise ValueError(
                f"{module!r}: minnet's Conv2d has dilation=1 and groups=1, got dilation="
                f"{module.dilation}, groups={module.groups}"
            )
        dtype = _float_dtype_of(module.weight)
        layer = Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            bias=module.bias is not None,
            rng=0,
            dtype=dtype,
        )
        layer.W = Parameter(_array(module.weight))
        if module.bias is not None:
            layer.b = Parameter(_array(module.bias))
        return layer

    @register_from_torch(nn.MaxPool2d)
    def _(module: Any) -> MaxPool2d:
        if module.dilation not in (1, (1, 1)) or module.ceil_mode or module.return_indices:
            raise ValueError(
                f"{module!r}: minnet's MaxPool2d has dilation=1, ceil_mode=False and "
                "return_indices=False"
            )
        return MaxPool2d(module.kernel_size, module.stride, module.padding)

    @register_from_torch(nn.AvgPool2d)
    def _(module: Any) -> AvgPool2d:
        if module.ceil_mode or not module.count_include_pad or module.divisor_override:
            raise ValueError(
                f"{module!r}: minnet's AvgPool2d has ceil_mode=False, count_include_pad=True "
                "and no divisor_override"
            )
        return AvgPool2d(module.kernel_size, module.stride, module.padding)

    @register_from_torch(nn.Flatten)
    def _(module: Any) -> Flatten:
        if module.start_dim != 1 or module.end_dim != -1:
            raise ValueError(
                f"{module!r}: minnet's Flatten keeps the batch axis and flattens the rest "
                f"(start_dim=1, end_dim=-1), got start_dim={module.start_dim}, "
                f"end_dim={module.end_dim}"
            )
        return Flatten()

    @register_from_torch(nn.BatchNorm1d)
    @register_from_torch(nn.BatchNorm2d)
    def batch_norm_from_torch(module: Any) -> BatchNorm1d:
        if module.momentum is None:
            raise ValueError(
                f"{module!r} has momentum=None (a cumulative average of the batch statistics); "
                "minnet's batch norms take an exponential average: give it a momentum in [0, 1]"
            )
        if not module.affine or not module.track_running_stats:
            raise ValueError(
                f"{module!r}: minnet's batch norms have affine=True and track_running_stats=True; "
                f"got affine={module.affine}, track_running_stats={module.track_running_stats}"
            )
        dtype = _float_dtype_of(module.weight)
        cls = BatchNorm2d if isinstance(module, nn.BatchNorm2d) else BatchNorm1d
        layer = cls(module.num_features, module.eps, module.momentum, dtype=dtype)
        layer.gamma = Parameter(_array(module.weight))
        layer.beta = Parameter(_array(module.bias))
        layer.running_mean = _array(module.running_mean).astype(dtype)
        layer.running_var = _array(module.running_var).astype(dtype)
        return layer

    @register_from_torch(nn.LayerNorm)
    def layer_norm_from_torch(module: Any) -> LayerNorm:
        if len(module.normalized_shape) != 1:
            raise ValueError(
                f"{module!r}: minnet's LayerNorm normalizes over the last dimension only, got "
                f"normalized_shape={tuple(module.normalized_shape)}"
            )
        if module.weight is None or module.bias is None:
            raise ValueError(
                f"{module!r}: minnet's LayerNorm has a weight and a bias "
                "(elementwise_affine=True, bias=True)"
            )
        dtype = _float_dtype_of(module.weight)
        layer = LayerNorm(module.normalized_shape[0], module.eps, dtype=dtype)
        layer.gamma = Parameter(_array(module.weight))
        layer.beta = Parameter(_array(module.bias))
        return layer

    @register_from_torch(nn.LogSoftmax)
    def _(module: Any) -> LogSoftmax:
        if module.dim is None or module.dim < -1 or module.dim == 0:
            raise ValueError(
                f"{module!r}: minnet's LogSoftmax is over the last axis (dim=-1, or 1 for rows), "
                f"got dim={module.dim}"
            )
        return LogSoftmax(module.dim)

    # Losses: each with its reduction; what minnet's loss lacks is refused by its argument.
    def no_weight(module: Any, name: str, meaning: str) -> None:
        if getattr(module, name, None) is not None:
            raise ValueError(
                f"{module!r}: minnet's {type(module).__name__} has no {name} ({meaning}); "
                f"give it {name}=None"
            )

    def class_weight(module: Any) -> np.ndarray | None:
        return None if module.weight is None else _array(module.weight)

    register_from_torch(nn.MSELoss)(lambda module: MSELoss(reduction=module.reduction))
    register_from_torch(nn.L1Loss)(lambda module: L1Loss(reduction=module.reduction))
    register_from_torch(nn.HuberLoss)(lambda module: HuberLoss(module.reduction, module.delta))

    @register_from_torch(nn.BCELoss)
    def _(module: Any) -> BCELoss:
        no_weight(module, "weight", "a weight per entry")
        return BCELoss(reduction=module.reduction)

    @register_from_torch(nn.BCEWithLogitsLoss)
    def _(module: Any) -> BCEWithLogitsLoss:
        no_weight(module, "weight", "a weight per entry")
        pos_weight = None if module.pos_weight is None else _array(module.pos_weight)
        return BCEWithLogitsLoss(reduction=module.reduction, pos_weight=pos_weight)

    @register_from_torch(nn.CrossEntropyLoss)
    def _(module: Any) -> CrossEntropyLoss:
        return CrossEntropyLoss(
            class_weight(module),
            ignore_index=module.ignore_index,
            label_smoothing=module.label_smoothing,
            reduction=module.reduction,
        )

    @register_from_torch(nn.NLLLoss)
    def _(module: Any) -> NLLLoss:
        return NLLLoss(
            class_weight(module), ignore_index=module.ignore_index, reduction=module.reduction
        )

    @register_from_torch(nn.MultiMarginLoss)
    def _(module: Any) -> MultiMarginLoss:
        return MultiMarginLoss(
            module.p, module.margin, class_weight(module), reduction=module.reduction
        )

    # Which torch tensor is which minnet parameter, for minnet's own conversions (for l2, which
    # covers the Ws, and for a parameter shared by several layers).
    weight, norm = {"W": "weight", "b": "bias"}, {"gamma": "weight", "beta": "bias"}
    for minnet_class, to_fn, torch_class, from_fn, names in [
        (Linear, linear_to_torch, nn.Linear, linear_from_torch, weight),
        (Conv2d, conv_to_torch, nn.Conv2d, conv_from_torch, weight),
        (BatchNorm1d, batch_norm_to_torch, nn.BatchNorm1d, batch_norm_from_torch, norm),
        (BatchNorm2d, batch_norm_to_torch, nn.BatchNorm2d, batch_norm_from_torch, norm),
        (LayerNorm, layer_norm_to_torch, nn.LayerNorm, layer_norm_from_torch, norm),
    ]:
        _PARAMETER_NAMES[minnet_class] = (to_fn, names)
        _PARAMETER_NAMES[torch_class] = (from_fn, {b: a for a, b in names.items()})
    _BUILTINS_REGISTERED = True


def _pos_weight(loss: Any) -> Any:
    """A binary cross-entropy's ``pos_weight`` as a torch tensor (``None`` without)."""
    return None if loss.pos_weight is None else _tensor(loss.pos_weight, _torch())


def _class_weight(loss: Any) -> Any:
    """A loss's class weights as a float64 tensor, or ``None``."""
    return None if loss.weight is None else _tensor(loss.weight, _torch())


def _torch_dtype(dtype: np.dtype) -> Any:
    torch = _torch()
    return _tensor(np.zeros(0, dtype=dtype), torch).dtype


def _export(obj: Any, what: str) -> Any:
    method = getattr(obj, "to_torch", None)
    if callable(method):
        return method()
    convert = _TO_TORCH.get(type(obj))
    if convert is None:
        raise ValueError(
            f"{what} {type(obj).__qualname__} has no PyTorch counterpart: give the class a "
            "to_torch(self) method or register one with "
            "minnet.integrations.torch.register_to_torch "
            f"(minnet knows {sorted(cls.__name__ for cls in _TO_TORCH)})"
        )
    with _naming(obj, what):
        return convert(obj)


def _import(module: Any, what: str) -> Any:
    method = getattr(module, "to_minnet", None)
    if callable(method):
        return method()
    convert = _FROM_TORCH.get(type(module))
    if convert is None:
        raise ValueError(
            f"{what} {type(module).__qualname__} has no minnet counterpart: register one with "
            "minnet.integrations.torch.register_from_torch (minnet knows "
            f"{sorted(cls.__name__ for cls in _FROM_TORCH)})"
        )
    with _naming(module, what):
        return convert(module)


@contextlib.contextmanager
def _naming(obj: Any, what: str) -> Iterator[None]:
    """A ``ValueError`` or ``TypeError`` of a built-in conversion (a torch argument minnet
    refuses, checked by minnet's constructor) says which layer or loss it is about: ``what``
    (``"layer 3:"``) and, unless the message starts with it, the object."""
    try:
        yield
    except (ValueError, TypeError) as err:
        if type(err) not in (ValueError, TypeError):
            raise
        message = str(err)
        shown = "" if message.startswith(repr(obj)) else f" {obj!r}:"
        raise type(err)(f"{what}{shown} {message}") from err


#: The activation a torch loss of logits implies, appended by from_torch.
_LINKS = {BCEWithLogitsLoss: (Sigmoid, BCELoss), CrossEntropyLoss: (Softmax, CrossEntropyLoss)}

_L2_PENALTY_CLASS: type | None = None


def _l2_penalty_class() -> type:
    """The class :data:`L2Penalty`, defined on first use (it subclasses ``torch.nn.Module``)."""
    global _L2_PENALTY_CLASS
    if _L2_PENALTY_CLASS is None:
        nn = _torch().nn

        class L2Penalty(nn.Module):
            """``loss(outputs, targets) + l2 / 2 * sum(||W||^2)``: a torch loss with minnet's L2
            penalty, what :func:`to_torch` gives for a model with ``l2``.

            ``weights`` are the module's own tensors (the same objects, not copies) that are
            minnet's ``W`` (the ``.weight`` of each ``nn.Linear`` and ``nn.Conv2d``), named in
            ``names`` as in ``module.named_parameters()``; ``loss`` is the torch loss without the
            penalty. Training with it and a plain optimizer is training with ``weight_decay=l2``
            on those tensors only: use one or the other, not both.
            """

            def __init__(self, loss: Any, weights: Any, names: Any, l2: float) -> None:
                super().__init__()
                if len(weights) != len(names):
                    raise ValueError(
                        f"L2Penalty needs one name per weight, got {len(weights)} weights and "
                        f"{len(names)} names"
                    )
                self.loss = loss
                self.weights = tuple(weights)  # a tuple: not registered, not copied by .to()
                self.names = tuple(names)
                self.l2 = float(l2)

            def forward(self, outputs: Any, targets: Any) -> Any:
                penalty = sum((w * w).sum() for w in self.weights)
                return self.loss(outputs, targets) + self.l2 / 2 * penalty

            def extra_repr(self) -> str:
                return f"l2={self.l2!r}, weights={list(self.names)}"

        # Found by pickle (and torch.save) as minnet.integrations.torch.L2Penalty.
        L2Penalty.__module__, L2Penalty.__qualname__ = __name__, "L2Penalty"
        _L2_PENALTY_CLASS = L2Penalty
    return _L2_PENALTY_CLASS


def __getattr__(name: str) -> Any:
    """``minnet.integrations.torch.L2Penalty``: defined (and torch imported) on first access."""
    if name == "L2Penalty":
        return _l2_penalty_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _twin_names(obj: Any, registry: dict[type, Callable], method: str) -> dict[str, str] | None:
    """``{parameter name: its twin's name}`` when minnet's own conversion converts ``obj`` (a
    minnet layer or a torch module); ``None`` when a hook of yours does (minnet cannot know)."""
    known = _PARAMETER_NAMES.get(type(obj))
    if (
        known is None
        or callable(getattr(obj, method, None))
        or registry.get(type(obj)) is not known[0]
    ):
        return None
    return known[1]


def _tie(sources: list[Any], twins: list[Any], registry: dict[type, Callable], method: str) -> None:
    """A parameter shared by several ``sources`` (minnet layers or torch modules) is one tensor
    among their converted ``twins`` too: the later twins get the first one's."""
    twin_of: dict[int, Any] = {}
    for i, (source, twin) in enumerate(zip(sources, twins, strict=True)):
        names = _twin_names(source, registry, method) or {}
        for name, p in source.named_parameters():
            twin_name = names.get(name)
            if id(p) not in twin_of:
                twin_of[id(p)] = None if twin_name is None else getattr(twin, twin_name)
            elif twin_of[id(p)] is None or twin_name is None:
                raise ValueError(
                    f"layer {i}: {type(source).__name__}'s parameter {name} is shared with an "
                    "earlier layer, and minnet cannot share it between the converted layers: "
                    "one of them is converted by a hook of yours"
                )
            else:
                setattr(twin, twin_name, twin_of[id(p)])


def _penalized(
    layers: list[Layer], modules: list[Any], maps: list[dict[str, str] | None], l2: float
) -> list[tuple[str, Any]]:
    """``(name, tensor)`` for the torch tensors of ``modules`` that are the Ws of ``layers``
    (what ``l2`` covers), each once; ``maps[i]`` names ``modules[i]``'s tensor of each
    parameter of ``layers[i]`` (``None``: unknown, refused if it has a W)."""
    found: dict[int, tuple[str, Any]] = {}
    for i, (layer, module, names) in enumerate(zip(layers, modules, maps, strict=True)):
        ws = [name for name, _ in layer.named_parameters() if name.rsplit(".", 1)[-1] == "W"]
        if ws and (names is None or any(w not in names for w in ws)):
            raise ValueError(
                f"layer {i}: {type(layer).__name__} has parameters named W "
                f"({', '.join(f'{i}.{w}' for w in ws)}), which the L2 penalty (l2={l2:g}) "
                "covers, but minnet does not know which tensors of the torch module "
                f"{type(module).__name__} they are (its conversion is a hook of yours). Use l2=0 "
                f"on the minnet side and torch's weight_decay={l2:g} on those tensors (a "
                "parameter group of the optimizer)"
            )
        for w in ws:
            tensor = getattr(module, names[w])
            found.setdefault(id(tensor), (f"{i}.{names[w]}", tensor))
    return list(found.values())


def to_torch(model: Sequential) -> TorchModel:
    """The model as PyTorch: ``module, loss = to_torch(model)``, a :class:`TorchModel`.

    ``module`` is a ``torch.nn.Sequential`` of the same layers with copies of the same weights
    (bit for bit, in the model's dtype, each layer in its training or evaluation mode), and
    ``loss`` the matching torch loss, so that ``loss(module(X), y)`` is ``model.cost(X, y)``.
    When the model's loss fuses with its final activation into a loss of logits
    (``[..., Sigmoid()]`` with ``BCELoss``, ``[..., Softmax()]`` with ``CrossEntropyLoss``),
    ``module`` is ``model.body``, which outputs the logits, and ``loss`` is
    ``torch.nn.BCEWithLogitsLoss`` / ``torch.nn.CrossEntropyLoss``: the torch idiom, and the
    same computation as minnet's. ``[..., LogSoftmax()]`` with ``NLLLoss`` is torch's idiom as
    it is: ``module`` keeps the ``nn.LogSoftmax``, ``loss`` is ``nn.NLLLoss``. With ``l2``,
    ``loss`` is an :data:`L2Penalty` around the torch loss. See the module's docstring for the
    layers and losses, and the hooks for your own.
    """
    torch = _torch()
    _register_builtins()
    if not isinstance(model, Sequential):
        raise TypeError(f"to_torch takes a minnet Sequential, got {type(model).__name__}")
    kind = type(model.loss)
    # The module stops before the fused activation, except NLLLoss's LogSoftmax: torch has no
    # loss of logits that is a weighted NLLLoss of log_softmax without it... it is CrossEntropy,
    # but then the module would output logits where the model outputs log-probabilities.
    layers = model.body if kind is not NLLLoss else list(model.layers)
    if model.fused and kind is BCELoss:
        loss = torch.nn.BCEWithLogitsLoss(
            reduction=model.loss.reduction, pos_weight=_pos_weight(model.loss)
        )
    else:
        if kind in _LINKS and type(layers[-1]) is _LINKS[kind][0]:
            # Exportable as it is, but torch users should know what this computes.
            warnings.warn(
                f"the model ends in {type(layers[-1]).__name__} and its loss "
                f"{kind.__name__} takes logits: its cost applies the activation "
                "twice. Exported as it is.",
                stacklevel=2,
            )
        loss = _export(model.loss, "the loss")
    modules = []
    for i, layer in enumerate(layers):
        converted = _export(layer, f"layer {i}:")
        converted.train(layer.training)
        modules.append(converted)
    if model.dtype is not None:
        dtype = _torch_dtype(model.dtype)
        for converted in modules:
            converted.to(dtype)
        if isinstance(loss, torch.nn.Module):  # class weights in the model's dtype
            loss.to(dtype)
    _tie(layers, modules, _TO_TORCH, "to_torch")
    if model.l2:
        maps = [_twin_names(layer, _TO_TORCH, "to_torch") for layer in layers]
        pairs = _penalized(layers, modules, maps, model.l2)
        weights, names = [w for _, w in pairs], [name for name, _ in pairs]
        loss = _l2_penalty_class()(loss, weights, names, model.l2)
    return TorchModel(torch.nn.Sequential(*modules), loss)


def _flatten(module: Any, nn: Any) -> list[Any]:
    if type(module) is nn.Sequential:
        return [child for sub in module for child in _flatten(sub, nn)]
    return [module]


def _penalty_of(loss: Any, children: list[Any], layers: list[Layer]) -> float:
    """The ``l2`` of an :data:`L2Penalty` over exactly the tensors of ``children`` that are the
    Ws of ``layers``, else a ``ValueError`` saying which differ."""
    maps = []
    for child in children:
        names = _twin_names(child, _FROM_TORCH, "to_minnet")
        maps.append(None if names is None else {b: a for a, b in names.items()})
    expected = dict(_penalized(layers, children, maps, loss.l2))
    given = [id(w) for w in loss.weights]
    if sorted(given) != sorted(map(id, expected.values())):
        missing = [name for name, w in expected.items() if id(w) not in given]
        raise ValueError(
            f"the loss's L2 penalty covers the tensors {list(loss.names)}, but minnet's l2 covers "
            "exactly the weight of each nn.Linear and nn.Conv2d of the module, each once: "
            f"{list(expected)} (not covered: {missing}; the others are not the module's own "
            "weights, or are there twice)"
        )
    return loss.l2


def from_torch(module: Any, loss: Any = None, *, final_activation: bool = True) -> Sequential:
    """A minnet :class:`~minnet.Sequential` from a ``torch.nn.Sequential`` and its loss.

    The layers are converted one for one (nested ``nn.Sequential`` flattened), with copies of
    the weights, bit for bit and in their dtype, and each layer's training or evaluation mode.
    ``loss`` is a torch loss (with its ``reduction``, class ``weight``, ``label_smoothing``,
    ``delta``, ``p``, ``margin``), an :data:`L2Penalty` (as :func:`to_torch` gives: the model
    gets its ``l2``), a minnet :class:`~minnet.Loss` (used as it is), or ``None``: minnet's
    default, ``BCELoss()``.

    For a torch loss of logits (``BCEWithLogitsLoss``, ``CrossEntropyLoss``), with
    ``final_activation=True`` (the default) the model ends in the activation the loss implies
    (``Sigmoid``, ``Softmax``), which minnet's ``BCELoss`` / ``CrossEntropyLoss`` fuse with:
    the cost is still the torch loss of the module's output, computed from the logits, and
    ``forward`` and ``predict_proba`` give probabilities. That inverts :func:`to_torch` for a
    fused model. ``final_activation=False`` keeps the layers one for one, with minnet's
    ``BCEWithLogitsLoss`` / ``CrossEntropyLoss`` taking the last layer's outputs as logits.
    ``from_torch(*to_torch(model), final_activation=model.fused)`` gives back ``model``.

    A module ending in ``nn.Sigmoid`` with ``nn.BCELoss`` (``nn.LogSoftmax`` with
    ``nn.NLLLoss``) becomes minnet's fused form, which computes the same loss from the logits:
    equal to rounding for moderate logits, and exact where torch's logs of rounded (or clamped)
    probabilities are not.

    Raises ``ValueError`` naming any layer, loss or argument without a minnet counterpart.
    """
    torch = _torch()
    _register_builtins()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            f"from_torch takes a torch.nn.Sequential, got {type(module).__name__}: minnet models "
            "are a sequence of layers"
        )
    children = _flatten(module, nn)
    layers: list[Layer] = []
    for i, child in enumerate(children):
        layer = _import(child, f"layer {i}:")
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer {i}: {type(child).__name__} converted to {layer!r}, not a Layer"
            )
        layer.train(child.training)
        layers.append(layer)
    if not layers:
        raise ValueError("from_torch got an empty torch.nn.Sequential")
    _tie(children, layers, _FROM_TORCH, "to_minnet")
    l2 = 0.0
    if type(loss) is _L2_PENALTY_CLASS:  # None until an L2Penalty was made: never a match
        l2 = _penalty_of(loss, children, layers)
        loss = loss.loss
    if loss is None:
        minnet_loss: Loss = BCELoss()
    elif isinstance(loss, Loss):
        minnet_loss = loss
    else:
        minnet_loss = _import(loss, "the loss")
        link = _LINKS.get(type(minnet_loss))
        if final_activation and link is not None:
            activation, fused_loss = link
            if type(layers[-1]) is activation:
                warnings.warn(
                    f"the module ends in {activation.__name__} and its loss {type(loss).__name__} "
                    "takes logits: it applies the activation twice (the torch idiom is to end "
                    "without it). Converted as torch computes it, with a second "
                    f"{activation.__name__}.",
                    stacklevel=2,
                )
            layers.append(activation().train(layers[-1].training))
            if fused_loss is BCELoss:
                minnet_loss = BCELoss(
                    reduction=minnet_loss.reduction, pos_weight=minnet_loss.pos_weight
                )
    dtypes = {p.dtype for layer in layers for p in layer.parameters()}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    return Sequential(layers, loss=minnet_loss, dtype=dtype, l2=l2)


__all__ = [
    "INSTALL_HINT",
    "TorchModel",
    "from_torch",
    "register_from_torch",
    "register_to_torch",
    "to_torch",
]
