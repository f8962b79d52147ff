"""Building a layer graph: symbolic nodes, module calls on them, shape inference.

A ``Node`` is a symbolic array: it knows its *feature shape* (the shape
without the batch axis) and the ``Call`` that made it. ``nn.Input(10)`` is a
node with no producer. Calling a module on nodes (``nn.Linear(10, 4)(x)``)
goes through ``Module.__call__`` to the node's ``graph_call`` here, which infers the
output shape at once (so a shape mismatch fails on the line that made it) and
returns the new node (a tuple of nodes for a multi-output module like
``nn.Split``). ``nn.Graph(inputs, outputs)`` then turns the nodes into a
runnable module.

Shape inference: a module may define ``output_shape(*input_shapes)``, taking
one feature shape (a tuple of ints) per input and returning the output's
feature shape, or a list of them for several outputs. Without it, the module
is run once on a zero batch of 2 rows, on a deep copy that shares the
Parameters (so no weights are copied and the module's caches are untouched);
its dtype is that of the module's first Parameter (float64 if it has none).
"""

import copy

import numpy as np

from .._checks import renamed_error, who
from ..module import Module

PROBE_BATCH = 2


def shape_text(shape):
    """``(None, 10)`` style text for a feature shape (None is the batch)."""
    return "(" + ", ".join(str(s) for s in (None, *shape)) + ")"


