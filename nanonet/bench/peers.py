"""The training-step peers: one step of the same MLP written six ways.

Every peer is a factory ``make(problem) -> step`` where ``problem`` is a
:class:`Problem` (the data and the initial weights, shared by all peers so
that each one does exactly the same maths) and ``step()`` runs one training
step: forward, MSE, backward, plain SGD update, and returns nothing.

The MLP is ``in -> H -> ReLU -> H -> ReLU -> 1`` (the seed's). A peer whose
library is not installed raises :class:`PeerUnavailable`; the harness then
names it as skipped. Optional libraries (torch, jax, scikit-learn) are
imported inside the factories only.

Shape:
    - x: ``(N, in)``, y: ``(N, 1)``; weights ``(in, H)``, ``(H, H)``, ``(H, 1)``.

Example:
    >>> import numpy as np
    >>> problem = Problem.make(8, 3, 4, np.float64, rng=0)
    >>> step = make_step("seed", problem)
    >>> step()
"""

import importlib
import os
from dataclasses import dataclass

import numpy as np

from .._rng import as_generator

LR = 1e-4  # small: thousands of repeated steps stay far from divergence


class PeerUnavailable(Exception):
    """The peer's library is missing or unusable here; ``str(exc)`` says why."""


def import_optional(name):
    """Import ``name`` or raise :class:`PeerUnavailable` naming it."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install
        raise PeerUnavailable(f"{name} is not installed ({type(exc).__name__}: {exc})") from None


def blas_threads():
    """numpy's BLAS thread count (threadpoolctl if present, else ``OPENBLAS_NUM_THREADS`` or the CPU count)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        env = os.environ.get("OPENBLAS_NUM_THREADS", "")
        return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    counts = [d["num_threads"] for d in threadpool_info()
              if d.get("user_api") == "blas" and "numpy" in d.get("filepath", "")]
    return counts[0] if counts else (os.cpu_count() or 1)


@dataclass
class Problem:
    """The data and initial weights of one benchmark size, shared by the peers."""

    x: np.ndarray
    y: np.ndarray
    weights: list  # [W0 (in, H), W1 (H, H), W2 (H, 1)]
    biases: list   # [b0 (H,), b1 (H,), b2 (1,)]
    lr: float = LR

    @classmethod
    def make(cls, n, n_in, hidden, dtype, rng=0):
        gen = as_generator(rng)
        dtype = np.dtype(dtype)
        x = gen.standard_normal((n, n_in)).astype(dtype)
        y = gen.standard_normal((n, 1)).astype(dtype)
        sizes = [(n_in, hidden), (hidden, hidden), (hidden, 1)]
        weights = [(gen.standard_normal(s) * np.sqrt(2.0 / s[0])).astype(dtype) for s in sizes]
        biases = [np.zeros(s[1], dtype=dtype) for s in sizes]
        return cls(x, y, weights, biases)

    @property
    def dtype(self):
        return self.x.dtype

    def copy_params(self):
        """Fresh copies of ``[W0, W1, W2, b0, b1, b2]``."""
        return [w.copy() for w in self.weights] + [b.copy() for b in self.biases]


def flops_per_step(n, n_in, hidden):
    """Matmul FLOPs of one training step, as the seed does it.

    Forward (3 matmuls), weight gradients (3), input gradients of layers 2
    and 3 (the first layer's dJ/dx is never needed in training).
    """
    forward = 2 * n * (n_in * hidden + hidden * hidden + hidden)
    weight_grads = forward
    input_grads = 2 * n * (hidden * hidden + hidden)
    return forward + weight_grads + input_grads


# -- the hand-written numpy peers ------------------------------------------------

