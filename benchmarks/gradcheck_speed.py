"""Time the gradient check of the seed model (10 -> 64 -> 64 -> 1, 500 samples, MSE).

Runs nanonet's check in its three modes and, when torch is installed, torch's
``gradcheck`` (default and fast_mode) on the same model in float64, in one run.

    python benchmarks/gradcheck_speed.py [--repeat 5] [--no-torch]

Both sides run on one BLAS thread (OPENBLAS_NUM_THREADS=1 unless set, and
torch.set_num_threads(1)): on a shared 2-core machine a second BLAS thread
mostly spins, and makes either side 3-10x slower at random. torch's gradcheck
checks the 4,929 parameter elements; nanonet's rows also cover the input.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import pathlib
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import nanonet as nn  # noqa: E402


def seed_problem():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 10)), rng.normal(size=(500, 1))
    model = nn.Sequential(nn.Linear(10, 64, rng=rng), nn.ReLU(), nn.Linear(64, 64, rng=rng), nn.ReLU(),
                          nn.Linear(64, 1, rng=rng))
    return model, x, y


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def torch_gradcheck(model, x, y, fast_mode):
    import torch

    layers = [m for m in model if isinstance(m, nn.Linear)]
    params = []
    for layer in layers:
        params += [torch.tensor(layer.weight.value, requires_grad=True),
                   torch.tensor(layer.bias.value, requires_grad=True)]
    tx, ty = torch.tensor(x), torch.tensor(y)

    def f(*ps):
        h = tx
        for i in range(0, len(ps), 2):
            h = h @ ps[i] + ps[i + 1]
            if i + 2 < len(ps):
                h = torch.relu(h)
        return torch.nn.functional.mse_loss(h, ty)

    return torch.autograd.gradcheck(f, tuple(params), fast_mode=fast_mode)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    model, x, y = seed_problem()
    n_params = sum(p.size for p in model.parameters())
    print(f"seed model: {n_params} parameter elements, input {x.shape}")
    results = {}
    for mode, repeat in (("fast", args.repeat), ("projected", args.repeat), ("full", max(1, args.repeat // 2))):
        t, report = timed(lambda: nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode), repeat)
        assert report.ok, report
        results[f"nanonet {mode}"] = t
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch not installed: skipped")
        else:
            torch.set_num_threads(1)
            results["torch gradcheck fast_mode"], _ = timed(lambda: torch_gradcheck(model, x, y, True), args.repeat)
            results["torch gradcheck default"], _ = timed(lambda: torch_gradcheck(model, x, y, False), 1)
    base = results.get("torch gradcheck default")
    for name, t in results.items():
        ratio = f"  torch default / this = {base / t:7.1f}x" if base else ""
        print(f"{name:28s} {t * 1e3:9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
