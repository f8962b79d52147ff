"""``LayerSpec``: what ``check_layer`` checks, and the inputs it feeds it."""

import copy
import inspect

import numpy as np

from .._checks import who
from .._rng import as_generator
from ..gradcheck.arguments import check_shape
from ..losses import Loss
from .arguments import check_expected_failures, check_made, check_source, is_instance


class LayerSpec:
    """A layer (or loss) to check and how: what ``check_layer`` and ``parametrize_with_checks`` take.

    Args:
        layer_or_factory: a Module or Loss instance (deep-copied for every
            check), or a callable returning a fresh one. A factory that takes
            an ``rng`` keyword is also used to test determinism under a seed.
        input_shape: the shape of ``x`` (for a loss: of ``pred``).
        target: for a loss: an array, or ``f(pred_shape, generator) -> array``;
            default: the loss's ``example_target`` if it has one, else normal floats.
        expected_failures: names of checks this layer is known to fail.
        rng: seed for every random input (each check starts from the same seed).
        label: the name used in reports and test ids (default: the repr).
        input: the input ``x`` (default: normal floats): an array of
            ``input_shape``, or ``f(input_shape, generator) -> array``. An
            integer input stays integer for a layer whose ``input_kinds``
            take integers (Embedding's indices:
            ``input=lambda shape, gen: gen.integers(0, 10, size=shape)``; it
            gets no gradient row) and becomes float for any other layer (small
            integers as floats put max pooling on its ties).
    """

    def __init__(self, layer_or_factory, input_shape, *, target=None, expected_failures=(), rng=0, label=None,
                 input=None):
        self.input_shape = check_shape("check_layer", input_shape)
        self.source = check_source(layer_or_factory)
        self.target = target
        self.input = input
        self.expected_failures = check_expected_failures(expected_failures)
        gen = as_generator(rng)  # refuses a bad rng
        self.seed = int(gen.integers(2**32)) if not isinstance(rng, int) else rng
        probe = check_made(layer_or_factory, self.make())
        self.is_loss = isinstance(probe, Loss) or (not hasattr(probe, "parameters") and hasattr(probe, "backward"))
        self.label = label or who(probe)
        kinds = getattr(probe, "input_kinds", "f")
        self._integer_input = isinstance(kinds, str) and "i" in kinds

    def _is_instance(self):
        return is_instance(self.source)

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
        x = self._input(gen)
        x = x if x.dtype.kind in "iu" and self._integer_input else x.astype(dtype)
        if not self.is_loss:
            return x
        return x, self._target(gen, dtype)

    def _input(self, gen):
        given = self.input
        if given is None:
            return gen.normal(size=self.input_shape)
        x = np.asarray(given(self.input_shape, gen) if callable(given) else given)
        if x.shape != self.input_shape:
            raise ValueError(f"check_layer: the given input has shape {x.shape}, expected {self.input_shape}")
        return x

    def _target(self, gen, dtype):
        t = self.target
        if t is None:
            maker = getattr(self.make(), "example_target", None)
            t = maker(self.input_shape, gen) if maker else gen.normal(size=self.input_shape)
        elif callable(t):
            t = t(self.input_shape, gen)
        t = np.array(t)
        return t.astype(dtype) if t.dtype.kind == "f" else t
