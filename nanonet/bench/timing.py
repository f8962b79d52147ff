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


def ratio_spread(stats, reference):
    """The uncertainty of ``stats.median / reference.median``, in the ratio's own units.

    Each median is uncertain by about half its interquartile range; for a
    quotient the relative uncertainties add, so the ratio's is the mean of
    the two relative IQRs. A ratio closer to 1 than this is **noisy**: the
    effect is smaller than the spread, and the report prints "noisy"
    instead of a number it cannot stand behind.

    >>> a, b = Stats(1.10, 1.05, 1.15, 1.0, 5, 1), Stats(1.0, 0.95, 1.05, 0.9, 5, 1)
    >>> round(ratio_spread(a, b), 4)   # 1.10 +- 0.105: the 10 % effect is within the spread
    0.105
    >>> is_noisy(1.10, ratio_spread(a, b))
    True
    """
    return stats.median / reference.median * (stats.spread + reference.spread) / 2


def is_noisy(ratio, spread):
    """True when the ratio's spread is at least its effect ``|ratio - 1|``."""
    return spread >= abs(ratio - 1)


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


def interleave(cases, *, repeats=7, min_time=0.05, warmup=2, seed=0, settle=0.0, deadline=None):
    """Time each callable of ``cases`` (name -> fn) in interleaved rounds.

    Every round runs each case once (one sample of ``inner`` calls), in an
    order shuffled per round by a seeded generator. Before each sample the
    harness sleeps ``settle`` seconds, so that the worker threads a peer
    left spinning (OpenBLAS, OpenMP, XLA busy-wait after each call) have
    gone idle and do not slow the next peer down. With ``deadline`` (a
    ``time.monotonic()`` value), no round starts after it once 3 rounds are
    done (``Stats.n`` says how many ran). Returns name -> Stats of seconds
    per call.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    inner = {name: calibrate(fn, min_time) for name, fn in cases.items()}
    samples = {name: [] for name in cases}
    order = list(cases)
    shuffler = random.Random(seed)
    for done in range(repeats):
        if deadline is not None and done >= 3 and time.monotonic() > deadline:
            break
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
