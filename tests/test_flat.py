"""Flat parameters and vectorised optimizer updates: exactly the per-parameter numbers, and every fallback."""

import copy

import numpy as np
import pytest

import nanonet as nn
from nanonet import _flat, optim
from nanonet.optim.foreach import RunState, group_plan

CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.5, maximize=True)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, amsgrad=True, eps=1e-6, maximize=True)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.9)),
    (optim.RMSprop, dict(lr=0.01, centered=True, weight_decay=0.05)),
]
IDS = [f"{cls.__name__}-{kw}" for cls, kw in CASES]


def model(dtype=np.float64):
    return nn.Sequential(nn.Linear(3, 5, rng=0, dtype=dtype), nn.ReLU(), nn.Linear(5, 2, rng=1, dtype=dtype))


def unflatten(m):
    """The same numbers, each parameter in arrays of its own (no run: the per-parameter path)."""
    for p in m.parameters():
        p.value, p.grad = p.value.copy(), p.grad.copy()
    return m


def grads(steps, shapes, seed=3):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


def step_with(opt, params, gs, dtype):
    for p, g in zip(params, gs):
        p.grad[...] = g.astype(dtype)
    opt.step()


def test_containers_lay_their_parameters_out_in_one_block():
    m = model()
    values = [p.value for p in m.parameters()]
    assert len({id(v.base) for v in values}) == 1 and values[0].base.size == sum(v.size for v in values)
    assert len({id(p.grad.base) for p in m.parameters()}) == 1
    before = [v.copy() for v in values]
    _flat.flatten(m.parameters())  # already flat: nothing moves
    assert all(p.value is v for p, v in zip(m.parameters(), values))
    assert all(np.array_equal(v, b) for v, b in zip(values, before))
    assert [len(r.params) for r in _flat.runs(m.parameters())] == [4]
    m.to(np.float32)  # new arrays, laid out again
    assert {p.value.dtype for p in m.parameters()} == {np.dtype(np.float32)}
    assert [len(r.params) for r in _flat.runs(m.parameters())] == [4]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=IDS)
def test_vectorised_update_is_exactly_the_per_parameter_update(cls, kwargs, dtype):
    flat, split = model(dtype), unflatten(model(dtype))
    fo, so = cls(flat.parameters(), **kwargs), cls(split.parameters(), **kwargs)
    shapes = [p.value.shape for p in flat.parameters()]
    for gs in grads(6, shapes):
        step_with(fo, flat.parameters(), gs, dtype)
        step_with(so, split.parameters(), gs, dtype)
    assert [type(i) for i in group_plan(fo, fo.param_groups[0]).items] == [RunState]
    assert all(type(i) is nn.Parameter for i in group_plan(so, so.param_groups[0]).items)
    start = [p.value for p in model(dtype).parameters()]
    for a, b, s in zip(flat.parameters(), split.parameters(), start):
        assert np.array_equal(a.value, b.value) and not np.array_equal(a.value, s)
    for p, q in zip(flat.parameters(), split.parameters()):  # the state, per parameter, is the same too
        for key, value in so.state[q].items():
            assert np.array_equal(fo.state[p][key], value)


@pytest.mark.parametrize("cls, kwargs", CASES, ids=IDS)
def test_vectorised_update_matches_torch_optim(cls, kwargs):
    torch = pytest.importorskip("torch")
    m = model()
    opt = cls(m.parameters(), **kwargs)
    tparams = [torch.tensor(p.value, requires_grad=True) for p in m.parameters()]
    topt = getattr(torch.optim, cls.__name__)(tparams, **kwargs, foreach=False)
    for gs in grads(10, [p.value.shape for p in m.parameters()]):
        step_with(opt, m.parameters(), gs, np.float64)
        for tp, g in zip(tparams, gs):
            tp.grad = torch.tensor(g)
        topt.step()
    assert [type(i) for i in group_plan(opt, opt.param_groups[0]).items] == [RunState]
    for p, tp in zip(m.parameters(), tparams):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_a_broken_layout_falls_back_with_exact_results():
    flat, split = model(), unflatten(model())
    fo, so = optim.Adam(flat.parameters(), lr=0.01), optim.Adam(split.parameters(), lr=0.01)
    params = flat.parameters()
    for k, gs in enumerate(grads(8, [p.value.shape for p in params])):
        if k == 3:
            params[0].value = params[0].value * 1.0   # a user's new array: that parameter leaves the run
            split.parameters()[0].value = split.parameters()[0].value * 1.0
        if k == 5:
            params[2].grad = np.zeros_like(params[2].grad)  # a replaced grad
        step_with(fo, params, gs, np.float64)
        step_with(so, split.parameters(), gs, np.float64)
    items = group_plan(fo, fo.param_groups[0]).items
    assert items[0] is params[0] and params[2] in items
    for a, b in zip(params, split.parameters()):
        assert np.array_equal(a.value, b.value)


