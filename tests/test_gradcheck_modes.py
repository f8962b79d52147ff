"""The three modes, the fast evaluation paths (checked against the plain way), and the eps sweep."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nanonet as nn
from nanonet.gradcheck import numeric_gradient
from nanonet.gradcheck.engine import Objective
from nanonet.testing import strategies as nst


def _problem(n=12):
    gen = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 5, rng=1), nn.Tanh(), nn.Linear(5, 4, rng=2), nn.GELU(),
                          nn.Linear(4, 2, rng=3))
    return model, gen.normal(size=(n, 3)), gen.normal(size=(n, 2))


class Bilinear(nn.Module):
    """A custom container that is not a Sequential: y = a(x) * b(x)."""

    def __init__(self):
        self.a = nn.Linear(3, 2, rng=0)
        self.b = nn.Linear(3, 2, rng=1)

    def forward(self, x):
        self._ya, self._yb = self.a.forward(x), self.b.forward(x)
        return self._ya * self._yb

    def backward(self, grad_out):
        return self.a.backward(grad_out * self._yb) + self.b.backward(grad_out * self._ya)


@pytest.mark.parametrize("loss", [None, nn.MSELoss(), nn.HuberLoss(), nn.L1Loss()], ids=repr)
def test_fast_paths_equal_plain_central_differences(loss):
    model, x, y = _problem()
    if loss is None:
        y = None
    obj = Objective(model, x, y, loss, probe=np.random.default_rng(3).normal(size=(x.shape[0], 2)))

    def plain():
        return obj.value_of(model.forward(x))

    for target in obj.targets():
        size = target.flat.size
        idx = np.arange(size)
        d = obj.deltas(target, np.concatenate([idx, idx]), np.r_[np.full(size, 1e-6), np.full(size, -1e-6)])
        fast = (d[:size] - d[size:]) / 2e-6
        want = numeric_gradient(plain, target.array, 1e-6)
        np.testing.assert_allclose(fast, want, rtol=1e-6, atol=1e-8, err_msg=target.name)
    plus, minus = obj.input_row_deltas(1e-6)
    want = numeric_gradient(plain, x, 1e-6)
    np.testing.assert_allclose(((plus - minus) / 2e-6).ravel(), want, rtol=1e-6, atol=1e-8)
    assert obj.can_use_rows(obj.targets()[0])


@pytest.mark.parametrize("mode", ["full", "projected", "fast"])
def test_modes_pass_correct_models(mode):
    model, x, y = _problem()
    for args in ((x, y, nn.MSELoss()), (x,)):
        report = nn.check_gradients(model, *args, rng=0, mode=mode)
        assert report.ok, report
        names = [r.name for r in report.rows]
        assert names == (["all"] if mode == "fast" else ["input", "0.weight", "0.bias", "2.weight", "2.bias",
                                                          "4.weight", "4.bias"])


def test_fast_mode_costs_a_constant_number_of_forwards():
    counts = []
    for width in (4, 64):
        model = nn.Sequential(nn.Linear(3, width, rng=0), nn.Tanh(), nn.Linear(width, 1, rng=1))
        calls = {"n": 0}
        forward = nn.Tanh.forward

        def counting(self, x, forward=forward, calls=calls):
            calls["n"] += 1
            return forward(self, x)

        nn.Tanh.forward = counting
        try:
            x = np.random.default_rng(0).normal(size=(5, 3))
            assert nn.check_gradients(model, x, rng=0, mode="fast").ok
        finally:
            nn.Tanh.forward = forward
        counts.append(calls["n"])
    assert counts[0] == counts[1] <= 8


def test_fast_mode_localizes_a_failure():
    gen = np.random.default_rng(1)

    class FlippedBias(nn.Linear):
        def backward(self, grad_out):
            out = super().backward(grad_out)
            self.bias.grad -= 2 * grad_out.sum(axis=0)
            return out

    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), FlippedBias(4, 2, rng=1))
    report = nn.check_gradients(model, gen.normal(size=(6, 3)), rng=0, mode="fast")
    assert not report.ok
    assert report["all"].result == "FAIL" and [r.name for r in report.failed] == ["all", "2.bias"]
    assert report["2.bias"].diagnosis.startswith("sign flip")


def test_non_sequential_containers_batchnorm_and_dropout():
    x = np.random.default_rng(0).normal(size=(6, 3))
    for model in (Bilinear(),
                  nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2, rng=1)),
                  nn.Sequential(nn.Linear(3, 4, rng=0), nn.Dropout(0.5, rng=3), nn.Linear(4, 2, rng=1))):
        for mode in ("full", "projected"):
            report = nn.check_gradients(model, x, rng=0, mode=mode)
            assert report.ok, report
    bn = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.Linear(4, 2, rng=1))
    report = nn.check_gradients(bn, x, np.zeros((6, 2)), loss_fn=nn.MSELoss(), rng=0, mode="full")
    assert report.ok, report


def test_a_wrong_batchnorm_backward_is_caught():
    class NoBatchCoupling(nn.BatchNorm1d):
        def backward(self, grad_out):  # the eval-mode formula in training: ignores the batch statistics
            xhat, rstd, _ = self._cache
            self.weight.grad += (grad_out * xhat).sum(axis=0)
            self.bias.grad += grad_out.sum(axis=0)
            return grad_out * self.weight.value * rstd

    x = np.random.default_rng(0).normal(size=(6, 3))
    report = nn.check_gradients(NoBatchCoupling(3), x, rng=0)
    assert [r.name for r in report.failed] == ["input"]


def test_wrong_gradient_shape_is_a_failed_row_not_a_crash():
    class WrongShape(nn.Linear):
        def backward(self, grad_out):
            out = super().backward(grad_out)
            self.bias.grad = self.bias.grad[:-1]
            return out

    report = nn.check_gradients(WrongShape(3, 2, rng=0), np.ones((2, 3)), rng=0)
    assert report["bias"].passed is False and "shape" in report["bias"].diagnosis


def test_eps_sweep_tells_a_bug_from_round_off():
    model, x, y = _problem()
    good = nn.eps_sweep(model, x, y, loss_fn=nn.MSELoss(), rng=0)
    assert good.best_error < 1e-8 and "right" in good.verdict
    errors = [r[1] for r in good.rows]
    assert errors[0] > 100 * good.best_error and errors[-1] > 100 * good.best_error  # the V
    text = str(good)
    assert "<- best" in text and len(text.splitlines()) == len(good.rows) + 3

    class Doubled(nn.Tanh):
        def backward(self, grad_out):
            return 2 * super().backward(grad_out)

    bad = nn.eps_sweep(nn.Sequential(nn.Linear(3, 4, rng=0), Doubled()), x, rng=0)
    assert bad.best_error > 1e-2 and "real bug" in bad.verdict


def test_reports_are_deterministic_under_a_seed():
    model, x, y = _problem()
    a = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=3)
    b = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=3)
    assert [(r.rel_error, r.max_abs_error) for r in a.rows] == [(r.rel_error, r.max_abs_error) for r in b.rows]


@given(nst.layer_stacks())
def test_random_layer_stacks_pass_in_full_mode(case):
    model, x = case
    report = nn.check_gradients(model, x, rng=0, mode="full")
    assert report.ok, f"{model}\n{report}"


@given(nst.layer_stacks(kinds=["ReLU", "LeakyReLU", "Tanh"]))
def test_random_stacks_with_a_loss_pass_in_projected_mode(case):
    model, x = case
    out = model.forward(x)
    y = np.zeros_like(out)
    report = nn.check_gradients(model, x, y, loss_fn=nn.HuberLoss(), rng=0)
    assert report.ok, f"{model}\n{report}"


@given(nst.SEEDS, st.data())
def test_layer_inputs_strategy_matches_the_layer(seed, data):
    for layer in (nn.Linear(7, 2, rng=seed), nn.BatchNorm1d(3), nn.Sequential(nn.LayerNorm(5), nn.Tanh())):
        x = data.draw(nst.layer_inputs(layer))
        assert layer.forward(x).shape[0] == x.shape[0]
        assert x.shape[0] >= 2 or getattr(layer, "batch_independent", False)
    x = data.draw(nst.layer_inputs(nn.Tanh()))
    assert x.ndim == 2


def test_scalar_and_vector_inputs():
    assert nn.check_gradients(nn.Tanh(), np.array(0.3), rng=0).ok
    assert nn.check_gradients(nn.Sigmoid(), np.array([0.3, -1.0, 2.0]), rng=0, mode="full").ok


class BufferReusingLinear(nn.Linear):
    """Returns the same output array from every forward of a given shape (as a speed-tuned layer may)."""

    def forward(self, x):
        out = super().forward(x)
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape != out.shape:
            self._buf = buf = np.empty_like(out)
        np.copyto(buf, out)
        return buf


@pytest.mark.parametrize("mode", ["full", "projected", "fast"])
def test_layers_that_reuse_output_buffers_are_checked_correctly(mode):
    model, x, y = _problem()
    reused = nn.Sequential(BufferReusingLinear(3, 5, rng=1), nn.Tanh(), BufferReusingLinear(5, 2, rng=3))
    report = nn.check_gradients(reused, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode)
    assert report.ok, report


def _objective_for(model, x, y):
    obj = Objective(model, x, y, nn.MSELoss())
    return obj, (lambda: obj.value_of(model.forward(x)))


def _tol(values):
    return 1e-7 + 1e-5 * np.abs(values)


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Linear(3, 6, rng=0), nn.Tanh(), nn.Linear(6, 5, rng=1), nn.Sigmoid(),
                          nn.Linear(5, 2, rng=2)),
    lambda: nn.Sequential(nn.Linear(3, 6, rng=0), nn.LayerNorm(6), nn.GELU(), nn.Linear(6, 2, rng=2)),
    lambda: nn.Sequential(nn.Linear(3, 6, rng=0), nn.BatchNorm1d(6), nn.ELU(), nn.Linear(6, 2, rng=2)),
], ids=["mlp", "layernorm", "batchnorm"])
def test_grouped_differences_equal_plain_ones(make):
    from nanonet.gradcheck.grouped import grouped_numeric

    model = make()
    gen = np.random.default_rng(0)
    x, y = gen.normal(size=(9, 3)), gen.normal(size=(9, 2))
    obj, plain = _objective_for(model, x, y)
    used = 0
    for target in obj.targets()[1:]:
        grouped = grouped_numeric(obj, target, 1e-6, _tol, np.random.default_rng(1))
        if grouped is None:
            continue
        used += 1
        assert not np.isnan(grouped).any(), target.name
        want = numeric_gradient(plain, target.array, 1e-6)
        np.testing.assert_allclose(grouped, want, rtol=1e-6, atol=1e-9, err_msg=target.name)
    assert used >= 2


class MixingLinear(nn.Linear):
    """forward lets weight[i, j] reach features j and j+1; backward pretends it is a plain Linear."""

    def forward(self, x):
        out = super().forward(x)
        return out + 0.5 * np.roll(x @ self.weight.value, 1, axis=1)


class SilentLinear(nn.Linear):
    """backward never writes weight.grad."""

    def backward(self, grad_out):
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T


@pytest.mark.parametrize("broken", [MixingLinear, SilentLinear])
def test_a_backward_that_lies_about_its_features_cannot_fool_the_grouping(broken):
    from nanonet.gradcheck.grouped import grouped_numeric

    gen = np.random.default_rng(0)
    x, y = gen.normal(size=(9, 3)), gen.normal(size=(9, 2))
    model = nn.Sequential(broken(3, 6, rng=0), nn.Tanh(), nn.Linear(6, 2, rng=2))
    obj, plain = _objective_for(model, x, y)
    target = obj.targets()[1]
    grouped = grouped_numeric(obj, target, 1e-6, _tol, np.random.default_rng(1))
    want = numeric_gradient(plain, target.array, 1e-6)
    trusted = ~np.isnan(grouped)
    np.testing.assert_allclose(grouped[trusted], want[trusted], rtol=1e-6, atol=1e-9)
    assert not trusted.all()  # the lie was noticed
    report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0, mode="full")
    assert "0.weight" in [r.name for r in report.failed]
