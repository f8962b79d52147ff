"""nanonet: a neural-network micro-framework with hand-written backprop.

Every layer's ``backward`` is written by hand and proven by the gradient
checker, which is part of the library.
"""

from . import distributed, metrics, optim
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, ProgressBar, TerminateOnNaN
from .containers import Graph, Input, Sequential, shared_copy
from .data import batches
from .distributed import SyncBatchNorm
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
from .layers import (  # convolutional networks
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dropout2d,
    MaxPool1d,
    MaxPool2d,
    Upsample,
    ZeroPad2d,
)
from .layers import (  # sequence models
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
from .inference import evaluate, predict
from .interop import export_onnx, load_torch_state_dict, to_torch_state_dict
from .training import History, fit, plot_histories

__version__ = "0.1.0"

__all__ = [
    # the contract
    "Buffer", "Module", "Parameter", "detect_anomaly",
    # layers
    "Add", "BatchNorm1d", "Concat", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Multiply", "ReLU", "Sigmoid", "Softplus", "Split", "SyncBatchNorm", "Tanh",
    # convolutional networks
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv1d", "Conv2d", "ConvTranspose2d", "Dropout2d",
    "MaxPool1d", "MaxPool2d", "Upsample", "ZeroPad2d",
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
    "TerminateOnNaN", "batches", "distributed", "evaluate", "fit", "metrics", "optim", "plot_histories",
    "predict",
    # saving, and other tools' formats
    "export_onnx", "load", "load_torch_state_dict", "save", "to_torch_state_dict",
]
