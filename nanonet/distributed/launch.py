"""Start ``mpiexec -n N python ...`` from Python, with a timeout that ends every process it started.

Used by the benchmarks (``nanonet bench --only distributed``) and the tests.
``mpiexec`` is looked up next to the running interpreter first (a virtual
environment's ``bin/``, where the ``mpich`` wheel puts it), then on ``PATH``.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

from .._extras import install_hint
from .runtime import LAUNCHER_VARIABLES


def find_mpiexec():
    """The path of ``mpiexec`` (the interpreter's folder first, then PATH), or None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


def unavailable_reason():
    """Why multi-process runs cannot start here (a sentence), or None when they can."""
    if importlib.util.find_spec("mpi4py") is None:
        return f"mpi4py is not installed ({install_hint('mpi')})"
    if find_mpiexec() is None:
        return "no mpiexec next to the Python interpreter or on PATH (pip install mpich, or install an MPI)"
    return None


class Finished:
    """What :func:`run` returns: ``returncode`` (None after a timeout), ``stdout``, ``stderr``, ``seconds``."""

    def __init__(self, returncode, stdout, stderr, seconds, timed_out):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.timed_out = seconds, timed_out

    def __repr__(self):
        return f"Finished(returncode={self.returncode}, seconds={self.seconds:.2f}, timed_out={self.timed_out})"


#: MPICH's ranks poll while they wait; with more ranks than free cores, let a waiting rank sleep now and then.
YIELD_WHEN_WAITING = {"MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1", "MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT": "64"}


def run(n, argv, *, timeout, env=None, threads=1, cwd=None, yield_cpu=None):
    """Run ``mpiexec -n n python *argv``; end the whole process group if it outlives ``timeout`` seconds.

    The ranks get ``threads`` BLAS/OpenMP threads each (so ``n`` ranks share
    the cores instead of oversubscribing them) and the caller's ``sys.path``
    as ``PYTHONPATH`` (so they import the same nanonet). A launcher's
    variables inherited from this process are removed. ``yield_cpu`` (default:
    when ``n`` exceeds the cores) sets :data:`YIELD_WHEN_WAITING`: three ranks
    on two cores then run ~3x faster, at the cost of a little latency.
    """
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError(unavailable_reason())
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if yield_cpu if yield_cpu is not None else n > (os.cpu_count() or 1):
        env.update(YIELD_WHEN_WAITING)
    start = time.perf_counter()
    proc = subprocess.Popen([mpiexec, "-n", str(n), sys.executable, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Finished(proc.returncode, out, err, time.perf_counter() - start, False)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Finished(None, out, err, time.perf_counter() - start, True)
