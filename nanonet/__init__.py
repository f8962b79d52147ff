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
from .gradcheck import eps_sweep
from .layers import Linear, ReLU
from .losses import Loss, MSELoss
from .module import Buffer, Module, Parameter, detect_anomaly
from .layers import (BatchNorm1d, Dropout, ELU, Flatten, GELU, Identity, LayerNorm, LeakyReLU, Sigmoid,
                     Softplus, Tanh)
from .losses import HuberLoss, L1Loss
from .losses_classification import BCEWithLogitsLoss, CrossEntropyLoss

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
]
__all__ += [
    "BCEWithLogitsLoss", "BatchNorm1d", "CrossEntropyLoss", "Dropout", "ELU", "Flatten", "GELU", "HuberLoss",
    "Identity", "L1Loss", "LayerNorm", "LeakyReLU", "Sigmoid", "Softplus", "Tanh", "eps_sweep",
]
