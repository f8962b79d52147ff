"""The process group: ``init()``, ``rank()``, ``world_size()``, ``is_main()``, ``barrier()``.

Under an MPI launcher (``mpiexec``, ``srun``) the group is mpi4py's
``COMM_WORLD``; otherwise it is this one process (world size 1) and mpi4py
is never imported. A launcher is recognised by the variables it puts in
each process's environment (``PMI_RANK``/``PMI_SIZE`` from MPICH's hydra and
Slurm's PMI, ``PMIX_RANK``, ``OMPI_COMM_WORLD_SIZE`` from Open MPI).

**No hangs.** ``init()`` (with more than one process) installs a
``sys.excepthook``: an exception that escapes on one rank prints that rank's
traceback once and calls ``MPI_Abort``, which makes the launcher end every
rank. Errors that every rank raises together (:func:`collective_error`,
e.g. models that differ across ranks) are printed by rank 0 only and the
processes exit normally with status 1.
"""

import os
import sys
import traceback

import numpy as np

from .._extras import install_hint

LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK")

_STATE = {"comm": None}


def launched():
    """True when this process was started by an MPI launcher (see the module docstring)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


class LocalComm:
    """The process group of a single process: every collective is a no-op."""

    rank = 0
    size = 1

    def allreduce_sum(self, array):
        return array

    def iallreduce_sum(self, array):
        return None

    def wait_all(self, requests):
        pass

    def test_all(self, requests):
        pass

    def bcast(self, array, root=0):
        return array

    def bcast_text(self, text, root=0):
        return text

    def allgather_text(self, text):
        return [text]

    def barrier(self):
        pass

    def abort(self, code=1):
        raise SystemExit(code)

    def __repr__(self):
        return "LocalComm(rank=0, size=1)"


class MPIComm:
    """mpi4py's communicator behind the few collectives nanonet uses (buffers only, never pickle)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self._mpi, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allreduce_sum(self, array):
        """Sum ``array`` (contiguous) over the ranks, in place."""
        self.comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
        return array

    def iallreduce_sum(self, array):
        """Start summing ``array`` in place; returns the request (see ``wait_all``)."""
        return self.comm.Iallreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)

    def wait_all(self, requests):
        self._mpi.Request.Waitall(requests)

    def test_all(self, requests):
        """Let pending requests progress (MPICH moves them only inside MPI calls)."""
        self._mpi.Request.Testall(requests)

    def bcast(self, array, root=0):
        self.comm.Bcast(array, root=root)
        return array

    def bcast_text(self, text, root=0):
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8) if self.rank == root else None
        length = np.array([0 if data is None else data.size], dtype=np.int64)
        self.comm.Bcast(length, root=root)
        if data is None:
            data = np.empty(int(length[0]), dtype=np.uint8)
        self.comm.Bcast(data, root=root)
        return data.tobytes().decode("utf-8")

    def allgather_text(self, text):
        """Every rank's ``text``, as a list indexed by rank."""
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        lengths = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([data.size], dtype=np.int64), lengths)
        out = np.empty(int(lengths.sum()), dtype=np.uint8)
        self.comm.Allgatherv(data, [out, lengths])
        ends = np.cumsum(lengths)
        return [out[end - n:end].tobytes().decode("utf-8") for n, end in zip(lengths, ends)]

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)

    def __repr__(self):
        return f"MPIComm(rank={self.rank}, size={self.size})"


def init():
    """Join the process group (once; later calls return the same one) and return it.

    Under an MPI launcher: imports mpi4py (asking for ``MPI_THREAD_FUNNELED``
    when it is not imported yet: small collectives are several times faster
    than under the default ``MULTIPLE``) and wraps ``COMM_WORLD``; otherwise a
    :class:`LocalComm` of world size 1, without importing mpi4py.

    Example:
        >>> from nanonet import distributed as dist
        >>> dist.init().size, dist.rank(), dist.world_size(), dist.is_main()
        (1, 0, 1, True)
    """
    if _STATE["comm"] is None:
        _STATE["comm"] = _mpi_comm() if launched() else LocalComm()
        if _STATE["comm"].size > 1:
            _install_excepthook()
    return _STATE["comm"]


def _mpi_comm():
    try:
        import mpi4py
    except ImportError:
        raise ImportError("nanonet.distributed: this process was started by an MPI launcher, but mpi4py is "
                          f"not installed; install nanonet's `mpi` extra: {install_hint('mpi')}") from None
    if "mpi4py.MPI" not in sys.modules:
        mpi4py.rc.thread_level = "funneled"
    from mpi4py import MPI

    return MPIComm(MPI.COMM_WORLD)


def comm():
    """The process group (``init()`` on first use)."""
    return _STATE["comm"] or init()


def rank():
    """This process's rank, 0 .. world_size() - 1."""
    return comm().rank


def world_size():
    """How many processes train together (1 without a launcher)."""
    return comm().size


def is_main():
    """True on rank 0, the one that prints and writes checkpoints."""
    return comm().rank == 0


def barrier():
    """Wait until every rank gets here."""
    comm().barrier()


# -- failures ---------------------------------------------------------------------------------------------
def collective_error(exc):
    """Mark ``exc`` as raised by every rank at the same point (returns it).

    Such an error needs no abort: every rank leaves the collective part
    together. Uncaught, only rank 0 prints it.
    """
    exc.nanonet_collective = True
    return exc


def is_collective(exc):
    return getattr(exc, "nanonet_collective", False)


def abort_on(exc, where, group=None):
    """Print ``exc`` once, naming this rank, and end every rank with ``MPI_Abort`` (status 1)."""
    group = group or comm()
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(f"nanonet.distributed: rank {group.rank} of {group.size} failed in {where}; "
                     f"aborting all ranks.\n{text}")
    sys.stderr.flush()
    sys.stdout.flush()
    group.abort(1)
    os._exit(1)  # MPI_Abort returns before the launcher's signal arrives: say nothing more meanwhile


def _excepthook(kind, exc, tb):
    group = _STATE["comm"]
    if group is None or group.size == 1 or issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    if is_collective(exc):
        if group.rank == 0:
            sys.__excepthook__(kind, exc, tb)
        return  # every rank raised it: they exit together, with status 1
    abort_on(exc.with_traceback(tb), "the script")


def _install_excepthook():
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
