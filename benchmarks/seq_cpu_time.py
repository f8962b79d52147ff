"""CPU time per training step of the sequence workloads (nanonet bench --only seq), and where nanonet's goes.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/seq_cpu_time.py [float32] [lstm,transformer]

On a machine shared with other jobs, wall-clock time measures the neighbours
as much as the code; the CPU time of this process (``time.process_time``,
one BLAS thread for every peer) is much steadier. Peers are interleaved, 3
steps per sample, 7 samples; the median and the minimum are printed, then a
cProfile of nanonet's step (with the CPU clock). Run from the repository
root with ``PYTHONPATH=.`` or with nanonet installed.
"""

import cProfile
import pstats
import sys
import time

import numpy as np

from nanonet.bench import peers, sequence


def main(argv):
    dtype = argv[1] if len(argv) > 1 else "float32"
    workloads = argv[2].split(",") if len(argv) > 2 else list(sequence.WORKLOADS)
    for workload in workloads:
        cases = {}
        for name in ("nanonet", "torch"):
            try:
                cases[name] = sequence.make_step(name, workload, dtype)
            except peers.PeerUnavailable as exc:
                print(f"{name}: skipped ({exc})")
        samples = {name: [] for name in cases}
        for step in cases.values():
            step()
            step()
        for _ in range(7):
            for name, step in cases.items():
                start = time.process_time()
                for _ in range(3):
                    step()
                samples[name].append((time.process_time() - start) / 3)
        text = ", ".join(f"{n} {np.median(s) * 1e3:.1f} ms (min {min(s) * 1e3:.1f})" for n, s in samples.items())
        if "torch" in samples:
            text += f"; ratio {np.median(samples['nanonet']) / np.median(samples['torch']):.2f}"
        print(f"{workload} {dtype}: {text}")
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        for _ in range(10):
            cases["nanonet"]()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main(sys.argv)
