"""Optimizers: the update formula in numpy (always), torch.optim (where installed), bad input, state."""

import math

import numpy as np
import pytest

import nanonet as nn
from nanonet import optim

SHAPES = [(3, 4), (5,)]
STEPS = 20


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def grad_sequence(seed=1, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def run_nanonet(cls, kwargs, steps=STEPS):
    params = make_params()
    opt = cls(params, **kwargs)
    for grads in grad_sequence(steps=steps):
        for p, g in zip(params, grads):
            p.grad[...] = g
        opt.step()
    return [p.value for p in params]


# -- reference formulas, written out plainly in numpy --------------------------------
def ref_sgd(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
    def run():
        params = [p.value.copy() for p in make_params()]
        bufs = [None] * len(params)
        for grads in grad_sequence():
            for i, g in enumerate(grads):
                g = -g if maximize else g
                g = g + weight_decay * params[i]
                if momentum:
                    bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                    g = g + momentum * bufs[i] if nesterov else bufs[i]
                params[i] = params[i] - lr * g
        return params
    return run


def ref_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    def run():
        b1, b2 = betas
        params = [p.value.copy() for p in make_params()]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        vmax = [np.zeros_like(p) for p in params]
        for t, grads in enumerate(grad_sequence(), start=1):
            for i, g in enumerate(grads):
                if decoupled:
                    params[i] = params[i] * (1 - lr * weight_decay)
                else:
                    g = g + weight_decay * params[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                vmax[i] = np.maximum(vmax[i], v[i])
                vhat = (vmax[i] if amsgrad else v[i]) / (1 - b2**t)
                params[i] = params[i] - lr * (m[i] / (1 - b1**t)) / (np.sqrt(vhat) + eps)
        return params
    return run


def ref_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
    def run():
        params = [p.value.copy() for p in make_params()]
        sq = [np.zeros_like(p) for p in params]
        ga = [np.zeros_like(p) for p in params]
        buf = [np.zeros_like(p) for p in params]
        for grads in grad_sequence():
            for i, g in enumerate(grads):
                g = g + weight_decay * params[i]
                sq[i] = alpha * sq[i] + (1 - alpha) * g * g
                ga[i] = alpha * ga[i] + (1 - alpha) * g
                var = sq[i] - ga[i] ** 2 if centered else sq[i]
                step = g / (np.sqrt(var) + eps)
                if momentum:
                    buf[i] = momentum * buf[i] + step
                    step = buf[i]
                params[i] = params[i] - lr * step
        return params
    return run


CASES = [
    (optim.SGD, dict(lr=0.1), ref_sgd(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9), ref_sgd(lr=0.1, momentum=0.9)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
     ref_sgd(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
     ref_sgd(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.5, maximize=True), ref_sgd(lr=0.05, momentum=0.5, maximize=True)),
    (optim.Adam, dict(lr=0.01), ref_adam(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1), ref_adam(lr=0.01, betas=(0.8, 0.99),
                                                                             weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, amsgrad=True, eps=1e-6), ref_adam(lr=0.01, amsgrad=True, eps=1e-6)),
    (optim.AdamW, dict(lr=0.01), ref_adam(lr=0.01, weight_decay=0.01, decoupled=True)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True),
     ref_adam(lr=0.01, weight_decay=0.3, amsgrad=True, decoupled=True)),
    (optim.RMSprop, dict(), ref_rmsprop()),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.9), ref_rmsprop(lr=0.01, alpha=0.9, momentum=0.9)),
    (optim.RMSprop, dict(lr=0.01, centered=True, weight_decay=0.05),
     ref_rmsprop(lr=0.01, centered=True, weight_decay=0.05)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5), ref_rmsprop(lr=0.01, centered=True, momentum=0.5)),
]
IDS = [f"{cls.__name__}-{kw}" for cls, kw, _ in CASES]


