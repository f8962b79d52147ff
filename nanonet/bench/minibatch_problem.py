"""The mini-batch ``steps`` family of ``nanonet bench``: its configurations and shared data.

A configuration is one point of the grid: a model (``mlp``: the 64-128-10
classifier, ``residual``: a residual ``Graph``, ``norm``: a ``Sequential``
with LayerNorm, GELU and Dropout), a loss (``ce``: cross-entropy on integer
classes, ``mse``: regression on 10 targets), an optimizer (``sgd``: SGD with
momentum 0.9, ``adam``: Adam), a dtype and a batch size. Every peer gets the
same :class:`MiniProblem` (data and initial weights) and runs *one epoch* of
``BATCHES`` shuffled mini-batches per call, doing all the per-batch work a
training loop does (gathering the batch, the loss, zeroing the gradients,
the optimizer); the harness reports time per batch.

Example:
    >>> cfg = Config("mlp", "ce", "adam", "float64", 8)
    >>> problem = MiniProblem.make(cfg)
    >>> problem.x.shape, problem.y.shape, [w.shape for w in problem.params]
    ((256, 64), (256,), [(64, 128), (128,), (128, 10), (10,)])
"""

from dataclasses import dataclass

import numpy as np

from .._rng import as_generator

N_IN, HIDDEN, N_OUT = 64, 128, 10
BATCHES = 32          # batches per timed call (one epoch)
BATCH_SIZES = (1, 8, 32, 128, 512)
MODELS = ("mlp", "residual", "norm")
LOSSES = ("ce", "mse")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float64", "float32")
LR = {"sgd": 1e-3, "adam": 1e-4}
MOMENTUM = 0.9
BETAS, EPS = (0.9, 0.999), 1e-8
DROPOUT = 0.1


@dataclass(frozen=True)
class Config:
    """One point of the grid."""

    model: str
    loss: str
    optimizer: str
    dtype: str
    batch: int

    @property
    def label(self):
        return f"{self.model} {self.loss} {self.optimizer} f{self.dtype[5:]} B={self.batch}"

    def as_dict(self):
        return {"model": self.model, "loss": self.loss, "optimizer": self.optimizer, "dtype": self.dtype,
                "batch": self.batch}


def grid(models=MODELS, losses=LOSSES, optimizers=OPTIMIZERS, dtypes=DTYPES, batches=BATCH_SIZES):
    """The configurations to run: the whole grid for ``mlp``; ``ce``/``adam`` only for the other models.

    >>> len(grid()), len(grid(models=("mlp",)))
    (60, 40)
    """
    out = []
    for model in models:
        for loss in losses:
            for opt in optimizers:
                if model != "mlp" and (loss, opt) != ("ce", "adam"):
                    continue
                for dtype in dtypes:
                    out.extend(Config(model, loss, opt, dtype, b) for b in batches)
    return out


def param_shapes(model):
    """The model's parameters in the order every peer keeps them (Linear weights are (in, out))."""
    if model == "mlp":
        return [(N_IN, HIDDEN), (HIDDEN,), (HIDDEN, N_OUT), (N_OUT,)]
    if model == "residual":
        return [(N_IN, HIDDEN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN, N_OUT), (N_OUT,)]
    if model == "norm":  # Linear, LayerNorm (weight, bias), Linear
        return [(N_IN, HIDDEN), (HIDDEN,), (HIDDEN,), (HIDDEN,), (HIDDEN, N_OUT), (N_OUT,)]
    raise ValueError(f"unknown model {model!r}; choose from {MODELS}")


@dataclass
class MiniProblem:
    """Data (``BATCHES * batch`` rows) and initial parameters of one configuration."""

    config: Config
    x: np.ndarray
    y: np.ndarray
    params: list
    lr: float
    seed: int = 0  # of the shuffling (and dropout) generators every peer makes for itself

    @classmethod
    def make(cls, config, rng=0, batches=BATCHES):
        gen = as_generator(rng)
        dt = np.dtype(config.dtype)
        n = batches * config.batch
        x = gen.standard_normal((n, N_IN))
        teacher = gen.standard_normal((N_IN, N_OUT)) / np.sqrt(N_IN)
        scores = np.tanh(x @ teacher) + 0.3 * gen.standard_normal((n, N_OUT))  # noisy: never fits exactly
        y = scores.argmax(axis=1).astype(np.int64) if config.loss == "ce" else scores.astype(dt)
        params = []
        for shape in param_shapes(config.model):
            if len(shape) == 2:
                params.append((gen.standard_normal(shape) * np.sqrt(2.0 / shape[0])).astype(dt))
            else:
                params.append(np.zeros(shape, dt))
        if config.model == "norm":
            params[2][...] = 1  # LayerNorm's weight starts at one
        return cls(config, x.astype(dt), y, params, LR[config.optimizer])

    @property
    def dtype(self):
        return self.x.dtype

    def copy_params(self):
        return [p.copy() for p in self.params]

    def batches_per_call(self):
        return len(self.x) // self.config.batch
