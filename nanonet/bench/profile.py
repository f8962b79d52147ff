"""``nanonet bench --profile``: where a mini-batch step's time goes (no timing run).

For each configuration of the mini-batch family it prints, per training step:

- the numpy operations and Python-level calls of ``nn.fit``'s step and of
  the straightforward numpy step (counted by ``bench/trace.py``);
- nanonet's by phase (batches, zero_grad, forward, loss, backward,
  optimizer, the loop itself): operations, calls, time, the time of the
  same numpy operations run alone (replayed), and the difference, the
  framework's overhead;
- the overhead per layer in µs: each child's forward and backward timed as
  its container calls them (the bound calls of the container's plan), minus
  the replay of the numpy operations they made; and the container's own;
- memory per step in steady state: tracemalloc's peak above the start of a
  step, the bytes a step leaves allocated, and minor page faults.

Times are medians of interleaved samples in this process (``timing``);
they are indicative, the counts are exact.
"""

import numpy as np

from . import minibatch_numpy, minibatch_peers, trace
from .minibatch_problem import MiniProblem
from .tables import table
from .timing import interleave, memory_per_call

PHASES = ("batches", "zero_grad", "forward", "loss", "loss.backward", "backward", "optimizer", "fit loop")
_PHASE_OF = {"epoch_batches": "batches", "zero_grad": "zero_grad", "forward": "forward", "__call__": "loss",
             "backward": "backward", "step": "optimizer"}


def _phase(frame):
    """The phase of ``fit``'s loop a frame belongs to: the function ``_train_epoch`` called, by name."""
    while frame is not None:
        caller = frame.f_back
        if caller is not None and caller.f_code.co_name == "_train_epoch":
            name = frame.f_code.co_name
            if name == "backward" and type(frame.f_locals.get("self")).__name__.endswith("Loss"):
                return "loss.backward"
            return _PHASE_OF.get(name, name)
        if frame.f_code.co_name == "_train_epoch":
            return "fit loop"
        frame = caller
    return "other"


_TIMING = {"repeats": 7, "min_time": 0.02}


def _time(cases):
    return {k: v.median for k, v in interleave(cases, warmup=2, **_TIMING).items()}


def _replay_time(ops):
    if not ops:
        return 0.0
    run = trace.replay(ops)
    with np.errstate(all="ignore"):
        return _time({"replay": run})["replay"]


def _counts(problem):
    """Per-step counts of fit's step and of the numpy step, and fit's ops and calls by phase."""
    fit = minibatch_peers.make_fit(problem, epochs=1)
    ref = minibatch_numpy.make_numpy(problem)
    batches = problem.batches_per_call()
    for _ in range(2):
        fit()
        ref()
    traced_fit = trace.trace(fit, label=_phase)
    traced_ref = trace.trace(ref)
    by_phase = {}
    for op in traced_fit.ops:
        by_phase.setdefault(op.label, []).append(op)
    return traced_fit, traced_ref, by_phase, batches


class _Step:
    """A fresh model, loss and optimizer of a problem, and fit's step cut into its parts (callables)."""

    def __init__(self, problem):
        import nanonet as nn

        self.model, _ = minibatch_peers.build_model(nn, problem)
        opt = minibatch_peers._optimizer(nn, problem, self.model.parameters())
        self.loss_fn = minibatch_peers._loss(nn, problem)
        b = problem.config.batch
        self.x, self.y = problem.x[:b].copy(), problem.y[:b].copy()
        self.parts = {"zero_grad": opt.zero_grad, "forward": self.forward, "loss": self.loss,
                      "loss.backward": self.loss_backward, "backward": self.backward, "optimizer": opt.step}
        for _ in range(3):
            self.run()

    def forward(self):
        self.pred = self.model.forward(self.x)

    def loss(self):
        self.loss_fn(self.pred, self.y)

    def loss_backward(self):
        self.grad = self.loss_fn.backward()

    def backward(self):
        self.model.backward(self.grad, input_grad=False)

    def run(self):
        for part in self.parts.values():
            part()


