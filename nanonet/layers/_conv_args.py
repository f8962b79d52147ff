"""What convolution and pooling layers share about their arguments and output sizes.

One place for: an int-or-tuple argument (``kernel_size=3`` or ``(3, 5)``),
padding (an int, a tuple, ``"valid"``, ``"same"``, or explicit
``(before, after)`` pairs), padding modes, the output size of a sliding
window (with ``ceil_mode``), and the shape checks of an ``(N, C, *spatial)``
input. Every number goes through ``check_number`` (finite, an int, in range).

Padding is kept internally as one ``(before, after)`` pair per spatial axis.
"""

import numpy as np

from .._checks import check_array, check_number, shape_text, who

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_AXIS_NAMES = {1: ("L",), 2: ("H", "W")}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def per_axis(owner, name, value, count, check_one, what="an int"):
    """``value`` (one value, or a tuple/list of ``count``) as a tuple of ``count`` values, each through ``check_one``.

    >>> per_axis("ZeroPad2d", "padding", 1, 4, int)
    (1, 1, 1, 1)
    """
    if isinstance(value, (tuple, list)):
        if len(value) != count:
            raise ValueError(f"{owner} expected {name} to be {what} or a tuple of {count} of them, got {value!r}")
        return tuple(check_one(v) for v in value)
    return (check_one(value),) * count


def int_tuple(owner, name, value, dims, *, low=1):
    """``value`` (an int or a tuple/list of ``dims`` ints, each >= ``low``) as a tuple of ``dims`` ints.

    >>> int_tuple("Conv2d", "kernel_size", 3, 2)
    (3, 3)
    >>> int_tuple("Conv2d", "stride", (1, 2), 2)
    (1, 2)
    """
    return per_axis(owner, name, value, dims, lambda v: check_number(owner, name, v, low=low, integer=True))


def padding_pairs(owner, padding, dims, kernel, dilation, stride):
    """``padding`` as ``((before, after), ...)``, one pair per spatial axis.

    ``"valid"`` is no padding; ``"same"`` pads ``dilation * (kernel - 1)`` in
    all, the odd one after (as PyTorch), and needs stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * dims
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{owner} padding='same' needs stride 1 (as in PyTorch), got stride={stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"{owner} expected padding to be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in int_tuple(owner, "padding", padding, dims, low=0))


def check_padding_mode(owner, mode):
    if mode not in PADDING_MODES:
        raise ValueError(f"{owner} expected padding_mode in {PADDING_MODES}, got {mode!r}")
    return mode


def check_dtype(owner, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{owner} expected a floating-point dtype, got {dtype}")
    return dtype


def window_count(size, pad_before, pad_after, kernel, stride, dilation=1, ceil_mode=False):
    """How many windows fit: PyTorch's output-size rule (with ``ceil_mode``, the last window must start
    inside the input or the left padding). May be 0 or negative: the caller reports it."""
    span = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    if (count - 1) * stride >= size + pad_before:
        count -= 1
    return count


def spatial_text(dims):
    return ", ".join(_AXIS_NAMES[dims])


def check_input(module, x, channels, dims, dtype):
    """``x`` must be a float array ``(N, channels, *spatial)`` of ``dtype`` (when given)."""
    if x.__class__ is not np.ndarray or x.dtype.kind != "f" or (dtype is not None and x.dtype != dtype):
        check_array(module, x, dtype=dtype)
    if x.dtype not in _FLOATS:
        raise TypeError(f"{who(module)} supports float32 and float64 input, got {x.dtype}; "
                        f"convert with x.astype(np.float32)")
    if x.ndim != dims + 2 or (channels is not None and x.shape[1] != channels):
        c = "C" if channels is None else channels
        raise ValueError(f"{who(module)} expected input of shape (N, {c}, {spatial_text(dims)}), "
                         f"got {shape_text(x.shape)}")


def check_feature_shape(module, shape, channels, dims):
    """The build-time twin of ``check_input``, for ``output_shape``: ``(channels, *spatial)``."""
    shape = tuple(shape)
    if len(shape) != dims + 1 or (channels is not None and shape[0] != channels):
        c = "C" if channels is None else channels
        raise ValueError(f"{who(module)} expected a feature shape ({c}, {spatial_text(dims)}), "
                         f"got {shape_text(shape)}")
    return shape


def output_sizes(module, spatial, pads, kernel, stride, dilation, ceil_mode=False):
    """The output spatial sizes of a sliding window; a clear error when one would be empty."""
    out = []
    for size, (lo, hi), k, s, d in zip(spatial, pads, kernel, stride, dilation):
        n = window_count(size, lo, hi, k, s, d, ceil_mode)
        if n < 1:
            padded = tuple(sz + a + b for sz, (a, b) in zip(spatial, pads))
            span = tuple(dd * (kk - 1) + 1 for kk, dd in zip(kernel, dilation))
            raise ValueError(f"{who(module)}: the kernel {shape_text(span)} (dilation included) is larger than "
                             f"the padded input {shape_text(padded)}; the output would be empty")
        out.append(n)
    return tuple(out)


def numpy_pad_mode(mode):
    """np.pad's name for a padding mode other than ``"zeros"``."""
    return _NUMPY_PAD_MODE[mode]


def check_pad_fits(module, mode, spatial, pads):
    """PyTorch's limits: reflect padding < the size, circular padding <= the size."""
    if mode == "zeros":
        return
    for size, (lo, hi) in zip(spatial, pads):
        limit_ok = max(lo, hi) < size if mode == "reflect" else max(lo, hi) <= size
        if not limit_ok:
            rule = "smaller than" if mode == "reflect" else "at most"
            raise ValueError(f"{who(module)}: padding_mode={mode!r} needs padding {rule} the input size, "
                             f"got padding {(lo, hi)} for size {size}")
