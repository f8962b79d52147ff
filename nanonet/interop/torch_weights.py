"""PyTorch weights in and out: ``load_torch_state_dict`` and ``to_torch_state_dict``.

nanonet's layers have PyTorch's parameter names and layouts, with one
exception: ``Linear.weight`` is ``(in_features, out_features)`` (the seed's
``x @ W``), the transpose of torch's ``(out_features, in_features)``. These
two functions find every ``Linear`` in a model by walking it and transpose
its weight; every other array passes unchanged. A torch ``state_dict`` (or a
plain dict of arrays in torch's layout) thus loads into the equivalent
nanonet model, and back.
"""

import numpy as np

from .._extras import missing
from ..layers import Linear

_TORCH_ONLY = "num_batches_tracked"   # BatchNorm's batch counter: torch keeps it, nanonet does not


def named_modules(module, prefix=""):
    """Yield ``(dotted_prefix, module)`` for ``module`` and all its descendants ("" for the root)."""
    yield prefix, module
    for name, child in module.named_children():
        yield from named_modules(child, f"{prefix}{name}.")


def _linear_weights(model):
    """The state_dict keys of every Linear's weight in ``model``."""
    return {prefix + "weight" for prefix, m in named_modules(model) if isinstance(m, Linear)}


def _as_array(value):
    """A numpy array from a torch tensor (duck-typed: no torch import) or anything array-like."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_torch_state_dict(model, state_dict, *, cast=False):
    """Load a PyTorch ``state_dict`` (or a dict of arrays in torch's layout) into ``model``, in place.

    The keys are nanonet's names, which for a ``Sequential`` are torch's
    (``"0.weight"``, ``"2.bias"``, ...); rename keys first for other models
    (``{new(k): v for k, v in sd.items()}``). Values may be torch tensors
    (converted with ``.detach().cpu().numpy()``; torch itself is never
    imported) or numpy arrays. Every ``Linear`` weight is transposed from
    torch's ``(out, in)`` to nanonet's ``(in, out)``; every other array
    (LayerNorm, BatchNorm and its running statistics, biases) loads as it is.
    BatchNorm's ``num_batches_tracked`` counters are dropped (nanonet keeps no
    counter).

    All or nothing: names, shapes and dtypes must match, and every mismatch
    is listed in one ``ValueError`` before anything changes. torch's default
    dtype is float32 and nanonet's float64: pass ``cast=True`` to convert
    the arrays to the model's dtypes, or convert the model
    (``model.to(np.float32)``). Returns ``model``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        >>> torch_layout = {"0.weight": np.arange(6.0).reshape(2, 3), "0.bias": np.zeros(2)}
        >>> nn.load_torch_state_dict(model, torch_layout)[0].weight.value
        array([[0., 3.],
               [1., 4.],
               [2., 5.]])
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"load_torch_state_dict expected a state_dict (a mapping of names to tensors or arrays), "
                        f"got {type(state_dict).__name__}")
    targets = model.state_dict()
    linear = _linear_weights(model)
    arrays = {}
    for key, value in state_dict.items():
        if key.rsplit(".", 1)[-1] == _TORCH_ONLY and key not in targets:
            continue
        arr = _as_array(value)
        if key in linear and arr.ndim == 2:
            arr = arr.T
        if cast and key in targets and arr.dtype != targets[key].dtype and arr.dtype.kind in "fiu":
            arr = arr.astype(targets[key].dtype)
        arrays[key] = arr
    problems = model.state_dict_problems(arrays)
    if problems:
        hint = ""
        if any("dtype" in p for p in problems):
            hint = "\n(torch's default is float32: pass cast=True, or model.to(np.float32))"
        raise ValueError(f"load_torch_state_dict found {len(problems)} problem(s) (Linear weights compared after "
                         f"transposing torch's (out, in) to nanonet's (in, out)):\n  - "
                         + "\n  - ".join(problems) + hint)
    model.load_state_dict(arrays)
    return model


def to_torch_state_dict(model, *, tensors=True):
    """The model's weights as a PyTorch ``state_dict``: ``torch_model.load_state_dict(...)`` takes it.

    Every ``Linear`` weight is transposed to torch's ``(out, in)``; every
    other array keeps its layout. A module with BatchNorm's running
    statistics (``running_mean`` and ``running_var``) also gets torch's
    ``num_batches_tracked`` counter, set to 0 (nanonet does not count; torch
    reads it only with ``momentum=None``). With ``tensors=True`` (default)
    the values are torch tensors (needs torch); with ``tensors=False`` numpy
    arrays in torch's layout (no torch needed). The values are copies, in
    the model's dtype and in the model's parameter order.

    Example:
        >>> import nanonet as nn
        >>> sd = nn.to_torch_state_dict(nn.Sequential(nn.Linear(3, 2, rng=0)), tensors=False)
        >>> {k: v.shape for k, v in sd.items()}
        {'0.weight': (2, 3), '0.bias': (2,)}
    """
    if tensors:
        try:
            import torch
        except ImportError as exc:
            raise missing("to_torch_state_dict(tensors=True)", "torch", None,
                          alternative="or pass tensors=False for numpy arrays") from exc
    linear = _linear_weights(model)
    state = {}
    for key, arr in model.state_dict().items():
        state[key] = np.ascontiguousarray(arr.T) if key in linear and arr.ndim == 2 else arr
    for prefix, m in named_modules(model):
        if hasattr(m, "running_mean") and hasattr(m, "running_var"):
            state[prefix + _TORCH_ONLY] = np.array(0, dtype=np.int64)
    if not tensors:
        return state
    return {key: torch.from_numpy(arr) for key, arr in state.items()}
