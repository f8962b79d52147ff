"""Graph: a directed acyclic graph of modules (Keras-functional / Torch7 nngraph style).

Build it by calling modules on symbolic nodes, then wrap the nodes::

    x = nn.Input(10)                              # a symbolic node: feature shape (10,)
    h = nn.ReLU()(nn.Linear(10, 64)(x))           # a module called on a node builds the graph
    r = nn.Add()(nn.Linear(64, 64)(h), h)         # a residual connection
    out = nn.Linear(128, 1)(nn.Concat()(r, h))
    net = nn.Graph(inputs=x, outputs=out)         # a Module
    y = net(np.ones((32, 10)))                    # a module called on an array runs it

See ``graph_build`` (nodes, shape inference, ``shared_copy``) and
``graph_plan`` (build-time checks and naming).
"""

import numpy as np

from .._checks import check_array, check_backward_ready, check_finite, who
from ..module import Module, anomaly_enabled
from .graph_build import shape_text
from .graph_plan import compile_graph
from .sequential import check_no_reuse, child_error, child_position


class Graph(Module):
    """A module made of other modules wired as a directed acyclic graph.

    Args:
        inputs: an ``nn.Input`` or a list of them (the order of the arrays
            ``forward`` takes).
        outputs: a node or a list of nodes (the order of ``forward``'s results).

    Calling conventions (``backward`` mirrors ``forward``):

    - one input: ``forward(x)``; several: ``forward(x1, x2, ...)`` in
      ``inputs`` order, or ``forward({"name": x, ...})`` keyed by input name.
    - one output: ``forward`` returns an array; several: a tuple in
      ``outputs`` order (a dict keyed by output name when the inputs came as a
      dict).
    - ``backward(grad_out)`` takes one gradient per output in the same form
      (an array, a tuple, or a dict keyed by output name) and returns one
      gradient per input in the form ``forward`` was given (an array, a
      tuple, or a dict keyed by input name).

    Where a node feeds several modules its gradient is the sum over them. An
    unused output of a multi-output module (e.g. one piece of ``nn.Split``)
    gets a zero gradient.

    Children are named in topological order, ``linear_0``, ``relu_0``,
    ``linear_1``, ..., or by ``name=`` given at the call
    (``nn.Linear(10, 4)(x, name="encoder")``), so parameters are
    ``"linear_0.weight"``, ``"encoder.bias"``, ... The names depend only on
    the structure, so two graphs built by the same code share ``state_dict``
    keys. An output node is named like its module (``split_0:1`` for the
    second piece of a split), an input by its ``name`` or ``input_0``, ...

    Each module *instance* may appear once per graph (it keeps one forward
    cache); a second use is an error that points to weight sharing: call
    ``nn.shared_copy(module)``, a second module with the same Parameters
    (their gradient is then the sum of both uses, and ``parameters()``
    lists them once).

    Build-time checks (each error names the node and the module): shapes
    (from the ``Input`` shapes, when each module is called on nodes),
    cycles, inputs that are unused or missing from ``inputs``, outputs that do
    not depend on the inputs, and a module instance used twice.

    Shape:
        - each input ``i``: ``(N, *inputs[i].shape)``; each output ``j``:
          ``(N, *outputs[j].shape)``; the same ``N`` throughout.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> x = nn.Input(3)
        >>> h = nn.ReLU()(nn.Linear(3, 4, rng=0)(x))
        >>> out = nn.Linear(4, 2, rng=1)(nn.Add()(h, nn.Linear(4, 4, rng=2)(h)))
        >>> net = nn.Graph(x, out)
        >>> [name for name, _ in net.named_parameters()]
        ['linear_0.weight', 'linear_0.bias', 'linear_1.weight', 'linear_1.bias', 'linear_2.weight', 'linear_2.bias']
        >>> net(np.ones((5, 3))).shape
        (5, 2)
        >>> net.backward(np.ones((5, 2))).shape
        (5, 3)
    """

    input_kinds = None  # checked per input by _bind_inputs
    checks_itself = True  # names the failing node instead (see nanonet._contract)

    def __init__(self, inputs, outputs):
        plan = compile_graph(inputs, outputs)
        self._layers = [step.module for step in plan.steps]
        check_no_reuse("Graph", ((repr(s.name), s.module) for s in plan.steps))
        self._steps = [(s.module, s.in_slots, s.out_slots, s.multi, len(s.in_slots) == 1 and not s.multi)
                       for s in plan.steps]
        self._layer_names = [s.name for s in plan.steps]
        self._index_inputs = {i for i in range(len(plan.input_names)) if _takes_indices(self._steps, i)}
        self._input_names = plan.input_names
        self._input_shapes = plan.input_shapes
        self._slot_names = plan.slot_names
        self._slot_shapes = plan.slot_shapes
        self._output_slots = plan.output_slots
        self._slot_full_shapes = None  # shape of every value in the last forward
        self._slot_dtypes = None       # dtype of every value in the last forward (None before one)
        self._dict_mode = False        # the last forward was given a dict

    # -- structure ----------------------------------------------------------
    def named_children(self):
        yield from zip(self._layer_names, self._layers)

    def children(self):
        return list(self._layers)

    def __len__(self):
        return len(self._layers)

    def __getitem__(self, name):
        """The child module named ``name`` (``net["linear_0"]``), or at position ``name`` (``net[0]``)."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            return self._layers[child_position(self, name, len(self._layers))]
        if not isinstance(name, str):
            raise TypeError(f"{self.short_repr()} expected a layer name (str) or an int position as index, "
                            f"got {type(name).__name__} {name!r}")
        if name not in self._layer_names:
            raise KeyError(f"{self.short_repr()} has no layer named {name!r}; layers are {self._layer_names}")
        return self._layers[self._layer_names.index(name)]

    @property
    def input_names(self):
        return list(self._input_names)

    @property
    def output_names(self):
        return [self._slot_names[s] for s in self._output_slots]

    @property
    def input_shapes(self):
        """Feature shapes of the inputs, e.g. ``[(10,)]``."""
        return list(self._input_shapes)

    @property
    def output_shapes(self):
        return [self._slot_shapes[s] for s in self._output_slots]

    def records(self):
        """One ``(name, module or None, output shapes, connected-to names)`` per node.

        Inputs first (module None), then the modules in execution order; used
        by ``summary()`` and ``to_dot()``.
        """
        rows = [(name, None, [shape], []) for name, shape in zip(self._input_names, self._input_shapes)]
        for name, (module, ins, outs, *_) in zip(self._layer_names, self._steps):
            rows.append((name, module, [self._slot_shapes[s] for s in outs], [self._slot_names[s] for s in ins]))
        return rows

    # -- forward ------------------------------------------------------------
    def _bind_inputs(self, args):
        names, shapes = self._input_names, self._input_shapes
        dict_mode = len(args) == 1 and isinstance(args[0], dict)
        if dict_mode:
            given = args[0]
            if set(given) != set(names):
                raise KeyError(
                    f"{self.short_repr()} expected inputs keyed {names}, got keys {list(given)}"
                )
            args = tuple(given[n] for n in names)
        elif len(args) != len(names):
            raise TypeError(f"{self.short_repr()} expected {len(names)} input array(s) {names}, got {len(args)}")
        for i, (name, shape, x) in enumerate(zip(names, shapes, args)):
            if not (i in self._index_inputs and isinstance(x, np.ndarray) and x.dtype.kind in "iu"):
                check_array(self, x, name=f"input {name!r}")
            if x.shape[1:] != shape or x.ndim != len(shape) + 1:
                raise ValueError(
                    f"{self.short_repr()} expected input {name!r} of shape {shape_text(shape).replace('None', 'N')}, "
                    f"got {tuple(x.shape)}"
                )
            if x.shape[0] != args[0].shape[0]:
                raise ValueError(
                    f"{self.short_repr()} expected the same batch size for every input: "
                    f"{names[0]!r} has {args[0].shape[0]}, {name!r} has {x.shape[0]}"
                )
        return args, dict_mode

    def forward(self, *inputs):
        """inputs: one ``(N, *shape)`` array per Input (or a dict) -> the output(s)."""
        args, dict_mode = self._bind_inputs(inputs)
        pad = [None] * (len(self._slot_names) - len(args))
        slots, shapes, dtypes = list(args) + pad, [x.shape for x in args] + pad, [x.dtype for x in args] + pad
        batch = args[0].shape[0]
        feature = self._slot_shapes
        check_each = anomaly_enabled()
        i = 0
        try:
            for i, (module, ins, outs, multi, simple) in enumerate(self._steps):
                if simple:  # the common case, unrolled for speed: one array in, one array out
                    out, s = module.forward(slots[ins[0]]), outs[0]
                    shape = out.shape if isinstance(out, np.ndarray) else None
                    if shape is None or shape[1:] != feature[s] or shape[0] != batch:
                        self._raise_bad_output(module, out, s, batch)
                    if check_each:
                        check_finite(module, out, name="output (made by this module)")
                    slots[s], shapes[s], dtypes[s] = out, shape, out.dtype
                    continue
                out = module.forward(*[slots[s] for s in ins])
                for s, piece in zip(outs, self._as_pieces(module, out, outs, multi)):
                    if not isinstance(piece, np.ndarray) or piece.shape[1:] != feature[s] or piece.shape[0] != batch:
                        self._raise_bad_output(module, piece, s, batch)
                    if check_each:
                        check_finite(module, piece, name="output (made by this module)")
                    slots[s], shapes[s], dtypes[s] = piece, piece.shape, piece.dtype
        except Exception as exc:
            new = child_error(self, self._layer_names[i], self._layers[i], exc, "forward")
            if new is None:
                raise
            raise new from exc
        self._slot_full_shapes, self._slot_dtypes, self._dict_mode = shapes, dtypes, dict_mode
        results = [slots[s] for s in self._output_slots]
        if dict_mode:
            return dict(zip(self.output_names, results))
        return results[0] if len(results) == 1 else tuple(results)

    @staticmethod
    def _as_pieces(module, out, outs, multi):
        if not multi:
            return (out,)
        if not isinstance(out, (tuple, list)) or len(out) != len(outs):
            got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise TypeError(f"{who(module)} returned {got}, the graph expected {len(outs)} arrays")
        return out

    def _raise_bad_output(self, module, piece, slot, batch):
        got = piece.shape if isinstance(piece, np.ndarray) else type(piece).__name__
        raise ValueError(
            f"{who(module)} returned {got} for node {self._slot_names[slot]!r}; "
            f"its inferred shape is {(batch, *self._slot_shapes[slot])}"
        )

    # -- backward -----------------------------------------------------------
    def _bind_output_grads(self, grad_out):
        names = self.output_names
        if isinstance(grad_out, dict):
            if set(grad_out) != set(names):
                raise KeyError(f"{self.short_repr()} expected gradients keyed {names}, got keys {list(grad_out)}")
            grads = [grad_out[n] for n in names]
        elif len(names) == 1:
            grads = [grad_out]
        elif isinstance(grad_out, (tuple, list)) and len(grad_out) == len(names):
            grads = list(grad_out)
        else:
            raise TypeError(
                f"{self.short_repr()} expected a tuple of {len(names)} output gradients {names}, "
                f"got {type(grad_out).__name__}"
            )
        for name, s, g in zip(names, self._output_slots, grads):
            self._check_grad(self, g, s, f"grad_out {name!r}")
        return grads

    def _check_grad(self, module, g, slot, what):
        """``g`` must have the shape and dtype of the value in ``slot`` (no broadcasting, no casting).

        An integer value (indices) has no gradient: None.
        """
        if isinstance(g, np.ndarray) and g.shape == self._slot_full_shapes[slot] and g.dtype == self._slot_dtypes[slot]:
            return
        if g is None and self._slot_dtypes[slot].kind in "iu":
            return
        check_array(module, g, name=what)
        raise ValueError(
            f"{who(module)} gave {what} of shape {g.shape} and dtype {g.dtype} for node "
            f"{self._slot_names[slot]!r}, expected shape {self._slot_full_shapes[slot]} "
            f"and dtype {self._slot_dtypes[slot]}"
        )

    def backward(self, grad_out):
        """grad_out: one gradient per output (array, tuple or dict) -> one per input."""
        check_backward_ready(self, self._slot_dtypes)
        grads = self._bind_output_grads(grad_out)
        acc = [None] * len(self._slot_names)
        owned = [False] * len(self._slot_names)  # acc[s] is an array the graph made, safe to add into
        for s, g in zip(self._output_slots, grads):
            _accumulate(acc, owned, s, g)
        check_each = anomaly_enabled()
        full, dtypes = self._slot_full_shapes, self._slot_dtypes
        i = len(self._steps) - 1
        try:
            for i in range(len(self._steps) - 1, -1, -1):
                module, ins, outs, multi, simple = self._steps[i]
                if simple:  # the common case, unrolled for speed
                    s, t = outs[0], ins[0]
                    g_in = module.backward(acc[s])
                    acc[s] = None  # free it: nothing upstream needs it
                    if not isinstance(g_in, np.ndarray) or g_in.shape != full[t] or g_in.dtype != dtypes[t]:
                        self._check_grad(module, g_in, t, "an input gradient")
                    if check_each and g_in is not None:
                        check_finite(module, g_in, name="input gradient (made by this module)")
                    if acc[t] is None:
                        acc[t] = g_in
                    elif owned[t]:
                        acc[t] += g_in
                    else:
                        acc[t], owned[t] = acc[t] + g_in, True
                    continue
                if multi:
                    g_out = tuple(acc[s] if acc[s] is not None else self._zeros(s) for s in outs)
                else:
                    g_out = acc[outs[0]]
                for s in outs:
                    acc[s] = None  # free it: nothing upstream needs it
                g_in = module.backward(g_out)
                pieces = (g_in,) if len(ins) == 1 else self._input_grads(module, g_in, ins)
                for s, g in zip(ins, pieces):
                    self._check_grad(module, g, s, "an input gradient")
                    if check_each and g is not None:
                        check_finite(module, g, name="input gradient (made by this module)")
                    _accumulate(acc, owned, s, g)
        except Exception as exc:
            new = child_error(self, self._layer_names[i], self._layers[i], exc, "backward")
            if new is None:
                raise
            raise new from exc
        results = [acc[s] for s in range(len(self._input_names))]
        if self._dict_mode:
            return dict(zip(self._input_names, results))
        return results[0] if len(results) == 1 else tuple(results)

    def _zeros(self, slot):
        return np.zeros(self._slot_full_shapes[slot], dtype=self._slot_dtypes[slot])

    @staticmethod
    def _input_grads(module, g_in, ins):
        if not isinstance(g_in, (tuple, list)) or len(g_in) != len(ins):
            raise TypeError(
                f"{who(module)}.backward returned {type(g_in).__name__}, the graph expected "
                f"a tuple of {len(ins)} input gradients"
            )
        return g_in

    # -- shapes and display ---------------------------------------------------
    def output_shape(self, *shapes):
        """Feature shapes in -> the output feature shape (a list of them for several outputs)."""
        expected = [tuple(s) for s in self._input_shapes]
        if [tuple(s) for s in shapes] != expected:
            raise ValueError(f"{self.short_repr()} expected input feature shape(s) {expected}, got {list(shapes)}")
        outs = self.output_shapes
        return outs[0] if len(outs) == 1 else outs

    def summary(self, print_fn=print):
        """Print a Keras-like table: layer (type), output shape, parameters, connected to."""
        from ..summary import summary_text

        print_fn(summary_text(self))

    def to_dot(self):
        """Graphviz ``dot`` text of this graph (render with ``dot -Tsvg``)."""
        from ..summary import graph_to_dot

        return graph_to_dot(self)

    def extra_repr(self):
        return f"inputs={self.input_names}, outputs={self.output_names}"

    def short_repr(self):
        return f"Graph({self.extra_repr()}, {len(self._layers)} layers)"


def _takes_indices(steps, slot):
    """True when every module that reads ``slot`` takes integer indices there (an Embedding)."""
    kinds = []
    for module, ins, *_ in steps:
        for position, s in enumerate(ins):
            if s == slot:
                declared = module.input_kinds
                kinds.append(declared[position] if isinstance(declared, tuple) else declared)
    return bool(kinds) and all(isinstance(k, str) and "i" in k for k in kinds)


def _accumulate(acc, owned, slot, g):
    """acc[slot] += g, never writing into an array the graph does not own."""
    if acc[slot] is None:
        acc[slot] = g
    elif owned[slot]:
        acc[slot] += g
    else:
        acc[slot] = acc[slot] + g
        owned[slot] = True
