"""Merge and split modules: several inputs or several outputs.

These modules extend the one-array contract of ``Module``:

- ``Add``, ``Multiply`` and ``Concat`` take several arrays:
  ``forward(x1, x2, ...)`` returns one array, and ``backward(grad_out)``
  returns a **tuple** of input gradients, one per input, in input order.
- ``Split`` takes one array and returns several: ``forward(x)`` returns a
  tuple of arrays, and ``backward(grads)`` takes a tuple (or list) of output
  gradients, one per output, and returns one input gradient.

Called on arrays (``nn.Add()(a, b)``) each input is checked for NaN/Inf
first, as for any module; called on graph nodes they build a graph node
(see ``nn.Graph``). Every module here implements ``output_shape``, which the
graph uses to check shapes when it is built.

Gradients returned by ``Add.backward`` are the same array object for every
input (no copies): like every module, a consumer must not modify its
``grad_out`` in place.
"""

import numpy as np

from .._checks import check_array, check_number, who
from ..module import Module


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _check_same_inputs(module, xs):
    """At least two float arrays with exactly the same shape and dtype."""
    if len(xs) < 2:
        raise TypeError(f"{who(module)} expected at least 2 input arrays, got {len(xs)}")
    for i, x in enumerate(xs):
        check_array(module, x, name=f"input {i}", dtype=xs[0].dtype if i else None)
        if x.shape != xs[0].shape:
            raise ValueError(
                f"{who(module)} expected inputs of the same shape (no broadcasting): "
                f"input 0 is {_shape_text(xs[0].shape)}, input {i} is {_shape_text(x.shape)}"
            )


def _same_shapes(module, shapes):
    if len(shapes) < 2:
        raise TypeError(f"{who(module)} expected at least 2 inputs, got {len(shapes)}")
    for i, shape in enumerate(shapes):
        if tuple(shape) != tuple(shapes[0]):
            raise ValueError(
                f"{who(module)} expected inputs of the same feature shape (no broadcasting): "
                f"input 0 is {_shape_text(shapes[0])}, input {i} is {_shape_text(shape)}"
            )
    return tuple(shapes[0])


def _feature_axis(module, axis, ndim):
    """The array axis that ``axis`` means for arrays of ``ndim`` dims; never the batch axis 0."""
    resolved = axis + ndim if axis < 0 else axis
    if not 1 <= resolved < ndim:
        raise ValueError(
            f"{who(module)} cannot use axis {axis} on arrays of {ndim} dimensions "
            f"(axis 0 is the batch axis; feature axes are 1..{ndim - 1} or -1..-{ndim - 1})"
        )
    return resolved


def _check_axis_arg(cls_name, axis):
    axis = check_number(cls_name, "axis", axis, integer=True)
    if axis == 0:
        raise ValueError(f"{cls_name} expected axis to be a nonzero int (0 is the batch axis), got {axis!r}")
    return axis


class Add(Module):
    """Element-wise sum of two or more arrays of exactly the same shape.

    ``y = x1 + x2 + ...``; each input's gradient is ``grad_out``.

    Shape:
        - forward(x1, x2, ...): each ``(N, *F)``, same dtype -> ``(N, *F)``
        - backward(grad_out: (N, *F)) -> a tuple ``(dJ/dx1, dJ/dx2, ...)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> add = nn.Add()
        >>> add(np.ones((2, 3)), np.full((2, 3), 2.0))
        array([[3., 3., 3.],
               [3., 3., 3.]])
        >>> [g.shape for g in add.backward(np.ones((2, 3)))]
        [(2, 3), (2, 3)]
    """

    def __init__(self):
        self._meta = None

    def forward(self, *xs):
        """x1, x2, ...: (N, *F) each -> (N, *F)."""
        _check_same_inputs(self, xs)
        self._meta = (len(xs), xs[0].shape)
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out += x
        return out

    def backward(self, grad_out):
        """grad_out: (N, *F) -> a tuple of one (N, *F) gradient per input."""
        count, _ = self._meta
        return (grad_out,) * count

    def output_shape(self, *shapes):
        return _same_shapes(self, shapes)


class Multiply(Module):
    """Element-wise product of two or more arrays of exactly the same shape.

    ``y = x1 * x2 * ...``; ``dJ/dxi = grad_out * (product of the other inputs)``
    (computed directly, never by dividing ``y`` by ``xi``, so zeros are safe).
    Caches the inputs.

    Shape:
        - forward(x1, x2, ...): each ``(N, *F)``, same dtype -> ``(N, *F)``
        - backward(grad_out: (N, *F)) -> a tuple ``(dJ/dx1, dJ/dx2, ...)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> mul = nn.Multiply()
        >>> mul(np.array([[2.0, 3.0]]), np.array([[4.0, 5.0]]))
        array([[ 8., 15.]])
        >>> mul.backward(np.ones((1, 2)))
        (array([[4., 5.]]), array([[2., 3.]]))
    """

    def __init__(self):
        self._xs = None

    def forward(self, *xs):
        """x1, x2, ...: (N, *F) each -> (N, *F)."""
        _check_same_inputs(self, xs)
        self._xs = xs
        out = xs[0] * xs[1]
        for x in xs[2:]:
            out *= x
        return out

    def backward(self, grad_out):
        """grad_out: (N, *F) -> a tuple of one (N, *F) gradient per input."""
        xs = self._xs
        grads = []
        for i in range(len(xs)):
            g = grad_out.copy()
            for j, x in enumerate(xs):
                if j != i:
                    g *= x
            grads.append(g)
        return tuple(grads)

    def output_shape(self, *shapes):
        return _same_shapes(self, shapes)


