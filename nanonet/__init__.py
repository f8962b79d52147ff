"""nanonet: a neural-network micro-framework with hand-written backprop.

Every layer's ``backward`` is written by hand and proven by the gradient
checker, which is part of the library.
"""

from .containers import Sequential
from .gradcheck import (
    GradientReport,
    GradientRow,
    analytic_jacobian,
    check_gradients,
    numerical_jacobian,
)
from .layers import Linear, ReLU
from .losses import Loss, MSELoss
from .module import Buffer, Module, Parameter, detect_anomaly
from . import optim
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, ProgressBar, TerminateOnNaN
from .data import batches
from .serialization import load, save
from .training import History, evaluate, fit, plot_histories

from .containers import Graph, Input, shared_copy
from .layers import Add, Concat, Multiply, Split

__version__ = "0.1.0"

__all__ = [
    "Buffer",
    "GradientReport",
    "GradientRow",
    "Linear",
    "Loss",
    "MSELoss",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "analytic_jacobian",
    "check_gradients",
    "detect_anomaly",
    "numerical_jacobian",
    # training (issue 3)
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "ModelCheckpoint",
    "ProgressBar",
    "TerminateOnNaN",
    "batches",
    "evaluate",
    "fit",
    "load",
    "optim",
    "plot_histories",
    "save",
    "Input",
    "Graph",
    "shared_copy",
    "Add",
    "Multiply",
    "Concat",
    "Split",
]
