"""Conv workloads of ``nanonet bench`` (``--only conv``): one CNN training step, four ways.

Two problems, each the same maths for every peer (same data, same initial
weights, softmax cross-entropy, plain SGD):

- ``digits``: the LeNet-style CNN of ``nanonet demo digits`` on a batch of 64
  real 1x8x8 digits: conv 1->16, pool, conv 16->32, pool, 128 -> 64 -> 10;
- ``rgb32``: a batch of 32 random 3x32x32 images: conv 3->32, pool,
  conv 32->64, pool, 4096 -> 10.

Every conv is 3x3 with padding 1, every pool 2x2 max. Peers: ``numpy-ref``
(the hand-written im2col baseline, ``nanonet.bench.conv_numpy``; ratios are
to it), ``nanonet``, ``torch`` (eager) and ``jax`` (``jit`` of the whole
step). Timing is interleaved and ratio-based (``nanonet.bench.timing``).
``profile`` times nanonet's step layer by layer, to show where its time goes.
"""

import functools
import time
from dataclasses import dataclass

import numpy as np

from . import peers as peers_mod
from .conv_numpy import make_step as make_numpy_step
from .timing import interleave
from .workloads import with_ratios

PROBLEMS = {"digits": (64, 1, 8, (16, 32), 64), "rgb32": (32, 3, 32, (32, 64), None)}
CONV_PEERS = ("numpy-ref", "nanonet", "torch", "jax")
LR = 1e-3


