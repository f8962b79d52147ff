"""``nanonet bench``: run the suite, print the table, write JSON / PNG / docs.

Example (the quick suite, nanonet and the seed only):

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--quick", "--peers", "nanonet,seed", "--only", "steps"])
    >>> args.quick, args.peers
    (True, 'nanonet,seed')
"""

import contextlib
import datetime
import sys
import time

from .._extras import missing
from . import baseline, conv, isolated, layers, minibatch, minibatch_problem, peers, report, sequence, workloads

PARTS = ("steps", "minibatch", "seed-run", "layers", "gradcheck", "memory", "conv", "seq")
# A first look: the seed-shaped steps, 64x32x32 among them (a mini-batch); the seed run (100 steps at
# 500x10x64) and the mini-batch grid (its own worker processes) take too long for one.
QUICK_PARTS = ("steps",)
QUICK_BUDGET_S = 5.0  # no new case (or round) starts after this: with imports and the report, under 15 s
QUICK_BATCHES = (1, 32, 512)
#: parts run only when named in --only: "distributed" launches mpiexec (see nanonet.bench.distributed).
OPT_IN_PARTS = ("distributed",)


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a first look in a few seconds: the training steps at small sizes, each peer in "
                             f"its own process with one BLAS thread (unless --threads), no new case "
                             f"{QUICK_BUDGET_S:g} s after the first (under 15 s on 2 cores)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of ratio against size (needs matplotlib)")
    parser.add_argument("--write-docs", nargs="?", const="docs/performance.md", metavar="PATH",
                        help="regenerate the results block of docs/performance.md (or PATH)")
    parser.add_argument("--peers", default=None,
                        help=f"comma-separated peers (default: all): seed-shaped steps {', '.join(peers.PEERS)}; "
                             f"mini-batch family {', '.join(minibatch.PEERS)}")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated parts to run (default: all of {', '.join(PARTS)}; "
                             f"with --quick: {', '.join(QUICK_PARTS)}; also {', '.join(OPT_IN_PARTS)}, "
                             f"only when named)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"start no new case after SECONDS (default {QUICK_BUDGET_S:g} with --quick, "
                             f"else none; 0: none)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per case")
    parser.add_argument("--sizes", default=None, metavar="NxINxH,...",
                        help="training-step sizes, e.g. 500x10x64,1024x256x1024 (default: the suite's)")
    parser.add_argument("--dtypes", default="float64,float32", help="training-step dtypes (default both)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for the run (numpy's via threadpoolctl, torch's alike); "
                             "default: numpy's current count")
    parser.add_argument("--isolate", action="store_true",
                        help="run each peer's training step in its own process (interleaved all the same)")
    parser.add_argument("--from-json", metavar="PATH",
                        help="do not run: report (table, --plot, --write-docs) from results saved with --json")
    parser.add_argument("--baseline", metavar="REV", action="append", default=[],
                        help="also time nanonet as it was at git revision REV (before/after in one run)")
    family = parser.add_argument_group("the mini-batch steps family (--only minibatch)")
    family.add_argument("--models", default=",".join(minibatch_problem.MODELS),
                        help="models: mlp (64-128-10, the whole grid), residual (a Graph), norm "
                             "(LayerNorm, GELU, Dropout); the last two run ce/adam only")
    family.add_argument("--batches", default=None, metavar="B,...",
                        help=f"batch sizes (default {','.join(map(str, minibatch_problem.BATCH_SIZES))}; "
                             f"--quick: {','.join(map(str, QUICK_BATCHES))})")
    family.add_argument("--losses", default=",".join(minibatch_problem.LOSSES), help="ce, mse")
    family.add_argument("--optimizers", default=",".join(minibatch_problem.OPTIMIZERS), help="sgd (momentum), adam")
    parser.add_argument("--profile", action="store_true",
                        help="do not time: print numpy and Python-level calls per step, the overhead per layer "
                             "in µs and the allocations per step of nanonet's mini-batch step (the family's "
                             "configurations, filtered by --models, --batches, --losses, --optimizers, --dtypes)")


def _parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        raise SystemExit(f"nanonet bench: unknown {what} {bad}; choose from {list(allowed)}")
    return items


def _parse_sizes(text):
    try:
        sizes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 3 or min(s) < 1 for s in sizes):
        raise SystemExit(f"nanonet bench: --sizes expects NxINxH[,NxINxH...], e.g. 500x10x64, got {text!r}")
    return sizes


