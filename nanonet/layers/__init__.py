"""Layers: one file per family."""

from .activations import ReLU
from .linear import Linear
from .merge import Add, Concat, Multiply, Split

__all__ = ["Linear", "ReLU", "Add", "Concat", "Multiply", "Split"]
