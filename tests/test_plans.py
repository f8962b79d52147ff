"""Prepared plans (bound calls) in Sequential and Graph, the fused cross-entropy, and fit's inner loop.

Each fast path is compared with the path it replaces, exactly, and its
guards are exercised: anything that changed falls back to the checked path,
with the same errors.
"""

import copy

import numpy as np
import pytest

import nanonet as nn


def mlp(seed=0, dtype=np.float64):
    return nn.Sequential(nn.Linear(4, 6, rng=seed, dtype=dtype), nn.ReLU(), nn.Linear(6, 6, rng=seed + 1, dtype=dtype),
                         nn.ReLU(), nn.Linear(6, 3, rng=seed + 2, dtype=dtype))


def residual(seed=0):
    x = nn.Input(4)
    h = nn.ReLU()(nn.Linear(4, 6, rng=seed)(x))
    r = nn.Add()(h, nn.ReLU()(nn.Linear(6, 6, rng=seed + 1)(h)))
    return nn.Graph(x, nn.Linear(6, 3, rng=seed + 2)(r))


def chain_graph(seed=0):
    x = nn.Input(4)
    h = nn.ReLU()(nn.Linear(6, 6, rng=seed + 1)(nn.ReLU()(nn.Linear(4, 6, rng=seed)(x))))
    return nn.Graph(x, nn.Linear(6, 3, rng=seed + 2)(h))


def run(model, xs, gs, input_grad=True):
    """Outputs, input gradients and parameter gradients of a few forward/backward calls."""
    outs, dxs, pgrads = [], [], []
    for x, g in zip(xs, gs):
        model.zero_grad()
        outs.append(model(x).copy())
        dx = model.backward(g, input_grad=input_grad)
        dxs.append(None if dx is None else dx.copy())
        pgrads.append([p.grad.copy() for p in model.parameters()])
    return outs, dxs, pgrads


def data(rows=(5, 5, 5, 2, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 4)) for n in rows], [rng.standard_normal((n, 3)) for n in rows]


def assert_same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, list):
            assert_same(x, y)
        elif x is None:
            assert y is None
        else:
            assert np.array_equal(x, y)


