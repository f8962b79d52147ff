"""Forward values and gradients of every new layer and loss agree with PyTorch's, in float64."""

import numpy as np
import pytest

import nanonet as nn

torch = pytest.importorskip("torch")


def _x(shape=(6, 5), scale=2.0, seed=0):
    return np.random.default_rng(seed).normal(size=shape) * scale


def _compare_module(ours, theirs, x, params=()):
    """Forward and backward of ``ours`` against torch module ``theirs`` on ``x``."""
    ours.zero_grad()
    y = ours.forward(x)
    g = np.random.default_rng(9).normal(size=y.shape)
    dx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours_p, theirs_p in params:
        np.testing.assert_allclose(ours_p.grad, theirs_p.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.GELU(), torch.nn.GELU()),
    (nn.Softplus(), torch.nn.Softplus()),
    (nn.Softplus(beta=2.0, threshold=5.0), torch.nn.Softplus(beta=2.0, threshold=5.0)),
    (nn.ELU(), torch.nn.ELU()),
    (nn.ELU(0.4), torch.nn.ELU(0.4)),
    (nn.Identity(), torch.nn.Identity()),
], ids=repr)
def test_activations_match_torch(ours, theirs):
    x = _x()
    x[0, :3] = [0.0, 1000.0, -1000.0]  # the kink and extreme inputs
    _compare_module(ours, theirs, x)


def test_flatten_matches_torch():
    _compare_module(nn.Flatten(), torch.nn.Flatten(), _x((4, 2, 3)))


def test_dropout_eval_is_identity_like_torch():
    drop, theirs = nn.Dropout(0.3, rng=0).eval(), torch.nn.Dropout(0.3).eval()
    _compare_module(drop, theirs, _x())


def _torch_affine(module, ours):
    with torch.no_grad():
        module.weight.copy_(torch.tensor(ours.weight.value))
        module.bias.copy_(torch.tensor(ours.bias.value))
    return [(ours.weight, module.weight), (ours.bias, module.bias)]


def test_layernorm_matches_torch():
    ours = nn.LayerNorm(5)
    ours.weight.value[:] = np.random.default_rng(1).normal(size=5)
    ours.bias.value[:] = np.random.default_rng(2).normal(size=5)
    theirs = torch.nn.LayerNorm(5, dtype=torch.float64)
    _compare_module(ours, theirs, _x(), _torch_affine(theirs, ours))


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_torch_in_train_and_eval(training):
    ours = nn.BatchNorm1d(5, momentum=0.3)
    ours.weight.value[:] = np.random.default_rng(1).normal(size=5)
    ours.bias.value[:] = np.random.default_rng(2).normal(size=5)
    theirs = torch.nn.BatchNorm1d(5, momentum=0.3, dtype=torch.float64)
    params = _torch_affine(theirs, ours)
    warmup = _x(seed=4)
    ours.forward(warmup)
    theirs(torch.tensor(warmup))
    if not training:
        ours.eval()
        theirs.eval()
    _compare_module(ours, theirs, _x(), params)
    np.testing.assert_allclose(ours.running_mean.value, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.value, theirs.running_var.numpy(), rtol=1e-12)


def _compare_loss(ours, theirs, pred, target, torch_target=None):
    value = ours(pred, target)
    grad = ours.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target) if torch_target is None else torch_target
    tv = theirs(tp, tt)
    tv.backward()
    assert value == pytest.approx(tv.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_regression_losses_match_torch(reduction):
    pred, target = _x((6, 3)), _x((6, 3), seed=1)
    target[0, 0] = pred[0, 0]  # L1 at its kink: both use sign(0) = 0
    _compare_loss(nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction), pred, target)
    _compare_loss(nn.L1Loss(reduction), torch.nn.L1Loss(reduction=reduction), pred, target)
    for delta in (0.5, 1.0, 3.0):
        _compare_loss(nn.HuberLoss(reduction, delta), torch.nn.HuberLoss(reduction=reduction, delta=delta),
                      pred, target)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch(reduction):
    logits = _x((6, 4), scale=5)
    logits[0] = [1000.0, -1000.0, 0.0, 500.0]
    classes = np.array([0, 1, 2, 3, 1, 0])
    _compare_loss(nn.CrossEntropyLoss(reduction), torch.nn.CrossEntropyLoss(reduction=reduction), logits,
                  classes, torch.tensor(classes))
    probs = np.random.default_rng(3).dirichlet(np.ones(4), size=6)
    _compare_loss(nn.CrossEntropyLoss(reduction), torch.nn.CrossEntropyLoss(reduction=reduction), logits, probs)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_matches_torch(reduction):
    logits = _x((5, 3), scale=4)
    logits[0] = [1000.0, -1000.0, 0.0]
    target = np.random.default_rng(2).uniform(size=(5, 3))
    _compare_loss(nn.BCEWithLogitsLoss(reduction), torch.nn.BCEWithLogitsLoss(reduction=reduction), logits, target)


def test_linear_matches_torch():
    ours = nn.Linear(5, 3, rng=0)
    ours.bias.value[:] = [0.1, -0.2, 0.3]
    theirs = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.value.T))
        theirs.bias.copy_(torch.tensor(ours.bias.value))
    _compare_module(ours, theirs, _x(), [(ours.bias, theirs.bias)])
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
