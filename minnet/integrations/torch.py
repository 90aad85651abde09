"""Moving a model to PyTorch and back: :func:`to_torch` and :func:`from_torch`.

PyTorch is optional: it is imported inside the functions, and a missing install is an
``ImportError`` that says ``pip install "minnet[torch]"``.

**The pair.** ``to_torch(model)`` returns ``(module, loss)``, a :class:`TorchModel`: a
``torch.nn.Sequential`` and the torch loss such that ``loss(module(X), y)`` *is*
``model.cost(X, y)``, as every torch training loop computes it. Most layers and losses have a
twin of the same name; the one place where the two frameworks say it differently is a fused
final activation:

- minnet writes a classifier as ``[..., Sigmoid()]`` with ``BCELoss()`` (or ``[..., Softmax()]``
  with ``CrossEntropyLoss()``) and computes the loss from the *logits*, the input of that final
  activation (``model.fused``); PyTorch writes it as a module that outputs the logits, with
  ``BCEWithLogitsLoss`` (``CrossEntropyLoss``). ``to_torch`` exports the torch form: the
  module is ``model.body`` (all layers but the fused activation) and the loss takes its
  logits. The numbers are then the same computation (``log(1 + exp(z)) - y z``, ``log_softmax``)
  in both, equal to rounding for any logits, where a torch ``Sigmoid`` + ``BCELoss`` would
  round probabilities near 0 or 1 and clamp their logs. ``torch.sigmoid(module(X))`` (or
  ``softmax(dim=1)``) is ``model.predict_proba(X)``.
- ``from_torch(module, loss=BCEWithLogitsLoss())`` goes back to minnet's form: it appends the
  activation the loss implies (``Sigmoid``, ``Softmax``) and uses minnet's ``BCELoss``
  (``CrossEntropyLoss``), which fuses with it. So ``from_torch(*to_torch(model))`` rebuilds a
  fused model exactly. A minnet model whose loss takes logits *without* that activation
  (``BCEWithLogitsLoss``, or ``CrossEntropyLoss`` on a last ``Linear``) exports to the same
  torch pair; ``final_activation=False`` keeps the layers one for one and rebuilds it:
  ``from_torch(*to_torch(model), final_activation=model.fused)`` is exact for every model.

Weights are copied (neither side shares memory with the other), bit for bit, in the model's
dtype; each layer keeps its training or evaluation mode, a ``BatchNorm1d`` its running
statistics (torch's ``num_batches_tracked`` is left at 0 on export and ignored on import: it
only matters for ``momentum=None``, which minnet does not have and refuses).

**Layers** (minnet <-> torch): ``Linear`` <-> ``nn.Linear`` (with a bias), ``ReLU``,
``LeakyReLU(negative_slope)``, ``Sigmoid``, ``Tanh``, ``Dropout(p)``, ``Softmax`` <->
``nn.Softmax(dim=-1 or 1)``, ``BatchNorm1d(num_features, eps, momentum)`` <-> ``nn.BatchNorm1d``
(affine, with running statistics), ``LayerNorm(num_features, eps)`` <-> ``nn.LayerNorm`` over
the last dimension with ``elementwise_affine`` and a bias; images: ``Conv2d`` <-> ``nn.Conv2d``
(zero padding given as numbers, no dilation, no groups), ``MaxPool2d`` and ``AvgPool2d`` <->
their namesakes (no ``ceil_mode``; ``count_include_pad=True``), ``Flatten`` <-> ``nn.Flatten()``,
``BatchNorm2d`` as ``BatchNorm1d``. **Losses**: ``MSELoss``,
``BCELoss``, ``BCEWithLogitsLoss``, ``CrossEntropyLoss(label_smoothing)``, all with
``reduction="mean"`` and no class weights. Anything else is refused with a ``ValueError`` that
names it. (Export only: ``LogSoftmax``, and the losses ``L1Loss``, ``HuberLoss``, ``NLLLoss``,
``MultiMarginLoss``, each loss with its ``reduction`` and class weights.) A dropout layer's
random masks are not carried over: the two draw their own.

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

import warnings
from collections.abc import Callable
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
    activation, ``module`` stops before that activation and ``loss`` takes its logits.
    """

    module: torch.nn.Sequential
    loss: torch.nn.Module


