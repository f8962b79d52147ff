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

from .. import _flat
from .._checks import check_array, check_backward_ready, who
from ..module import _DETECT_ANOMALY, Module
from .graph_build import shape_text
from .graph_plan import compile_graph
from .graph_run import GraphPlan, bind_graph_backward, bind_graph_forward, run_backward, run_forward
from .plan import members_current
from .sequential import check_no_reuse, child_error, child_position

_anomaly = _DETECT_ANOMALY.get  # inside ``nn.detect_anomaly()``: check every step's output


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
        _flat.flatten(self.parameters())

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

    def to(self, dtype):
        """Convert parameters and buffers to ``dtype`` in place (see ``Module.to``), then lay them out flat again."""
        super().to(dtype)
        _flat.flatten(self.parameters())
        self.__dict__.pop("_plan", None)
        return self

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
        plan = self.__dict__.get("_plan")
        if plan is None or not members_current(plan.members):  # (_current_plan, inlined: it runs every call)
            plan = self._current_plan()
        check_each = _anomaly()
        x = inputs[0] if len(inputs) == 1 else None
        bound = None
        if x.__class__ is np.ndarray and len(self._input_names) == 1 and not check_each:
            bound = plan.bound_forward.get((x.shape, x.dtype))
        if bound is not None and bound[3] is not None:  # a bound chain: one call per step, as Sequential
            self._slot_full_shapes, self._slot_dtypes, self._dict_mode = bound[1], bound[2], False
            i = 0
            try:
                for i, call in enumerate(bound[3]):
                    x = call(x)
            except Exception as exc:
                new = child_error(self, self._layer_names[i], self._layers[i], exc, "forward")
                if new is None:
                    raise
                raise new from exc
            return x
        if bound is not None:  # the plan prepared for this input: it was checked when it was bound
            args, dict_mode = inputs, False
        else:
            args, dict_mode = self._bind_inputs(inputs)
        where = [0]
        try:
            slots = run_forward(self, plan, args, None if bound is None else bound[0], check_each, where)
        except Exception as exc:
            i = where[0]
            new = child_error(self, self._layer_names[i], self._layers[i], exc, "forward")
            if new is None:
                raise
            raise new from exc
        if bound is not None:
            shapes, dtypes = bound[1], bound[2]
        else:
            shapes = [None if v is None else v.shape for v in slots]
            dtypes = [None if v is None else v.dtype for v in slots]
            if x.__class__ is np.ndarray and len(self._input_names) == 1 and not check_each:
                bind_graph_forward(self, plan, slots, shapes, dtypes)
        self._slot_full_shapes, self._slot_dtypes, self._dict_mode = shapes, dtypes, dict_mode
        if len(self._output_slots) == 1 and not dict_mode:
            return slots[self._output_slots[0]]
        results = [slots[s] for s in self._output_slots]
        if dict_mode:
            return dict(zip(self.output_names, results))
        return tuple(results)

    def _current_plan(self):
        plan = self.__dict__.get("_plan")
        if plan is None or not plan.current():
            plan = self._plan = GraphPlan(self._steps, len(self._input_names), self._output_slots,
                                          len(self._slot_names))
        return plan

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

    def backward(self, grad_out, *, input_grad=True):
        """grad_out: one gradient per output (array, tuple or dict) -> one per input.

        ``input_grad=False`` skips the gradients of the inputs where the steps
        reading them allow it (a Linear or ReLU does) and returns None: in
        training nobody needs the gradient of the data. Parameter gradients
        are accumulated either way.
        """
        if self._slot_dtypes is None:
            check_backward_ready(self, None)
        plan = self.__dict__.get("_plan")
        if plan is None or not members_current(plan.members):  # (_current_plan, inlined: it runs every call)
            plan = self._current_plan()
        check_each = _anomaly()
        single = grad_out.__class__ is np.ndarray and len(self._output_slots) == 1 and not check_each
        bound = plan.bound_backward.get((grad_out.shape, grad_out.dtype, bool(input_grad))) if single else None
        grads = [grad_out] if bound is not None else self._bind_output_grads(grad_out)
        if bound is not None and (grad_out.shape != self._slot_full_shapes[self._output_slots[0]]
                                  or grad_out.dtype != self._slot_dtypes[self._output_slots[0]]):
            grads, bound = self._bind_output_grads(grad_out), None  # (it raises)
        where = [len(self._steps) - 1]
        chain = bound[1] if bound is not None else None
        i = len(self._steps) - 1
        try:
            if chain is not None:  # a bound chain: one call per step, as Sequential
                g = grads[0]
                for i in range(i, -1, -1):
                    g = chain[i](g)
                results = [g]
            else:
                results = run_backward(self, plan, grads, input_grad, None if bound is None else bound[0],
                                       check_each, where)
        except Exception as exc:
            i = i if chain is not None else where[0]
            new = child_error(self, self._layer_names[i], self._layers[i], exc, "backward")
            if new is None:
                raise
            raise new from exc
        if single and bound is None:
            bind_graph_backward(self, plan, grad_out, input_grad)
        if not input_grad:
            return None
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
