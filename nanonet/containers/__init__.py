"""Containers: modules made of modules."""

from .sequential import Sequential
from .graph import Graph
from .graph_build import Input, shared_copy

__all__ = ["Sequential", "Graph", "Input", "shared_copy"]