def make_seed(problem):
    """The seed's hand-written step: plain numpy expressions, fresh arrays.

    The seed's maths (its compute_gradient), with the bias gradients
    corrected (``pz.sum(axis=0)`` instead of ``np.sum(pz)``). The seed's
    compute_gradient recomputed z1, z2, z3 from the weights; this peer keeps
    them from the forward pass instead, which makes the seed *faster* and the
    comparison harder for nanonet. Loss ``J = mean((z3 - y)^2) / 2``.
    """
    x, y, lr = problem.x, problem.y, problem.lr
    W0, W1, W2, b0, b1, b2 = problem.copy_params()
    n = x.shape[0]

    def relu_derivative(z):
        return (z > 0).astype(z.dtype)

    def step():
        z1 = np.dot(x, W0) + b0
        a1 = np.maximum(z1, 0)
        z2 = np.dot(a1, W1) + b1
        a2 = np.maximum(z2, 0)
        z3 = np.dot(a2, W2) + b2
        loss = np.mean((z3 - y) ** 2) / 2  # noqa: F841 (the seed computes it)
        pz3 = (z3 - y) / n
        pb2 = pz3.sum(axis=0)
        pw2 = a2.T.dot(pz3)
        pa2 = pz3.dot(W2.T)
        pz2 = relu_derivative(z2) * pa2
        pb1 = pz2.sum(axis=0)
        pw1 = a1.T.dot(pz2)
        pa1 = pz2.dot(W1.T)
        pz1 = relu_derivative(z1) * pa1
        pb0 = pz1.sum(axis=0)
        pw0 = x.T.dot(pz1)
        for p, g in ((W0, pw0), (W1, pw1), (W2, pw2), (b0, pb0), (b1, pb1), (b2, pb2)):
            p -= lr * g

    step.params = lambda: [W0, W1, W2, b0, b1, b2]
    return step


def make_numpy_inplace(problem):
    """Expert hand-written numpy: every buffer allocated once, ``out=`` everywhere.

    The same maths as the seed peer, without a single fresh array per step
    (except numpy's tiny reduction results). The bar a framework on numpy
    can at best reach.
    """
    x, y, lr = problem.x, problem.y, problem.lr
    W0, W1, W2, b0, b1, b2 = problem.copy_params()
    n, hidden, dt = x.shape[0], W1.shape[0], x.dtype
    z1, z2, g1, g2 = (np.empty((n, hidden), dt) for _ in range(4))
    z3 = np.empty((n, 1), dt)
    gw = [np.empty_like(W) for W in (W0, W1, W2)]
    m1, m2 = np.empty((n, hidden), bool), np.empty((n, hidden), bool)
    scale = dt.type(1.0 / n)
    neg_lr = dt.type(-lr)

    def step():
        layer(x, W0, b0, z1, m1)
        layer(z1, W1, b1, z2, m2)
        np.matmul(z2, W2, out=z3)
        np.add(z3, b2, out=z3)
        np.subtract(z3, y, out=z3)
        flat = z3.reshape(-1)
        loss = float(np.dot(flat, flat)) / (2 * n)  # noqa: F841 (the seed computes it)
        np.multiply(z3, scale, out=z3)
        pb2 = back(z3, z2, W2, gw[2], g2, m2)
        pb1 = back(g2, z1, W1, gw[1], g1, m1)
        np.matmul(x.T, g1, out=gw[0])
        pb0 = g1.sum(axis=0)
        for p, g in ((W0, gw[0]), (W1, gw[1]), (W2, gw[2]), (b0, pb0), (b1, pb1), (b2, pb2)):
            np.multiply(g, neg_lr, out=g)
            np.add(p, g, out=p)

    def layer(a, W, b, z, mask):  # z = relu(a @ W + b), mask = (a @ W + b > 0)
        np.matmul(a, W, out=z)
        np.add(z, b, out=z)
        np.greater(z, 0, out=mask)
        np.maximum(z, 0, out=z)

    def back(g, a, W, gw, g_in, mask):  # weight gradient; g_in = relu'(.) * (g @ W.T)
        np.matmul(a.T, g, out=gw)
        np.matmul(g, W.T, out=g_in)
        np.multiply(g_in, mask, out=g_in)
        return g.sum(axis=0)

    step.params = lambda: [W0, W1, W2, b0, b1, b2]
    return step


# -- nanonet -----------------------------------------------------------------------

def build_nanonet(problem, nn=None):
    """The seed MLP as a nanonet Sequential holding ``problem``'s weights."""
    if nn is None:
        import nanonet as nn
    n_in, hidden = problem.weights[0].shape
    dt = problem.dtype
    layers = [nn.Linear(n_in, hidden, dtype=dt, rng=0), nn.ReLU(),
              nn.Linear(hidden, hidden, dtype=dt, rng=0), nn.ReLU(),
              nn.Linear(hidden, 1, dtype=dt, rng=0)]
    for layer, w, b in zip(layers[::2], problem.weights, problem.biases):
        layer.weight.value[...] = w
        layer.bias.value[...] = b
    return nn.Sequential(*layers), nn.MSELoss()


