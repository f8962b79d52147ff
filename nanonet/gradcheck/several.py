"""Several inputs, several outputs and integer inputs, for the gradient checker.

- ``x`` may be a tuple of arrays: the model runs as ``forward(*x)`` and its
  ``backward`` returns one gradient per input (a tuple). The rows are named
  ``"input 0"``, ``"input 1"``, ...
- An integer input (Embedding's indices) has no gradient: it gets no row,
  and its entry in ``backward``'s result may be None.
- The output may be a tuple of arrays (an RNN with ``return_state=True``):
  without a loss the objective is ``sum_k sum(R_k * out_k)`` with one random
  ``R_k`` per output, and ``backward`` gets the tuple of ``R_k``.
"""

import numpy as np


def input_names(x):
    """The row names of the inputs: ``["input"]`` or ``["input 0", "input 1", ...]``."""
    return [f"input {i}" for i in range(len(x))] if isinstance(x, tuple) else ["input"]


def input_arrays(x):
    return list(x) if isinstance(x, tuple) else [x]


def differentiable(arr):
    return arr.dtype.kind == "f"


def run(work, x):
    """``work.forward(x)``, or ``work.forward(*x)`` for several inputs."""
    return work.forward(*x) if isinstance(x, tuple) else work.forward(x)


def random_like(out, gen):
    """A standard-normal array shaped like ``out``, or a tuple of them for several outputs."""
    if isinstance(out, tuple):
        return tuple(gen.standard_normal(np.shape(o)) for o in out)
    return gen.standard_normal(np.shape(out))


def project(probe, out):
    """``sum(probe * out)``, summed over the outputs when there are several."""
    if isinstance(out, tuple):
        return float(sum(np.vdot(p, o) for p, o in zip(probe, out)))
    return float(np.vdot(probe, out))


def magnitude(probe, out):
    """``sum(|probe * out|)``: the size of the objective's terms, for the round-off estimate."""
    if isinstance(out, tuple):
        return float(sum(np.abs(p * o).sum() for p, o in zip(probe, out)))
    return float(np.abs(probe * out).sum())


def input_gradients(grad_x, x):
    """``{row name: float64 copy of dJ/dx_i}`` for the differentiable inputs (None where none came back)."""
    names, arrays = input_names(x), input_arrays(x)
    grads = tuple(grad_x) if isinstance(x, tuple) and isinstance(grad_x, (tuple, list)) else (grad_x,)
    grads += (None,) * (len(arrays) - len(grads))  # a missing gradient fails its row
    return {name: None if g is None else np.array(g, dtype=np.float64, copy=True)
            for name, arr, g in zip(names, arrays, grads) if differentiable(arr)}