def run_suite(*, quick=False, names=tuple(peers.PEERS), parts=PARTS, repeats=None, sizes=None,
              dtypes=workloads.DTYPES, isolate=False, baseline_revs=(), log=print, budget_s=None, mini_names=None,
              mini_configs=None, threads=None):
    """Run the chosen parts; returns the result dict (what ``--json`` writes).

    ``quick``: few repeats of short samples, and no GEMM ceiling (a
    few-millisecond ceiling is not one to compare against). ``budget_s``:
    after that many seconds no new case starts; the cases not run are
    listed in ``meta["not_run"]`` and at the top of the report.
    ``mini_names`` and ``mini_configs`` choose the peers and configurations of
    the mini-batch family (default: every peer; the grid, or a small one with ``quick``).
    ``threads`` limits the BLAS (and XLA) threads of ``isolate``'s worker processes too.
    """
    asked_repeats = repeats
    repeats = repeats or (5 if quick else 9)
    min_time = 0.003 if quick else 0.05
    # Before each sample, let the worker threads the previous case left spinning
    # (OpenBLAS busy-waits up to ~0.1 s after a call, OpenMP and XLA a little) go idle.
    settle = 0.01 if quick else 0.12
    # The budget counts from the end of the first case, which always runs (a quick look shows the seed's
    # size) and, with isolate, includes starting the peers' processes and importing their frameworks.
    clock = {"deadline": time.monotonic() + budget_s if budget_s else None}
    not_run = []

    def time_left(what, first=False):
        if clock["deadline"] is not None and time.monotonic() > clock["deadline"] and not first:
            not_run.append(f"{what} (the {budget_s:g} s budget was spent)")
            return False
        return True

    skips = workloads.Skips()
    result = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "quick": quick, "isolated_steps": isolate, "threads": threads, "settle_s": settle, "repeats": repeats, "min_sample_s": min_time, "peers": list(names), "parts": list(parts),
                       "command": "nanonet bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
                       else "nanonet.bench.cli.run_suite"},
              "skipped": skips}
    if not quick:
        log("GEMM ceiling ...")
        result["gemm_ceiling"] = workloads.gemm_ceiling(2048, repeats=7, torch_too="torch" in names, settle=settle)
    if "steps" in parts:
        log("training steps ...")
        sizes = sizes or (workloads.QUICK_SIZES if quick else workloads.FULL_SIZES)
        result["steps"] = []
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(names, baseline_revs, threads=threads)) \
                if isolate else None
            for i, size in enumerate(sizes):  # one case at a time, so that the budget is checked between them
                for j, dt in enumerate(dtypes):
                    first = i == j == 0
                    if time_left(f"training step {'x'.join(map(str, size))} {dt}", first=first):
                        result["steps"] += workloads.training_steps(
                            names, [size], skips, result.get("gemm_ceiling"), dtypes=(dt,), repeats=repeats,
                            min_time=min_time, settle=settle, workers=workers, log=log,
                            deadline=None if first else clock["deadline"])
                        if first and budget_s:
                            clock["deadline"] = time.monotonic() + budget_s
    if "minibatch" in parts and time_left("mini-batch steps"):
        log("mini-batch steps ...")
        mini_names = list(minibatch.PEERS) if mini_names is None else mini_names
        configs = mini_configs or minibatch_problem.grid(models=("mlp",), losses=("ce",), optimizers=("adam",),
                                                         dtypes=dtypes, batches=QUICK_BATCHES[:2]) if quick \
            else mini_configs or minibatch_problem.grid(dtypes=dtypes)
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(mini_names, baseline_revs, family="minibatch",
                                                           threads=threads)) \
                if isolate else None
            result["minibatch"] = minibatch.minibatch_steps(mini_names, configs, skips, repeats=repeats,
                                                            min_time=min_time, settle=settle, workers=workers,
                                                            log=log)
        memory_configs = configs[:1] if quick else \
            [c for c in configs if c.model == "mlp" and c.batch in (32, 512)][:4] or configs[:1]
        result["minibatch_memory"] = minibatch.memory(mini_names, memory_configs, skips)
    if "seed-run" in parts and time_left("seed run"):
        log("seed run ...")
        result["seed_run"] = workloads.seed_run(names, skips, repeats=3 if quick else repeats, settle=settle,
                                                deadline=clock["deadline"])
    if "layers" in parts and time_left("layers"):
        log("layers ...")
        result["layers"] = layers.layer_passes(skips, n=500, hidden=64 if quick else 256,
                                               repeats=3 if quick else repeats, min_time=min_time, settle=settle,
                                               log=log)
    if "gradcheck" in parts and time_left("gradient checks"):
        log("gradient checks ...")
        result["gradcheck"] = workloads.gradient_checks(skips, repeats=1 if quick else 3, quick=quick, log=log)
    if "memory" in parts and time_left("memory"):
        log("memory ...")
        sizes = workloads.QUICK_SIZES[:1] if quick else [(500, 10, 64), (1024, 256, 1024)]
        result["memory"] = workloads.memory(names, sizes, skips)
    if "conv" in parts and time_left("conv steps"):
        log("conv steps ...")
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(conv.peers_for(names), baseline_revs, threads=threads)) \
                if isolate else None
            result["conv"] = conv.conv_steps(names, skips, dtypes=dtypes, repeats=repeats, min_time=min_time,
                                             settle=settle, problems=("digits",) if quick else tuple(conv.PROBLEMS),
                                             log=log, workers=workers)
    if "distributed" in parts:
        log("data-parallel training (mpiexec) ...")
        from . import distributed

        result["distributed"] = distributed.run(quick=quick, repeats=asked_repeats, skips=skips, log=log)
    if "seq" in parts and time_left("sequence models"):
        log("sequence models ...")
        seq_names = [n for n in names if n in sequence.FACTORIES]
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(seq_names, threads=threads)) if isolate else None
            result["seq"] = sequence.seq_steps(seq_names, skips, quick=quick, dtypes=dtypes, repeats=repeats,
                                               min_time=min_time, settle=settle, workers=workers, log=log)
    result["meta"]["machine"] = report.machine_info()
    result["meta"]["not_run"] = not_run
    result["skipped"] = dict(skips)
    return result


