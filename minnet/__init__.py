"""minnet: a small object-oriented neural-network framework with gradient checks at every level."""

from . import datasets, io
from ._fast import use_fast_path
from .flat import FlatLayout, gradients_to_vector, parameters_to_vector, vector_to_parameters
from .gradcheck import (
    GradcheckError,
    GradcheckReport,
    check_function,
    check_layer,
    check_loss,
    check_model,
)
from .integrations.torch import from_torch, to_torch
from .layers import (
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
from .losses import (
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
from .model import Sequential
from .optim import SGD, Adam, Optimizer
from .parameter import Parameter
from .training import DivergenceError, Evaluation, History, RegressionEvaluation

__all__ = [
    "Adam",
    "Optimizer",
    "SGD",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "MSELoss",
    "HuberLoss",
    "L1Loss",
    "MultiMarginLoss",
    "NLLLoss",
    "LogSoftmax",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "LayerNorm",
    "Softmax",
    "DivergenceError",
    "Dropout",
    "Evaluation",
    "FlatLayout",
    "GradcheckError",
    "GradcheckReport",
    "History",
    "Layer",
    "LeakyReLU",
    "Loss",
    "Linear",
    "Parameter",
    "ReLU",
    "RegressionEvaluation",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "check_function",
    "check_layer",
    "check_loss",
    "check_model",
    "from_torch",
    "to_torch",
    "datasets",
    "io",
    "load",
    "register_layer",
    "gradients_to_vector",
    "parameters_to_vector",
    "vector_to_parameters",
    "use_fast_path",
]
load = io.load
register_layer = io.register_layer
__version__ = "0.1.0"
