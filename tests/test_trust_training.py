"""Training never silently wrong: foreign optimizers, replaced or non-finite gradients, bad callbacks."""

import numpy as np
import pytest

import nanonet as nn


def _data(n=24):
    gen = np.random.default_rng(0)
    return gen.normal(size=(n, 3)), gen.normal(size=(n, 1))


def _model(seed=0):
    return nn.Sequential(nn.Linear(3, 4, rng=seed), nn.Tanh(), nn.Linear(4, 1, rng=seed + 1))


def test_fit_refuses_an_optimizer_over_another_models_parameters():
    x, y = _data()
    model, other = _model(0), _model(5)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"4 of the optimizer's 4 parameters are not parameters of Sequential"):
        nn.fit(model, nn.MSELoss(), nn.optim.SGD(other.parameters(), lr=0.1), x, y, epochs=1, batch_size=8,
               verbose=0)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_fit_accepts_an_optimizer_over_part_of_the_model():
    x, y = _data()
    model = _model()
    frozen = model[0].weight.value.copy()
    nn.fit(model, nn.MSELoss(), nn.optim.SGD(model[2].parameters(), lr=0.1), x, y, epochs=2, batch_size=8,
           verbose=0, rng=0)
    np.testing.assert_array_equal(model[0].weight.value, frozen)


class BlowUp(nn.Module):
    """Identity forward; its backward returns NaN in one element of the input gradient."""

    def forward(self, x):
        return x

    def backward(self, grad_out):
        g = grad_out.copy()
        g[0, 0] = np.nan
        return g


def test_fit_names_the_parameter_whose_gradient_became_non_finite_and_does_not_step():
    x, y = _data()
    model = nn.Sequential(nn.Linear(3, 4, rng=0), BlowUp(), nn.Linear(4, 1, rng=1))
    before = model.state_dict()
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"gradient of '0.weight' \(3, 4\) became non-finite .* at epoch 1, "
                                                 r"batch 1, although the loss was finite"):
        nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=8, verbose=0, rng=0)
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)


def test_optimizer_refuses_a_grad_of_another_shape_before_updating_anything():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))
    opt = nn.optim.SGD([a, b], lr=0.1)
    a.grad[:] = 1.0
    b.grad = np.ones((1, 2))  # would broadcast into b
    with pytest.raises(ValueError, match=r"SGD.step: parameter #1 is float64\(2, 2\) but its .grad is "
                                         r"float64\(1, 2\).*Nothing was updated"):
        opt.step()
    np.testing.assert_array_equal(a.value, np.ones(3))
    b.grad = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(TypeError, match=r"parameter #1 is float64\(2, 2\) but its .grad is float32\(2, 2\)"):
        opt.step()
    b.grad = [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(TypeError, match=r"its .grad is list"):
        opt.step()


@pytest.mark.parametrize("pattern, error, match", [
    ("{folder}/ckpt-{val_los:.3f}.npz", ValueError, r"uses \['folder', 'val_los'\], which fit does not log"),
    ("ckpt-{epoch:.3q}.npz", ValueError, r"cannot be formatted"),
    ("no/such/folder/ckpt-{epoch}.npz", FileNotFoundError, r"the folder of .* does not exist"),
])
def test_model_checkpoint_pattern_is_checked_before_the_first_epoch(tmp_path, pattern, error, match):
    x, y = _data()
    model = _model()
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    path = pattern if pattern.startswith("{") else str(tmp_path / pattern)
    seen = []
    spy = nn.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    with pytest.raises(error, match=match):
        nn.fit(model, nn.MSELoss(), opt, x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25,
               callbacks=[spy, nn.ModelCheckpoint(path)])
    assert seen == []


def test_model_checkpoint_pattern_with_logged_keys_works(tmp_path):
    x, y = _data()
    model = _model()
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    ckpt = nn.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.npz"))
    nn.fit(model, nn.MSELoss(), opt, x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25,
           callbacks=[ckpt])
    assert [p.split("/")[-1][:7] for p in ckpt.saved] == ["ckpt-01", "ckpt-02"]


class ReplacesGrad(nn.Linear):
    """A backward that replaces weight.grad by an array of another shape (it would broadcast)."""

    def backward(self, grad_out):
        super().backward(grad_out)
        self.weight.grad = self.weight.grad.sum(axis=0, keepdims=True)
        return grad_out @ self.weight.value.T


def test_fit_with_a_replaced_grad_is_stopped_by_the_optimizer_before_any_update():
    x, y = _data()
    model = nn.Sequential(ReplacesGrad(3, 1, rng=0))
    before = model[0].weight.value.copy()
    with pytest.raises(ValueError, match=r"SGD.step: parameter #0 is float64\(3, 1\) but its .grad is "
                                         r"float64\(1, 1\)"):
        nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.1), x, y, epochs=1, batch_size=8,
               verbose=0)
    np.testing.assert_array_equal(model[0].weight.value, before)


def test_a_non_finite_gradient_is_named_also_with_clipping():
    x, y = _data()
    model = nn.Sequential(nn.Linear(3, 4, rng=0), BlowUp(), nn.Linear(4, 1, rng=1))
    with pytest.raises(FloatingPointError, match=r"gradient of '0.weight' \(3, 4\) became non-finite \(3 NaN"):
        nn.fit(model, nn.MSELoss(), nn.optim.Adam(model[0].parameters() + model[2].parameters()), x, y, epochs=1,
               batch_size=8, verbose=0, clip_grad_norm=1.0)
