"""Learning-rate schedules: closed forms, torch.optim.lr_scheduler, bad input, resuming."""

import math

import numpy as np
import pytest

import nanonet as nn
from nanonet import optim

EPOCHS = 30


def make_opt(lr=0.5):
    return optim.SGD([nn.Parameter(np.zeros(3))], lr=lr)


def lrs_by_stepping(make_sched, lr=0.5, epochs=EPOCHS):
    opt = make_opt(lr)
    sched = make_sched(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out


CASES = [
    ("StepLR", dict(step_size=7, gamma=0.3),
     lambda e: 0.5 * 0.3 ** (e // 7)),
    ("ExponentialLR", dict(gamma=0.9), lambda e: 0.5 * 0.9**e),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01),
     lambda e: 0.01 + (0.5 - 0.01) * (1 + math.cos(math.pi * e / 10)) / 2),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=8),
     lambda e: 0.5 * (0.1 + 0.9 * min(e, 8) / 8)),
]


@pytest.mark.parametrize("name, kwargs, formula", CASES, ids=[c[0] for c in CASES])
def test_schedule_follows_its_formula(name, kwargs, formula):
    got = lrs_by_stepping(lambda opt: getattr(optim, name)(opt, **kwargs))
    expected = [formula(e) for e in range(EPOCHS)]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)
    assert len(set(got)) > 1  # it really changes the rate


@pytest.mark.parametrize("name, kwargs, formula", CASES, ids=[c[0] for c in CASES])
def test_schedule_matches_torch(name, kwargs, formula):
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.5)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    theirs = []
    for _ in range(EPOCHS):
        theirs.append(topt.param_groups[0]["lr"])
        topt.step()
        tsched.step()
    ours = lrs_by_stepping(lambda opt: getattr(optim, name)(opt, **kwargs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_linear_warmup_then_cosine():
    opt = make_opt(1.0)
    cosine = optim.CosineAnnealingLR(opt, T_max=4)
    sched = optim.LinearWarmup(opt, warmup_epochs=4, start_factor=0.2, after=cosine)
    got = []
    for _ in range(9):
        got.append(opt.param_groups[0]["lr"])
        sched.step()
    np.testing.assert_allclose(got[:4], [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(got[4:], [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5,
                                         (1 + math.cos(3 * math.pi / 4)) / 2, 0.0], atol=1e-15)


def test_as_fit_callback_the_epoch_sets_the_rate():
    opt = make_opt(1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    sched.on_epoch_begin(5)
    assert opt.param_groups[0]["lr"] == 0.25 and sched.last_epoch == 5


def test_resumed_schedule_uses_initial_lr_from_the_optimizer_state():
    opt = make_opt(1.0)
    sched = optim.ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    assert opt.param_groups[0]["lr"] == 0.125
    opt2 = make_opt(1.0)
    opt2.load_state_dict(saved_opt)        # lr 0.125, initial_lr 1.0
    sched2 = optim.ExponentialLR(opt2, gamma=0.5)
    assert sched2.base_lrs == [1.0]
    sched2.load_state_dict(saved_sched)
    sched.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.0625


@pytest.mark.parametrize("make, match", [
    (lambda o: optim.StepLR(o, step_size=0), r"StepLR expected step_size to be an int >= 1, got 0"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=0), r"StepLR expected gamma > 0, got 0"),
    (lambda o: optim.ExponentialLR(o, gamma=-0.5), r"ExponentialLR expected gamma > 0"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), r"T_max to be an int >= 1"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=3, eta_min=-1), r"eta_min >= 0"),
    (lambda o: optim.LinearLR(o, start_factor=0), r"start_factor in \(0, 1\], got 0"),
    (lambda o: optim.LinearLR(o, start_factor=1.5), r"start_factor in \(0, 1\]"),
    (lambda o: optim.LinearLR(o, total_iters=0), r"total_iters to be an int >= 1"),
    (lambda o: optim.LinearWarmup(o, warmup_epochs=0), r"warmup_epochs to be an int >= 1"),
    (lambda o: optim.LinearWarmup(o, 2, after=optim.StepLR(make_opt(), 2)), r"same optimizer"),
    (lambda o: optim.StepLR(o, step_size=2, last_epoch=3), r"needs 'initial_lr'"),
])
def test_invalid_schedule_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_opt())


def test_schedule_needs_an_optimizer():
    with pytest.raises(TypeError, match="StepLR expected an optimizer, got list"):
        optim.StepLR([], step_size=1)