@pytest.mark.parametrize("make", [mlp, residual, chain_graph], ids=["sequential", "residual", "chain graph"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_bound_calls_give_exactly_the_checked_paths_numbers(make, input_grad):
    xs, gs = data()
    bound = run(make(), xs, gs, input_grad)
    with nn.detect_anomaly():  # anomaly mode never binds: every call takes the checked path
        checked = run(make(), xs, gs, input_grad)
    assert_same(bound, checked)
    if not input_grad:
        assert bound[1] == [None] * len(xs)


def test_a_chain_graph_is_exactly_the_sequential():
    xs, gs = data()
    assert_same(run(chain_graph(), xs, gs), run(mlp(), xs, gs))


@pytest.mark.parametrize("make", [mlp, residual, chain_graph], ids=["sequential", "residual", "chain graph"])
def test_returned_arrays_are_never_written_by_later_calls(make):
    model = make()
    xs, gs = data(rows=(5, 5, 5))
    out = model(xs[0])
    dx = model.backward(gs[0])
    kept_out, kept_dx = out.copy(), dx.copy()
    for x, g in zip(xs[1:], gs[1:]):
        model(x)
        model.backward(g)
    assert np.array_equal(out, kept_out) and np.array_equal(dx, kept_dx)


@pytest.mark.parametrize("make", [mlp, residual], ids=["sequential", "graph"])
def test_what_changed_after_binding_is_honoured(make):
    model = make()
    xs, gs = data(rows=(5, 5, 5, 5))
    run(model, xs[:2], gs[:2])
    first = model[0]
    first.weight.value = first.weight.value * 2.0  # a new array: the bound call must not use the old one
    calls = []
    relu = model[1]
    original = type(relu).forward.__get__(relu)
    relu.forward = lambda x: calls.append(x.shape) or original(x)  # an instance hook after binding
    got = run(model, xs[2:], gs[2:])
    twin = make()
    twin[0].weight.value = twin[0].weight.value * 2.0
    assert_same(got, run(twin, xs[2:], gs[2:]))
    assert calls == [(5, 6), (5, 6)]


@pytest.mark.parametrize("make", [mlp, residual], ids=["sequential", "graph"])
def test_errors_after_binding_are_as_clear_as_before(make):
    model = make()
    xs, gs = data(rows=(5, 5))
    run(model, xs, gs)
    with pytest.raises(ValueError, match=r"expected input.* \(N, 4\)|of shape \(N, 4\)"):
        model(np.ones((5, 5)))
    model(xs[0])
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        model.backward(np.ones((5, 4)))
    with pytest.raises((TypeError, ValueError), match="float32"):  # Sequential: TypeError; Graph: ValueError
        model.backward(np.ones((5, 3), np.float32))


def test_a_copy_computes_with_its_own_parameters():
    model = mlp()
    xs, gs = data(rows=(5, 5))
    run(model, xs, gs)
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.value[...] = 0.0
    assert not np.array_equal(model(xs[0]), twin(xs[0]))
    assert np.array_equal(twin(xs[0]), np.zeros((5, 3)))
    twin.zero_grad()
    twin.backward(gs[0])
    model.zero_grad()
    model.backward(gs[0])
    assert not np.array_equal(model[0].weight.grad, twin[0].weight.grad)


# -- the fused cross-entropy ----------------------------------------------------------------------
@pytest.mark.parametrize("target_dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_cross_entropy_equals_the_general_path(target_dtype, dtype, reduction):
    rng = np.random.default_rng(1)
    pred = (rng.standard_normal((7, 5)) * 30).astype(dtype)
    target = rng.integers(0, 5, 7).astype(target_dtype)
    fused, plain = nn.CrossEntropyLoss(reduction), nn.CrossEntropyLoss(reduction)
    got, ref = fused(pred, target), plain.forward(pred, target)
    assert type(fused._cache).__name__ == "Fused" and type(plain._cache) is tuple
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, ref, rtol=tol)
    g1, g2 = fused.backward(2.0), fused.backward(2.0)
    assert g1 is not g2 and np.array_equal(g1, g2)  # fresh, and the cache survives a backward
    np.testing.assert_allclose(g1, plain.backward(2.0), rtol=tol, atol=tol * 1e-3)


def test_fused_cross_entropy_keeps_every_check_and_the_last_good_cache():
    loss = nn.CrossEntropyLoss()
    pred = np.random.default_rng(2).standard_normal((3, 4))
    loss(pred, np.array([0, 1, 2]))
    good = loss.backward()
    for bad in (np.inf, -np.inf, np.nan):  # refused before forward runs: the last good cache stays
        broken = pred.copy()
        broken[1, 2] = bad
        with pytest.raises(FloatingPointError, match=r"non-finite pred: 1 NaN/Inf value\(s\), the first at index \(1, 2\)"):
            loss(broken, np.array([0, 1, 2]))
    assert np.array_equal(loss.backward(), good)
    for target, message in ((np.array([0, 4, 1]), r"class indices in \[0, 4\)"),
                            (np.array([0, -1, 1]), r"got values from -1 to 1")):
        with pytest.raises(ValueError, match=message):
            loss(pred, target)
    with pytest.raises(RuntimeError, match="after a forward that failed"):  # the contract's rule, as before
        loss.backward()


def test_an_option_the_fused_path_does_not_know_turns_it_off():
    class Smoothed(nn.CrossEntropyLoss):
        def __init__(self):
            super().__init__()
            self.label_smoothing = 0.1  # an option the fused path would ignore

    loss = Smoothed()
    loss(np.zeros((2, 3)), np.array([0, 1]))
    assert type(loss._cache) is tuple


# -- fit's inner loop --------------------------------------------------------------------------------
def manual_training(model, opt, loss_fn, x, y, epochs, batch_size, seed):
    """The documented loop, by hand: the same batches (nn.batches, the same generator) and steps."""
    gen = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for xb, yb in nn.batches(x, y, batch_size, rng=gen):
            model.zero_grad()
            total += loss_fn(model(xb), yb) * len(xb)
            model.backward(loss_fn.backward())
            opt.step()
        losses.append(total / len(x))
    return losses


@pytest.mark.parametrize("loss_fn, target", [(nn.CrossEntropyLoss, "classes"), (nn.MSELoss, "values")])
def test_fit_takes_exactly_the_steps_of_the_manual_loop(loss_fn, target):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((23, 4))
    y = rng.integers(0, 3, 23) if target == "classes" else rng.standard_normal((23, 3))
    a, b = mlp(), mlp()
    oa, ob = nn.optim.Adam(a.parameters(), lr=0.01), nn.optim.Adam(b.parameters(), lr=0.01)
    history = nn.fit(a, loss_fn(), oa, x, y, epochs=3, batch_size=5, verbose=0, rng=np.random.default_rng(7))
    losses = manual_training(b, ob, loss_fn(), x, y, 3, 5, 7)
    assert history.history["loss"] == losses
    assert all(np.array_equal(p.value, q.value) for p, q in zip(a.parameters(), b.parameters()))


def test_fit_zeroes_the_gradients_of_parameters_the_optimizer_does_not_own():
    model = mlp()
    frozen = model[0].weight
    opt = nn.optim.SGD([p for p in model.parameters() if p is not frozen], lr=0.1)
    seen = []
    callback = nn.LambdaCallback(on_batch_end=lambda batch, logs: seen.append(float(np.abs(frozen.grad).sum())))
    x, y = np.random.default_rng(5).standard_normal((12, 4)), np.zeros((12, 3))
    nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=4, verbose=0, rng=0, callbacks=[callback])
    single = mlp()
    single.zero_grad()
    nn.MSELoss()(single(x[:4]), y[:4])
    assert len(seen) == 3 and 0 < seen[0] < 10 * max(seen)  # one batch's gradient, not a running sum


def test_graph_skips_only_the_inputs_gradients_with_input_grad_false():
    """A fast step whose input is not a graph input must compute dJ/dx even when the graph's input_grad=False.

    Here the last Linear reads a Concat of the input and a hidden value: its gradient 'rises' to the input
    through the Concat (so the step writes it fresh), but the Concat and the first Linear still need it.
    """
    inp = nn.Input(4)
    h = nn.Linear(4, 5, rng=0)(inp)
    out = nn.Linear(9, 2, rng=1)(nn.Concat()(nn.Tanh()(h), inp))
    x = np.random.default_rng(2).normal(size=(3, 4))
    grads = {}
    for input_grad in (True, False):
        net = nn.Graph(inp, out)
        net.zero_grad()
        net(x)
        result = net.backward(np.ones((3, 2)), input_grad=input_grad)
        assert (result is None) is (not input_grad)
        grads[input_grad] = {name: p.grad.copy() for name, p in net.named_parameters()}
    for name, want in grads[True].items():
        np.testing.assert_array_equal(grads[False][name], want, err_msg=name)
    assert any(np.abs(g).sum() > 0 for g in grads[False].values())
