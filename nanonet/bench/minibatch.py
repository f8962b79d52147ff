"""The mini-batch ``steps`` family (``nanonet bench --only minibatch``): run it, and tabulate it.

Each configuration of :func:`~nanonet.bench.minibatch_problem.grid` is timed
with every peer in the same interleaved rounds (each peer in its own worker
process with ``--isolate``, as the facts of docs/performance.md demand);
one call is one epoch of ``BATCHES`` batches and the figures are per batch.
Every ratio is to ``numpy``, the straightforward hand-written numpy step.
"""

import functools

from . import minibatch_numpy, minibatch_peers
from .minibatch_problem import Config, MiniProblem
from .peers import PeerUnavailable
from .tables import fmt_time, ratio_versus
from .tables import table as text_table
from .timing import Stats, interleave, memory_per_call

PEERS = {
    "numpy": minibatch_numpy.make_numpy,
    "numpy-inplace": minibatch_numpy.make_numpy_inplace,
    "nanonet-fit": minibatch_peers.make_fit,
    "nanonet-loop": minibatch_peers.make_loop,
    "nanonet-graph": minibatch_peers.make_graph,
    "torch": minibatch_peers.make_torch,
    "jax": minibatch_peers.make_jax,
    "sklearn": minibatch_peers.make_sklearn,
}
"""Mini-batch peers in the order they are shown; ``numpy`` is the reference (ratio 1.0)."""

REFERENCE = "numpy"
FIT_PEERS = ("nanonet-fit", "nanonet-graph")  # (and nanonet-fit@REV) run FIT_EPOCHS epochs per call


def register_baseline(label, module):
    """Add ``nanonet-fit@REV`` (nanonet's fit as of a git revision) right after ``nanonet-fit``."""
    name = label.replace("nanonet@", "nanonet-fit@")
    items = list(PEERS.items())
    at = [k for k, _ in items].index("nanonet-fit") + 1
    items.insert(at, (name, functools.partial(minibatch_peers.make_fit, nn=module)))
    PEERS.clear()
    PEERS.update(items)
    return name


def make_peer(name, config):
    """Peer ``name``'s epoch function for ``config`` (a Config or its dict); raises PeerUnavailable."""
    if isinstance(config, dict):
        config = Config(**config)
    problem = MiniProblem.make(config)
    epoch = PEERS[name](problem)
    if not hasattr(epoch, "batches"):
        epoch.batches = problem.batches_per_call()
    return epoch


def _per_batch(stats, batches):
    return Stats(stats.median / batches, stats.p25 / batches, stats.p75 / batches, stats.min / batches,
                 stats.n, stats.inner)


def _row(config, stats, batches):
    """``batches``: peer name -> batches per call (per-batch figures divide by it)."""
    per_batch = {name: _per_batch(st, batches[name]) for name, st in stats.items()}
    ref = per_batch.get(REFERENCE)
    peers = {name: dict(st.as_dict(), ratio=st.median / ref.median if ref else None, batches=batches[name])
             for name, st in per_batch.items()}
    return dict(config.as_dict(), label=config.label, batches=batches.get(REFERENCE), peers=peers)


def minibatch_steps(names, configs, skips, *, repeats, min_time, settle=0.0, workers=None, log=print):
    """One result dict per configuration: each peer's per-batch Stats and its ratio to ``numpy``."""
    names = [n for n in PEERS if n in names]
    results = []
    for config in configs:
        per_epoch = MiniProblem.make(config).batches_per_call()
        batches = {name: per_epoch * (minibatch_peers.FIT_EPOCHS if name.startswith(FIT_PEERS) else 1)
                   for name in names}
        if workers is not None:
            stats = workers.interleave_setup(config.as_dict(), skips, repeats=repeats, min_time=min_time,
                                             warmup=2, settle=settle)
        else:
            cases = {}
            for name in names:
                try:
                    cases[name] = make_peer(name, config)
                except PeerUnavailable as exc:
                    skips.note(f"{name} ({config.model})", exc)
                else:
                    batches[name] = cases[name].batches
            stats = interleave(cases, repeats=repeats, min_time=min_time, warmup=2, settle=settle)
        row = _row(config, stats, batches)
        results.append(row)
        log(f"  {config.label}: " + ", ".join(f"{k} {v['ratio']:.2f}" for k, v in row["peers"].items()
                                                if v["ratio"] is not None))
    return results


def memory(names, configs, skips, *, epochs=2):
    """Per batch in steady state: tracemalloc peak above the epoch's start, bytes retained, minor faults.

    Only numpy-based peers (tracemalloc sees numpy's buffers, not torch's or
    XLA's). The epoch includes its permutation (8 bytes a row), which is
    per epoch, not per step.
    """
    rows = []
    for config in configs:
        row = dict(config.as_dict(), label=config.label, peers={})
        for name in [n for n in PEERS if n in names and (n.startswith("nanonet") or n.startswith("numpy"))]:
            try:
                epoch = make_peer(name, config)
            except PeerUnavailable as exc:
                skips.note(f"{name} ({config.model})", exc)
                continue
            peak, retained, faults = memory_per_call(epoch, calls=epochs, warmup=epochs)
            row["peers"][name] = {"peak_bytes": peak, "retained_bytes": retained,
                                  "minor_faults_per_batch": faults / epoch.batches}
        rows.append(row)
    return rows


def table(rows):
    """Ratios to ``numpy`` per configuration (lower is faster), numpy's time per batch in brackets."""
    names = [n for n in PEERS if any(n in r["peers"] for r in rows)]
    body = []
    for r in rows:
        cells = [r["label"]]
        for name in names:
            peer = r["peers"].get(name)
            if peer is None:
                cells.append("—")
            elif name == REFERENCE:
                cells.append(f"1.00 ({fmt_time(peer['median'])})")
            else:
                cells.append(ratio_versus(peer, r["peers"][REFERENCE], peer["ratio"]) if REFERENCE in r["peers"]
                             else f"{peer['ratio']:.2f}")
        body.append(cells)
    return text_table(["model loss optimizer dtype batch"] + names, body)


def memory_table(rows):
    body = [[r["label"], name, f"{p['peak_bytes'] / 1024:.1f} KiB", str(p["retained_bytes"]),
             f"{p['minor_faults_per_batch']:.2f}"] for r in rows for name, p in r["peers"].items()]
    return text_table(["configuration", "peer", "peak above epoch start", "bytes retained",
                       "minor faults / batch"], body)
