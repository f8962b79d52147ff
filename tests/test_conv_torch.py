"""Convolutional layers against PyTorch in float64: forward values, input and parameter gradients.

Each layer type runs over a table of at least 60 configurations: hand-picked
edge cases (batch 1, one channel, kernels as large as the input, every
padding mode, depthwise groups, non-square kernels and inputs, odd sizes,
ceil_mode, asymmetric 'same' padding) and seeded random ones. A torch
state_dict is loaded into nanonet's layer as it is (the layouts are
PyTorch's). The agreement asked is ``max |ours - torch| <= 1e-10 * max(1, max |torch|)``.
"""

import numpy as np
import pytest

import nanonet as nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

TOL = 1e-10
MODES = ("zeros", "reflect", "replicate", "circular")


def _close(ours, theirs, what, config):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what} shape {ours.shape} vs torch {theirs.shape} for {config}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    err = float(np.abs(ours - theirs).max(initial=0.0))
    assert err <= TOL * scale, f"{what} differs from torch by {err:.3g} (scale {scale:.3g}) for {config}"


def _compare(ours, theirs, x, config, seed=0):
    """Forward, dJ/dx and every parameter gradient of ``ours`` and torch module ``theirs`` on ``x``."""
    params = dict(ours.named_parameters())
    if params:
        state = {k: v for k, v in theirs.state_dict().items() if k in params or k.startswith("running_")}
        ours.load_state_dict({k: v.numpy().copy() for k, v in state.items()})
    y = ours(x)
    g = np.random.default_rng(seed + 1).normal(size=y.shape)
    dx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    _close(y, ty, "forward", config)
    _close(dx, tx.grad, "dJ/dx", config)
    for name, p in params.items():
        _close(p.grad, dict(theirs.named_parameters())[name].grad, f"{name}.grad", config)


def _x(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


# -- convolutions -------------------------------------------------------------------------------
def _conv_configs(dims, count=64, seed=0):
    """(kwargs, input shape) pairs: edge cases first, then random valid ones."""
    one = lambda v: v if dims == 2 else v[:1]  # noqa: E731
    cases = [
        (dict(in_channels=1, out_channels=1, kernel_size=3), (1, 1) + one((5, 5))),        # batch 1, one channel
        (dict(in_channels=2, out_channels=3, kernel_size=one((5, 4))), (2, 2) + one((5, 4))),  # kernel = input
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=4, padding=1), (2, 4) + one((6, 7))),  # depthwise
        (dict(in_channels=3, out_channels=6, kernel_size=3, groups=3, padding="same"), (1, 3) + one((5, 6))),
        (dict(in_channels=2, out_channels=2, kernel_size=4, padding="same", dilation=1), (2, 2) + one((7, 5))),
        (dict(in_channels=2, out_channels=3, kernel_size=2, stride=3, padding="valid"), (3, 2) + one((8, 9))),
        (dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, padding=2), (1, 2) + one((7, 7))),
    ] + [(dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, padding_mode=m), (2, 2) + one((5, 6)))
         for m in MODES]
    gen = np.random.default_rng(seed + dims)
    while len(cases) < count:
        groups = int(gen.choice([1, 1, 2, 3]))
        kw = dict(in_channels=groups * int(gen.integers(1, 3)), out_channels=groups * int(gen.integers(1, 3)),
                  kernel_size=tuple(int(v) for v in gen.integers(1, 4, size=dims)),
                  stride=tuple(int(v) for v in gen.integers(1, 3, size=dims)),
                  dilation=tuple(int(v) for v in gen.integers(1, 3, size=dims)), groups=groups,
                  bias=bool(gen.integers(2)), padding_mode=str(gen.choice(MODES)))
        kw["padding"] = "same" if gen.random() < 0.15 and max(kw["stride"]) == 1 else \
            tuple(int(v) for v in gen.integers(0, 3, size=dims))
        shape = (int(gen.integers(1, 4)), kw["in_channels"]) + tuple(int(v) for v in gen.integers(3, 9, size=dims))
        layer = (nn.Conv2d if dims == 2 else nn.Conv1d)(**kw, rng=0)
        try:
            layer.output_shape(shape[1:])
        except ValueError:
            continue  # an empty output or too much reflect/circular padding: refused (tested elsewhere)
        cases.append((kw, shape))
    return cases


def _ids(cases):
    return [f"{i}" for i in range(len(cases))]


