"""One rank of a ``nanonet bench --only distributed`` case: ``mpiexec -n W python -m nanonet.bench.distributed_worker CASE``.

``CASE`` is JSON: ``{"peer": ..., "workload": {...}, "steps": ..., "warmup": ...}``
(see ``nanonet.bench.distributed``). Rank 0 prints one line ``RESULT {json}``
with the median step time. Peers:

- ``nanonet`` (and its variants ``nanonet-1mb``, ``nanonet-overlap``,
  ``nanonet-copy``): ``nn.fit`` on a synthetic data set, one batch per step,
  ``distributed=True`` (with ``DataParallel(bucket_cap_mb=1)``, the same with
  ``overlap=True``, or ``gradient_as_bucket_view=False``: gradients copied in
  and out of the buckets) on more than one process;
- ``torch``: the same MLP in float64 under ``DistributedDataParallel`` on gloo
  (a plain module on one process);
- ``sweep``: nanonet's step split into compute and gradient reduction, for
  each width in the workload (world size 2).

Each step's time is the gap between consecutive batch ends; the first
``warmup`` steps are dropped.
"""

import json
import os
import sys
import time

import numpy as np


def _rank_and_size():
    for rank_var, size_var in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                               ("PMIX_RANK", "PMIX_SIZE")):
        if rank_var in os.environ and size_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[size_var])
    return 0, 1


def _data(workload, steps, seed=0):
    gen = np.random.default_rng(seed)
    sizes = workload["sizes"]
    rows = workload["batch"] * steps
    return gen.standard_normal((rows, sizes[0])), gen.standard_normal((rows, sizes[-1]))


def _nanonet_model(sizes):
    import nanonet as nn

    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b, rng=i)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def nanonet_steps(case, world):
    import nanonet as nn

    workload, steps = case["workload"], case["steps"] + case["warmup"]
    x, y = _data(workload, steps)
    model = _nanonet_model(workload["sizes"])
    opt = nn.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    options = {"nanonet": {}, "nanonet-1mb": {"bucket_cap_mb": 1.0},
               "nanonet-overlap": {"overlap": True, "bucket_cap_mb": 1.0},
               "nanonet-copy": {"gradient_as_bucket_view": False}}[case["peer"]]
    ends = []
    record = nn.LambdaCallback(on_batch_end=lambda b, logs: ends.append(time.perf_counter()))
    nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=workload["batch"], shuffle=False, verbose=0,
           rng=0, callbacks=[record], distributed=nn.distributed.DataParallel(**options) if world > 1 else False)
    return np.diff(ends)[case["warmup"] - 1:]


def torch_steps(case, rank, world):
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    torch.manual_seed(0)
    workload, steps = case["workload"], case["steps"] + case["warmup"]
    sizes = workload["sizes"]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [torch.nn.Linear(a, b, dtype=torch.float64)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = torch.nn.Sequential(*layers)
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{case['port']}", rank=rank,
                                 world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x, y = (torch.from_numpy(a) for a in _data(workload, steps))
    batch = workload["batch"]
    lo, hi = rank * batch // world, (rank + 1) * batch // world
    ends = []
    for s in range(steps):
        xb, yb = x[s * batch + lo:s * batch + hi], y[s * batch + lo:s * batch + hi]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        ends.append(time.perf_counter())
    if world > 1:
        tdist.barrier()      # no destroy_process_group: gloo's teardown now and then aborts the process at exit
    return np.diff(ends)[case["warmup"] - 1:]


def sweep(case):
    """Per width: compute (forward, backward, step) and the gradient sum, timed apart (after a barrier)."""
    import nanonet as nn
    from nanonet import distributed as dist

    group = dist.init()
    rows = []
    for hidden in case["workload"]["widths"]:
        sizes = (case["workload"]["sizes"][0], hidden, hidden, case["workload"]["sizes"][-1])
        workload = dict(case["workload"], sizes=sizes)
        x, y = _data(workload, 1)
        model = _nanonet_model(sizes)
        opt = nn.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        reducer = dist.GradientReducer(model.parameters(), group)
        loss_fn = nn.MSELoss()
        lo, hi = nn.data.shard_bounds(len(x), group.rank, group.size)
        compute, reduce = [], []
        for s in range(case["steps"] + case["warmup"]):
            t0 = time.perf_counter()
            model.zero_grad()
            loss_fn(model(x[lo:hi]), y[lo:hi])
            model.backward(loss_fn.backward(1.0 / group.size))
            t1 = time.perf_counter()
            group.barrier()
            t2 = time.perf_counter()
            reducer.allreduce()
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            if s >= case["warmup"]:
                compute.append(t1 - t0 + t4 - t3)
                reduce.append(t3 - t2)
        c, r = float(np.median(compute)), float(np.median(reduce))
        rows.append({"hidden": hidden, "params": sum(p.value.size for p in model.parameters()),
                     "bytes": reducer.nbytes, "compute_s": c, "reduce_s": r, "share": r / (c + r)})
    return rows


def main(argv):
    case = json.loads(argv[0])
    rank, world = _rank_and_size()
    if case["peer"] == "sweep":
        result = {"rows": sweep(case)}
    else:
        times = torch_steps(case, rank, world) if case["peer"] == "torch" else nanonet_steps(case, world)
        median = float(np.median(times))
        result = {"step_s": median, "samples_per_s": case["workload"]["batch"] / median,
                  "p25": float(np.percentile(times, 25)), "p75": float(np.percentile(times, 75))}
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)
    if case["peer"] == "torch" and world > 1:
        sys.stderr.flush()
        os._exit(0)          # skip the interpreter's teardown of gloo's threads (see torch_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
