"""Interleaved timing with each peer in its own process (``nanonet bench --isolate``).

In one process the peers disturb each other: torch, JAX and numpy's
OpenBLAS each keep a thread pool whose workers spin after a call, and the
libraries change how the C allocator behaves (so the seed's fresh arrays
cost less in a process that also imported torch than in a user's
numpy-only script). Here each peer lives in a worker process started with
``spawn`` that imports only what it needs; the parent still runs the rounds
interleaved, one sample per worker in turn, while the others wait on their
pipe.
"""

import contextlib
import importlib
import multiprocessing
import os
import random
import time

from .timing import Stats, calibrate


def _make(family, name, arg):
    """The callable a worker times: a seed-shaped step, or a mini-batch epoch (``family``)."""
    from . import minibatch, peers

    if family == "minibatch":
        return minibatch.make_peer(name, arg)
    n, n_in, hidden, dtype = arg
    return peers.make_step(name, peers.Problem.make(n, n_in, hidden, dtype, rng=0))


def _limit_threads(threads):
    """In a fresh worker: ``threads`` BLAS threads (threadpoolctl; torch follows numpy), and as many for XLA."""
    import os

    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                               f"intra_op_parallelism_threads={threads}").strip()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _thread_env(threads):
    """Start workers with ``threads`` BLAS threads in their environment, read when they import numpy.

    So the limit holds without threadpoolctl (a plain ``pip install``); with it,
    ``_limit_threads`` sets the same limit again in the worker.
    """
    if not threads:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker(conn, name, baseline_revs, family="steps", threads=None):
    from . import baseline, peers

    limits = _limit_threads(threads) if threads else None  # noqa: F841 (kept for the worker's life)

    for rev in baseline_revs:
        baseline.register(rev)
    step = None
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, arg = msg
        try:
            if kind == "setup":
                step = _make(family, name, arg)
                conn.send(("ok", None))
            elif kind == "factory":  # another workload: "module:function"(name, spec, dtype) makes the step
                path, spec, dtype = arg
                module, _, function = path.partition(":")
                step = getattr(importlib.import_module(module), function)(name, spec, dtype)
                conn.send(("ok", None))
            elif kind == "warmup":
                for _ in range(arg):
                    step()
                conn.send(("ok", None))
            elif kind == "calibrate":
                conn.send(("ok", calibrate(step, arg)))
            else:  # "sample": arg calls, seconds per call
                start = time.perf_counter()
                for _ in range(arg):
                    step()
                conn.send(("ok", (time.perf_counter() - start) / arg))
        except peers.PeerUnavailable as exc:
            conn.send(("unavailable", str(exc)))
        except Exception as exc:  # report, keep serving
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Workers:
    """One worker process per peer name; ``with Workers(names) as w: w.interleave(...)``."""

    def __init__(self, names, baseline_revs=(), family="steps", threads=None):
        ctx = multiprocessing.get_context("spawn")
        self.procs = {}
        with _thread_env(threads):
            for name in names:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, name, list(baseline_revs), family, threads),
                                   daemon=True)
                proc.start()
                self.procs[name] = (proc, parent)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc, conn in self.procs.values():
            try:
                conn.send(None)
            except OSError:
                pass
        for proc, _ in self.procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()

    def _ask(self, name, kind, arg):
        conn = self.procs[name][1]
        conn.send((kind, arg))
        status, value = conn.recv()
        if status == "error":
            raise RuntimeError(f"peer {name} failed in its worker: {value}")
        return status, value

    def interleave(self, size, dtype, skips, *, repeats, min_time, warmup=2, settle=0.0, seed=0, local=None,
                   factory=None):
        """Like ``timing.interleave`` for the step of ``size`` in every live worker: name -> Stats.

        ``local`` (name -> fn) adds cases run in this process, in the same rounds. ``factory``
        (``"module:function"``) times another workload: each worker builds its step with
        ``function(name, size, dtype)`` instead of the MLP of ``size``.
        """
        setup, kind = ((factory, size, dtype), "factory") if factory else ((*size, dtype), "setup")
        return self.interleave_setup(setup, skips, repeats=repeats, min_time=min_time, warmup=warmup,
                                     settle=settle, seed=seed, local=local, kind=kind)

    def interleave_setup(self, setup, skips, *, repeats, min_time, warmup=2, settle=0.0, seed=0, local=None,
                         kind="setup"):
        """``interleave`` for the callable each worker builds from ``setup`` (see ``_make``; ``kind="factory"``:
        ``setup`` is ``("module:function", spec, dtype)``)."""
        local = local or {}
        live = []
        for name in self.procs:
            status, value = self._ask(name, kind, setup)
            if status == "unavailable":
                skips.note(name, value)
            else:
                live.append(name)
        inner = {}
        for name in live:
            self._ask(name, "warmup", warmup)
            inner[name] = self._ask(name, "calibrate", min_time)[1]
        for name, fn in local.items():
            for _ in range(warmup):
                fn()
            inner[name] = calibrate(fn, min_time)
        samples = {name: [] for name in live + list(local)}
        order = list(samples)
        shuffler = random.Random(seed)
        for _ in range(repeats):
            shuffler.shuffle(order)
            for name in order:
                if settle:
                    time.sleep(settle)
                if name in local:
                    start = time.perf_counter()
                    for _ in range(inner[name]):
                        local[name]()
                    samples[name].append((time.perf_counter() - start) / inner[name])
                else:
                    samples[name].append(self._ask(name, "sample", inner[name])[1])
        return {name: Stats.of(s, inner[name]) for name, s in samples.items()}
