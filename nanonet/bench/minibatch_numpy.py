"""Hand-written numpy peers of the mini-batch family: the reference of every ratio, and the expert.

``make_numpy`` is the straightforward code a user writes: a permutation per
epoch, ``x[idx]`` per batch, the model's maths as plain numpy expressions
(fresh arrays), the loss and its gradient, and the optimizer written out per
parameter. ``make_numpy_inplace`` is the expert's: every buffer allocated
once, ``out=`` everywhere, the batch gathered with ``np.take(..., out=)``,
parameters and gradients as views of one block updated in a few calls.

Both draw the permutation (and the dropout masks) from generators seeded
like nanonet's, so that they take exactly the steps ``nn.fit`` takes (a test
checks it). Each factory returns ``epoch()``; ``epoch.params()`` gives the
current parameters.
"""

import math

import numpy as np
from scipy import special

from .minibatch_problem import BETAS, DROPOUT, EPS, MOMENTUM
from .peers import PeerUnavailable

LN_EPS = 1e-5


# -- the straightforward reference: fresh arrays everywhere -----------------------------------
def _forward(model, p, xb, drop_rng):
    if model == "mlp":
        z1 = xb @ p[0] + p[1]
        h = np.maximum(z1, 0)
        return h @ p[2] + p[3], (xb, z1, h)
    if model == "residual":
        z1 = xb @ p[0] + p[1]
        h = np.maximum(z1, 0)
        z2 = h @ p[2] + p[3]
        r = h + np.maximum(z2, 0)
        return r @ p[4] + p[5], (xb, z1, h, z2, r)
    z1 = xb @ p[0] + p[1]                                   # norm: Linear, LayerNorm, GELU, Dropout, Linear
    c = z1 - z1.mean(axis=1, keepdims=True)
    rstd = 1 / np.sqrt((c * c).mean(axis=1, keepdims=True) + LN_EPS)
    xhat = c * rstd
    ln = xhat * p[2] + p[3]
    phi = special.ndtr(ln)
    mask = (drop_rng.random(ln.shape) >= DROPOUT).astype(ln.dtype) * (1 / (1 - DROPOUT))
    d = ln * phi * mask
    return d @ p[4] + p[5], (xb, xhat, rstd, ln, phi, mask, d)


