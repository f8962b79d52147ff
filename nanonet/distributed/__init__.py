"""Data-parallel training over MPI (mpi4py): the same script on 1 process, ``mpiexec -n 4`` or ``srun``.

    mpiexec -n 2 python train.py        # pip install ".[mpi]" gives mpi4py and mpiexec

In ``train.py``, ``nn.fit(..., distributed=True)`` trains on every rank: each
passes the same data and seed, takes its share of every batch, and the
gradients are summed over the ranks, so the weights equal a single process's
(to rounding, ~1e-15). Without a launcher it is plain single-process training
and mpi4py is not imported. See docs/distributed.md.

- the process group: :func:`init`, :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`;
- :class:`DataParallel`: the options of ``fit(distributed=...)``;
- :class:`GradientReducer` and :func:`broadcast_state`: the parts, for a loop of your own;
- :class:`SyncBatchNorm`, :class:`SyncBatchNorm2d`, :func:`convert_sync_batchnorm`: batch statistics over
  all ranks.
"""

from .consistency import broadcast_state, check_same
from .reducer import GradientReducer
from .runtime import barrier, collective_error, init, is_main, launched, rank, world_size
from .sync_batchnorm import SyncBatchNorm, SyncBatchNorm2d, SyncStats, convert_sync_batchnorm
from .trainer import DataParallel

__all__ = [
    "DataParallel", "GradientReducer", "SyncBatchNorm", "SyncBatchNorm2d", "SyncStats", "barrier", "broadcast_state", "check_same",
    "collective_error", "convert_sync_batchnorm", "init", "is_main", "launched", "rank", "world_size",
]
