"""The checker's arguments, validated before anything runs: a check that checked nothing must never PASS.

Every entry point (``check_gradients``, ``eps_sweep``, ``numerical_jacobian``,
``analytic_jacobian``, and ``check_layer`` in ``nanonet.testing``) calls these
first. The rules: a step ``eps`` is finite and > 0; tolerances are finite and
>= 0; counts are ints >= 1 (``n_directions=0`` would compare nothing); shapes
are tuples of ints >= 1; ``x`` is a non-empty numeric ndarray; and NaN/Inf in
``x``, ``y`` or any parameter or buffer is refused with its name (central
differences of a function of NaN say nothing).
"""

import numpy as np

from .._checks import check_finite, check_number


class _Named:
    """A name for ``check_finite``'s messages (``who`` calls ``short_repr``)."""

    def __init__(self, name):
        self.name = name

    def short_repr(self):
        return self.name


def check_settings(caller, *, eps=None, rtol=None, atol=None, n_directions=None):
    """The numbers that steer a check: eps > 0, tolerances >= 0, n_directions >= 1 (all finite)."""
    if eps is not None:
        check_number(caller, "eps", eps, low=0, low_open=True)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None:
            check_number(caller, name, value, low=0)
    if n_directions is not None:
        check_number(caller, "n_directions", n_directions, low=1, integer=True)


def check_flag(caller, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{caller} expected {name} to be True or False, got {value!r}")


def check_data(caller, arr, name):
    """``arr`` is a non-empty numeric ndarray without NaN/Inf."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{caller} expected {name} to be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{caller} expected a numeric (real) {name}, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{caller} got an empty {name} {arr.shape}: there is nothing to check")
    check_finite(_Named(caller), arr, name=name)


def check_model(caller, model, *, loss_fn=None):
    """``model`` has forward/backward; its parameters and buffers hold no NaN/Inf; ``loss_fn`` is a loss."""
    if isinstance(model, type):
        raise TypeError(f"{caller} expected a module instance, got the class {model.__name__}; create one first")
    if not (callable(getattr(model, "forward", None)) and callable(getattr(model, "backward", None))):
        raise TypeError(f"{caller} expected a module (with forward and backward), got {type(model).__name__}")
    if loss_fn is not None:
        if isinstance(loss_fn, type):
            raise TypeError(f"{caller} expected loss_fn to be a loss instance, got the class {loss_fn.__name__}; "
                            f"create one first, e.g. {loss_fn.__name__}()")
        if not (callable(getattr(loss_fn, "forward", None)) and callable(getattr(loss_fn, "backward", None))):
            raise TypeError(f"{caller} expected loss_fn to be a loss (with forward and backward), "
                            f"got {type(loss_fn).__name__}")
    named = []
    if callable(getattr(model, "named_parameters", None)):
        named += [(f"parameter {name!r}", p) for name, p in model.named_parameters()]
    if callable(getattr(model, "named_buffers", None)):
        named += [(f"buffer {name!r}", b) for name, b in model.named_buffers()]
    for label, holder in named:
        check_finite(_Named(caller), holder.value, name=label)


def check_eps_values(caller, eps_values):
    """A non-empty sequence of steps, each finite and > 0."""
    if isinstance(eps_values, (str, bytes)) or not hasattr(eps_values, "__iter__"):
        raise TypeError(f"{caller} expected eps_values to be a sequence of step sizes, got {eps_values!r}")
    values = list(eps_values)
    if not values:
        raise ValueError(f"{caller} got no eps_values: there is nothing to sweep")
    return [check_number(caller, f"eps_values[{i}]", v, low=0, low_open=True) for i, v in enumerate(values)]


def check_shape(caller, shape, name="input_shape"):
    """A tuple of ints >= 1 (one int is a 1-d shape)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{caller} expected {name} to be a tuple of positive ints, got {shape!r}")
    shape = tuple(shape)
    if not shape:
        raise ValueError(f"{caller} expected {name} with at least one axis, got ()")
    return tuple(check_number(caller, f"{name}[{i}]", d, low=1, integer=True) for i, d in enumerate(shape))


def check_gradients_arguments(model, x, y, loss_fn, *, eps, rtol, atol, n_directions, mode, modes, diagnose):
    """Everything ``check_gradients`` is given, before it copies or runs anything."""
    caller = "check_gradients"
    if mode not in modes:
        raise ValueError(f"{caller} expected mode in {modes}, got {mode!r}")
    check_settings(caller, eps=eps, rtol=rtol, atol=atol, n_directions=n_directions)
    check_flag(caller, "diagnose", diagnose)
    if (loss_fn is None) != (y is None):
        raise ValueError(f"{caller} needs both y and loss_fn, or neither")
    check_model(caller, model, loss_fn=loss_fn)
    check_inputs(caller, x)
    if y is not None:
        check_data(caller, y, "y")


def check_inputs(caller, x):
    """``x``: one array, or a tuple/list of them for a model with several inputs (each checked, named x[i])."""
    if isinstance(x, (tuple, list)) and x and all(isinstance(part, np.ndarray) for part in x):
        for i, part in enumerate(x):
            check_data(caller, part, f"x[{i}]")
    else:
        check_data(caller, x, "x")