@dataclass
class ConvProblem:
    """Data and initial weights (PyTorch layouts) shared by the peers."""

    name: str
    x: np.ndarray
    labels: np.ndarray
    params: list  # [w1, b1, w2, b2, fc weights (out, in) and biases...]
    hidden: bool

    @classmethod
    def make(cls, name, dtype=np.float64, rng=0):
        n, channels, size, (c1, c2), hidden = PROBLEMS[name]
        gen = np.random.default_rng(rng)
        dtype = np.dtype(dtype)
        if name == "digits":
            from ..datasets import load_digits

            images, labels = load_digits()
            x, labels = images[:n].astype(dtype), labels[:n]
        else:
            x = gen.standard_normal((n, channels, size, size)).astype(dtype)
            labels = gen.integers(0, 10, size=n)
        flat = c2 * (size // 4) ** 2
        shapes = [(c1, channels, 3, 3), (c1,), (c2, c1, 3, 3), (c2,)]
        shapes += [(hidden, flat), (hidden,), (10, hidden), (10,)] if hidden else [(10, flat), (10,)]
        params = []
        for shape in shapes:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.1
            params.append((gen.standard_normal(shape) * scale).astype(dtype))
        return cls(name, x, labels, params, bool(hidden))

    def copy_params(self):
        return [p.copy() for p in self.params]


def build_nanonet(problem, nn=None):
    """The problem's CNN as a nanonet Sequential holding its weights; and the loss."""
    if nn is None:
        import nanonet as nn
    p, dt = problem.params, problem.x.dtype
    c1, c2 = p[0].shape[0], p[2].shape[0]
    layers = [nn.Conv2d(p[0].shape[1], c1, 3, padding=1, dtype=dt, rng=0), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(c1, c2, 3, padding=1, dtype=dt, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    fc = [(p[4], p[5])] + ([(p[6], p[7])] if problem.hidden else [])
    for i, (w, _) in enumerate(fc):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(w.shape[1], w.shape[0], dtype=dt, rng=0))
    model = nn.Sequential(*layers)
    model.load_state_dict(dict(zip([name for name, _ in model.named_parameters()],
                                   [p[0], p[1], p[2], p[3]] + [a for w, b in fc for a in (w.T.copy(), b)])))
    return model, nn.CrossEntropyLoss()


def make_nanonet(problem, nn=None):
    """nanonet's Module API: zero_grad, forward, loss, backward (no dJ/dx of the data), in-place SGD.

    ``nn``: another copy of the package (``--baseline REV``); default ``nanonet`` itself. A revision
    older than the conv layers is skipped (named as such), not an error.
    """
    if nn is not None and not hasattr(nn, "Conv2d"):
        raise peers_mod.PeerUnavailable(f"{nn.__name__} has no Conv2d: the revision predates the conv layers")
    model, loss_fn = build_nanonet(problem, nn)
    x, labels = problem.x, problem.labels
    params = model.parameters()
    scratch = [np.empty_like(p.value) for p in params]
    lr = problem.x.dtype.type(LR)

    def step():
        model.zero_grad()
        loss_fn(model(x), labels)
        model.backward(loss_fn.backward(), input_grad=False)
        for p, s in zip(params, scratch):
            np.multiply(p.grad, lr, out=s)
            p.value -= s

    def current():
        values = [p.value for p in params]
        fc = values[4:]
        return values[:4] + [a for w, b in zip(fc[0::2], fc[1::2]) for a in (w.T, b)]

    step.params = current
    step.model = model
    return step


def make_numpy_ref(problem):
    return make_numpy_step(problem.copy_params(), problem.x, problem.labels, problem.x.dtype.type(LR),
                           problem.hidden)


def make_torch(problem):
    """PyTorch eager: functional conv/relu/max_pool/linear, cross-entropy, ``torch.optim.SGD``."""
    torch = peers_mod.import_optional("torch")
    torch.set_num_threads(peers_mod.blas_threads())
    f = torch.nn.functional
    x, labels = torch.from_numpy(problem.x), torch.from_numpy(problem.labels)
    params = [torch.tensor(p, requires_grad=True) for p in problem.copy_params()]
    opt = torch.optim.SGD(params, lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        w1, b1, w2, b2 = params[:4]
        h = f.max_pool2d(f.relu(f.conv2d(x, w1, b1, padding=1)), 2)
        h = f.max_pool2d(f.relu(f.conv2d(h, w2, b2, padding=1)), 2).flatten(1)
        h = f.linear(h, params[4], params[5])
        if problem.hidden:
            h = f.linear(f.relu(h), params[6], params[7])
        f.cross_entropy(h, labels).backward()
        opt.step()

    step.params = lambda: [p.detach().numpy() for p in params]
    return step


def make_jax(problem):
    """JAX: ``jit`` of the whole step (lax.conv_general_dilated, reduce_window max pooling)."""
    jax = peers_mod.import_optional("jax")
    jnp = peers_mod.import_optional("jax.numpy")
    if problem.x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    lax = jax.lax

    def conv(h, w, b):
        out = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[None, :, None, None]

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss(params, x, labels):
        h = pool(jax.nn.relu(conv(x, params[0], params[1])))
        h = pool(jax.nn.relu(conv(h, params[2], params[3]))).reshape(x.shape[0], -1)
        h = h @ params[4].T + params[5]
        if problem.hidden:
            h = jax.nn.relu(h) @ params[6].T + params[7]
        log_probs = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))

    @jax.jit
    def update(params, x, labels):
        grads = jax.grad(loss)(params, x, labels)
        return [p - LR * g for p, g in zip(params, grads)]

    x, labels = jnp.asarray(problem.x), jnp.asarray(problem.labels)
    state = {"params": [jnp.asarray(p) for p in problem.copy_params()]}
    if state["params"][0].dtype != problem.x.dtype:
        raise peers_mod.PeerUnavailable(f"jax gave {state['params'][0].dtype} for {problem.x.dtype}")

    def step():
        state["params"] = update(state["params"], x, labels)
        jax.block_until_ready(state["params"])

    step.params = lambda: [np.asarray(p) for p in state["params"]]
    return step


MAKERS = {"numpy-ref": make_numpy_ref, "nanonet": make_nanonet, "torch": make_torch, "jax": make_jax}


def register_baseline(label, module):
    """Add peer ``label`` (``nanonet@REV``: the package as of a git revision) right after ``nanonet``."""
    items = list(MAKERS.items())
    items.insert([k for k, _ in items].index("nanonet") + 1, (label, functools.partial(make_nanonet, nn=module)))
    MAKERS.clear()
    MAKERS.update(items)


def profile(problem, repeats=20):
    """Seconds per call of each layer's forward and backward in nanonet's step (medians), by layer."""
    model, loss_fn = build_nanonet(problem)
    x, labels = problem.x, problem.labels
    times = {}
    for _ in range(repeats):
        h, acts = x, []
        for i, layer in enumerate(model):
            start = time.perf_counter()
            h = layer.forward(h)
            times.setdefault((i, "forward"), []).append(time.perf_counter() - start)
            acts.append(h)
        loss_fn(h, labels)
        g = loss_fn.backward()
        for i in range(len(model) - 1, -1, -1):
            start = time.perf_counter()
            g = model[i].backward(g) if i else model[i]._backward_into(g, None, False)
            times.setdefault((i, "backward"), []).append(time.perf_counter() - start)
    return [{"layer": f"{i} {model[i]!r}", "phase": phase, "median": float(np.median(t))}
            for (i, phase), t in sorted(times.items())]


def factory(name, spec, dtype):
    """For ``isolated.Workers``: the step of peer ``name`` on problem ``spec`` (a key of ``PROBLEMS``)."""
    return MAKERS[name](ConvProblem.make(spec, dtype, rng=0))


def peers_for(names):
    """The conv peers among ``names``, the reference (``numpy-ref``) first."""
    return ["numpy-ref"] + [p for p in names if p in MAKERS and p != "numpy-ref"]


def conv_steps(names, skips, *, dtypes=("float64", "float32"), repeats=9, min_time=0.05, settle=0.0,
               problems=tuple(PROBLEMS), log=print, workers=None):
    """One result dict per (problem, dtype): the peers' Stats, ratios to ``numpy-ref``, and nanonet's profile.

    ``workers`` (``isolated.Workers`` over ``peers_for(names)``): each peer steps in its own process.
    """
    results = []
    warmup = 1 if repeats < 5 else 3
    for name in problems:
        for dt in dtypes:
            problem = ConvProblem.make(name, dt, rng=0)
            if workers is not None:
                stats = workers.interleave(name, dt, skips, repeats=repeats, min_time=min_time, warmup=warmup,
                                           settle=settle, factory="nanonet.bench.conv:factory")
            else:
                cases = {}
                for peer in peers_for(names):
                    try:
                        cases[peer] = MAKERS[peer](problem)
                    except peers_mod.PeerUnavailable as exc:
                        skips.note(peer, exc)
                stats = interleave(cases, repeats=repeats, min_time=min_time, warmup=warmup, settle=settle)
            row = {"problem": name, "batch": int(problem.x.shape[0]), "input": list(problem.x.shape[1:]),
                   "dtype": dt, "peers": with_ratios(stats, reference="numpy-ref")}
            if "nanonet" in names:
                row["nanonet_profile"] = profile(problem, repeats=repeats)
            results.append(row)
            log(f"  conv {name} {dt}: " + ", ".join(f"{k} {v['ratio']:.2f}" for k, v in row["peers"].items()))
    return results

