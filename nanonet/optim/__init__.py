"""Optimizers, learning-rate schedules and gradient clipping (``torch.optim``'s names).

>>> import nanonet as nn
>>> model = nn.Linear(3, 1, rng=0)
>>> opt = nn.optim.Adam(model.parameters(), lr=1e-3)
>>> opt
Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=False, maximize=False; 2 parameters)
"""

from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_norm_
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LinearLR, LinearWarmup, LRScheduler, StepLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "LinearWarmup",
    "Optimizer",
    "RMSprop",
    "SGD",
    "StepLR",
    "clip_grad_norm",
    "clip_grad_norm_",
]
