"""The workloads of ``nanonet bench``: each returns plain dicts for the JSON.

- ``training_steps``: one training step of ``in -> H -> H -> 1`` per peer,
  per size and dtype, with ratios to the seed and FLOP/s against the ceiling;
- ``gemm_ceiling``: large-matmul GFLOP/s, the ceiling a step can approach;
- ``seed_run``: the seed's whole 100-epoch run (build, train, test loss);
- ``layer_passes``: forward and backward of each layer type;
- ``gradient_checks``: nanonet's checker against torch's ``gradcheck``;
- ``memory``: tracemalloc peak and minor page faults per step.
"""

import time

import numpy as np

from . import peers as peers_mod
from .timing import Stats, interleave, is_noisy, memory_per_call, ratio_spread

FULL_SIZES = [(500, 10, 64), (64, 32, 32), (500, 10, 256), (1024, 256, 1024), (4096, 512, 2048)]
QUICK_SIZES = [(500, 10, 64), (64, 32, 32)]
DTYPES = ("float64", "float32")


class Skips(dict):
    """peer name -> why it was skipped (the first reason seen)."""

    def note(self, name, exc):
        self.setdefault(name, str(exc))


def build_steps(names, problem, skips):
    steps = {}
    for name in names:
        try:
            steps[name] = peers_mod.make_step(name, problem)
        except peers_mod.PeerUnavailable as exc:
            skips.note(name, exc)
    return steps


def with_ratios(stats, reference="seed", flops=None, ceiling=None):
    """name -> dict of Stats fields, plus ratio to ``reference`` (and GFLOP/s).

    A ratio comes with ``ratio_spread`` and ``noisy`` (see ``timing.ratio_spread``).
    """
    ref = stats.get(reference)
    out = {}
    for name, st in stats.items():
        row = st.as_dict()
        row["ratio"] = st.median / ref.median if ref else None
        if ref and name != reference:
            row["ratio_spread"] = ratio_spread(st, ref)
            row["noisy"] = is_noisy(row["ratio"], row["ratio_spread"])
        if flops:
            row["gflops"] = flops / st.median / 1e9
            row["of_ceiling"] = row["gflops"] / ceiling if ceiling else None
        out[name] = row
    return out


def gemm_ceiling(size=2048, repeats=5, torch_too=True, settle=0.0):
    """Median GFLOP/s of a ``size``-square matmul, per dtype (numpy; torch if present)."""
    result = {}
    rng = np.random.default_rng(0)
    for dt in DTYPES:
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        out = np.empty((size, size), dt)
        cases = {"numpy": lambda: np.matmul(a, b, out=out)}
        if torch_too:
            try:
                torch = peers_mod.import_optional("torch")
                torch.set_num_threads(peers_mod.blas_threads())
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                cases["torch"] = lambda: torch.matmul(ta, tb)
            except peers_mod.PeerUnavailable:
                pass
        stats = interleave(cases, repeats=repeats, min_time=0.05, warmup=1, settle=settle)
        flops = 2.0 * size ** 3
        result[dt] = {"size": size, "gflops": flops / stats["numpy"].median / 1e9,
                      "peers": {k: flops / v.median / 1e9 for k, v in stats.items()}}
    return result


