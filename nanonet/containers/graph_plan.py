"""Compiling symbolic nodes into a flat, checked execution plan for ``Graph``.

``compile_graph(inputs, outputs)`` walks back from the outputs (iteratively:
no recursion, so a chain of thousands of nodes is fine), orders the calls
topologically, runs the build-time checks, names every node and numbers
every value ("slot"). The plan holds no Node objects, only modules, names,
shapes and slot numbers, so a Graph deep-copies and pickles without walking
the symbolic chain.

Names are given in topological order (parents before children, in argument
order), from the structure alone: ``linear_0``, ``relu_0``, ``linear_1``,
... (the class name in lower case and a count per class within this graph);
a ``name=`` given at the call wins. No global counter is involved, so the
same code builds graphs with the same names, parameter names and
``state_dict`` keys.
"""

from dataclasses import dataclass

from .._checks import who
from .graph_build import Input, Node

_VISITING, _DONE = 1, 2


@dataclass
class Step:
    """One module call in execution order."""

    name: str
    module: object
    in_slots: tuple
    out_slots: tuple
    multi: bool


@dataclass
class Plan:
    input_names: list
    input_shapes: list
    steps: list
    slot_names: list
    slot_shapes: list
    output_slots: list


def _as_list(value, what, kind):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"Graph expected at least one node in {what}, got none")
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            if kind is Input and isinstance(item, Node):
                raise TypeError(
                    f"Graph {what}[{i}] is {item.describe()}, not an nn.Input: "
                    f"a graph's inputs are the nn.Input nodes its outputs were built from"
                )
            raise TypeError(f"Graph expected {what} to hold {kind.__name__} nodes, got {type(item).__name__} at {i}")
    seen = {}
    for i, item in enumerate(items):
        if id(item) in seen:
            raise ValueError(f"Graph {what} lists {item.describe()} twice (positions {seen[id(item)]} and {i})")
        seen[id(item)] = i
    return items


def _parent_calls(call):
    return [n.call for n in call.inputs if n.call is not None]


def topological_calls(outputs):
    """The calls the outputs depend on, parents first; rejects cycles."""
    order, state = [], {}
    for out in outputs:
        if out.call is None or id(out.call) in state:
            continue
        state[id(out.call)] = _VISITING
        stack = [(out.call, iter(_parent_calls(out.call)))]
        while stack:
            call, parents = stack[-1]
            for parent in parents:
                seen = state.get(id(parent))
                if seen is None:
                    state[id(parent)] = _VISITING
                    stack.append((parent, iter(_parent_calls(parent))))
                    break
                if seen == _VISITING:
                    _raise_cycle([c for c, _ in stack], parent)
            else:
                stack.pop()
                state[id(call)] = _DONE
                order.append(call)
    return order


def _raise_cycle(path, repeated):
    start = next(i for i, c in enumerate(path) if c is repeated)
    loop = [who(c.module) for c in path[start:]] + [who(repeated.module)]
    raise ValueError(
        f"Graph found a cycle: the output of {who(repeated.module)} depends on itself "
        f"({' -> '.join(loop)}); a graph must be acyclic"
    )


def _sources(node, deps):
    if node.call is None:
        if not isinstance(node, Input):
            raise TypeError(f"Graph found a node with no producer that is not an nn.Input: {node!r}")
        return frozenset((id(node),))
    return deps[id(node.call)]


def _source_nodes(call):
    return [n for n in call.inputs if n.call is None]


def check_dependencies(inputs, outputs, calls):
    """Every output depends on a listed input, every source is listed, every input is used."""
    listed = {id(x) for x in inputs}
    deps, found = {}, {}
    for call in calls:
        for node in _source_nodes(call):
            found.setdefault(id(node), (node, call))
        acc = frozenset()
        for node in call.inputs:
            acc = acc | _sources(node, deps)
        deps[id(call)] = acc
    for i, out in enumerate(outputs):
        if not _sources(out, deps) & listed:
            raise ValueError(
                f"Graph output {i}, {out.describe()}, does not depend on the graph's inputs "
                f"{[x.describe() for x in inputs]}"
            )
        if out.call is None:
            found.setdefault(id(out), (out, None))
    for node, call in found.values():
        if id(node) not in listed:
            user = f"{who(call.module)} uses it" if call is not None else "it is an output"
            raise ValueError(
                f"Graph is connected to {node.describe()}, which is not among its inputs ({user}); "
                f"add it to inputs= or rebuild that branch from a listed input"
            )
    for x in inputs:
        if id(x) not in found:
            raise ValueError(f"Graph input {x.describe()} is unused: no output depends on it; remove it from inputs=")


def assign_names(inputs, calls):
    """Input names and call names: given names first, then ``class_k`` per class."""
    taken = {}
    for what, name in [("Input", x.name) for x in inputs] + [(who(c.module), c.name) for c in calls]:
        if name is None:
            continue
        if name in taken:
            raise ValueError(f"Graph found the name {name!r} twice (on {taken[name]} and on {what})")
        taken[name] = what
    counters = {}

    def fresh(base):
        while True:
            k = counters.get(base, 0)
            counters[base] = k + 1
            if f"{base}_{k}" not in taken:
                taken[f"{base}_{k}"] = base
                return f"{base}_{k}"

    input_names = [x.name if x.name is not None else fresh("input") for x in inputs]
    call_names = [c.name if c.name is not None else fresh(type(c.module).__name__.lower()) for c in calls]
    return input_names, call_names


def check_single_use(calls, names):
    first = {}
    for call, name in zip(calls, names):
        if id(call.module) in first:
            raise ValueError(
                f"Graph uses the same module instance {who(call.module)} twice (as {first[id(call.module)]!r} "
                f"and {name!r}). A module keeps one forward cache, so an instance may appear once per graph. "
                f"To share weights, call a second module that holds the same Parameters: "
                f"nn.shared_copy(module) (or assign module2.weight = module.weight); "
                f"the shared gradient is then the sum over both uses"
            )
        first[id(call.module)] = name


def compile_graph(inputs, outputs):
    """Check the nodes and return ``(Plan, single_input, single_output)``."""
    inputs = _as_list(inputs, "inputs", Input)
    outputs = _as_list(outputs, "outputs", Node)
    calls = topological_calls(outputs)
    check_dependencies(inputs, outputs, calls)
    input_names, call_names = assign_names(inputs, calls)
    check_single_use(calls, call_names)

    slot_of = {id(x): i for i, x in enumerate(inputs)}
    slot_names, slot_shapes = list(input_names), [x.shape for x in inputs]
    steps = []
    for call, name in zip(calls, call_names):
        in_slots = tuple(slot_of[id(n)] for n in call.inputs)
        out_slots = []
        for node in call.outputs:
            slot_of[id(node)] = len(slot_names)
            out_slots.append(len(slot_names))
            slot_names.append(name if node.index is None else f"{name}:{node.index}")
            slot_shapes.append(node.shape)
        steps.append(Step(name, call.module, in_slots, tuple(out_slots), call.multi))
    plan = Plan(input_names, [x.shape for x in inputs], steps, slot_names, slot_shapes,
                [slot_of[id(n)] for n in outputs])
    return plan