@pytest.mark.parametrize("cls, kwargs, reference", CASES, ids=IDS)
def test_update_matches_the_formula_written_in_numpy(cls, kwargs, reference):
    ours, ref = run_nanonet(cls, kwargs), reference()
    start = [p.value for p in make_params()]
    for a, b, s in zip(ours, ref, start):
        assert not np.allclose(a, s)  # the optimizer really moved the parameters
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cls, kwargs, reference", CASES, ids=IDS)
def test_twenty_steps_match_torch_optim(cls, kwargs, reference):
    torch = pytest.importorskip("torch")
    tparams = [torch.tensor(p.value, dtype=torch.float64, requires_grad=True) for p in make_params()]
    topt = getattr(torch.optim, cls.__name__)(tparams, **kwargs, foreach=False)
    for grads in grad_sequence():
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
    for ours, theirs in zip(run_nanonet(cls, kwargs), tparams):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_default_keywords_are_torchs():
    torch = pytest.importorskip("torch")
    import inspect

    for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop):
        ours = inspect.signature(cls).parameters
        theirs = inspect.signature(getattr(torch.optim, cls.__name__)).parameters
        for name, par in ours.items():
            assert name in theirs, (cls.__name__, name)
            if par.default is not inspect.Parameter.empty:
                assert par.default == theirs[name].default, (cls.__name__, name)


def test_float32_parameters_stay_float32():
    params = make_params(dtype=np.float32)
    opt = optim.Adam(params, lr=0.01, amsgrad=True)
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    assert all(p.value.dtype == np.float32 for p in params)
    assert all(a.dtype == np.float32 for st in opt.state.values() for k, a in st.items() if k != "step")


def test_update_is_in_place_and_state_is_keyed_on_the_parameter():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 1, rng=1))
    arrays = [p.value for p in model.parameters()]
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = np.ones((5, 3)), np.zeros((5, 1))
    loss = nn.MSELoss()
    loss(model(x), y)
    model.backward(loss.backward())
    opt.step()
    assert all(p.value is a for p, a in zip(model.parameters(), arrays))
    assert set(opt.state) == set(model.parameters())
    before = opt.state[model[0].weight]["exp_avg"].copy()
    model.load_state_dict(model.state_dict())  # in-place copy: the keys stay valid
    assert np.array_equal(opt.state[model[0].weight]["exp_avg"], before)


def test_zero_grad_zeros_in_place():
    params = make_params()
    grads = [p.grad for p in params]
    for p in params:
        p.grad[...] = 3.0
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is g and not g.any() for p, g in zip(params, grads))


def test_param_groups_take_their_own_hyperparameters():
    a, b = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a0, b0 = a.value.copy(), b.value.copy()
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(a.value, a0 - 0.1)
    np.testing.assert_allclose(b.value, b0 - 1.0)


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.SGD(p, lr=0), r"SGD expected lr > 0, got 0"),
    (lambda p: optim.SGD(p, lr=-0.1), r"SGD expected lr > 0, got -0.1"),
    (lambda p: optim.Adam(p, lr=-1e-3), r"Adam expected lr > 0"),
    (lambda p: optim.AdamW(p, lr=0.0), r"AdamW expected lr > 0"),
    (lambda p: optim.RMSprop(p, lr=-1), r"RMSprop expected lr > 0"),
    (lambda p: optim.SGD(p, lr=float("nan")), r"SGD expected a finite lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), r"momentum >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"dampening == 0"),
    (lambda p: optim.SGD(p, lr=0.1, dampening=1.5), r"dampening in \[0, 1\]"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), r"weight_decay >= 0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\] in \[0, 1\), got 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\] in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(0.9,)), r"betas to be a pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), r"eps >= 0"),
    (lambda p: optim.RMSprop(p, alpha=1.5), r"alpha in \[0, 1\]"),
    (lambda p: optim.RMSprop(p, momentum=-1), r"momentum >= 0"),
    (lambda p: optim.SGD([], lr=0.1), r"empty parameter list"),
    (lambda p: optim.SGD(p + p[:1], lr=0.1), r"appears more than once"),
    (lambda p: optim.SGD([{"params": p, "betas": (0.9, 0.9)}], lr=0.1), r"unknown hyperparameter"),
])
def test_invalid_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="got a Module; pass model.parameters()"):
        optim.SGD(nn.Linear(2, 2, rng=0), lr=0.1)
    with pytest.raises(TypeError, match="expected Parameters, got ndarray at position 0"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="lr to be a real number"):
        optim.Adam(make_params(), lr="0.1")
    with pytest.raises(TypeError, match="amsgrad to be True or False"):
        optim.Adam(make_params(), amsgrad=1)


