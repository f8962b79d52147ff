"""Interleaved timing: every case is timed in turn, round after round.

On a shared, noisy machine the only trustworthy comparison is one made in
the same run, with the cases interleaved so that a burst of load hits all of
them alike. Each sample runs a case ``inner`` times (calibrated so that a
sample lasts at least ``min_time`` seconds); the figure per call is the
median over ``repeats`` samples, the spread the interquartile range.

Example:
    >>> stats = interleave({"a": lambda: None, "b": lambda: None}, repeats=3, min_time=1e-4)
    >>> sorted(stats), stats["a"].n
    (['a', 'b'], 3)
"""

import random
import resource
import time
import tracemalloc
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Stats:
    """Seconds per call: median, quartiles, min, and how many samples."""

    median: float
    p25: float
    p75: float
    min: float
    n: int
    inner: int

    @classmethod
    def of(cls, samples, inner):
        s = np.asarray(samples, dtype=float)
        p25, med, p75 = np.percentile(s, [25, 50, 75])
        return cls(float(med), float(p25), float(p75), float(s.min()), len(s), inner)

    @property
    def spread(self):
        """The interquartile range relative to the median (0.05 = 5 %)."""
        return (self.p75 - self.p25) / self.median if self.median > 0 else 0.0

    def as_dict(self):
        d = asdict(self)
        d["spread"] = self.spread
        return d


def calibrate(fn, min_time, max_inner=10_000):
    """How many calls make one sample last at least ``min_time`` seconds."""
    inner = 1
    while True:
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or inner >= max_inner:
            return inner
        grow = min_time / elapsed * 1.2 if elapsed > 0 else 10
        inner = min(max_inner, max(inner * 2, int(inner * grow)))


def interleave(cases, *, repeats=7, min_time=0.05, warmup=2, seed=0, settle=0.0):
    """Time each callable of ``cases`` (name -> fn) in interleaved rounds.

    Every round runs each case once (one sample of ``inner`` calls), in an
    order shuffled per round by a seeded generator. Before each sample the
    harness sleeps ``settle`` seconds, so that the worker threads a peer
    left spinning (OpenBLAS, OpenMP, XLA busy-wait after each call) have
    gone idle and do not slow the next peer down. Returns name -> Stats of
    seconds per call.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    inner = {name: calibrate(fn, min_time) for name, fn in cases.items()}
    samples = {name: [] for name in cases}
    order = list(cases)
    shuffler = random.Random(seed)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            fn, k = cases[name], inner[name]
            if settle:
                time.sleep(settle)
            start = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - start) / k)
    return {name: Stats.of(samples[name], inner[name]) for name in cases}


def time_once(fn, repeats=3):
    """For long cases (seconds): ``repeats`` single calls, no calibration."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Stats.of(samples, 1)


def memory_per_call(fn, calls=20, warmup=3):
    """``(peak, retained, faults)`` of one call of ``fn`` in steady state (after ``warmup`` calls).

    ``peak``: tracemalloc's peak above the start of the call; ``retained``:
    the bytes the call leaves allocated beyond what it freed (measured on a
    second traced call, so that replacing a cache made by the first counts
    as nothing); ``faults``: minor page faults per call over ``calls`` calls.
    """
    for _ in range(warmup):
        fn()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / calls
    tracemalloc.start()
    try:
        fn()  # traced, so that what the measured call frees of it is counted
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start, end - start, faults
