"""fit zeroes a Linear's gradients by promise: its backward writes them instead of adding (``GradZeroing``).

Every case compares fit with the plain loop (``model.zero_grad()``, backward
adding into zeros), exactly; stale values in the gradients must never leak
into a step; outside fit a backward always adds.
"""

import numpy as np
import pytest

import nanonet as nn
from nanonet._train_step import GradZeroing
from nanonet.layers.linear import BLAS_ACCUMULATE_LIMIT


def mlp(n_in, hidden, dtype=np.float64):
    return nn.Sequential(nn.Linear(n_in, hidden, rng=0, dtype=dtype), nn.ReLU(),
                         nn.Linear(hidden, 3, rng=1, dtype=dtype))


def tied(n_in=4):
    """A Graph whose two Linears share one weight and bias (nn.shared_copy), and a third of its own."""
    x = nn.Input(n_in)
    first = nn.Linear(n_in, n_in, rng=0)
    h = nn.ReLU()(first(x))
    h = nn.ReLU()(nn.shared_copy(first)(h))
    return nn.Graph(x, nn.Linear(n_in, 3, rng=1)(h))


def manual(model, opt, loss_fn, x, y, batch_size, seed, epochs=2):
    gen = np.random.default_rng(seed)
    for _ in range(epochs):
        for xb, yb in nn.batches(x, y, batch_size, rng=gen):
            model.zero_grad()
            loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()


def data(n_in, rows=24, seed=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, n_in)).astype(dtype), rng.integers(0, 3, rows)


def assert_same(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=name)
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def poison(model):
    """A callback that fills every gradient with NaN after each step: a promise that read them would show it."""
    def hook(batch, logs):
        for p in model.parameters():
            p.grad.fill(np.nan)
    return nn.LambdaCallback(on_batch_end=hook)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [8, 2 * BLAS_ACCUMULATE_LIMIT // 64])  # BLAS adds (beta) / numpy dot writes
def test_fit_with_promised_zeros_takes_exactly_the_plain_loops_steps(hidden, dtype):
    x, y = data(16, dtype=dtype)
    a, b = mlp(16, hidden, dtype), mlp(16, hidden, dtype)
    assert len(GradZeroing(a, None).layers) == 2
    oa = nn.optim.SGD(a.parameters(), lr=0.05, momentum=0.9)
    ob = nn.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    nn.fit(a, nn.CrossEntropyLoss(), oa, x, y, epochs=2, batch_size=5, verbose=0, rng=7, callbacks=[poison(a)])
    manual(b, ob, nn.CrossEntropyLoss(), x, y, 5, 7)
    for p in a.parameters():  # the poison of the last batch: put the last gradients back to compare them
        p.grad[...] = 0
    b.zero_grad()
    assert_same(a, b)
    assert not any(getattr(m, "_grads_zeroed", False) for m in a.modules())


def test_shared_parameters_are_filled_not_promised_and_the_steps_are_exact():
    x, y = data(4)
    a, b = tied(), tied()
    zeroing = GradZeroing(a, None)
    assert [m.out_features for m in zeroing.layers] == [3]  # only the Linear that alone holds its parameters
    assert len(zeroing.others) == 2
    oa, ob = nn.optim.Adam(a.parameters(), lr=0.01), nn.optim.Adam(b.parameters(), lr=0.01)
    nn.fit(a, nn.CrossEntropyLoss(), oa, x, y, epochs=2, batch_size=5, verbose=0, rng=7, callbacks=[poison(a)])
    manual(b, ob, nn.CrossEntropyLoss(), x, y, 5, 7)
    for p in a.parameters():
        p.grad[...] = 0
    b.zero_grad()
    assert_same(a, b)


def test_a_step_that_fails_leaves_every_gradient_zero_and_no_promise_open():
    model = mlp(4, 6)
    for p in model.parameters():
        p.grad.fill(7.0)
    calls = []

    def explode(batch, logs):
        calls.append(batch)

    class Boom(nn.MSELoss):
        def backward(self, grad=1.0):
            raise RuntimeError("boom")

    x, y = np.ones((8, 4)), np.zeros((8, 3))
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="boom"):
        nn.fit(model, Boom(), opt, x, y, epochs=1, batch_size=4, verbose=0, rng=0,
               callbacks=[nn.LambdaCallback(on_batch_end=explode)])
    assert calls == [] and all(not p.grad.any() for p in model.parameters())
    assert not any(getattr(m, "_grads_zeroed", False) for m in model.modules())
    for p in model.parameters():
        p.value[...] = 1e300  # the output overflows: a non-finite loss, the batch is not stepped on
        p.grad.fill(7.0)
    with pytest.raises(FloatingPointError, match="loss became"), np.errstate(over="ignore", invalid="ignore"):
        nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=4, verbose=0, rng=0)
    assert all(not p.grad.any() for p in model.parameters())
    assert not any(getattr(m, "_grads_zeroed", False) for m in model.modules())


def test_outside_fit_backward_always_adds():
    model = mlp(4, 6)
    x, y = data(4, rows=5)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    nn.fit(model, nn.CrossEntropyLoss(), opt, x, y, epochs=1, batch_size=5, verbose=0, rng=0)
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    loss(model(x), y)
    g = loss.backward()
    model.backward(g)
    once = [p.grad.copy() for p in model.parameters()]
    model(x)
    model.backward(g)  # gradient accumulation over two backward calls
    for p, first in zip(model.parameters(), once):
        np.testing.assert_array_equal(p.grad, 2 * first)


def test_a_promise_on_a_replaced_grad_or_a_replaced_backward_stays_exact():
    """Mid-epoch changes (a .grad replaced, a Linear's backward replaced on the instance) never lose a gradient."""
    x, y = data(4)

    def meddle(model):
        layer = model[2]

        def hook(batch, logs):
            if batch == 1:
                layer.weight.grad = np.zeros_like(layer.weight.value)  # a new array: the bound call falls back
            if batch == 2:
                plain = layer.backward
                layer.backward = lambda g: plain(g)  # an instance hook: fit fills the gradients instead
        return nn.LambdaCallback(on_batch_end=hook)

    a, b = mlp(4, 6), mlp(4, 6)
    oa, ob = nn.optim.SGD(a.parameters(), lr=0.05, momentum=0.9), nn.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    nn.fit(a, nn.CrossEntropyLoss(), oa, x, y, epochs=2, batch_size=5, verbose=0, rng=7, callbacks=[meddle(a)])
    b[2].weight.grad = np.zeros_like(b[2].weight.value)
    manual(b, ob, nn.CrossEntropyLoss(), x, y, 5, 7)
    assert_same(a, b)
