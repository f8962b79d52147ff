"""``nanonet bench --only distributed``: data-parallel throughput at 1 and 2 processes, beside torch DDP.

Each case is one ``mpiexec -n W`` launch of ``nanonet.bench.distributed_worker``
with one BLAS thread per rank (so two ranks fit two cores); the cases of a
round run in a shuffled order and the rounds repeat, interleaved, and each
figure is the median over the rounds of each launch's median step.

- ``compute``: a compute-bound MLP step (large batch, ~0.4 M parameters); ``compute-4096``: the same
  model on 4096 rows, where the gradient sum (fixed by the model's size) is a smaller share of the step;
- ``communication``: many parameters (~4.2 M, 34 MB of gradients) and a small batch;
- scaling efficiency = (2-process samples/s) / (2 x 1-process samples/s);
- the sweep: nanonet's gradient sum as a share of the step, by model size (2 processes).

Example (what the part's table looks like, from made-up numbers):

    >>> rows = [{"workload": "compute", "peer": "nanonet", "world": 1, "samples_per_s": 100.0},
    ...         {"workload": "compute", "peer": "nanonet", "world": 2, "samples_per_s": 180.0}]
    >>> print(throughput_table(rows))
    | workload | peer    | 1 process samples/s | 2 processes samples/s | scaling efficiency |
    |----------|---------|---------------------|-----------------------|--------------------|
    | compute  | nanonet | 100                 | 180                   | 0.90               |
"""

import json
import os
import random
import socket

import numpy as np

from ..distributed import launch