class Node:
    """A symbolic array in a graph being built: a feature shape and its producer.

    Attributes:
        shape: the feature shape, e.g. ``(64,)`` (the batch axis is left out).
        call: the ``Call`` that made this node (None for an ``Input``).
        index: which output of ``call`` this is (None when it has only one).
    """

    def __init__(self, shape, call=None, index=None):
        self.shape = tuple(shape)
        self.call = call
        self.index = index

    def graph_call(self, module, args, options):
        """``module(*args, name=...)`` when an argument is a node: build and return the output node(s).

        ``Module.__call__`` hands any call with a node among its arguments to
        the node, so the contract (``nanonet.module``) needs to know nothing
        of graphs.
        """
        name = options.pop("name", None)
        if options:
            raise TypeError(
                f"{who(module)} call got unexpected keyword argument(s) {sorted(options)}; only name= is allowed"
            )
        symbolic = [isinstance(a, Node) for a in args]
        if not all(symbolic):
            bad = type(args[symbolic.index(False)]).__name__
            raise TypeError(
                f"{who(module)} was called on graph nodes mixed with a {bad}: when building a graph "
                f"every argument must be a node (an nn.Input or the output of a module called on one)"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{who(module)} expected name to be a non-empty str, got {name!r}")
        return build_call(module, args, name)

    def describe(self):
        """How error messages name this node before the graph names it."""
        call = self.call
        maker = repr(call.name) if call.name is not None else who(call.module)
        piece = "" if self.index is None else f" {self.index}"
        return f"the output{piece} of {maker} (feature shape {tuple(self.shape)})"

    def __repr__(self):
        piece = "" if self.index is None else f"[{self.index}]"
        return f"<Node {shape_text(self.shape)} from {who(self.call.module)}{piece}>"


class Input(Node):
    """A graph input: a symbolic array of the given feature shape.

    Args:
        shape: the features per example: an int (``Input(10)`` means arrays of
            shape ``(N, 10)``) or a tuple of ints.
        name: the input's name (for dict inputs, errors and summaries); the
            graph names unnamed inputs ``input_0``, ``input_1``, ... in order.

    Example:
        >>> import nanonet as nn
        >>> x = nn.Input(10, name="x")
        >>> x, x.shape
        (Input(10, name='x'), (10,))
        >>> nn.Linear(10, 4, rng=0)(x)
        <Node (None, 4) from Linear(10 -> 4)>
    """

    def __init__(self, shape, name=None):
        dims = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
        try:
            dims = tuple(dims)
        except TypeError:
            dims = None
        if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
            raise ValueError(f"Input expected shape to be a positive int or a tuple of them, got {shape!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"Input expected name to be a non-empty str, got {name!r}")
        super().__init__(tuple(int(d) for d in dims))
        self.name = name

    def describe(self):
        label = f"Input {self.name!r}" if self.name is not None else "an unnamed Input"
        return f"{label} (feature shape {self.shape})"

    def __repr__(self):
        dims = self.shape[0] if len(self.shape) == 1 else self.shape
        return f"Input({dims})" if self.name is None else f"Input({dims}, name={self.name!r})"


class Call:
    """One use of a module in a graph: its input nodes and its output node(s)."""

    def __init__(self, module, inputs, output_shapes, multi, name=None):
        self.module = module
        self.inputs = tuple(inputs)
        self.name = name
        self.multi = multi
        self.outputs = tuple(Node(s, self, i if multi else None) for i, s in enumerate(output_shapes))

    def __repr__(self):
        return f"<Call {who(self.module)} on {len(self.inputs)} node(s)>"



def build_call(module, nodes, name=None):
    """Infer the output shape(s) of ``module`` on ``nodes``; return the new node(s)."""
    if not isinstance(module, Module):
        raise TypeError(f"only a Module can be called on graph nodes, got {type(module).__name__}")
    shapes, multi = infer_output_shapes(module, [n.shape for n in nodes], nodes, name)
    call = Call(module, nodes, shapes, multi, name)
    return call.outputs if multi else call.outputs[0]


def infer_output_shapes(module, input_shapes, nodes=None, name=None):
    """``(list of output feature shapes, multi)`` for ``module`` on ``input_shapes``.

    Uses ``module.output_shape`` when defined, else a probe forward pass. Any
    error is re-raised (same type) naming the module and its input nodes.
    """
    method = getattr(module, "output_shape", None)
    try:
        result = method(*input_shapes) if callable(method) else probe_output_shape(module, input_shapes)
        return normalize_shapes(module, result)
    except Exception as exc:
        label = f"{who(module)} (named {name!r})" if name else who(module)
        if nodes is not None:
            given = ", ".join(n.describe() for n in nodes)
        else:
            given = "feature shape(s) " + ", ".join(str(tuple(s)) for s in input_shapes)
        how = "" if callable(method) else f" [inferred by running forward on a zero batch of {PROBE_BATCH} rows]"
        new = renamed_error(exc, f"{label} cannot take {given}{how}: {exc}")
        if new is None:
            raise
        raise new from exc


def _is_shape(value):
    return isinstance(value, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in value
    )


def normalize_shapes(module, result):
    """A tuple of ints is one output; a list (or tuple) of such tuples is several."""
    if _is_shape(result):
        return [tuple(int(d) for d in result)], False
    if isinstance(result, (list, tuple)) and result and all(_is_shape(s) for s in result):
        return [tuple(int(d) for d in s) for s in result], True
    raise TypeError(
        f"{who(module)}.output_shape must return a tuple of ints (one output) or a list of them "
        f"(several outputs), got {result!r}"
    )


def probe_output_shape(module, input_shapes):
    """Run ``forward`` on a zero batch, on a copy that shares the Parameters."""
    params = module.parameters()
    dtype = params[0].value.dtype if params else np.float64
    work = copy.deepcopy(module, {id(p): p for p in params})
    zeros = [np.zeros((PROBE_BATCH, *shape), dtype=dtype) for shape in input_shapes]
    with np.errstate(all="ignore"):
        out = work.forward(*zeros)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for piece in outs:
        if not isinstance(piece, np.ndarray) or piece.ndim < 1 or piece.shape[0] != PROBE_BATCH:
            got = f"shape {piece.shape}" if isinstance(piece, np.ndarray) else type(piece).__name__
            raise ValueError(f"forward must return (N, ...) arrays keeping the batch size {PROBE_BATCH}, got {got}")
    shapes = [tuple(piece.shape[1:]) for piece in outs]
    return shapes if isinstance(out, (tuple, list)) else shapes[0]


def shared_copy(module):
    """A new instance of ``module`` that uses the *same* Parameters and Buffers.

    It has its own forward cache, so it can be called in the same graph as
    ``module`` (a module instance may appear only once per graph). Both
    backward passes add into the shared ``.grad``, so the gradient is the sum
    of both uses, and ``parameters()`` of a model holding both lists each
    Parameter once.

    Example:
        >>> import nanonet as nn
        >>> a = nn.Linear(3, 3, rng=0)
        >>> b = nn.shared_copy(a)
        >>> b is a, b.weight is a.weight, b.bias is a.bias
        (False, True, True)
    """
    if not isinstance(module, Module):
        raise TypeError(f"shared_copy expected a Module, got {type(module).__name__}")
    memo = {id(p): p for p in module.parameters()}
    memo.update({id(b): b for _, b in module.named_buffers()})
    return copy.deepcopy(module, memo)


__all__ = ["Call", "Input", "Node", "infer_output_shapes", "shared_copy"]
