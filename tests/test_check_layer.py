"""check_layer: third-party layers pass, and every check catches the bug it is for."""

import sys

import numpy as np
import pytest

import nanonet as nn
from nanonet.cli import main as cli_main
from nanonet.testing import LayerCheckError, LayerSpec, check_layer, parametrize_with_checks
from nanonet.testing.checks import ALL_CHECKS, LAYER_CHECKS, LOSS_CHECKS


class Scale(nn.Module):
    """A third-party layer: y = x * s, one learned scale per feature."""

    batch_independent = True

    def __init__(self, features, rng=None):
        gen = np.random.default_rng(rng)
        self.features = features
        self.s = nn.Parameter(gen.uniform(0.5, 1.5, size=features))
        self._x = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            raise TypeError(f"{self!r} expected a float array")
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"{self!r} expected input of shape (N, {self.features}), got {x.shape}")
        self._x = x
        return x * self.s.value

    def backward(self, grad_out):
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward before forward")
        if grad_out.shape != self._x.shape:
            raise ValueError(f"{self!r} expected grad_out of shape {self._x.shape}, got {grad_out.shape}")
        self.s.grad += (grad_out * self._x).sum(axis=0)
        return grad_out * self.s.value

    def extra_repr(self):
        return str(self.features)


def test_third_party_layer_passes_every_check():
    report = check_layer(lambda rng=0: Scale(4, rng=rng), (5, 4))
    assert report.ok
    assert [r.name for r in report.results] == list(LAYER_CHECKS)
    assert all(r.status == "PASS" for r in report.results), report
    assert report["determinism"].detail == "seeded factory"
    assert check_layer(Scale(4, rng=0), (5, 4)).ok  # an instance works too


class SignFlip(Scale):
    def backward(self, grad_out):
        return -super().backward(grad_out)


class Affine(Scale):
    def backward(self, grad_out):
        return super().backward(grad_out) + 1e-3


class Overwrites(Scale):
    def backward(self, grad_out):
        keep = self.s.grad.copy()
        out = super().backward(grad_out)
        self.s.grad -= keep
        return out


class BatchCoupled(Scale):
    def forward(self, x):
        return super().forward(x) - x.mean(axis=0)

    def backward(self, grad_out):
        return super().backward(grad_out) - grad_out.mean(axis=0)


class Noisy(Scale):
    def forward(self, x):
        return super().forward(x) + np.random.default_rng().normal(size=x.shape) * 1e-3


class Mutates(Scale):
    def forward(self, x):
        out = super().forward(x.copy())
        x *= 1.5
        return out


class Upcasts(Scale):
    def forward(self, x):
        return super().forward(x).astype(np.float64)


class HiddenState(Scale):
    """Keeps a running mean as a plain array: it is not in state_dict."""

    def __init__(self, features, rng=None):
        super().__init__(features, rng)
        self.running = np.zeros(features)

    def forward(self, x):
        if self.training:
            self.running = 0.9 * self.running + 0.1 * x.mean(axis=0)
        return super().forward(x) + (self.running if not self.training else 0)


class UglyRepr(Scale):
    __repr__ = object.__repr__


class EvalChangesState(Scale):
    def __init__(self, features, rng=None):
        super().__init__(features, rng)
        self.calls = nn.Buffer(np.zeros(1))

    def forward(self, x):
        self.calls.value += 1
        return super().forward(x)


class NoChecks(Scale):
    checks_itself = True  # opts out of the contract's checks, and does none of its own

    def forward(self, x):
        self._x = x
        return x * self.s.value

    def backward(self, grad_out):
        self.s.grad += (grad_out * self._x).sum(axis=0)
        return grad_out * self.s.value


@pytest.mark.parametrize("layer_class, check", [
    (SignFlip, "gradients"),
    (Affine, "grad_out_linearity"),
    (Overwrites, "accumulation"),
    (BatchCoupled, "batch_independence"),
    (Noisy, "determinism"),
    (Mutates, "input_not_mutated"),
    (Upcasts, "dtype"),
    (HiddenState, "state_dict"),
    (UglyRepr, "repr"),
    (EvalChangesState, "train_eval"),
    (NoChecks, "wrong_input"),
])
def test_each_check_catches_its_bug(layer_class, check):
    with pytest.raises(LayerCheckError) as info:
        check_layer(lambda: layer_class(4, rng=0), (5, 4))
    report = info.value.report
    assert check in [r.name for r in report.failed], report
    assert f"{check}" in str(info.value) and "FAILED" in str(info.value)
    # and the same check passes on the correct layer
    assert check_layer(lambda: Scale(4, rng=0), (5, 4))[check].status == "PASS"


