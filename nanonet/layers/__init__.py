"""Layers: one file per family."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .dropout import Dropout
from .linear import Linear
from .merge import Add, Concat, Multiply, Split
from .normalization import BatchNorm1d, LayerNorm
from .shape import Flatten, Identity

__all__ = [
    "Add", "BatchNorm1d", "Concat", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Multiply", "ReLU", "Sigmoid", "Softplus", "Split", "Tanh",
]
