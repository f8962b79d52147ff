"""Containers: modules made of modules."""

from .sequential import Sequential

__all__ = ["Sequential"]