CONV2D = _conv_configs(2)
CONV1D = _conv_configs(1)


@pytest.mark.parametrize("kw, shape", CONV2D, ids=_ids(CONV2D))
def test_conv2d_matches_torch(kw, shape):
    theirs = torch.nn.Conv2d(**kw, dtype=torch.float64)
    _compare(nn.Conv2d(**kw, rng=0), theirs, _x(shape, len(str(kw))), kw)


# Small maps with many channels: Conv2d's channels-last path (nanonet.layers._conv_nhwc), every padding
# it takes (none, symmetric, asymmetric 'same', up to k - 1), with and without bias, batch 0 and 1.
CONV2D_LAST = [
    (dict(in_channels=16, out_channels=32, kernel_size=3, padding=1), (5, 16, 4, 4)),  # the digits' second conv
    (dict(in_channels=8, out_channels=5, kernel_size=3, padding=1, bias=False), (3, 8, 4, 5)),
    (dict(in_channels=6, out_channels=4, kernel_size=2, padding="same"), (2, 6, 3, 3)),
    (dict(in_channels=6, out_channels=3, kernel_size=(2, 3), padding="same"), (2, 6, 5, 4)),
    (dict(in_channels=12, out_channels=5, kernel_size=3, padding=2), (4, 12, 5, 5)),
    (dict(in_channels=12, out_channels=5, kernel_size=3), (3, 12, 6, 6)),
    (dict(in_channels=7, out_channels=9, kernel_size=(3, 1), padding=(1, 0)), (1, 7, 4, 2)),
    (dict(in_channels=16, out_channels=4, kernel_size=3, padding=1), (0, 16, 4, 4)),
]


@pytest.mark.parametrize("kw, shape", CONV2D_LAST, ids=_ids(CONV2D_LAST))
def test_conv2d_channels_last_path_matches_torch(kw, shape):
    from nanonet.layers import _conv_nhwc

    ours = nn.Conv2d(**kw, rng=0)
    assert _conv_nhwc.fits(ours, shape, ours.output_shape(shape[1:])[1:]), f"not on the channels-last path: {kw}"
    _compare(ours, torch.nn.Conv2d(**kw, dtype=torch.float64), _x(shape, len(str(kw))), kw)
    assert ours._cols is None and ours._last is not None  # it ran there


@pytest.mark.parametrize("kw, shape", CONV1D, ids=_ids(CONV1D))
def test_conv1d_matches_torch(kw, shape):
    theirs = torch.nn.Conv1d(**kw, dtype=torch.float64)
    _compare(nn.Conv1d(**kw, rng=0), theirs, _x(shape, 1), kw)


def _transpose_configs(count=64, seed=3):
    cases = [
        (dict(in_channels=1, out_channels=1, kernel_size=2, stride=2), (1, 1, 3, 3)),
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=4, padding=1), (2, 4, 5, 4)),
        (dict(in_channels=2, out_channels=3, kernel_size=(2, 4), stride=(2, 3), output_padding=(1, 2)), (2, 2, 3, 2)),
        (dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, output_padding=1, stride=1), (1, 2, 4, 4)),
        (dict(in_channels=3, out_channels=2, kernel_size=5, padding=2, bias=False), (1, 3, 1, 1)),
    ]
    gen = np.random.default_rng(seed)
    while len(cases) < count:
        groups = int(gen.choice([1, 1, 2]))
        stride = tuple(int(v) for v in gen.integers(1, 4, size=2))
        dilation = tuple(int(v) for v in gen.integers(1, 3, size=2))
        kw = dict(in_channels=groups * int(gen.integers(1, 3)), out_channels=groups * int(gen.integers(1, 3)),
                  kernel_size=tuple(int(v) for v in gen.integers(1, 4, size=2)), stride=stride,
                  padding=tuple(int(v) for v in gen.integers(0, 2, size=2)), groups=groups, dilation=dilation,
                  output_padding=tuple(int(gen.integers(0, max(s, d))) for s, d in zip(stride, dilation)),
                  bias=bool(gen.integers(2)))
        shape = (int(gen.integers(1, 3)), kw["in_channels"]) + tuple(int(v) for v in gen.integers(1, 6, size=2))
        try:
            nn.ConvTranspose2d(**kw, rng=0).output_shape(shape[1:])
        except ValueError:
            continue
        cases.append((kw, shape))
    return cases


TRANSPOSE = _transpose_configs()


