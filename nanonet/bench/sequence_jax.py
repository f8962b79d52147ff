"""The JAX peers of ``nanonet bench --only seq``: the same LSTM and Transformer block, ``jit``-compiled.

Parameters come as a dict keyed by torch's (and nanonet's) names, in torch's
layouts; imported only when the JAX peer runs.
"""

import math

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # JAX is optional: make_jax in .sequence refuses the peer before it gets here
    jax = jnp = None


def lstm(p, x):
    """One LSTM layer (gates i, f, g, o), batch first, zero initial state."""
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    xw = x @ w_ih.T + p["bias_ih_l0"] + p["bias_hh_l0"]
    batch, hidden = x.shape[0], w_hh.shape[1]

    def cell(carry, xw_t):
        h, c = carry
        i, f, g, o = jnp.split(xw_t + h @ w_hh.T, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((batch, hidden), x.dtype)
    _, hs = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(xw, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def _layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * weight + bias


def transformer_block(heads):
    """A post-norm, relu ``TransformerEncoderLayer`` (no dropout) with a causal mask, batch first."""

    def forward(p, x):
        batch, length, width = x.shape
        qkv = x @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
        q, k, v = (t.reshape(batch, length, heads, -1).transpose(0, 2, 1, 3) for t in jnp.split(qkv, 3, axis=-1))
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(width // heads)
        causal = jnp.triu(jnp.full((length, length), -jnp.inf, x.dtype), 1)
        attended = jax.nn.softmax(scores + causal, axis=-1) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, width)
        attended = attended @ p["self_attn.out_proj.weight"].T + p["self_attn.out_proj.bias"]
        h = _layer_norm(x + attended, p["norm1.weight"], p["norm1.bias"])
        ff = jax.nn.relu(h @ p["linear1.weight"].T + p["linear1.bias"]) @ p["linear2.weight"].T + p["linear2.bias"]
        return _layer_norm(h + ff, p["norm2.weight"], p["norm2.bias"])

    return forward


def make_step(forward, params, x, y, lr, dtype):
    """A ``step()`` running the jitted forward, MSE, backward and SGD update (the parameters are replaced)."""
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss(p):
        return jnp.mean((forward(p, x) - y) ** 2)

    @jax.jit
    def update(p):
        grads = jax.grad(loss)(p)
        return {k: v - lr * grads[k] for k, v in p.items()}

    state = {"params": {k: jnp.asarray(v) for k, v in params.items()}}
    if next(iter(state["params"].values())).dtype != dtype:
        from .peers import PeerUnavailable

        raise PeerUnavailable(f"jax gave {next(iter(state['params'].values())).dtype} for {dtype}")

    def step():
        state["params"] = update(state["params"])
        jax.block_until_ready(state["params"])

    step.params = lambda: {k: np.asarray(v) for k, v in state["params"].items()}
    return step
