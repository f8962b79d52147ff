"""Losses: scalar objectives with a hand-written gradient.

- ``base``: the ``Loss`` contract;
- ``regression``: ``MSELoss``, ``L1Loss``, ``HuberLoss``;
- ``classification``: ``CrossEntropyLoss``, ``BCEWithLogitsLoss`` (from logits).
"""

from .base import Loss
from .classification import BCEWithLogitsLoss, CrossEntropyLoss, log_softmax
from .regression import HuberLoss, L1Loss, MSELoss

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "Loss", "MSELoss", "log_softmax"]