def training_steps(names, sizes, skips, ceiling, *, repeats, min_time, dtypes=DTYPES, settle=0.0, workers=None,
                   log=print, deadline=None):
    """One result dict per (size, dtype): the peers' per-step Stats and ratios.

    For a step of at least 1 GFLOP the ceiling is measured again, interleaved
    with the peers: the step's largest matmul, ``(N, H) @ (H, H)``, alone.
    Its GFLOP/s is what every FLOP of the step would reach at best; the
    peers' ``of_ceiling`` is their GFLOP/s over it. Smaller steps are
    compared with the square-matmul ceiling of ``gemm_ceiling``.

    With ``workers`` (an ``isolated.Workers``) each peer runs in its own
    process; the ceiling's matmul runs here, in the same rounds.
    """
    results = []
    for n, n_in, hidden in sizes:
        for dt in dtypes:
            flops = peers_mod.flops_per_step(n, n_in, hidden)
            big = flops >= 1e9
            if workers is None:
                cases = build_steps(names, peers_mod.Problem.make(n, n_in, hidden, dt, rng=0), skips)
            else:
                cases = {}
            if big:
                a, b = np.ones((n, hidden), dt), np.ones((hidden, hidden), dt)
                out = np.empty((n, hidden), dt)
                cases["gemm (N,H)@(H,H)"] = lambda a=a, b=b, out=out: np.matmul(a, b, out=out)
            rounds = max(3, repeats // 2) if flops >= 2e10 else repeats
            if workers is None:
                stats = interleave(cases, repeats=rounds, min_time=min_time, warmup=1 if big else 3, settle=settle,
                                   deadline=deadline)
            else:
                stats = workers.interleave((n, n_in, hidden), dt, skips, repeats=rounds, min_time=min_time,
                                           warmup=1 if big else 3, settle=settle, local=cases)
            gemm = stats.pop("gemm (N,H)@(H,H)", None)
            if gemm is not None:
                ceil, basis = 2.0 * n * hidden * hidden / gemm.median / 1e9, f"({n},{hidden})@({hidden},{hidden})"
            else:
                ceil = ceiling.get(dt, {}).get("gflops") if ceiling else None
                basis = f"{ceiling[dt]['size']}-square matmul" if ceil else None
            row = {"size": f"{n}x{n_in}x{hidden}", "n": n, "n_in": n_in, "hidden": hidden, "dtype": dt,
                   "flops": flops, "ceiling_gflops": ceil, "ceiling_basis": basis,
                   "peers": with_ratios(stats, flops=flops, ceiling=ceil)}
            results.append(row)
            log(f"  step {row['size']} {dt}: " + ", ".join(
                f"{k} {'noisy' if v.get('noisy') else format(v['ratio'], '.2f')}"
                for k, v in row["peers"].items() if v["ratio"] is not None)
                + (f"; nanonet {row['peers']['nanonet']['of_ceiling']:.0%} of ceiling"
                   if ceil and "nanonet" in row["peers"] else ""))
    return results


def seed_run(names, skips, *, repeats, epochs=100, settle=0.0, deadline=None):
    """The seed's whole run: build the model, ``epochs`` full-batch steps, test loss.

    Uses the demo's data (``make_regression``, 500 x 10) and sizes (64, 64),
    learning rate 0.05.
    """
    from ..datasets import make_regression

    x, y, _, _ = make_regression(rng=0)
    base = peers_mod.Problem.make(500, 10, 64, np.float64, rng=0)
    problem = peers_mod.Problem(x, y, base.weights, base.biases, lr=0.05)
    runs = {}
    for name in names:
        try:
            peers_mod.make_step(name, problem)
        except peers_mod.PeerUnavailable as exc:
            skips.note(name, exc)
            continue

        def run(name=name):
            step = peers_mod.make_step(name, problem)
            for _ in range(epochs):
                step()

        runs[name] = run
    stats = interleave(runs, repeats=repeats, min_time=0.0, warmup=1, settle=settle, deadline=deadline)
    return {"epochs": epochs, "size": "500x10x64", "dtype": "float64", "peers": with_ratios(stats)}


def memory(names, sizes, skips, *, steps=20):
    """Per step: tracemalloc peak above the step's start, and minor page faults.

    Only numpy-based peers are measured (tracemalloc sees numpy's buffers,
    not torch's or XLA's).
    """
    results = []
    for n, n_in, hidden in sizes:
        problem = peers_mod.Problem.make(n, n_in, hidden, np.float64, rng=0)
        row = {"size": f"{n}x{n_in}x{hidden}", "dtype": "float64", "peers": {}}
        for name in [m for m in names if m in ("nanonet", "seed", "numpy-inplace")]:
            step = build_steps([name], problem, skips).get(name)
            if step is None:
                continue
            peak, retained, faults = memory_per_call(step, calls=steps)
            row["peers"][name] = {"peak_bytes": peak, "retained_bytes": retained, "minor_faults_per_step": faults}
        results.append(row)
    return results


def gradient_checks(skips, *, repeats, quick, log=print):
    """nanonet's ``check_gradients`` on the seed model against torch's ``gradcheck``."""
    import nanonet as nn
    from ..datasets import make_regression

    x, y, _, _ = make_regression(rng=0)
    base = peers_mod.Problem.make(500, 10, 64, np.float64, rng=0)
    problem = peers_mod.Problem(x, y, base.weights, base.biases)
    model, loss_fn = peers_mod.build_nanonet(problem)
    n_elements = x.size + sum(p.size for p in model.parameters())
    modes = ["projected"] if quick else ["projected", "full"]
    cases, checked = {}, {}
    for mode in modes + ["fast"]:
        try:
            nn.check_gradients(nn.Linear(2, 2, rng=0), np.ones((3, 2)), mode=mode, rng=0)
        except ValueError:
            continue  # this nanonet has no such mode
        cases[f"nanonet {mode}"] = lambda mode=mode: checked.setdefault(
            f"nanonet {mode}", nn.check_gradients(model, x, y, loss_fn=loss_fn, mode=mode, rng=0).ok)
    try:
        torch = peers_mod.import_optional("torch")
        torch.set_num_threads(peers_mod.blas_threads())
        inputs = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True)
                       for a in [x] + problem.copy_params())
        ty = torch.from_numpy(y)

        def fn(x, W0, W1, W2, b0, b1, b2):
            out = torch.relu(torch.relu(x @ W0 + b0) @ W1 + b1) @ W2 + b2
            return torch.nn.functional.mse_loss(out, ty)

        for label, fast in ([("torch fast_mode", True)] if quick else
                            [("torch default", False), ("torch fast_mode", True)]):
            cases[label] = lambda fast=fast, label=label: checked.setdefault(
                label, torch.autograd.gradcheck(fn, inputs, fast_mode=fast))
    except peers_mod.PeerUnavailable as exc:
        skips.note("torch", exc)
    stats = {}
    for _ in range(repeats):  # interleaved by hand: these take seconds
        for name, fn_ in cases.items():
            start = time.perf_counter()
            fn_()
            stats.setdefault(name, []).append(time.perf_counter() - start)
    stats = {k: Stats.of(v, 1) for k, v in stats.items()}
    rows = with_ratios(stats, reference="torch default" if "torch default" in stats else None)
    for name, row in rows.items():
        row["passed"] = bool(checked.get(name))
        if "torch default" in stats:
            row["speedup_vs_torch_default"] = stats["torch default"].median / stats[name].median
    log("  gradcheck: " + ", ".join(f"{k} {v['median']:.3g} s" for k, v in rows.items()))
    return {"model": "500x10x64 seed MLP, MSE", "elements": n_elements, "peers": rows}

