"""Where a nanonet training step spends its time (cProfile), next to the seed's numpy.

    python benchmarks/profile_step.py 64x32x32 [float64] [steps]

Prints the functions that take the most internal time (their own Python
plus the numpy calls they make: cProfile does not list ufunc calls apart).
Run from the repository root with ``PYTHONPATH=.`` or with nanonet installed.
"""

import cProfile
import pstats
import sys

import numpy as np

from nanonet.bench import peers


def main(argv):
    size = argv[1] if len(argv) > 1 else "64x32x32"
    dtype = argv[2] if len(argv) > 2 else "float64"
    steps = int(argv[3]) if len(argv) > 3 else 3000
    n, n_in, hidden = (int(v) for v in size.split("x"))
    problem = peers.Problem.make(n, n_in, hidden, np.dtype(dtype), rng=0)
    step = peers.make_step("nanonet", problem)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    print(f"\ncProfile of {steps} nanonet steps at {size} {dtype} (tottime: time inside each function itself):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main(sys.argv)
