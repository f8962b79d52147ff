"""Running a ``Graph``: its plan (modes, buffers, bound calls) and its forward and backward loops.

The modes are those of ``nanonet.containers.plan``, per step with one input
and one output (the other steps are always called through their own
methods). The rules that keep every array the graph returns fresh:

- a fast step writes its output into a buffer only if that value cannot
  reach an output of the graph through steps that may pass their input on
  unchanged (any step but a fast one, which writes a new array): a value
  that can is written fresh;
- a fast step writes its input gradient into a buffer only if that
  gradient cannot reach an input of the graph the same way; the gradient
  of a graph input itself is made fresh (or skipped with ``input_grad=False``);
- a buffer that holds a node's gradient belongs to that node alone, so the
  gradients of its other consumers are added into it in place.

Nothing is written in place over an input (no ``IN_PLACE`` mode here: a
value may feed several steps). After a single-array forward (and a
single-array backward) has run once for an input's shape and dtype, the
fast steps are bound (``_bind_forward`` / ``_bind_backward``) and their
output shapes are no longer re-checked: the bound calls keep them.
"""

import numpy as np

from .._checks import check_finite
from .._flat import Transient
from .plan import BUFFER, FRESH, OWN, Bound, bind_backward, bind_forward, layer_key, members_current, takes_buffers


class GraphPlan(Transient):
    """Per step: its module's class (to notice a change), its forward and backward mode, its buffers."""

    __slots__ = ("members", "forward", "backward", "forward_buffers", "backward_buffers", "bound_forward",
                 "bound_backward")

    def __init__(self, steps, input_count, output_slots, slot_count):
        self.members = tuple((step[0], type(step[0])) for step in steps)
        fast = [simple and takes_buffers(layer_key(module)) for module, _, _, _, simple in steps]
        leaks = [False] * slot_count  # the value may reach a graph output unchanged
        for s in output_slots:
            leaks[s] = True
        for (module, ins, outs, _, _), quick in zip(reversed(steps), reversed(fast)):
            if not quick and any(leaks[s] for s in outs):
                for s in ins:
                    leaks[s] = True
        rises = [s < input_count for s in range(slot_count)]  # the gradient may reach a graph input unchanged
        for (module, ins, outs, _, _), quick in zip(steps, fast):
            if not quick and any(rises[s] for s in ins):
                for s in outs:
                    rises[s] = True
        self.forward = tuple((FRESH if leaks[outs[0]] else BUFFER) if quick else OWN
                             for (_, _, outs, _, _), quick in zip(steps, fast))
        self.backward = tuple((FRESH if rises[ins[0]] else BUFFER) if quick else OWN
                              for (_, ins, _, _, _), quick in zip(steps, fast))
        self.forward_buffers = [None] * len(steps)
        self.backward_buffers = [None] * len(steps)
        self.bound_forward, self.bound_backward = Bound(), Bound()

    def current(self):
        return members_current(self.members)


def run_forward(graph, plan, args, bound, check_each, where):
    """The slots after running every step (``bound``: the bound calls for this input, or None).

    ``where[0]`` is the step running (to name it if it raises).
    """
    steps, feature = graph._steps, graph._slot_shapes
    slots = list(args) + [None] * (len(graph._slot_names) - len(args))
    batch = args[0].shape[0]
    modes, buffers = plan.forward, plan.forward_buffers
    for i, (module, ins, outs, multi, simple) in enumerate(steps):
        where[0] = i
        if simple:
            call, s = None if bound is None else bound[i], outs[0]
            if call is not None:  # a bound fast step: its output shape is kept by the call
                slots[s] = call(slots[ins[0]])
                continue
            mode = modes[i]
            if mode is BUFFER:
                out = buffers[i] = module._forward_into(slots[ins[0]], buffers[i])
            elif mode is FRESH:
                out = module._forward_into(slots[ins[0]], None)
            else:
                out = module.forward(slots[ins[0]])
            if out.__class__ is not np.ndarray or out.shape[1:] != feature[s] or out.shape[0] != batch:
                graph._raise_bad_output(module, out, s, batch)
            if check_each:
                check_finite(module, out, name="output (made by this module)")
            slots[s] = out
            continue
        out = module.forward(*[slots[s] for s in ins])
        for s, piece in zip(outs, graph._as_pieces(module, out, outs, multi)):
            if not isinstance(piece, np.ndarray) or piece.shape[1:] != feature[s] or piece.shape[0] != batch:
                graph._raise_bad_output(module, piece, s, batch)
            if check_each:
                check_finite(module, piece, name="output (made by this module)")
            slots[s] = piece
    return slots