# -- registries: minnet class -> function(minnet object) -> torch module, and back ----------------
_TO_TORCH: dict[type, Callable[[Any], Any]] = {}
_FROM_TORCH: dict[type, Callable[[Any], Any]] = {}
_BUILTINS_REGISTERED = False


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
    def _(layer: Linear) -> Any:
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
    register_to_torch(Softmax)(lambda layer: nn.Softmax(dim=-1))
    register_to_torch(LogSoftmax)(lambda layer: nn.LogSoftmax(dim=-1))

    @register_to_torch(Conv2d)
    def _(layer: Conv2d) -> Any:
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
    def _(layer: BatchNorm1d) -> Any:
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
    def _(layer: LayerNorm) -> Any:
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
        lambda loss: nn.BCEWithLogitsLoss(reduction=loss.reduction)
    )
    # BCELoss: nn.BCEWithLogitsLoss when it fuses with the final Sigmoid, decided in to_torch.
    register_to_torch(BCELoss)(lambda loss: nn.BCELoss(reduction=loss.reduction))
    register_to_torch(CrossEntropyLoss)(
        lambda loss: nn.CrossEntropyLoss(
            _class_weight(loss), label_smoothing=loss.label_smoothing, reduction=loss.reduction
        )
    )
    # NLLLoss: nn.CrossEntropyLoss when it fuses with the final LogSoftmax, decided in to_torch.
    register_to_torch(NLLLoss)(
        lambda loss: nn.NLLLoss(_class_weight(loss), reduction=loss.reduction)
    )
    register_to_torch(MultiMarginLoss)(
        lambda loss: nn.MultiMarginLoss(
            p=loss.p, margin=loss.margin, weight=_class_weight(loss), reduction=loss.reduction
        )
    )

    # -- import -------------------------------------------------------------------------------
    @register_from_torch(nn.Linear)
    def _(module: Any) -> Linear:
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
        if module.dim not in (-1, 1):
            raise ValueError(
                f"{module!r}: minnet's Softmax is over the features of each row (dim=-1 or 1), "
                f"got dim={module.dim}"
            )
        return Softmax()

    @register_from_torch(nn.Conv2d)
    def _(module: Any) -> Conv2d:
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
    def _(module: Any) -> BatchNorm1d:
        if module.momentum is None:
            raise ValueError(
                f"{module!r} has momentum=None (a cumulative average of the batch statistics); "
                "minnet's batch norms take an exponential average: give it a momentum in (0, 1]"
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
    def _(module: Any) -> LayerNorm:
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

    def plain(module: Any, *, weights: tuple[str, ...] = ("weight",)) -> None:
        if module.reduction != "mean":
            raise ValueError(
                f"{module!r}: minnet's losses are means, got reduction={module.reduction!r}"
            )
        for name in weights:
            if getattr(module, name, None) is not None:
                raise ValueError(f"{module!r}: minnet's losses take no {name}")

    @register_from_torch(nn.MSELoss)
    def _(module: Any) -> MSELoss:
        plain(module)
        return MSELoss()

    @register_from_torch(nn.BCELoss)
    def _(module: Any) -> BCELoss:
        plain(module)
        return BCELoss()

    @register_from_torch(nn.BCEWithLogitsLoss)
    def _(module: Any) -> BCEWithLogitsLoss:
        plain(module, weights=("weight", "pos_weight"))
        return BCEWithLogitsLoss()

    @register_from_torch(nn.CrossEntropyLoss)
    def _(module: Any) -> CrossEntropyLoss:
        plain(module)
        if module.ignore_index != -100:
            raise ValueError(f"{module!r}: minnet's CrossEntropyLoss ignores no class index")
        return CrossEntropyLoss(label_smoothing=module.label_smoothing)

    _BUILTINS_REGISTERED = True


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
    return convert(module)


#: The activation a torch loss of logits implies, appended by from_torch.
_LINKS = {BCEWithLogitsLoss: (Sigmoid, BCELoss), CrossEntropyLoss: (Softmax, CrossEntropyLoss)}


def to_torch(model: Sequential) -> TorchModel:
    """The model as PyTorch: ``module, loss = to_torch(model)``, a :class:`TorchModel`.

    ``module`` is a ``torch.nn.Sequential`` of the same layers with copies of the same weights
    (bit for bit, in the model's dtype, each layer in its training or evaluation mode), and
    ``loss`` the matching torch loss, so that ``loss(module(X), y)`` is ``model.cost(X, y)``.
    When the model's loss fuses with its final activation (``model.fused``: ``[..., Sigmoid()]``
    with ``BCELoss``, ``[..., Softmax()]`` with ``CrossEntropyLoss``), ``module`` is
    ``model.body``, which outputs the logits, and ``loss`` is ``torch.nn.BCEWithLogitsLoss`` /
    ``torch.nn.CrossEntropyLoss``: the torch idiom, and the same computation as minnet's. See
    the module's docstring for the layers and losses, and the hooks for your own.
    """
    torch = _torch()
    _register_builtins()
    if not isinstance(model, Sequential):
        raise TypeError(f"to_torch takes a minnet Sequential, got {type(model).__name__}")
    layers = model.body
    fused = model.fused
    if fused and type(model.loss) is BCELoss:
        loss = torch.nn.BCEWithLogitsLoss(reduction=model.loss.reduction)
    elif fused and type(model.loss) is NLLLoss:  # NLL of log_softmax(logits)
        loss = torch.nn.CrossEntropyLoss(_class_weight(model.loss), reduction=model.loss.reduction)
    else:
        if (
            type(model.loss) in (BCEWithLogitsLoss, CrossEntropyLoss)
            and type(layers[-1]) is _LINKS[type(model.loss)][0]
        ):
            # Exportable as it is, but torch users should know what this computes.
            warnings.warn(
                f"the model ends in {type(layers[-1]).__name__} and its loss "
                f"{type(model.loss).__name__} takes logits: its cost applies the activation "
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
    return TorchModel(torch.nn.Sequential(*modules), loss)


def _flatten(module: Any, nn: Any) -> list[Any]:
    if type(module) is nn.Sequential:
        return [child for sub in module for child in _flatten(sub, nn)]
    return [module]


def from_torch(module: Any, loss: Any = None, *, final_activation: bool = True) -> Sequential:
    """A minnet :class:`~minnet.Sequential` from a ``torch.nn.Sequential`` and its loss.

    The layers are converted one for one (nested ``nn.Sequential`` flattened), with copies of
    the weights, bit for bit and in their dtype, and each layer's training or evaluation mode.
    ``loss`` is a torch loss (``nn.MSELoss()``, ``nn.BCELoss()``, ``nn.BCEWithLogitsLoss()``,
    ``nn.CrossEntropyLoss(label_smoothing=...)``), a minnet :class:`~minnet.Loss` (used as it
    is), or ``None``: minnet's default, ``BCELoss()``.

    For a torch loss of logits (``BCEWithLogitsLoss``, ``CrossEntropyLoss``), with
    ``final_activation=True`` (the default) the model ends in the activation the loss implies
    (``Sigmoid``, ``Softmax``), which minnet's ``BCELoss`` / ``CrossEntropyLoss`` fuse with:
    the cost is still the torch loss of the module's output, computed from the logits, and
    ``forward`` and ``predict_proba`` give probabilities. That inverts :func:`to_torch` for a
    fused model. ``final_activation=False`` keeps the layers one for one, with minnet's
    ``BCEWithLogitsLoss`` / ``CrossEntropyLoss`` taking the last layer's outputs as logits.
    ``from_torch(*to_torch(model), final_activation=model.fused)`` gives back ``model``.

    A module ending in ``nn.Sigmoid`` with ``nn.BCELoss`` becomes minnet's fused form, which
    computes the same loss from the logits: equal to rounding for moderate logits, and exact
    where torch's logs of rounded (or clamped) probabilities are not.

    Raises ``ValueError`` naming any layer or loss without a minnet counterpart.
    """
    torch = _torch()
    _register_builtins()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            f"from_torch takes a torch.nn.Sequential, got {type(module).__name__}: minnet models "
            "are a sequence of layers"
        )
    layers: list[Layer] = []
    for i, child in enumerate(_flatten(module, nn)):
        layer = _import(child, f"layer {i}:")
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer {i}: {type(child).__name__} converted to {layer!r}, not a Layer"
            )
        layer.train(child.training)
        layers.append(layer)
    if not layers:
        raise ValueError("from_torch got an empty torch.nn.Sequential")
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
                minnet_loss = BCELoss()
    dtypes = {p.dtype for layer in layers for p in layer.parameters()}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    return Sequential(layers, loss=minnet_loss, dtype=dtype)


__all__ = [
    "INSTALL_HINT",
    "TorchModel",
    "from_torch",
    "register_from_torch",
    "register_to_torch",
    "to_torch",
]
