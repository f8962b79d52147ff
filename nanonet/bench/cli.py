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

from . import baseline, isolated, layers, peers, report, sequence, workloads

PARTS = ("steps", "seed-run", "layers", "gradcheck", "memory", "seq")


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="small sizes only, few repeats (a few seconds)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of ratio against size (needs matplotlib)")
    parser.add_argument("--write-docs", nargs="?", const="docs/performance.md", metavar="PATH",
                        help="regenerate the results block of docs/performance.md (or PATH)")
    parser.add_argument("--peers", default=",".join(peers.PEERS),
                        help=f"comma-separated peers (default: all of {', '.join(peers.PEERS)})")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: all of {', '.join(PARTS)})")
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
              dtypes=workloads.DTYPES, isolate=False, baseline_revs=(), log=print):
    """Run the chosen parts; returns the result dict (what ``--json`` writes)."""
    repeats = repeats or (3 if quick else 9)
    min_time = 0.003 if quick else 0.05
    # Before each sample, let the worker threads the previous case left spinning
    # (OpenBLAS busy-waits up to ~0.1 s after a call, OpenMP and XLA a little) go idle.
    settle = 0.02 if quick else 0.12
    skips = workloads.Skips()
    result = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "quick": quick, "isolated_steps": isolate, "settle_s": settle, "repeats": repeats, "min_sample_s": min_time, "peers": list(names), "parts": list(parts),
                       "command": "nanonet bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
                       else "nanonet.bench.cli.run_suite"},
              "skipped": skips}
    log("GEMM ceiling ...")
    result["gemm_ceiling"] = workloads.gemm_ceiling(512 if quick else 2048, repeats=3 if quick else 7,
                                                    torch_too="torch" in names, settle=settle)
    if "steps" in parts:
        log("training steps ...")
        sizes = sizes or (workloads.QUICK_SIZES if quick else workloads.FULL_SIZES)
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(names, baseline_revs)) if isolate else None
            result["steps"] = workloads.training_steps(names, sizes, skips, result["gemm_ceiling"], dtypes=dtypes,
                                                       repeats=repeats, min_time=min_time, settle=settle,
                                                       workers=workers, log=log)
    if "seed-run" in parts:
        log("seed run ...")
        result["seed_run"] = workloads.seed_run(names, skips, repeats=repeats, settle=settle)
    if "layers" in parts:
        log("layers ...")
        result["layers"] = layers.layer_passes(skips, n=500, hidden=64 if quick else 256,
                                               repeats=repeats, min_time=min_time, settle=settle, log=log)
    if "gradcheck" in parts:
        log("gradient checks ...")
        result["gradcheck"] = workloads.gradient_checks(skips, repeats=1 if quick else 3, quick=quick, log=log)
    if "memory" in parts:
        log("memory ...")
        sizes = workloads.QUICK_SIZES[:1] if quick else [(500, 10, 64), (1024, 256, 1024)]
        result["memory"] = workloads.memory(names, sizes, skips)
    if "seq" in parts:
        log("sequence models ...")
        seq_names = [n for n in names if n in sequence.FACTORIES]
        with contextlib.ExitStack() as stack:
            workers = stack.enter_context(isolated.Workers(seq_names)) if isolate else None
            result["seq"] = sequence.seq_steps(seq_names, skips, quick=quick, dtypes=dtypes, repeats=repeats,
                                               min_time=min_time, settle=settle, workers=workers, log=log)
    result["meta"]["machine"] = report.machine_info()
    result["skipped"] = dict(skips)
    return result


@contextlib.contextmanager
def _blas_threads(count):
    """Limit numpy's BLAS to ``count`` threads for the run (threadpoolctl), if asked."""
    if count is None:
        yield
        return
    if count < 1:
        raise SystemExit(f"nanonet bench: --threads must be at least 1, got {count}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise SystemExit("nanonet bench: --threads needs threadpoolctl (pip install threadpoolctl)") from None
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
    return result


def main(args):
    if args.from_json:
        return _report(_load(args.from_json), args)
    extra = [baseline.register(rev) for rev in args.baseline]
    names = _parse_list(args.peers, peers.PEERS, "peer") + extra
    parts = _parse_list(args.only, PARTS, "part")
    if "seed" not in names:
        names.insert(0, "seed")  # every ratio is to the seed
    with _blas_threads(args.threads):
        result = run_suite(quick=args.quick, names=names, parts=parts, repeats=args.repeats,
                           sizes=_parse_sizes(args.sizes) if args.sizes else None,
                           dtypes=_parse_list(args.dtypes, workloads.DTYPES, "dtype"),
                           isolate=args.isolate, baseline_revs=args.baseline,
                           log=lambda s: print(s, file=sys.stderr))
    return _report(result, args)


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
