"""Layers: one file per family."""

from .activations import ReLU
from .linear import Linear

__all__ = ["Linear", "ReLU"]