def _layer_rows(step):
    """Per child: its bound forward and backward timed alone, against the replay of their numpy operations.

    Needs a ``Sequential`` whose plan has bound calls (after a few steps it has).
    """
    plan = step.model.__dict__.get("_plan")
    if plan is None or not hasattr(plan, "layers"):
        return []  # only Sequential's chain is profiled per layer
    bound_f = plan.bound_forward.get((step.x.shape, step.x.dtype))
    bound_b = plan.bound_backward.get((step.grad.shape, step.grad.dtype, False))
    if bound_f is None or bound_b is None:
        return []
    layers = list(step.model)
    inputs, x = [], step.x
    for call in bound_f:
        inputs.append(x)
        x = call(x)
    grads, g = [None] * len(layers), step.grad
    for i in range(len(layers) - 1, -1, -1):
        grads[i] = g
        g = bound_b[i](g)
    ops_f = _by_layer(trace.trace(step.forward, keep_frames=True).ops, layers)
    ops_b = _by_layer(trace.trace(step.backward, keep_frames=True).ops, layers)
    rows = []
    for i, layer in enumerate(layers):
        times = _time({"f": lambda c=bound_f[i], a=inputs[i]: c(a), "b": lambda c=bound_b[i], a=grads[i]: c(a)})
        replay_f, replay_b = _replay_time(ops_f.get(i, [])), _replay_time(ops_b.get(i, []))
        rows.append([repr(layer), len(ops_f.get(i, [])) + len(ops_b.get(i, [])),
                     f"{times['f'] * 1e6:.2f}", f"{replay_f * 1e6:.2f}", f"{times['b'] * 1e6:.2f}",
                     f"{replay_b * 1e6:.2f}", f"{(times['f'] + times['b'] - replay_f - replay_b) * 1e6:.2f}"])
    return rows


def _by_layer(ops, layers):
    """Each op's layer: the innermost frame whose ``self`` is one of ``layers`` (ops need their frames)."""
    index = {id(m): i for i, m in enumerate(layers)}
    found = {}
    for op in ops:
        frame = op.frame
        while frame is not None and id(frame.f_locals.get("self")) not in index:
            frame = frame.f_back
        if frame is not None:
            found.setdefault(index[id(frame.f_locals["self"])], []).append(op)
        op.frame = None
    return found


def profile(config):
    """The text report of one configuration."""
    problem = MiniProblem.make(config)
    traced_fit, traced_ref, by_phase, batches = _counts(problem)
    lines = [f"## {config.label}", "",
             table(["per step", "numpy operations", "Python-level calls"],
                   [["nanonet fit", f"{len(traced_fit.ops) / batches:.1f}", f"{traced_fit.python_calls / batches:.1f}"],
                    ["numpy (the reference)", f"{len(traced_ref.ops) / batches:.1f}",
                     f"{traced_ref.python_calls / batches:.1f}"]])]
    if not trace.SUPPORTED:
        lines += ["", "(numpy operations are counted on CPython 3.11 only; this Python shows 0)"]
    step = _Step(problem)
    times = _time(step.parts)
    rows = []
    for phase in PHASES + ("other",):
        ops = by_phase.get(phase, [])
        if phase not in times:
            rows.append([phase, f"{len(ops) / batches:.1f}", "", "", ""])
            continue
        replay = _replay_time(ops[:len(ops) // batches])
        rows.append([phase, f"{len(ops) / batches:.1f}", f"{times[phase] * 1e6:.2f}", f"{replay * 1e6:.2f}",
                     f"{(times[phase] - replay) * 1e6:.2f}"])
    lines += ["", "nanonet's step by phase (µs per step; numpy: the same operations replayed alone; 'other' is "
                  "fit's per-call work spread over the epoch's batches):", "",
              table(["phase", "numpy ops", "time", "numpy", "overhead"], rows)]
    layer_rows = _layer_rows(step)
    if layer_rows:
        lines += ["", "Overhead per layer (µs), each child as the container's plan calls it:", "",
                  table(["layer", "numpy ops", "forward", "numpy", "backward", "numpy", "overhead"], layer_rows)]
    peak, kept, faults = memory_per_call(step.run)
    lines += ["", f"Memory per step in steady state (the bare step): peak {peak} bytes above its start, "
                  f"{kept} bytes left allocated, {faults:.2f} minor page faults."]
    return "\n".join(lines)


def main(configs, quick=False):
    """Print the profile of each configuration (``quick``: short timings, for a smoke test)."""
    _TIMING.update(repeats=3, min_time=0.002) if quick else _TIMING.update(repeats=7, min_time=0.02)
    for config in configs:
        print(profile(config))
        print()
    return 0
