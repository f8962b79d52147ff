"""``nanonet bench --only seq``: a Transformer-block and an LSTM training step against torch and JAX.

Workloads (batch 32, length 64, width 128 by default):

- ``lstm``: ``LSTM(128, 128, batch_first=True)`` on ``(32, 64, 128)``;
- ``transformer``: ``TransformerEncoderLayer(128, nhead=4, dim_feedforward=512,
  dropout=0, batch_first=True)`` with a causal mask.

One training step is forward, the loss ``mean((out - y)^2)``, backward and a
plain SGD update of every parameter. Every peer starts from the same weights
(nanonet's, loaded as they are into torch, which shares the layouts, and into
JAX), so they do the same maths. Peers: ``nanonet``, ``torch`` (eager) and
``jax`` (``jit`` of the whole step); with ``--isolate`` each runs in its own
process.

Example:
    >>> step = make_step("nanonet", "lstm", "float64", (2, 3, 4))
    >>> step()
"""

import numpy as np

from . import peers as peers_mod
from .timing import interleave

WORKLOADS = ("lstm", "transformer")
SIZE = (32, 64, 128)  # batch, length, width
QUICK_SIZE = (8, 16, 32)
HEADS_PER_WIDTH = 32  # one head per 32 features (4 heads at width 128)
LR = 1e-4
PEERS = ("nanonet", "torch", "jax")


def _heads(width):
    return max(1, width // HEADS_PER_WIDTH)


def build_nanonet(workload, dtype, size):
    """The nanonet module of ``workload`` and its data ``(x, y)``, all seeded."""
    import nanonet as nn

    batch, length, width = size
    if workload == "lstm":
        model = nn.LSTM(width, width, batch_first=True, rng=0, dtype=dtype)
    else:
        model = nn.TransformerEncoderLayer(width, _heads(width), 4 * width, dropout=0.0, batch_first=True, rng=0,
                                           dtype=dtype)
        for p in model.parameters():  # non-trivial LayerNorm weights and biases
            p.value += np.random.default_rng(p.size).normal(size=p.value.shape).astype(dtype) * 0.02
    gen = np.random.default_rng(1)
    x = gen.standard_normal((batch, length, width)).astype(dtype)
    y = gen.standard_normal((batch, length, width)).astype(dtype)
    return model, x, y


def make_nanonet(workload, dtype, size):
    model, x, y = build_nanonet(workload, dtype, size)
    params = model.parameters()
    options = {"is_causal": True} if workload == "transformer" else {}
    scale, lr = np.dtype(dtype).type(2.0 / x.size), np.dtype(dtype).type(LR)

    def step():
        model.zero_grad()
        out = model.forward(x, **options)
        diff = out - y
        model.backward(diff * scale, input_grad=False)  # as torch: x needs no gradient
        for p in params:
            p.value -= lr * p.grad

    step.params = lambda: {name: p.value for name, p in model.named_parameters()}
    return step


def make_torch(workload, dtype, size):
    torch = peers_mod.import_optional("torch")
    torch.set_num_threads(peers_mod.blas_threads())
    model, x, y = build_nanonet(workload, dtype, size)
    tdt = {"float64": torch.float64, "float32": torch.float32}[np.dtype(dtype).name]
    batch, length, width = size
    if workload == "lstm":
        theirs = torch.nn.LSTM(width, width, batch_first=True, dtype=tdt)
    else:
        theirs = torch.nn.TransformerEncoderLayer(width, _heads(width), 4 * width, dropout=0.0, batch_first=True,
                                                  dtype=tdt)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(theirs.parameters(), lr=LR)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=tdt)
    mse = torch.nn.functional.mse_loss

    def forward():
        if workload == "lstm":
            return theirs(tx)[0]
        return theirs(tx, src_mask=mask, is_causal=True)

    def step():
        opt.zero_grad(set_to_none=True)
        mse(forward(), ty).backward()
        opt.step()

    step.params = lambda: {k: v.detach().numpy() for k, v in theirs.named_parameters()}
    return step


def make_jax(workload, dtype, size):
    jax = peers_mod.import_optional("jax")
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    from . import sequence_jax

    model, x, y = build_nanonet(workload, dtype, size)
    names = [name for name, _ in model.named_parameters()]
    forward = sequence_jax.lstm if workload == "lstm" else sequence_jax.transformer_block(_heads(size[2]))
    return sequence_jax.make_step(forward, {n: v for n, v in model.state_dict().items() if n in names}, x, y, LR,
                                  np.dtype(dtype))


FACTORIES = {"nanonet": make_nanonet, "torch": make_torch, "jax": make_jax}


def make_step(name, workload, dtype, size=SIZE):
    """Peer ``name``'s training step for ``workload`` (raises ``PeerUnavailable``)."""
    return FACTORIES[name](workload, dtype, tuple(size))


def factory(name, spec, dtype):
    """For ``isolated.Workers``: ``spec`` is ``(workload, batch, length, width)``."""
    workload, *size = spec
    return make_step(name, workload, dtype, size)


def seq_steps(names, skips, *, quick=False, dtypes=("float64", "float32"), repeats=7, min_time=0.05, settle=0.0,
              workers=None, log=print):
    """One row per (workload, dtype): each peer's seconds per step and its ratio to torch eager."""
    size = QUICK_SIZE if quick else SIZE
    names = [n for n in names if n in FACTORIES]
    rows = []
    for workload in WORKLOADS:
        for dt in dtypes:
            if workers is None:
                cases = {}
                for name in names:
                    try:
                        cases[name] = make_step(name, workload, dt, size)
                    except peers_mod.PeerUnavailable as exc:
                        skips.note(name, exc)
                stats = interleave(cases, repeats=repeats, min_time=min_time, warmup=2, settle=settle)
            else:
                stats = workers.interleave((workload, *size), dt, skips, repeats=repeats, min_time=min_time,
                                           warmup=2, settle=settle, factory="nanonet.bench.sequence:factory")
            ref = stats.get("torch")
            peers = {}
            for name, st in stats.items():
                peers[name] = dict(st.as_dict(), ratio_to_torch=st.median / ref.median if ref else None)
            row = {"workload": workload, "size": "x".join(map(str, size)), "dtype": dt, "peers": peers}
            rows.append(row)
            log(f"  {workload} {row['size']} {dt}: " + ", ".join(
                f"{k} {v['median'] * 1e3:.1f} ms" for k, v in peers.items()))
    return rows