class Concat(Module):
    """Concatenation of two or more arrays along a feature axis.

    Args:
        axis: the array axis to join along, ``-1`` (default, the last) or any
            axis but the batch axis 0.

    Shape:
        - forward(x1, x2, ...): ``(N, ..., Fi, ...)`` each, equal except along
          ``axis``, same dtype -> ``(N, ..., F1 + F2 + ..., ...)``
        - backward(grad_out) -> a tuple of gradients, the slices of ``grad_out``
          (views, not copies) that match each input.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> cat = nn.Concat()
        >>> cat(np.zeros((2, 3)), np.ones((2, 1))).shape
        (2, 4)
        >>> [g.shape for g in cat.backward(np.ones((2, 4)))]
        [(2, 3), (2, 1)]
    """

    def __init__(self, axis=-1):
        self.axis = _check_axis_arg("Concat", axis)
        self._meta = None

    def forward(self, *xs):
        """x1, x2, ...: (N, ..., Fi, ...) -> (N, ..., sum Fi, ...)."""
        if len(xs) < 2:
            raise TypeError(f"{who(self)} expected at least 2 input arrays, got {len(xs)}")
        for i, x in enumerate(xs):
            check_array(self, x, name=f"input {i}", dtype=xs[0].dtype if i else None)
        axis = _feature_axis(self, self.axis, xs[0].ndim)
        self._check_shapes([x.shape for x in xs], axis)
        self._meta = (axis, [x.shape[axis] for x in xs], xs[0].shape[:axis] + xs[0].shape[axis + 1:])
        return np.concatenate(xs, axis=axis)

    def backward(self, grad_out):
        """grad_out: the output's shape -> a tuple of one gradient per input."""
        axis, sizes, _ = self._meta
        return tuple(np.split(grad_out, np.cumsum(sizes)[:-1], axis=axis))

    def _check_shapes(self, shapes, axis):
        first = shapes[0]
        for i, shape in enumerate(shapes):
            same_rank = len(shape) == len(first)
            if not same_rank or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
                raise ValueError(
                    f"{who(self)} expected inputs equal in every axis but {self.axis}: "
                    f"input 0 is {_shape_text(first)}, input {i} is {_shape_text(shape)}"
                )

    def output_shape(self, *shapes):
        if len(shapes) < 2:
            raise TypeError(f"{who(self)} expected at least 2 inputs, got {len(shapes)}")
        full = [(None,) + tuple(s) for s in shapes]
        axis = _feature_axis(self, self.axis, len(full[0]))
        self._check_shapes(full, axis)
        out = list(full[0])
        out[axis] = sum(s[axis] for s in full)
        return tuple(out[1:])

    def extra_repr(self):
        return "" if self.axis == -1 else f"axis={self.axis}"


class Split(Module):
    """Splits one array into consecutive pieces along a feature axis.

    Args:
        sizes: the length of each piece along ``axis`` (positive ints, at
            least two); they must add up to the input's size there.
        axis: ``-1`` (default) or any axis but the batch axis 0.

    ``forward`` returns views of the input (no copies).

    Shape:
        - forward(x: (N, ..., sum(sizes), ...)) -> a tuple of
          ``(N, ..., sizes[i], ...)`` arrays
        - backward(grads: a tuple or list of one gradient per piece) -> dJ/dx

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> split = nn.Split([1, 2])
        >>> a, b = split(np.arange(6.0).reshape(2, 3))
        >>> a.shape, b.shape
        ((2, 1), (2, 2))
        >>> split.backward((np.ones((2, 1)), np.zeros((2, 2))))
        array([[1., 0., 0.],
               [1., 0., 0.]])
    """

    def __init__(self, sizes, axis=-1):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"Split expected sizes to be a sequence of at least 2 positive ints, got {sizes!r}")
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"Split expected sizes to be at least 2 positive ints, got {sizes!r}")
        self.sizes = tuple(check_number("Split", f"sizes[{i}]", s, low=1, integer=True)
                           for i, s in enumerate(sizes))
        self.axis = _check_axis_arg("Split", axis)
        self._meta = None

    def forward(self, x):
        """x: (N, ..., sum(sizes), ...) -> a tuple of (N, ..., sizes[i], ...) views."""
        axis = _feature_axis(self, self.axis, x.ndim)
        if x.shape[axis] != sum(self.sizes):
            raise ValueError(
                f"{who(self)} expected input of size {sum(self.sizes)} along axis {self.axis}, "
                f"got shape {_shape_text(x.shape)}"
            )
        self._meta = (axis, x.shape, x.dtype)
        return tuple(np.split(x, np.cumsum(self.sizes)[:-1], axis=axis))

    def backward(self, grads):
        """grads: a tuple of one gradient per piece -> dJ/dx, shaped like x."""
        axis, shape, dtype = self._meta
        pieces = [g if g is not None else np.zeros(shape[:axis] + (size,) + shape[axis + 1:], dtype)
                  for g, size in zip(grads, self.sizes)]  # None: an output nobody used
        return np.concatenate(pieces, axis=axis)

    def output_shape(self, shape):
        full = (None,) + tuple(shape)
        axis = _feature_axis(self, self.axis, len(full))
        if full[axis] != sum(self.sizes):
            raise ValueError(
                f"{who(self)} expected input of size {sum(self.sizes)} along axis {self.axis}, "
                f"got feature shape {_shape_text(shape)}"
            )
        return [tuple(full[1:axis]) + (s,) + tuple(full[axis + 1:]) for s in self.sizes]

    def extra_repr(self):
        text = f"sizes={list(self.sizes)}"
        return text if self.axis == -1 else f"{text}, axis={self.axis}"
