"""Flat parameters: the values and gradients of many Parameters as views of one block per dtype.

``flatten(params)`` copies each Parameter's ``value`` and ``grad`` into two
new contiguous 1-D blocks (one pair per dtype) and rebinds them as views of
those blocks, in order; the numbers and the Parameter objects stay the same.
``Sequential`` and ``Graph`` do it when they are built, so that an optimizer
can update a whole model in a handful of vectorised numpy calls and zero its
gradients in one ``fill`` (see ``nanonet.optim.foreach``).

Nothing relies on the layout staying intact: ``p.value`` and ``p.grad`` may
be reassigned at any time (by a user, ``Module.to``, a tool). Whoever uses
the layout finds it again with :func:`runs` and checks it with
:func:`intact` (identity checks only), and falls back to one parameter at a
time where it is broken. Reading ``runs`` never changes anything.

Example:
    >>> import numpy as np
    >>> from nanonet.module import Parameter
    >>> a, b = Parameter(np.ones((2, 3))), Parameter(np.zeros(3))
    >>> flatten([a, b])
    >>> a.value.base is b.value.base, a.value.base.shape
    (True, (9,))
    >>> [len(r.params) for r in runs([a, b])]
    [2]
    >>> a.value = a.value * 2                # a new array: the run is gone, the numbers are right
    >>> [len(r.params) for r in runs([a, b])]
    [1, 1]
"""

import numpy as np


class Transient:
    """A cache that refers to other objects by identity (views, bound methods): copies never keep it.

    ``copy.deepcopy`` and ``pickle`` give None in its place, so a copied
    module rebuilds it from its own objects instead of silently using the
    original's.
    """

    __slots__ = ()

    def __reduce__(self):
        return (type(None), ())

    def __deepcopy__(self, memo):
        return None


def _consecutive(arrays):
    """True when ``arrays`` are consecutive, C-contiguous views of one 1-D block, in order."""
    block, follow = None, 0
    for arr in arrays:
        base, start = _place(arr)
        if base is None or (block is not None and (base is not block or start != follow)):
            return False
        block, follow = base, start + arr.size
    return True


def flatten(params):
    """Rebind the values and grads of ``params`` as views of one contiguous block per dtype (in order).

    Parameters whose values and grads already lie in order in one block are
    left as they are, so flattening twice (or a slice of a flat container)
    changes nothing.
    """
    by_dtype = {}
    for p in params:
        by_dtype.setdefault(p.value.dtype, []).append(p)
    for dtype, group in by_dtype.items():
        if len(group) < 2 or (_consecutive([p.value for p in group]) and _consecutive([p.grad for p in group])
                              and all(p.value.shape == p.grad.shape for p in group)):
            continue
        total = sum(p.value.size for p in group)
        values, grads = np.empty(total, dtype), np.empty(total, dtype)
        start = 0
        for p in group:
            stop = start + p.value.size
            value, grad = values[start:stop].reshape(p.value.shape), grads[start:stop].reshape(p.value.shape)
            value[...] = p.value
            if p.grad.shape == p.value.shape and p.grad.dtype == dtype:
                grad[...] = p.grad
            else:  # a grad the user broke: keep it (its owner's checks report it), lay out zeros beside it
                grad[...] = 0
                grad = p.grad
            p.value, p.grad = value, grad
            start = stop


class Run:
    """Consecutive parameters whose values (and grads) are consecutive views of one block each.

    Attributes:
        params: the Parameters, in order.
        value, grad: 1-D views of the blocks covering exactly these parameters.
        values, grads: the parameters' ``value`` / ``grad`` objects when the run was found.
    """

    __slots__ = ("params", "value", "grad", "values", "grads")

    def __init__(self, params, value, grad):
        self.params = tuple(params)
        self.value, self.grad = value, grad
        self.values = tuple(p.value for p in params)
        self.grads = tuple(p.grad for p in params)

    def intact(self):
        """True while every parameter still holds the very value and grad arrays of the run."""
        for p, v, g in zip(self.params, self.values, self.grads):
            if p.value is not v or p.grad is not g:
                return False
        return True


def _place(arr):
    """``(block, start)``: the 1-D C-contiguous array ``arr`` is a view of, and its element offset there."""
    base = arr.base
    if base is None or arr.__class__ is not np.ndarray or base.__class__ is not np.ndarray or base.ndim != 1 \
            or not arr.flags.c_contiguous or not base.flags.c_contiguous or base.dtype != arr.dtype:
        return None, 0
    offset = arr.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    start, rest = divmod(offset, arr.itemsize)
    if rest or start < 0 or start + arr.size > base.size:
        return None, 0
    return base, start


def runs(params):
    """Split ``params`` (in order) into maximal :class:`Run` s; a parameter outside any block is a run of one.

    A run's parameters have one dtype; their values are consecutive,
    C-contiguous views of one 1-D block, and so are their grads, with the
    same sizes (so that element ``i`` of the value block and of the grad
    block belong to the same parameter element). A run of one parameter
    has ``value`` and ``grad`` None: it is updated as that parameter.
    """
    out, current, follow = [], [], None
    for p in params:
        value, grad = p.value, p.grad
        (vb, vs), (gb, gs) = _place(value), _place(grad)
        placed = vb is not None and gb is not None and vb is not gb and value.shape == grad.shape
        if current and placed and follow is not None and follow[0] is vb and follow[1] == vs \
                and follow[2] is gb and follow[3] == gs and value.dtype == current[0].value.dtype:
            current.append(p)
        else:
            if current:
                out.append(_make_run(current))
            current = [p]
        follow = (vb, vs + value.size, gb, gs + value.size) if placed else None
    if current:
        out.append(_make_run(current))
    return out


def _make_run(params):
    if len(params) == 1:
        return Run(params, None, None)
    size = sum(p.value.size for p in params)
    (vb, vs), (gb, gs) = _place(params[0].value), _place(params[0].grad)
    return Run(params, vb[vs:vs + size], gb[gs:gs + size])