@pytest.mark.parametrize("kw, shape", TRANSPOSE, ids=_ids(TRANSPOSE))
def test_conv_transpose2d_matches_torch(kw, shape):
    theirs = torch.nn.ConvTranspose2d(**kw, dtype=torch.float64)
    _compare(nn.ConvTranspose2d(**kw, rng=0), theirs, _x(shape, 2), kw)


# -- pooling ---------------------------------------------------------------------------------------
def _pool_configs(dims, count=64, seed=5, avg=False):
    gen = np.random.default_rng(seed + dims + 10 * avg)
    cases = [(dict(kernel_size=2), (1, 1) + (4, 4)[:dims]), (dict(kernel_size=(3, 2)[:dims]), (2, 3) + (3, 2)[:dims])]
    while len(cases) < count:
        kernel = tuple(int(v) for v in gen.integers(1, 4, size=dims))
        kw = dict(kernel_size=kernel, stride=None if gen.random() < 0.3 else tuple(int(v) for v in
                                                                                 gen.integers(1, 4, size=dims)),
                  padding=tuple(int(gen.integers(0, k // 2 + 1)) for k in kernel), ceil_mode=bool(gen.integers(2)))
        if avg:
            kw["count_include_pad"] = bool(gen.integers(2))
        else:
            kw["dilation"] = tuple(int(v) for v in gen.integers(1, 3, size=dims))
        shape = (int(gen.integers(1, 3)), int(gen.integers(1, 4))) + tuple(int(v) for v in gen.integers(2, 9, size=dims))
        cls = nn.AvgPool2d if avg else (nn.MaxPool2d if dims == 2 else nn.MaxPool1d)
        try:
            cls(**kw).output_shape(shape[1:])
        except ValueError:
            continue
        cases.append((kw, shape))
    return cases


MAXPOOL2D, MAXPOOL1D, AVGPOOL2D = _pool_configs(2), _pool_configs(1), _pool_configs(2, avg=True)


def _ties(shape, seed):
    """Small integers: many ties inside windows (the first maximum wins, in both)."""
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(np.float64)


@pytest.mark.parametrize("kw, shape", MAXPOOL2D, ids=_ids(MAXPOOL2D))
def test_maxpool2d_matches_torch_with_and_without_ties(kw, shape):
    for x in (_x(shape, 4), _ties(shape, 4)):
        _compare(nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), x, kw)


@pytest.mark.parametrize("kw, shape", MAXPOOL1D, ids=_ids(MAXPOOL1D))
def test_maxpool1d_matches_torch_with_and_without_ties(kw, shape):
    for x in (_x(shape, 5), _ties(shape, 5)):
        _compare(nn.MaxPool1d(**kw), torch.nn.MaxPool1d(**kw), x, kw)


@pytest.mark.parametrize("kw, shape", AVGPOOL2D, ids=_ids(AVGPOOL2D))
def test_avgpool2d_matches_torch(kw, shape):
    _compare(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), _x(shape, 6), kw)


ADAPTIVE = [(out, (int(n), int(c), int(h), int(w))) for out, (n, c, h, w) in zip(
    [1, 2, 3, (2, 3), (1, None), (None, 2), (4, 4), (5, 1)] * 8,
    np.random.default_rng(7).integers(1, 10, size=(64, 4)))]


@pytest.mark.parametrize("out, shape", ADAPTIVE, ids=_ids(ADAPTIVE))
def test_adaptive_avgpool2d_matches_torch(out, shape):
    _compare(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), _x(shape, 8), out)


# -- normalization, dropout, padding, upsampling ---------------------------------------------------
BATCHNORM = [(int(c), (int(n), int(c), int(h), int(w)), float(m), bool(t)) for (n, c, h, w), m, t in zip(
    np.random.default_rng(9).integers(1, 6, size=(64, 4)) + [1, 0, 0, 0],
    np.random.default_rng(10).uniform(0, 1, size=64), np.arange(64) % 3 != 0)]


@pytest.mark.parametrize("channels, shape, momentum, training", BATCHNORM, ids=_ids(BATCHNORM))
def test_batchnorm2d_matches_torch(channels, shape, momentum, training):
    ours = nn.BatchNorm2d(channels, momentum=momentum)
    theirs = torch.nn.BatchNorm2d(channels, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(_x(channels, 11)))
        theirs.bias.copy_(torch.tensor(_x(channels, 12)))
        theirs.running_mean.copy_(torch.tensor(_x(channels, 13)))
        theirs.running_var.copy_(torch.tensor(np.abs(_x(channels, 14)) + 0.5))
    ours.train(training)
    theirs.train(training)
    if training and shape[0] * shape[2] * shape[3] < 2:
        shape = (2,) + shape[1:]
    _compare(ours, theirs, _x(shape, 15) * 3 + 1, (channels, shape, momentum, training))
    _close(ours.running_mean.value, theirs.running_mean, "running_mean", shape)
    _close(ours.running_var.value, theirs.running_var, "running_var", shape)


DROPOUT = [(float(p), (int(n), int(c), int(h), int(w))) for p, (n, c, h, w) in zip(
    np.random.default_rng(16).uniform(0, 0.9, size=64), np.random.default_rng(17).integers(1, 6, size=(64, 4)))]


@pytest.mark.parametrize("p, shape", DROPOUT, ids=_ids(DROPOUT))
def test_dropout2d_is_torch_in_eval_and_drops_whole_channels_in_training(p, shape):
    x = _x(shape, 18)
    _compare(nn.Dropout2d(p, rng=0).eval(), torch.nn.Dropout2d(p).eval(), x, p)
    ours = nn.Dropout2d(p, rng=int(p * 1000))
    y = ours(x)
    ratio = np.divide(y, x)
    per_channel = ratio.reshape(shape[0], shape[1], -1)
    assert np.allclose(per_channel, per_channel[:, :, :1]), "a channel is dropped or kept as a whole"
    assert set(np.round(np.unique(per_channel), 12)) <= {0.0, round(1 / (1 - p), 12)}
    np.testing.assert_allclose(ours.backward(np.ones_like(y)), ratio, rtol=1e-12)


PADS = [tuple(int(v) for v in row) for row in np.random.default_rng(19).integers(-2, 4, size=(62, 4))] + [0, 3]


@pytest.mark.parametrize("padding", PADS, ids=_ids(PADS))
def test_zeropad2d_matches_torch(padding):
    _compare(nn.ZeroPad2d(padding), torch.nn.ZeroPad2d(padding), _x((2, 2, 5, 6), 20), padding)


UPSAMPLE = [dict(scale_factor=s) for s in (1, 2, 3, 4, (2, 3), (1, 2), 1.5, 2.5, 0.5, (0.7, 1.3), 3.3, 1.25)] + \
           [dict(size=s) for s in (1, 4, 7, (9, 2), (3, 11), (5, 6), (10, 12), 13)]
UPSAMPLE = [(kw, shape) for kw in UPSAMPLE for shape in ((1, 1, 4, 4), (2, 3, 5, 6), (1, 2, 3, 7))]


@pytest.mark.parametrize("kw, shape", UPSAMPLE, ids=_ids(UPSAMPLE))
def test_upsample_nearest_matches_torch(kw, shape):
    _compare(nn.Upsample(**kw), torch.nn.Upsample(**kw), _x(shape, 21), kw)


def test_every_table_has_at_least_60_configurations():
    tables = {"Conv2d": CONV2D, "Conv1d": CONV1D, "ConvTranspose2d": TRANSPOSE, "MaxPool2d": MAXPOOL2D,
              "MaxPool1d": MAXPOOL1D, "AvgPool2d": AVGPOOL2D, "AdaptiveAvgPool2d": ADAPTIVE,
              "BatchNorm2d": BATCHNORM, "Dropout2d": DROPOUT, "ZeroPad2d": PADS, "Upsample": UPSAMPLE}
    assert {name: len(t) for name, t in tables.items() if len(t) < 60} == {}
    assert {m for kw, _ in CONV2D for m in [kw.get("padding_mode", "zeros")]} == set(MODES)
    assert any(kw.get("groups", 1) == kw["in_channels"] > 1 for kw, _ in CONV2D)  # depthwise
    assert any(kw.get("padding") == "same" for kw, _ in CONV2D)


def test_a_torch_state_dict_of_a_cnn_loads_as_it_is():
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv2d(4, 2, 3, groups=2), torch.nn.ConvTranspose2d(2, 3, 2, stride=2))
    theirs = theirs.double()
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3, groups=2),
                         nn.ConvTranspose2d(2, 3, 2, stride=2))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = _x((2, 1, 10, 10), 22)
    _close(ours(x), theirs(torch.tensor(x)), "Sequential forward", "a CNN")