def test_replaced_state_and_loaded_state_are_used_exactly():
    flat, split = model(), unflatten(model())
    fo, so = optim.SGD(flat.parameters(), lr=0.1, momentum=0.9), optim.SGD(split.parameters(), lr=0.1, momentum=0.9)
    sequence = grads(8, [p.value.shape for p in flat.parameters()])
    for k, gs in enumerate(sequence):
        if k == 2:  # a user edits one momentum buffer: the flat state takes the new array's numbers
            for o, m in ((fo, flat), (so, split)):
                p = m.parameters()[1]
                o.state[p]["momentum_buffer"] = o.state[p]["momentum_buffer"] * 0.5
        if k == 4:
            fo.load_state_dict(fo.state_dict())
        step_with(fo, flat.parameters(), gs, np.float64)
        step_with(so, split.parameters(), gs, np.float64)
    for a, b in zip(flat.parameters(), split.parameters()):
        assert np.array_equal(a.value, b.value)
    p = flat.parameters()[0]
    assert fo.state[p]["momentum_buffer"].base is not None  # a view of the run's flat state again


def test_state_dict_round_trip_from_a_flat_run_resumes_exactly():
    full, half = model(), model()
    fo, ho = optim.Adam(full.parameters(), lr=0.01, amsgrad=True), optim.Adam(half.parameters(), lr=0.01, amsgrad=True)
    sequence = grads(10, [p.value.shape for p in full.parameters()])
    for k, gs in enumerate(sequence):
        step_with(fo, full.parameters(), gs, np.float64)
        if k < 5:
            step_with(ho, half.parameters(), gs, np.float64)
    resumed = model()
    resumed.load_state_dict(half.state_dict())
    ro = optim.Adam(resumed.parameters(), lr=0.5)
    ro.load_state_dict(ho.state_dict())
    for gs in sequence[5:]:
        step_with(ro, resumed.parameters(), gs, np.float64)
    assert all(np.array_equal(a.value, b.value) for a, b in zip(full.parameters(), resumed.parameters()))


def test_dtype_change_after_a_step_is_still_reported():
    m = model()
    opt = optim.Adam(m.parameters())
    opt.step()
    m.to(np.float32)
    with pytest.raises(RuntimeError, match=r"state 'exp_avg' is float64\(3, 5\) but its parameter is float32"):
        opt.step()


def test_zero_grad_fills_the_run_and_only_the_optimizers_parameters():
    m = model()
    extra = nn.Parameter(np.ones(3))
    extra.grad[...] = 7.0
    opt = optim.SGD(m.parameters(), lr=0.1)
    for p in m.parameters():
        p.grad[...] = 3.0
    grads_before = [p.grad for p in m.parameters()]
    opt.zero_grad()
    assert all(p.grad is g and not g.any() for p, g in zip(m.parameters(), grads_before))
    assert (extra.grad == 7.0).all()


def test_copies_never_update_the_originals_arrays():
    m = model()
    opt = optim.Adam(m.parameters(), lr=0.1)
    m.parameters()[0].grad[...] = 1.0
    opt.step()
    m2, opt2 = copy.deepcopy((m, opt))
    before = [p.value.copy() for p in m.parameters()]
    for p in m2.parameters():
        p.grad[...] = 1.0
    opt2.step()
    assert all(np.array_equal(p.value, b) for p, b in zip(m.parameters(), before))
    assert not np.array_equal(m2.parameters()[0].value, before[0])