def make_nanonet(problem, nn=None):
    """nanonet as a user runs it: ``opt.zero_grad()``, the loss, backward, ``opt.step()`` (``nn.optim.SGD``).

    nanonet's MSE is ``mean((pred - y)^2)`` without the seed's 1/2, so its
    gradient is twice the seed's: the step uses ``lr / 2`` to take the very
    same step (the work is the same either way). Plain SGD is the seed's
    update, ``p -= lr * g``, per element.

    Uses ``Sequential.backward(grad, input_grad=False)`` when the container
    offers it (nobody needs dJ/dx of the data in training).
    """
    model, loss_fn = build_nanonet(problem, nn)
    x, y = problem.x, problem.y
    params = model.parameters()
    opt = (nn or __import__("nanonet")).optim.SGD(params, lr=problem.lr / 2)
    skip_input = _accepts_input_grad(model)

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        if skip_input:
            model.backward(loss_fn.backward(), input_grad=False)
        else:
            model.backward(loss_fn.backward())
        opt.step()

    step.params = lambda: [p.value for p in params[0::2] + params[1::2]]
    return step


def _accepts_input_grad(model):
    import inspect

    try:
        return "input_grad" in inspect.signature(model.backward).parameters
    except (TypeError, ValueError):
        return False


# -- torch, jax, scikit-learn ---------------------------------------------------

def make_torch(problem):
    """PyTorch eager, ``torch.set_num_threads`` = numpy's BLAS threads."""
    torch = import_optional("torch")
    torch.set_num_threads(blas_threads())
    tdt = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[problem.dtype]
    x, y = torch.from_numpy(problem.x), torch.from_numpy(problem.y)
    params = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in problem.copy_params()]
    W0, W1, W2, b0, b1, b2 = params
    opt = torch.optim.SGD(params, lr=problem.lr)
    relu, mse = torch.relu, torch.nn.functional.mse_loss

    def step():
        opt.zero_grad(set_to_none=True)
        out = relu(relu(x @ W0 + b0) @ W1 + b1) @ W2 + b2
        mse(out, y).backward()
        opt.step()

    return step


def make_jax(problem):
    """JAX ``jit`` of the whole step (params donated, updated functionally)."""
    jax = import_optional("jax")
    jnp = import_optional("jax.numpy")
    if problem.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    lr = problem.lr

    def loss(params, x, y):
        W0, W1, W2, b0, b1, b2 = params
        out = jax.nn.relu(jax.nn.relu(x @ W0 + b0) @ W1 + b1) @ W2 + b2
        return jnp.mean((out - y) ** 2)

    @jax.jit
    def update(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return [p - lr * g for p, g in zip(params, grads)]

    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)
    state = {"params": [jnp.asarray(p) for p in problem.copy_params()]}
    if state["params"][0].dtype != problem.dtype:
        raise PeerUnavailable(f"jax gave {state['params'][0].dtype} for {problem.dtype}")

    def step():
        state["params"] = update(state["params"], x, y)
        jax.block_until_ready(state["params"])

    return step


def make_sklearn(problem):
    """scikit-learn ``MLPRegressor.partial_fit`` with ``batch_size = N``, plain SGD."""
    neural = import_optional("sklearn.neural_network")
    n, n_in = problem.x.shape
    hidden = problem.weights[0].shape[1]
    reg = neural.MLPRegressor(hidden_layer_sizes=(hidden, hidden), activation="relu", solver="sgd",
                              alpha=0.0, batch_size=n, learning_rate_init=problem.lr, momentum=0.0,
                              nesterovs_momentum=False, shuffle=False, random_state=0)
    x, y = problem.x, problem.y.ravel()
    reg.partial_fit(x, y)  # creates the weights; then start from the shared ones
    for target, value in zip(reg.coefs_ + reg.intercepts_, problem.copy_params()):
        if target.shape != value.shape or target.dtype != value.dtype:
            raise PeerUnavailable(f"sklearn made {target.dtype}{target.shape}, expected {value.dtype}{value.shape}")
        target[...] = value

    def step():
        reg.partial_fit(x, y)

    return step


PEERS = {
    "nanonet": make_nanonet,
    "seed": make_seed,
    "numpy-inplace": make_numpy_inplace,
    "torch": make_torch,
    "jax": make_jax,
    "sklearn": make_sklearn,
}
"""Step peers in the order they are shown; ``seed`` is the reference (ratio 1.0)."""


def make_step(name, problem):
    """Build peer ``name``'s step for ``problem`` (raises :class:`PeerUnavailable`)."""
    return PEERS[name](problem)