def _backward(model, p, cache, g):
    if model == "mlp":
        xb, z1, h = cache
        gz1 = (g @ p[2].T) * (z1 > 0)
        return [xb.T @ gz1, gz1.sum(axis=0), h.T @ g, g.sum(axis=0)]
    if model == "residual":
        xb, z1, h, z2, r = cache
        gr = g @ p[4].T
        gz2 = gr * (z2 > 0)
        gz1 = (gr + gz2 @ p[2].T) * (z1 > 0)
        return [xb.T @ gz1, gz1.sum(axis=0), h.T @ gz2, gz2.sum(axis=0), r.T @ g, g.sum(axis=0)]
    xb, xhat, rstd, ln, phi, mask, d = cache
    ga = (g @ p[4].T) * mask
    gln = ga * (phi + ln * np.exp(-0.5 * ln * ln) * (1 / math.sqrt(2 * math.pi)))
    dxhat = gln * p[2]
    gz1 = rstd * (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return [xb.T @ gz1, gz1.sum(axis=0), (gln * xhat).sum(axis=0), gln.sum(axis=0), d.T @ g, g.sum(axis=0)]


def _loss(kind, out, yb):
    """The loss and dJ/dout, as a user writes them."""
    if kind == "mse":
        diff = out - yb
        return np.mean(diff ** 2), diff * (2 / diff.size)
    z = out - out.max(axis=1, keepdims=True)
    e = np.exp(z)
    prob = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(len(yb))
    loss = -np.log(prob[rows, yb]).mean()
    g = prob.copy()
    g[rows, yb] -= 1
    return loss, g / len(yb)


def make_numpy(problem):
    """The reference: the straightforward hand-written numpy training loop (fresh arrays)."""
    cfg = problem.config
    x, y, lr, b = problem.x, problem.y, problem.lr, cfg.batch
    params = problem.copy_params()
    shuffle, drop_rng = np.random.default_rng(problem.seed), np.random.default_rng(problem.seed + 1)
    slots = [np.zeros_like(q) for q in params]            # momentum buffers, or Adam's m
    squares = [np.zeros_like(q) for q in params]          # Adam's v
    state = {"t": 0}

    def epoch():
        order = shuffle.permutation(len(x))
        for start in range(0, len(x), b):
            idx = order[start:start + b]
            xb, yb = x[idx], y[idx]
            out, cache = _forward(cfg.model, params, xb, drop_rng)
            _, g = _loss(cfg.loss, out, yb)
            grads = _backward(cfg.model, params, cache, g)
            if cfg.optimizer == "sgd":
                for i, gi in enumerate(grads):
                    slots[i] = MOMENTUM * slots[i] + gi
                    params[i] -= lr * slots[i]
            else:
                state["t"] += 1
                t, (b1, b2) = state["t"], BETAS
                for i, gi in enumerate(grads):
                    slots[i] = b1 * slots[i] + (1 - b1) * gi
                    squares[i] = b2 * squares[i] + (1 - b2) * gi * gi
                    m_hat = slots[i] / (1 - b1 ** t)
                    v_hat = squares[i] / (1 - b2 ** t)
                    params[i] -= lr * m_hat / (np.sqrt(v_hat) + EPS)

    epoch.params = lambda: params
    return epoch


# -- the expert: buffers allocated once, out= everywhere, one parameter block ----------------
class _Flat:
    """Parameters, gradients and optimizer state as views of contiguous blocks."""

    def __init__(self, arrays):
        dt = arrays[0].dtype
        total = sum(a.size for a in arrays)
        self.value, self.grad = np.empty(total, dt), np.zeros(total, dt)
        self.slot, self.square, self.tmp = np.zeros(total, dt), np.zeros(total, dt), np.empty(total, dt)
        self.params, self.grads, start = [], [], 0
        for a in arrays:
            view = self.value[start:start + a.size].reshape(a.shape)
            view[...] = a
            self.params.append(view)
            self.grads.append(self.grad[start:start + a.size].reshape(a.shape))
            start += a.size
        self.t = 0

    def sgd(self, lr):
        self.slot *= MOMENTUM
        self.slot += self.grad
        np.multiply(self.slot, lr, out=self.tmp)
        self.value -= self.tmp

    def adam(self, lr):
        (b1, b2), m, v, t = BETAS, self.slot, self.square, self.tmp
        self.t += 1
        np.subtract(self.grad, m, out=t)
        t *= 1 - b1
        m += t
        v *= b2
        np.multiply(self.grad, self.grad, out=t)
        t *= 1 - b2
        v += t
        np.sqrt(v, out=t)
        t /= math.sqrt(1 - b2 ** self.t)
        t += EPS
        np.divide(m, t, out=t)
        t *= lr / (1 - b1 ** self.t)
        self.value -= t


def make_numpy_inplace(problem):
    """The expert hand-written numpy loop: no fresh array per batch (mlp and residual models)."""
    cfg = problem.config
    if cfg.model == "norm":
        raise PeerUnavailable("numpy-inplace is written for the mlp and residual models only")
    x, y, lr, b = problem.x, problem.y, problem.lr, cfg.batch
    dt, n_out = x.dtype, problem.params[-1].shape[0]
    flat = _Flat(problem.copy_params())
    p, g = flat.params, flat.grads
    hidden = p[0].shape[1]
    shuffle = np.random.default_rng(problem.seed)
    xb, yb = np.empty((b, x.shape[1]), dt), np.empty((b,) + y.shape[1:], y.dtype)
    z1, z2, gh, gz = (np.empty((b, hidden), dt) for _ in range(4))
    m1, m2 = np.empty((b, hidden), bool), np.empty((b, hidden), bool)
    out, column, sums = np.empty((b, n_out), dt), np.empty((b, 1), dt), np.empty((b, 1), dt)
    ones = np.ones(b, dt)
    flat_index, picked = np.arange(b) * n_out, np.empty(b, dt)
    targets = np.empty(b, np.int64)

    def dense_relu(a, w, bias, z, mask):
        np.dot(a, w, out=z)
        np.add(z, bias, out=z)
        np.greater(z, 0, out=mask)
        np.maximum(z, 0, out=z)

    def loss_grad():
        """dJ/dout into ``out`` (the loss itself is computed too, as nanonet does)."""
        if cfg.loss == "mse":
            np.subtract(out, yb, out=out)
            flat_out = out.reshape(-1)
            loss = float(np.dot(flat_out, flat_out)) / out.size
            np.multiply(out, 2 / out.size, out=out)
            return loss
        np.add(flat_index, yb, out=targets)
        np.max(out, axis=1, keepdims=True, out=column)
        np.subtract(out, column, out=out)
        np.take(out.reshape(-1), targets, out=picked, mode="clip")
        np.exp(out, out=out)
        np.sum(out, axis=1, keepdims=True, out=sums)
        loss = (float(np.log(sums, out=column).sum()) - float(picked.sum())) / b
        np.divide(out, sums, out=out)
        np.take(out.reshape(-1), targets, out=picked, mode="clip")
        np.subtract(picked, 1, out=picked)
        np.put(out.reshape(-1), targets, picked, mode="clip")
        np.multiply(out, 1 / b, out=out)
        return loss

    def epoch():
        order = shuffle.permutation(len(x))
        for start in range(0, len(x), b):
            idx = order[start:start + b]
            np.take(x, idx, axis=0, out=xb, mode="clip")
            np.take(y, idx, axis=0, out=yb, mode="clip")
            dense_relu(xb, p[0], p[1], z1, m1)
            last = z1
            if cfg.model == "residual":
                dense_relu(z1, p[2], p[3], z2, m2)
                np.add(z2, z1, out=z2)                     # r = h + relu(z2)
                last = z2
            np.dot(last, p[-2], out=out)
            np.add(out, p[-1], out=out)
            loss_grad()
            np.dot(last.T, out, out=g[-2])
            np.dot(ones, out, out=g[-1])
            np.dot(out, p[-2].T, out=gh)                   # dJ/d(last)
            if cfg.model == "residual":
                np.multiply(gh, m2, out=gz)
                np.dot(z1.T, gz, out=g[2])
                np.dot(ones, gz, out=g[3])
                np.add(gh, np.dot(gz, p[2].T, out=z2), out=gh)  # z2 is free now
            np.multiply(gh, m1, out=gh)
            np.dot(xb.T, gh, out=g[0])
            np.dot(ones, gh, out=g[1])
            flat.sgd(lr) if cfg.optimizer == "sgd" else flat.adam(lr)

    epoch.params = lambda: flat.params
    return epoch
