"""PyTorch weights in and out: load_torch_state_dict / to_torch_state_dict, round trips against torch."""

import os
import subprocess
import sys

import numpy as np
import pytest

import nanonet as nn


def nanonet_model(dtype=np.float64):
    return nn.Sequential(
        nn.Linear(5, 8, rng=0, dtype=dtype), nn.ReLU(), nn.LayerNorm(8, dtype=dtype),
        nn.Linear(8, 6, rng=1, dtype=dtype), nn.BatchNorm1d(6, dtype=dtype), nn.Tanh(),
        nn.Linear(6, 3, bias=False, rng=2, dtype=dtype),
    )


def torch_model(torch, dtype):
    tnn = torch.nn
    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Linear(5, 8), tnn.ReLU(), tnn.LayerNorm(8), tnn.Linear(8, 6), tnn.BatchNorm1d(6),
                           tnn.Tanh(), tnn.Linear(6, 3, bias=False)).to(dtype)
    with torch.no_grad():  # move everything away from its default, running statistics included
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        model.train()
        model(torch.randn(16, 5, dtype=dtype) * 2 + 1)
    return model.eval()


def test_a_torch_model_loads_and_computes_the_same_in_float64():
    torch = pytest.importorskip("torch")
    theirs = torch_model(torch, torch.float64)
    ours = nn.load_torch_state_dict(nanonet_model(), theirs.state_dict()).eval()
    x = np.random.default_rng(0).normal(size=(10, 5))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(ours[0].weight.value, theirs[0].weight.detach().numpy().T)
    np.testing.assert_array_equal(ours[4].running_var.value, theirs[4].running_var.numpy())


def test_round_trip_nanonet_to_torch_and_back_is_exact():
    torch = pytest.importorskip("torch")
    ours = nanonet_model()
    rng = np.random.default_rng(1)
    for p in ours.parameters():
        p.value += rng.normal(size=p.value.shape)
    ours[4].running_mean.value[:] = rng.normal(size=6)
    ours.eval()
    theirs = torch_model(torch, torch.float64)
    theirs.load_state_dict(nn.to_torch_state_dict(ours), strict=True)
    x = rng.normal(size=(7, 5))
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), ours(x), rtol=1e-12, atol=1e-13)
    back = nn.load_torch_state_dict(nanonet_model(), theirs.state_dict())
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
    sd = nn.to_torch_state_dict(ours)
    assert isinstance(sd["0.weight"], torch.Tensor) and tuple(sd["0.weight"].shape) == (8, 5)
    assert sd["4.num_batches_tracked"].dtype == torch.int64


def test_float32_torch_weights_need_cast_or_a_float32_model():
    torch = pytest.importorskip("torch")
    theirs = torch_model(torch, torch.float32)
    with pytest.raises(ValueError, match=r"'0.weight': expected dtype float64, got float32[\s\S]*cast=True"):
        nn.load_torch_state_dict(nanonet_model(), theirs.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    as32 = nn.load_torch_state_dict(nanonet_model(np.float32), theirs.state_dict()).eval()
    np.testing.assert_allclose(as32(x), expected, rtol=1e-5, atol=1e-6)
    cast = nn.load_torch_state_dict(nanonet_model(), theirs.state_dict(), cast=True).eval()
    assert cast[0].weight.value.dtype == np.float64
    np.testing.assert_allclose(cast(x.astype(np.float64)), expected, rtol=1e-5, atol=1e-6)


def test_plain_arrays_load_without_torch_being_imported():
    script = (
        "import sys, numpy as np, nanonet as nn\n"
        "m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))\n"
        "sd = {'0.weight': np.arange(6.0).reshape(2, 3), '0.bias': np.ones(2),\n"
        "      '2.weight': np.array([[5.0, 7.0]]), '2.bias': np.zeros(1)}\n"
        "nn.load_torch_state_dict(m, sd)\n"
        "assert m[0].weight.value.tolist() == [[0, 3], [1, 4], [2, 5]], m[0].weight.value\n"
        "assert m[2].weight.value.tolist() == [[5], [7]]\n"
        "back = nn.to_torch_state_dict(m, tensors=False)\n"
        "assert all(np.array_equal(back[k], v) for k, v in sd.items())\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def make_graph(seed):
    square, last = nn.Linear(4, 4, rng=seed), nn.Linear(8, 2, rng=seed + 1)
    x = nn.Input(4)
    out = last(nn.Concat()(nn.LayerNorm(4)(square(x, name="square")), x))
    return nn.Graph(x, out), square, last


def test_a_graph_loads_by_its_own_names_and_other_layers_load_unchanged():
    net, square, last = make_graph(0)
    sd = nn.to_torch_state_dict(net, tensors=False)
    assert list(sd) == ["square.weight", "square.bias", "layernorm_0.weight", "layernorm_0.bias",
                        "linear_0.weight", "linear_0.bias"]
    np.testing.assert_array_equal(sd["square.weight"], square.weight.value.T)  # square: transposed all the same
    np.testing.assert_array_equal(sd["linear_0.weight"], last.weight.value.T)
    other, other_square, _ = make_graph(5)  # the same structure gives the same names
    nn.load_torch_state_dict(other, {k: v * 2 for k, v in sd.items()})
    np.testing.assert_array_equal(other_square.weight.value, 2 * square.weight.value)
    np.testing.assert_array_equal(other.state_dict()["layernorm_0.weight"], 2 * sd["layernorm_0.weight"])


def test_mismatches_are_listed_at_once_and_nothing_changes():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU(), nn.Linear(2, 1, rng=1))
    before = model.state_dict()
    bad = {"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(2), "2.weight": np.zeros((1, 2)), "extra": np.zeros(1)}
    with pytest.raises(ValueError, match=r"found 3 problem\(s\)[\s\S]*missing key '2.bias'[\s\S]*unexpected key "
                                         r"'extra'[\s\S]*'0.weight': expected shape \(3, 2\), got \(2, 3\)"):
        nn.load_torch_state_dict(model, bad)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="expected a state_dict .* got list"):
        nn.load_torch_state_dict(model, [1, 2])
