"""``LayerSpec``: what ``check_layer`` checks, and the inputs it feeds it."""

import copy
import inspect

import numpy as np

from .._checks import who
from .._rng import as_generator
from ..losses import Loss


class LayerSpec:
    """A layer (or loss) to check and how: what ``check_layer`` and ``parametrize_with_checks`` take.

    Args:
        layer_or_factory: a Module or Loss instance (deep-copied for every
            check), or a callable returning a fresh one. A factory that takes
            an ``rng`` keyword is also used to test determinism under a seed.
        input_shape: the shape of ``x`` (for a loss: of ``pred``).
        input_fn: ``f(shape, generator) -> x`` for a layer whose input is not
            normal floats, e.g. Embedding's indices:
            ``lambda shape, gen: gen.integers(0, 10, size=shape)``. An
            integer input stays integer (no dtype conversion) and gets no
            gradient row.
        target: for a loss: an array, or ``f(pred_shape, generator) -> array``;
            default: the loss's ``example_target`` if it has one, else normal floats.
        expected_failures: names of checks this layer is known to fail.
        rng: seed for every random input (each check starts from the same seed).
        label: the name used in reports and test ids (default: the repr).
    """

    def __init__(self, layer_or_factory, input_shape, *, target=None, expected_failures=(), rng=0, label=None,
                 input_fn=None):
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.source = layer_or_factory
        self.target = target
        self.input_fn = input_fn
        self.expected_failures = tuple(expected_failures)
        self.seed = int(as_generator(rng).integers(2**32)) if not isinstance(rng, int) else rng
        probe = self.make()
        self.is_loss = isinstance(probe, Loss) or (not hasattr(probe, "parameters") and hasattr(probe, "backward"))
        self.label = label or who(probe)

    def _is_instance(self):
        src = self.source
        return not isinstance(src, type) and hasattr(src, "forward") and hasattr(src, "backward")

    def make(self):
        """A fresh layer or loss."""
        if self._is_instance():
            return copy.deepcopy(self.source)
        if not callable(self.source):
            raise TypeError(f"check_layer expected a layer, a loss or a factory, got {type(self.source).__name__}")
        return self.source()

    def make_seeded(self, seed):
        """A fresh one built with ``rng=seed`` when the factory accepts it, else None."""
        if self._is_instance():
            return None
        try:
            params = inspect.signature(self.source).parameters
        except (TypeError, ValueError):
            return None
        return self.source(rng=seed) if "rng" in params else None

    def gen(self):
        return np.random.default_rng(self.seed)

    def inputs(self, dtype=np.float64, gen=None):
        """``x`` (and for a loss ``(pred, target)``), the same for every call (or drawn from ``gen``)."""
        gen = gen or self.gen()
        x = np.asarray(self.input_fn(self.input_shape, gen)) if self.input_fn else gen.normal(size=self.input_shape)
        x = x.astype(dtype) if x.dtype.kind == "f" else x
        if not self.is_loss:
            return x
        return x, self._target(gen, dtype)

    def _target(self, gen, dtype):
        t = self.target
        if t is None:
            maker = getattr(self.make(), "example_target", None)
            t = maker(self.input_shape, gen) if maker else gen.normal(size=self.input_shape)
        elif callable(t):
            t = t(self.input_shape, gen)
        t = np.array(t)
        return t.astype(dtype) if t.dtype.kind == "f" else t