@contextlib.contextmanager
def _blas_threads(count, required=True):
    """Limit numpy's BLAS to ``count`` threads for the run (threadpoolctl), if asked.

    Not ``required`` (``--quick``'s own default of one thread, where every
    timed step runs in a worker that takes the limit from its environment):
    without threadpoolctl this process keeps its threads and the run goes on.
    """
    if count is None:
        yield
        return
    if count < 1:
        raise SystemExit(f"nanonet bench: --threads must be at least 1, got {count}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if not required:
            yield
            return
        raise SystemExit(f"nanonet bench: {missing('--threads', 'threadpoolctl', 'bench')}") from None
    with threadpool_limits(limits=count, user_api="blas"):
        yield


def _load(path):
    import json

    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"nanonet bench: cannot read results from {path}: {exc}")
    for name in (n for row in result.get("steps", []) for n in row["peers"]):
        peers.PEERS.setdefault(name, None)  # a baseline peer of that run, shown in the table
    for name in (n for row in result.get("minibatch", []) for n in row["peers"]):
        minibatch.PEERS.setdefault(name, None)
    return result


def main(args):
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit(f"nanonet bench: --repeats must be at least 1, got {args.repeats}")
    if args.from_json:
        return _report(_load(args.from_json), args)
    required = args.threads is not None  # asked for, not --quick's default
    if args.quick and args.threads is None:
        args.threads = 1  # each peer in its own process, one BLAS thread: spinning thread pools disturb 2 cores
    every = list(dict.fromkeys([*peers.PEERS, *minibatch.PEERS]))
    chosen = every if args.peers is None else _parse_list(args.peers, every, "peer")
    extra = [baseline.register(rev) for rev in args.baseline]
    names = [n for n in chosen if n in peers.PEERS] + extra
    mini_names = [n for n in chosen if n in minibatch.PEERS] + [n.replace("nanonet@", "nanonet-fit@") for n in extra]
    parts = _parse_list(args.only or ",".join(QUICK_PARTS if args.quick else PARTS), PARTS + OPT_IN_PARTS, "part")
    budget = args.budget if args.budget is not None else (QUICK_BUDGET_S if args.quick else None)
    if budget is not None and budget < 0:
        raise SystemExit(f"nanonet bench: --budget must be >= 0 seconds, got {args.budget}")
    if "seed" not in names:
        names.insert(0, "seed")  # every ratio is to the seed
    if minibatch.REFERENCE not in mini_names:
        mini_names.insert(0, minibatch.REFERENCE)  # and in the mini-batch family, to plain numpy
    dtypes = _parse_list(args.dtypes, workloads.DTYPES, "dtype")
    configs = _mini_configs(args, dtypes)
    if args.profile:
        from . import profile

        with _blas_threads(args.threads, required):
            return profile.main(configs, quick=args.quick)
    with _blas_threads(args.threads, required):
        result = run_suite(quick=args.quick, names=names, parts=parts, repeats=args.repeats,
                           sizes=_parse_sizes(args.sizes) if args.sizes else None, dtypes=dtypes,
                           isolate=args.isolate or args.quick, baseline_revs=args.baseline, budget_s=budget or None,
                           log=lambda s: print(s, file=sys.stderr), mini_names=mini_names, mini_configs=configs,
                           threads=args.threads)
    return _report(result, args)


