"""Forward and backward of each layer type, against plain numpy and torch.

The input is ``(N, H)`` (``Linear(H -> H)`` for the affine layer, an
element-wise layer on the same array, ``MSELoss`` on ``(N, 1)``). The numpy
peer is the plain expression with fresh arrays (what the seed writes); the
torch peer is eager autograd on the same data. Any other module class that
nanonet exports and that builds without arguments (an activation added
later, say) is timed too, with nanonet alone.
"""

import numpy as np

from . import peers as peers_mod
from .timing import interleave
from .workloads import with_ratios


def _numpy_cases(x, w, b, g):
    mask = x > 0
    return {
        "Linear": (lambda: x @ w + b, lambda: (x.T @ g, g.sum(axis=0), g @ w.T)),
        "ReLU": (lambda: (x > 0, np.maximum(x, 0)), lambda: g * mask),
    }


def _torch_cases(x, w, b, g):
    torch = peers_mod.import_optional("torch")
    torch.set_num_threads(peers_mod.blas_threads())
    tx = torch.from_numpy(x).requires_grad_(True)
    tw, tb = torch.from_numpy(w.copy()).requires_grad_(True), torch.from_numpy(b.copy()).requires_grad_(True)
    tg = torch.from_numpy(g)
    lin = lambda: torch.addmm(tb, tx, tw)  # noqa: E731
    lin_out = lin()
    relu_out = torch.relu(tx)
    return {
        "Linear": (lambda: lin(), lambda: torch.autograd.grad(lin_out, (tx, tw, tb), tg, retain_graph=True)),
        "ReLU": (lambda: torch.relu(tx), lambda: torch.autograd.grad(relu_out, (tx,), tg, retain_graph=True)),
    }


def _extra_modules(nn):
    """Module classes nanonet exports that build with no arguments (beyond ReLU)."""
    found = {}
    for name in getattr(nn, "__all__", []):
        cls = getattr(nn, name, None)
        if not isinstance(cls, type) or not issubclass(cls, nn.Module) or name in ("Module", "ReLU", "Sequential"):
            continue
        try:
            found[name] = cls()
        except Exception:
            continue
    return found


def layer_passes(skips, *, n=500, hidden=256, repeats=7, min_time=0.02, settle=0.0, log=print):
    """One row per (layer, phase): nanonet, numpy and torch per-call Stats and ratios to numpy."""
    import nanonet as nn

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, hidden))
    g = rng.standard_normal((n, hidden))
    lin = nn.Linear(hidden, hidden, rng=0)
    w, b = lin.weight.value, lin.bias.value
    modules = {"Linear": lin, "ReLU": nn.ReLU()}
    modules.update(_extra_modules(nn))
    numpy_cases = _numpy_cases(x, w, b, g)
    try:
        torch_cases = _torch_cases(x, w, b, g)
    except peers_mod.PeerUnavailable as exc:
        skips.note("torch", exc)
        torch_cases = {}
    rows = []
    for name, module in modules.items():
        try:
            module.forward(x)
            module.backward(g)
        except Exception:
            continue  # not an (N, H) -> (N, H) layer
        for phase, index in (("forward", 0), ("backward", 1)):
            fn = (lambda m=module: m.forward(x)) if phase == "forward" else (lambda m=module: m.backward(g))
            cases = {"nanonet": fn}
            if name in numpy_cases:
                cases["numpy"] = numpy_cases[name][index]
            if name in torch_cases:
                cases["torch"] = torch_cases[name][index]
            stats = interleave(cases, repeats=repeats, min_time=min_time, settle=settle)
            rows.append({"layer": f"{module!r}", "shape": f"{n}x{hidden}", "phase": phase,
                         "peers": with_ratios(stats, reference="numpy")})
    rows += _loss_rows(nn, rng, n, repeats, min_time, torch_cases, settle)
    log("  layers: " + ", ".join(f"{r['layer']} {r['phase']}" for r in rows))
    return rows


def _loss_rows(nn, rng, n, repeats, min_time, torch_cases, settle):
    pred, target = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    loss = nn.MSELoss()
    loss(pred, target)
    diff = pred - target
    forward = {"nanonet": lambda: loss(pred, target), "numpy": lambda: float(np.mean((pred - target) ** 2))}
    backward = {"nanonet": loss.backward, "numpy": lambda: diff * (2.0 / diff.size)}
    if torch_cases:
        import torch

        tp = torch.from_numpy(pred).requires_grad_(True)
        tt = torch.from_numpy(target)
        out = torch.nn.functional.mse_loss(tp, tt)
        forward["torch"] = lambda: torch.nn.functional.mse_loss(tp, tt).item()
        backward["torch"] = lambda: torch.autograd.grad(out, (tp,), retain_graph=True)
    rows = []
    for phase, cases in (("forward", forward), ("backward", backward)):
        stats = interleave(cases, repeats=repeats, min_time=min_time, settle=settle)
        rows.append({"layer": repr(loss), "shape": f"{n}x1", "phase": phase,
                     "peers": with_ratios(stats, reference="numpy")})
    return rows