@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, dict(momentum=0.5, centered=True)),
])
def test_state_dict_round_trip_resumes_exactly(cls, kwargs):
    grads = grad_sequence()
    full = make_params()
    opt = cls(full, **kwargs)
    half = make_params()
    opt_half = cls(half, **kwargs)
    for k, gs in enumerate(grads):
        for p, g in zip(full, gs):
            p.grad[...] = g
        opt.step()
        if k < 10:
            for p, g in zip(half, gs):
                p.grad[...] = g
            opt_half.step()
    saved = opt_half.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in saved.values())
    resumed = [nn.Parameter(p.value.copy()) for p in half]
    opt2 = cls(resumed, lr=0.5)  # the state dict restores the hyperparameters too
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == opt_half.param_groups[0]["lr"]
    for gs in grads[10:]:
        for p, g in zip(resumed, gs):
            p.grad[...] = g
        opt2.step()
    for a, b in zip(full, resumed):
        assert np.array_equal(a.value, b.value)


def test_load_state_dict_lists_every_mismatch_and_changes_nothing():
    params = make_params()
    opt = optim.Adam(params, lr=0.01)
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()
    state["state.0.exp_avg"] = np.zeros((4, 3))
    state["state.1.exp_avg_sq"] = state["state.1.exp_avg_sq"].astype(np.float32)
    del state["state.1.exp_avg"]
    state["param_groups.0.betas"] = np.array([0.9, 1.5])
    other = optim.Adam(make_params(), lr=0.02)
    with pytest.raises(ValueError) as info:
        other.load_state_dict(state)
    text = str(info.value)
    assert "state.0.exp_avg: expected shape (3, 4), got (4, 3)" in text
    assert "state.1.exp_avg_sq: expected dtype float64, got float32" in text
    assert "state.1: missing entry 'exp_avg'" in text
    assert "betas[1] in [0, 1), got 1.5" in text
    assert "4 problem(s)" in text
    assert other.state == {} and other.param_groups[0]["lr"] == 0.02
    with pytest.raises(ValueError, match="optimizer type: expected 'SGD', got 'Adam'"):
        optim.SGD(make_params(), lr=0.1).load_state_dict(opt.state_dict())


def test_dtype_change_after_a_step_is_reported():
    model = nn.Linear(2, 1, rng=0)
    opt = optim.Adam(model.parameters())
    opt.step()
    model.to(np.float32)
    with pytest.raises(RuntimeError, match=r"state 'exp_avg' is float64\(2, 1\) but its parameter is float32"):
        opt.step()


# -- gradient clipping ----------------------------------------------------------------
def test_clip_grad_norm_scales_to_the_global_norm():
    params = make_params()
    grads = grad_sequence(steps=1)[0]
    for p, g in zip(params, grads):
        p.grad[...] = g * 10
    expected = math.sqrt(sum(float(((g * 10) ** 2).sum()) for g in grads))
    total = optim.clip_grad_norm(params, max_norm=1.0)
    assert total == pytest.approx(expected, rel=1e-12)
    after = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
    assert after == pytest.approx(1.0 / (1.0 + 1e-6 / expected), rel=1e-9)
    for p, g in zip(params, grads):  # the direction is kept
        np.testing.assert_allclose(p.grad, g * 10 / (expected + 1e-6), rtol=1e-12)
    small = [p.grad.copy() for p in params]
    assert optim.clip_grad_norm(params, max_norm=5.0) < 5.0
    assert all(np.array_equal(p.grad, s) for p, s in zip(params, small))  # under the limit: untouched


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    params = make_params()
    grads = grad_sequence(steps=1)[0]
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    ours = optim.clip_grad_norm(params, 0.5, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(tparams, 0.5, norm_type=norm_type)
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_bad_input():
    with pytest.raises(ValueError, match="max_norm > 0, got 0"):
        optim.clip_grad_norm(make_params(), 0)
    with pytest.raises(TypeError, match="got a Module"):
        optim.clip_grad_norm(nn.Linear(2, 2, rng=0), 1.0)
    params = make_params()
    params[0].grad[0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="total gradient norm is inf"):
        optim.clip_grad_norm(params, 1.0, error_if_nonfinite=True)