def bind_graph_forward(graph, plan, slots, shapes, dtypes):
    """Bind the fast steps for the forward that filled ``slots`` (kept per input shape and dtype).

    Kept: ``(calls, shapes, dtypes, chain)``; ``chain`` is the list of calls when the steps are bound fast
    ones each reading the previous one's output (a chain of Linear/ReLU): ``Graph`` then runs them as
    ``Sequential`` runs its children.
    """
    calls = []
    for i, (module, ins, outs, multi, simple) in enumerate(graph._steps):
        mode = plan.forward[i]
        if mode is OWN:
            calls.append(None)
        else:
            x = slots[ins[0]]
            calls.append(bind_forward(module, mode, x.shape, x.dtype, plan.forward_buffers[i]))
    chain = calls if None not in calls and _linear(graph) else None
    x = slots[0]
    plan.bound_forward.keep((x.shape, x.dtype), (calls, shapes, dtypes, chain))


def _linear(graph):
    """True when step i reads only step i-1's output (step 0 the input) and the last step makes the output."""
    follow = 0
    for _, ins, outs, _, simple in graph._steps:
        if not simple or ins[0] != follow:
            return False
        follow = outs[0]
    return graph._output_slots == [follow] and len(graph._input_names) == 1


def _add(acc, owned, slot, g, exclusive):
    """acc[slot] += g, never writing into an array the graph does not own (``exclusive``: g is the graph's)."""
    held = acc[slot]
    if held is None:
        acc[slot], owned[slot] = g, exclusive
    elif owned[slot]:
        held += g
    elif exclusive:
        g += held  # addition commutes exactly: the same numbers as held + g
        acc[slot], owned[slot] = g, True
    else:
        acc[slot], owned[slot] = held + g, True


def run_backward(graph, plan, grads, input_grad, bound, check_each, where):
    """The accumulated gradient of every input slot (``where[0]``: the step running)."""
    steps = graph._steps
    acc = [None] * len(graph._slot_names)
    owned = [False] * len(graph._slot_names)  # acc[s] is an array the graph made, safe to add into
    for s, g in zip(graph._output_slots, grads):
        _add(acc, owned, s, g, False)
    full, dtypes = graph._slot_full_shapes, graph._slot_dtypes
    modes, buffers = plan.backward, plan.backward_buffers
    n_inputs = len(graph._input_names)
    for i in range(len(steps) - 1, -1, -1):
        where[0] = i
        module, ins, outs, multi, simple = steps[i]
        if simple:
            s, t = outs[0], ins[0]
            call, mode = None if bound is None else bound[i], modes[i]
            if call is not None:
                g_in = call(acc[s])
            elif mode is BUFFER:
                g_in = buffers[i] = module._backward_into(acc[s], buffers[i])
            elif mode is FRESH:  # dJ/dx may be skipped only where x is an input of the graph
                g_in = module._backward_into(acc[s], None, input_grad or t >= n_inputs)
            else:
                g_in = module.backward(acc[s])
            acc[s] = None  # free it: nothing upstream needs it
            if g_in is None and mode is FRESH and not input_grad and t < n_inputs:
                continue
            if call is None and (g_in.__class__ is not np.ndarray or g_in.shape != full[t] or g_in.dtype != dtypes[t]):
                graph._check_grad(module, g_in, t, "an input gradient")
            if check_each and g_in is not None:  # None: an integer input (indices) has no gradient
                check_finite(module, g_in, name="input gradient (made by this module)")
            _add(acc, owned, t, g_in, mode is BUFFER)
            continue
        if multi:
            g_out = tuple(acc[s] if acc[s] is not None else graph._zeros(s) for s in outs)
        else:
            g_out = acc[outs[0]]
        for s in outs:
            acc[s] = None
        g_in = module.backward(g_out)
        pieces = (g_in,) if len(ins) == 1 else graph._input_grads(module, g_in, ins)
        for s, g in zip(ins, pieces):
            graph._check_grad(module, g, s, "an input gradient")
            if check_each and g is not None:
                check_finite(module, g, name="input gradient (made by this module)")
            _add(acc, owned, s, g, False)
    return acc[:len(graph._input_names)]


def bind_graph_backward(graph, plan, grad, input_grad):
    """Bind the fast steps' backward for gradients like ``grad`` (after a backward that succeeded).

    Kept: ``(calls, chain)``, ``chain`` as in ``bind_graph_forward``.
    """
    full, dtypes = graph._slot_full_shapes, graph._slot_dtypes
    calls = []
    for i, (module, ins, outs, multi, simple) in enumerate(graph._steps):
        mode = plan.backward[i]
        if mode is OWN:
            calls.append(None)
        else:
            s = outs[0]
            skip = mode is FRESH and ins[0] < len(graph._input_names)  # dJ/dx skipped only for a graph input
            calls.append(bind_backward(module, mode, full[s], dtypes[s], plan.backward_buffers[i],
                                       input_grad if skip else True))
    chain = calls if None not in calls and _linear(graph) else None
    plan.bound_backward.keep((grad.shape, grad.dtype, bool(input_grad)), (calls, chain))
