"""Layers: one file per family."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .dropout import Dropout
from .linear import Linear
from .normalization import BatchNorm1d, LayerNorm
from .shape import Flatten, Identity

__all__ = ["Linear", "ReLU"]
__all__ += ["BatchNorm1d", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm", "LeakyReLU",
            "Sigmoid", "Softplus", "Tanh"]