WORKLOADS = {
    "compute": {"batch": 1024, "sizes": (256, 512, 512, 10)},
    "compute-4096": {"batch": 4096, "sizes": (256, 512, 512, 10)},
    "communication": {"batch": 32, "sizes": (1024, 2048, 1024, 10)},
}
QUICK_WORKLOADS = {
    "compute": {"batch": 256, "sizes": (128, 256, 256, 10)},
    "communication": {"batch": 16, "sizes": (256, 1024, 512, 10)},
}
SWEEP = {"batch": 256, "sizes": (64, None, None, 10), "widths": (64, 256, 1024, 2048)}
QUICK_SWEEP = {"batch": 64, "sizes": (64, None, None, 10), "widths": (64, 256)}
#: peers at 2 processes; at 1 process only "nanonet" (plain fit) and "torch" (a plain module) run.
PEERS = ("nanonet", "nanonet-1mb", "nanonet-overlap", "nanonet-copy", "torch")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world, case, timeout, tries=2):
    """One launch's result; a failed launch is tried again once (a busy machine can time out gloo's setup)."""
    for attempt in range(tries):
        case = dict(case, port=_free_port())
        done = launch.run(world, ["-m", "nanonet.bench.distributed_worker", json.dumps(case)], timeout=timeout)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not done.timed_out and done.returncode == 0 and lines:
            return json.loads(lines[-1][len("RESULT "):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"{case['peer']} on {world} process(es) failed {tries} times ({done!r}): {' / '.join(tail)}")


def cases(quick=False, peers=PEERS):
    """The (world, case) launches of one round."""
    workloads = QUICK_WORKLOADS if quick else WORKLOADS
    steps, warmup = (5, 2) if quick else (20, 3)
    out = []
    for name, workload in workloads.items():
        for peer in peers:
            for world in (1, 2):
                if world == 1 and peer not in ("nanonet", "torch"):
                    continue
                out.append((world, {"peer": peer, "workload": dict(workload, name=name), "steps": steps,
                                    "warmup": warmup}))
    sweep = QUICK_SWEEP if quick else SWEEP
    out.append((2, {"peer": "sweep", "workload": dict(sweep, name="sweep"), "steps": steps, "warmup": warmup}))
    return out


def run(*, quick=False, repeats=None, peers=PEERS, skips=None, log=print, timeout=300):
    """Run every case ``repeats`` times (interleaved); returns the dict stored under ``"distributed"``."""
    reason = launch.unavailable_reason()
    if reason:
        if skips is not None:
            skips.note("distributed", reason)
        return None
    if "torch" in peers:
        try:
            import torch.distributed  # noqa: F401
        except Exception as exc:
            peers = tuple(p for p in peers if p != "torch")
            if skips is not None:
                skips.note("torch (distributed)", f"torch.distributed is unavailable ({type(exc).__name__}: {exc})")
    repeats = repeats or (1 if quick else 3)
    todo = cases(quick, peers)
    samples, failures = {}, {}
    shuffler = random.Random(0)
    for r in range(repeats):
        order = list(range(len(todo)))
        shuffler.shuffle(order)
        for i in order:
            world, case = todo[i]
            label = f"{case['peer']} {case['workload']['name']} on {world}"
            log(f"distributed: round {r + 1}/{repeats}: {label}")
            try:
                samples.setdefault(i, []).append(_launch(world, case, timeout))
            except RuntimeError as exc:      # a case that fails is reported, the others still run
                failures.setdefault(label, str(exc))
                log(f"distributed: {exc}")
    if skips is not None:
        for label, why in failures.items():
            skips.note(f"distributed {label}", why)
    rows, sweep = [], None
    for i, (world, case) in enumerate(todo):
        if not samples.get(i):
            continue
        if case["peer"] == "sweep":
            sweep = [dict(row, reduce_s=float(np.median([s["rows"][j]["reduce_s"] for s in samples[i]])),
                          compute_s=float(np.median([s["rows"][j]["compute_s"] for s in samples[i]])))
                     for j, row in enumerate(samples[i][0]["rows"])]
            for row in sweep:
                row["share"] = row["reduce_s"] / (row["reduce_s"] + row["compute_s"])
            continue
        step = float(np.median([s["step_s"] for s in samples[i]]))
        rows.append({"workload": case["workload"]["name"], "peer": case["peer"], "world": world, "step_s": step,
                     "samples_per_s": case["workload"]["batch"] / step,
                     "batch": case["workload"]["batch"], "sizes": list(case["workload"]["sizes"])})
    return {"rows": rows, "sweep": sweep, "repeats": repeats, "threads_per_rank": 1, "failures": failures,
            "mpich_env": {k: v for k, v in os.environ.items() if k.startswith("MPIR_CVAR_")},
            "workloads": {k: dict(v) for k, v in (QUICK_WORKLOADS if quick else WORKLOADS).items()}}


def throughput_table(rows):
    """Samples/s at 1 and 2 processes per workload and peer, and the scaling efficiency."""
    single = {(r["workload"], r["peer"]): r["samples_per_s"] for r in rows if r["world"] == 1}
    table = []
    for r in (r for r in rows if r["world"] == 2):
        own = single.get((r["workload"], r["peer"]))
        base = own or single.get((r["workload"], "nanonet"))     # the variants share nanonet's 1 process
        one = "n/a" if base is None else f"{base:.0f}" if own else f"({base:.0f}, nanonet's)"
        table.append([r["workload"], r["peer"], one, f"{r['samples_per_s']:.0f}",
                      "n/a" if base is None else f"{r['samples_per_s'] / (2 * base):.2f}"])
    header = ["workload", "peer", "1 process samples/s", "2 processes samples/s", "scaling efficiency"]
    widths = [max(len(str(row[i])) for row in [header] + table) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
                              for row in table])


def sweep_table(sweep):
    lines = ["| parameters | gradient MB | compute ms | reduction ms | reduction share of the step |",
             "|-----------:|------------:|-----------:|-------------:|----------------------------:|"]
    for row in sweep:
        lines.append(f"| {row['params']:,} | {row['bytes'] / 1e6:.2f} | {row['compute_s'] * 1e3:.2f} | "
                     f"{row['reduce_s'] * 1e3:.2f} | {row['share'] * 100:.0f} % |")
    return "\n".join(lines)


def render(part):
    """The part's text for the report (empty if it did not run)."""
    if not part:
        return ""
    text = (f"Data-parallel training (one BLAS thread per rank; median of {part['repeats']} interleaved "
            f"launches):\n\n{throughput_table(part['rows'])}")
    if part.get("sweep"):
        text += ("\n\nGradient reduction (nanonet, 2 processes, after a barrier) as a share of the step, "
                 f"by model size:\n\n{sweep_table(part['sweep'])}")
    return text