def _mini_configs(args, dtypes):
    """The mini-batch configurations the options choose (None: the default grid of the mode)."""
    explicit = args.batches or args.models != ",".join(minibatch_problem.MODELS) \
        or args.losses != ",".join(minibatch_problem.LOSSES) \
        or args.optimizers != ",".join(minibatch_problem.OPTIMIZERS)
    if not explicit and not args.profile:
        return None
    try:
        batches = tuple(int(b) for b in args.batches.split(",")) if args.batches else \
            (QUICK_BATCHES if args.quick or args.profile else minibatch_problem.BATCH_SIZES)
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise SystemExit(f"nanonet bench: --batches expects positive ints, e.g. 1,32,512, got {args.batches!r}")
    return minibatch_problem.grid(models=_parse_list(args.models, minibatch_problem.MODELS, "model"),
                                  losses=_parse_list(args.losses, minibatch_problem.LOSSES, "loss"),
                                  optimizers=_parse_list(args.optimizers, minibatch_problem.OPTIMIZERS, "optimizer"),
                                  dtypes=dtypes, batches=batches)


def _report(result, args):
    print(report.render(result))
    if args.json and not args.from_json:
        report.write_json(result, args.json)
    if args.plot:
        try:
            report.plot(result, args.plot)
        except ImportError as exc:
            print(f"nanonet bench: no plot written, matplotlib is missing ({exc})", file=sys.stderr)
    if args.write_docs:
        report.write_docs(result, args.write_docs)
    return 0