def test_expected_failures_opt_out_and_unknown_names_are_rejected():
    report = check_layer(lambda: Upcasts(4, rng=0), (5, 4), expected_failures=["dtype"])
    assert report.ok and report["dtype"].status == "XFAIL"
    report = check_layer(lambda: Scale(4, rng=0), (5, 4), expected_failures=["repr"])
    assert report.ok and report["repr"].status == "XPASS"
    with pytest.raises(ValueError, match="unknown expected_failures"):
        check_layer(lambda: Scale(4, rng=0), (5, 4), expected_failures=["nope"])


def test_report_without_raising_and_its_table():
    report = check_layer(lambda: SignFlip(4, rng=0), (5, 4), raise_on_failure=False)
    assert not report.ok
    text = str(report)
    assert text.splitlines()[0] == "check_layer: SignFlip(4)"
    assert "gradients" in text and "diagnosis: sign flip" in text


class MeanAbsCube(nn.Loss):
    """A third-party loss: mean(|pred - target| ** 3), no row_contributions."""

    def forward(self, pred, target):
        self.check_pair(pred, target)
        self._d = pred - target
        return float(np.mean(np.abs(self._d) ** 3))

    def backward(self, grad=1.0):
        if getattr(self, "_d", None) is None:
            raise RuntimeError(f"{self!r}: backward before forward")
        return 3 * self._d * np.abs(self._d) / self._d.size * grad


def test_third_party_loss_and_a_broken_one():
    report = check_layer(MeanAbsCube(), (4, 3))
    assert report.ok and [r.name for r in report.results] == list(LOSS_CHECKS)

    class Broken(MeanAbsCube):
        def backward(self, grad=1.0):
            return 2 * super().backward(grad)

    with pytest.raises(LayerCheckError, match="too large by a factor of 2"):
        check_layer(Broken(), (4, 3))


def test_parametrize_with_checks_makes_one_test_per_check():
    mark = parametrize_with_checks([(lambda: Scale(3, rng=0), (2, 3)), LayerSpec(nn.MSELoss, (2, 3))])
    argnames, params = mark.args
    assert argnames == "layer, check"
    ids = [p.id for p in params]
    assert len(ids) == len(LAYER_CHECKS) + len(LOSS_CHECKS)
    assert "Scale(3)-gradients" in ids and "MSELoss(reduction='mean')-grad_scaling" in ids
    spec, check = params[ids.index("Scale(3)-accumulation")].values
    assert check(spec).status == "PASS"
    assert set(ALL_CHECKS) == set(LAYER_CHECKS) | set(LOSS_CHECKS)


LAYER_FILE = '''
import numpy as np
import nanonet as nn

def make_layer():
    return nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh())

class Flipped(nn.Tanh):
    def backward(self, grad_out):
        return -super().backward(grad_out)

broken = Flipped()
'''


def test_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_layers.py").write_text(LAYER_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    assert cli_main(["gradcheck", "my_layers:make_layer", "--input-shape", "5,3"]) == 0
    assert "all checks passed" in capsys.readouterr().out
    assert cli_main(["gradcheck", "my_layers:broken", "--input-shape", "5,3"]) == 1
    assert "sign flip" in capsys.readouterr().out
    assert cli_main(["gradcheck", "my_layers:broken", "--input-shape", "5,3",
                     "--expected-failure", "gradients"]) == 0
    capsys.readouterr()
    assert cli_main(["gradcheck", "my_layers:missing", "--input-shape", "5,3"]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert cli_main(["gradcheck", "my_layers:make_layer", "--input-shape", "five"]) == 2
    assert "--input-shape expected positive integers" in capsys.readouterr().err


def test_unseeded_factories_are_fine_for_determinism():
    report = check_layer(lambda: nn.Linear(5, 3), (4, 5))
    assert report["determinism"].status == "PASS" and report["determinism"].detail == "copies"
