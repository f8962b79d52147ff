"""Hypothesis strategies for random layer graphs (needs ``hypothesis``).

``dag_specs()`` draws a *spec*: plain data describing a random DAG (so
hypothesis can shrink it), and ``build_dag(spec, rng)`` turns it into an
``nn.Graph``. The graphs mix ``Linear``, a smooth element-wise ``SmoothTanh``
(no kinks, so finite differences are exact up to rounding), ``Add``,
``Multiply``, ``Concat``, ``Split``, fan-out (any earlier node may be reused)
and shared weights (``nn.shared_copy`` of an earlier Linear, or a new Linear
whose ``weight`` is an earlier Linear's Parameter). Every node that no op
consumes becomes an output, so every input is used.

Example:
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, database=None)
    ... @given(dag_specs())
    ... def check(spec):
    ...     net = build_dag(spec, rng=0)
    ...     assert len(net.output_names) >= 1
    >>> check()
"""

import copy

import numpy as np
from hypothesis import strategies as st

from .._checks import check_array, check_backward_ready, check_same_shape
from .._rng import as_generator
from ..containers.graph import Graph
from ..containers.graph_build import Input, shared_copy
from ..gradcheck import GradientReport, compare, numeric_gradient
from ..layers.linear import Linear
from ..layers.merge import Add, Concat, Multiply, Split
from ..module import Module

KINDS = ("linear", "tanh", "add", "multiply", "concat", "split", "shared")


class SmoothTanh(Module):
    """``y = tanh(x)``, smooth everywhere: a kink-free activation for gradient tests.

    Shape:
        - x: any shape -> y: the same shape.

    Example:
        >>> import numpy as np
        >>> SmoothTanh()(np.zeros((1, 2)))
        array([[0., 0.]])
    """

    def __init__(self):
        self._y = None

    def forward(self, x):
        check_array(self, x)
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad_out):
        check_backward_ready(self, self._y)
        check_same_shape(self, grad_out, self._y.shape)
        return grad_out * (1.0 - self._y * self._y)

    def output_shape(self, shape):
        return tuple(shape)


@st.composite
def dag_specs(draw, max_inputs=2, max_ops=8, max_width=4):
    """A random DAG spec: ``{"inputs": [widths], "ops": [op dicts]}``.

    Each op names its argument nodes by index into the list of nodes so far
    (inputs first, then each op's output(s) in order).
    """
    widths = [draw(st.integers(1, max_width)) for _ in range(draw(st.integers(1, max_inputs)))]
    spec = {"inputs": list(widths), "ops": []}
    linears = []  # (op index, in width, out width)
    node = st.integers(0, 10**6)
    for k in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(KINDS + ("shared",)))  # shared weights twice as often
        a = draw(node) % len(widths)
        op = {"kind": kind, "args": [a]}
        if kind == "shared":
            usable = [lin for lin in linears if lin[1] in widths]
            if not usable:
                kind = op["kind"] = "linear"
            else:
                source = usable[draw(node) % len(usable)]
                candidates = [i for i, w in enumerate(widths) if w == source[1]]
                op.update(args=[candidates[draw(node) % len(candidates)]], source=source[0],
                          how=draw(st.sampled_from(["shared_copy", "same_weight"])))
                widths.append(source[2])
        if kind == "split" and widths[a] < 2:
            kind = op["kind"] = "tanh"
        if kind == "linear":
            op["out"] = draw(st.integers(1, max_width))
            linears.append((k, widths[a], op["out"]))
            widths.append(op["out"])
        elif kind == "tanh":
            widths.append(widths[a])
        elif kind in ("add", "multiply"):
            same = [i for i, w in enumerate(widths) if w == widths[a]]
            op["args"].append(same[draw(node) % len(same)])
            widths.append(widths[a])
        elif kind == "concat":
            b = draw(node) % len(widths)
            op["args"].append(b)
            widths.append(widths[a] + widths[b])
        elif kind == "split":
            cut = draw(st.integers(1, widths[a] - 1))
            op["sizes"] = [cut, widths[a] - cut]
            widths += op["sizes"]
        spec["ops"].append(op)
    return spec


def _make_module(op, modules, gen):
    kind = op["kind"]
    if kind == "shared":
        source = modules[op["source"]]
        if op["how"] == "shared_copy":
            return shared_copy(source)
        tied = Linear(source.in_features, source.out_features, rng=gen)
        tied.weight = source.weight  # the same Parameter in two modules; own bias
        return tied
    if kind == "linear":
        return None  # needs the input width; made by the caller
    return {"tanh": SmoothTanh, "add": Add, "multiply": Multiply, "concat": Concat}[kind]() \
        if kind != "split" else Split(op["sizes"])


def build_dag(spec, rng=None):
    """The ``nn.Graph`` that ``spec`` describes; weights drawn from ``rng``."""
    gen = as_generator(rng)
    nodes = [Input(w, name=f"x{i}") for i, w in enumerate(spec["inputs"])]
    consumed = set()
    modules = {}
    for k, op in enumerate(spec["ops"]):
        args = [nodes[i] for i in op["args"]]
        consumed.update(op["args"])
        module = _make_module(op, modules, gen)
        if module is None:
            module = Linear(args[0].shape[0], op["out"], rng=gen, init="glorot")
        modules[k] = module
        out = module(*args)
        nodes.extend(out if isinstance(out, tuple) else [out])
    inputs = nodes[: len(spec["inputs"])]
    outputs = [n for i, n in enumerate(nodes) if i not in consumed]
    return Graph(inputs, outputs)


def check_graph_gradients(graph, xs, *, rng=None, eps=1e-6, rtol=1e-5, atol=1e-7):
    """``check_gradients`` for a graph with several inputs and outputs (mode "full").

    The objective is ``sum_k vdot(R_k, output_k)`` for random ``R_k``; the
    analytic gradients come from one real ``backward`` (given the tuple of
    ``R_k``), the numeric ones from central differences of every element of
    every input and every named parameter. Works on a deep copy.
    Returns a ``GradientReport`` (rows ``input <name>``, then parameters).
    """
    gen = as_generator(rng)
    work = copy.deepcopy(graph)
    xs = [np.array(x, dtype=np.float64, order="C") for x in xs]

    def outputs():
        out = work.forward(*xs)
        return out if isinstance(out, tuple) else (out,)

    probes = [gen.standard_normal(o.shape) for o in outputs()]

    def objective():
        return sum(float(np.vdot(r, o)) for r, o in zip(probes, outputs()))

    objective()
    work.zero_grad()
    grads = work.backward(tuple(probes) if len(probes) > 1 else probes[0])
    grads = grads if isinstance(grads, tuple) else (grads,)
    targets = [(f"input {n}", x, g) for n, x, g in zip(work.input_names, xs, grads)]
    targets += [(name, p.value, p.grad.copy()) for name, p in work.named_parameters()]
    rows = [compare(name, analytic, numeric_gradient(objective, arr, eps), rtol=rtol, atol=atol, shape=arr.shape)
            for name, arr, analytic in targets]
    return GradientReport(rows, "full", eps, rtol, atol)
