"""The hand-written numpy baseline of the conv benchmarks: classic "fast layers" (im2col + one matmul).

This is how a careful numpy programmer writes a CNN by hand (the CS231n
``fast_layers`` kind): convolution by im2col through ``as_strided`` and one
big matrix product ``W (F, C*k*k) @ cols (C*k*k, N*OH*OW)``, its backward by
two products and col2im (one strided add per kernel offset), 2x2 max pooling
by the reshape trick, ReLU as a mask, an affine head and softmax
cross-entropy, then plain SGD. It depends on nothing in nanonet, so it is a
fair, independent reference.

Weights use PyTorch's layouts (conv ``(F, C, k, k)``, linear ``(out, in)``).

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    >>> w, b = np.ones((3, 1, 3, 3)), np.zeros(3)
    >>> out, _ = conv_forward(x, w, b, pad=1)
    >>> out.shape
    (2, 3, 4, 4)
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


def conv_forward(x, w, b, pad):
    """Stride-1 convolution with zero padding ``pad``: im2col (as_strided) and one matmul."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    s = xp.strides
    view = as_strided(xp, shape=(c, kh, kw, n, oh, ow), strides=(s[1], s[2], s[3], s[0], s[2], s[3]))
    cols = np.ascontiguousarray(view).reshape(c * kh * kw, n * oh * ow)
    out = w.reshape(f, -1) @ cols
    out += b[:, None]
    out = out.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out), (x.shape, w, cols, pad)


def conv_backward(dout, cache, need_dx=True):
    """(dx or None, dw, db) of ``conv_forward``."""
    (n, c, h, wd), w, cols, pad = cache
    f, _, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    db = dout.sum(axis=(0, 2, 3))
    dout_r = dout.transpose(1, 0, 2, 3).reshape(f, -1)
    dw = (dout_r @ cols.T).reshape(w.shape)
    if not need_dx:
        return None, dw, db
    dcols = (w.reshape(f, -1).T @ dout_r).reshape(c, kh, kw, n, oh, ow)
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=dout.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + oh, j:j + ow] += dcols[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, pad:pad + h, pad:pad + wd], dw, db


def relu_forward(x):
    return np.maximum(x, 0), x > 0


def relu_backward(dout, mask):
    return dout * mask


def pool_forward(x):
    """2x2 max pooling, stride 2 (the reshape trick; even sizes)."""
    n, c, h, w = x.shape
    shaped = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = shaped.max(axis=(3, 5))
    return out, (shaped, out)


def pool_backward(dout, cache):
    shaped, out = cache
    mask = shaped == out[:, :, :, None, :, None]
    dx = mask * dout[:, :, :, None, :, None]
    dx /= mask.sum(axis=(3, 5), keepdims=True)  # ties share the gradient
    n, c, hh, _, ww, _ = shaped.shape
    return dx.reshape(n, c, 2 * hh, 2 * ww)


def softmax_loss(logits, labels):
    """Mean cross-entropy and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -log_probs[np.arange(n), labels].mean()
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1
    return loss, grad / n


def make_step(params, x, labels, lr, hidden):
    """One SGD step of ``[conv-relu-pool] x 2 -> affine (-> relu -> affine)`` on ``params`` (updated in place).

    ``params``: ``[w1, b1, w2, b2, fc weights and biases...]`` (one or two
    affine layers, ``(out, in)`` weights); ``hidden``: whether there are two.
    """

    def step():
        w1, b1, w2, b2 = params[:4]
        h1, c1 = conv_forward(x, w1, b1, pad=w1.shape[-1] // 2)
        a1, m1 = relu_forward(h1)
        p1, q1 = pool_forward(a1)
        h2, c2 = conv_forward(p1, w2, b2, pad=w2.shape[-1] // 2)
        a2, m2 = relu_forward(h2)
        p2, q2 = pool_forward(a2)
        flat = p2.reshape(p2.shape[0], -1)
        if hidden:
            w3, b3, w4, b4 = params[4:]
            z3 = flat @ w3.T + b3
            a3, m3 = relu_forward(z3)
            logits = a3 @ w4.T + b4
        else:
            w3, b3 = params[4:]
            logits = flat @ w3.T + b3
        _, dlogits = softmax_loss(logits, labels)
        grads = []
        if hidden:
            grads = [dlogits.T @ a3, dlogits.sum(axis=0)]
            dz3 = relu_backward(dlogits @ w4, m3)
            grads = [dz3.T @ flat, dz3.sum(axis=0)] + grads
            dflat = dz3 @ w3
        else:
            grads = [dlogits.T @ flat, dlogits.sum(axis=0)]
            dflat = dlogits @ w3
        dp2 = dflat.reshape(p2.shape)
        dh2 = relu_backward(pool_backward(dp2, q2), m2)
        dp1, dw2, db2 = conv_backward(dh2, c2)
        dh1 = relu_backward(pool_backward(dp1, q1), m1)
        _, dw1, db1 = conv_backward(dh1, c1, need_dx=False)
        for p, g in zip(params, [dw1, db1, dw2, db2] + grads):
            p -= lr * g

    step.params = lambda: params
    return step
