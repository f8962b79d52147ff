"""nanonet: a neural-network micro-framework with hand-written backprop.

Every layer's ``backward`` is written by hand and proven by the gradient
checker, which is part of the library.
"""

from . import optim
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, ProgressBar, TerminateOnNaN
from .containers import Graph, Input, Sequential, shared_copy
from .data import batches
from .gradcheck import (
    GradientReport,
    GradientRow,
    analytic_jacobian,
    check_gradients,
    eps_sweep,
    numerical_jacobian,
)
from .layers import (
    ELU,
    GELU,
    Add,
    BatchNorm1d,
    Concat,
    Dropout,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    Multiply,
    ReLU,
    Sigmoid,
    Softplus,
    Split,
    Tanh,
)
from .layers import (
    GRU,
    LSTM,
    RNN,
    Embedding,
    LogSoftmax,
    MultiheadAttention,
    Projection,
    ScaledDotProductAttention,
    Softmax,
    TransformerEncoder,
    TransformerEncoderLayer,
    scaled_dot_product_attention,
)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss, MSELoss
from .module import Buffer, Module, Parameter, detect_anomaly
from .serialization import load, save
from .training import History, evaluate, fit, plot_histories

__version__ = "0.1.0"

__all__ = [
    # the contract
    "Buffer", "Module", "Parameter", "detect_anomaly",
    # layers
    "Add", "BatchNorm1d", "Concat", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Multiply", "ReLU", "Sigmoid", "Softplus", "Split", "Tanh",
    # sequence models
    "Embedding", "GRU", "LSTM", "LogSoftmax", "MultiheadAttention", "Projection", "RNN",
    "ScaledDotProductAttention", "Softmax", "TransformerEncoder", "TransformerEncoderLayer",
    "scaled_dot_product_attention",
    # containers
    "Graph", "Input", "Sequential", "shared_copy",
    # losses
    "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "Loss", "MSELoss",
    # gradient checking
    "GradientReport", "GradientRow", "analytic_jacobian", "check_gradients", "eps_sweep", "numerical_jacobian",
    # training
    "Callback", "EarlyStopping", "History", "LambdaCallback", "ModelCheckpoint", "ProgressBar",
    "TerminateOnNaN", "batches", "evaluate", "fit", "optim", "plot_histories",
    # saving
    "load", "save",
]
