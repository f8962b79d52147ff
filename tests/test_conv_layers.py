"""Convolutional layers without torch: the conformance suite, identities, shapes, errors, containers.

Identities prove the layers on their own: a convolution is a Linear layer on
im2col patches gathered by plain Python loops; ConvTranspose2d is the adjoint
of Conv2d (<A x, y> = <x, A^T y>); average pooling is a fixed depthwise
convolution; Conv1d is Conv2d on height-1 images; max pooling is the max of
each window, looped by hand.
"""

import numpy as np
import pytest

import nanonet as nn
from layer_table import CONV
from nanonet.testing import parametrize_with_checks

TABLE = CONV  # see layer_table.py


@parametrize_with_checks(TABLE)
def test_conv_layers_pass_the_suite(layer, check):
    check(layer)


def _patches(x, kernel, stride, pads, dilation):
    """im2col by plain Python loops over output positions: ``(N * OH * OW, C * kh * kw)``."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = []
    for n in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                rows.append(xp[n, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw].ravel())
    return np.array(rows), (oh, ow)


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 2)),
                                dict(kernel_size=2, dilation=2, padding=1, stride=2)], ids=str)
def test_conv2d_is_linear_on_im2col_patches(kw):
    conv = nn.Conv2d(3, 5, rng=0, **kw)
    conv.bias.value[:] = np.arange(5.0)
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 7))
    patches, (oh, ow) = _patches(x, conv.kernel_size, conv.stride, conv._pads, conv.dilation)
    lin = nn.Linear(patches.shape[1], 5, rng=0)
    lin.weight.value[:] = conv.weight.value.reshape(5, -1).T
    lin.bias.value[:] = conv.bias.value
    want = lin(patches).reshape(2, oh, ow, 5).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(conv(x), want, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(2).normal(size=want.shape)
    conv.backward(g)
    lin.backward(g.transpose(0, 2, 3, 1).reshape(-1, 5))
    np.testing.assert_allclose(conv.weight.grad.reshape(5, -1), lin.weight.grad.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, lin.bias.grad, rtol=1e-12)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, 2, 2, 1), (2, 0, 1, 4)])
def test_conv_transpose2d_is_the_adjoint_of_conv2d(stride, padding, dilation, groups):
    gen = np.random.default_rng(3)
    conv = nn.Conv2d(4, 8, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=False, rng=0)
    x = gen.normal(size=(2, 4, 9, 8))
    ax = conv(x)
    up = nn.ConvTranspose2d(8, 4, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=False,
                            output_padding=tuple((n + 2 * padding - dilation * 2 - 1) % stride for n in (9, 8)))
    up.weight.value[:] = conv.weight.value  # (8, 4 / groups, 3, 3): conv's (out, in/g) is the transpose's (in, out/g)
    y = gen.normal(size=ax.shape)
    aty = up(y)
    assert aty.shape == x.shape
    assert np.vdot(ax, y) == pytest.approx(np.vdot(x, aty), rel=1e-12)
    np.testing.assert_allclose(aty, conv.backward(y), rtol=1e-12, atol=1e-12)  # A^T y is also conv's dJ/dx


def test_avgpool_is_a_fixed_depthwise_conv():
    x = np.random.default_rng(4).normal(size=(2, 3, 7, 6))
    pool = nn.AvgPool2d(3, stride=2, padding=1)
    conv = nn.Conv2d(3, 3, 3, stride=2, padding=1, groups=3, bias=False)
    conv.weight.value[:] = 1 / 9
    np.testing.assert_allclose(pool(x), conv(x), rtol=1e-12, atol=1e-15)
    g = np.random.default_rng(5).normal(size=conv(x).shape)
    np.testing.assert_allclose(pool.backward(g), conv.backward(g), rtol=1e-12, atol=1e-15)


def test_conv1d_is_conv2d_on_rows_and_maxpool_is_the_window_max():
    x = np.random.default_rng(6).normal(size=(2, 3, 11))
    c1 = nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2, rng=0)
    c2 = nn.Conv2d(3, 4, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2), rng=0)
    c2.weight.value[:] = c1.weight.value[:, :, None, :]
    np.testing.assert_allclose(c1(x), c2(x[:, :, None, :])[:, :, 0], rtol=1e-12)
    pool = nn.MaxPool1d(3, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)), constant_values=-np.inf)
    want = np.stack([xp[:, :, 2 * i:2 * i + 3].max(axis=2) for i in range(6)], axis=2)
    np.testing.assert_array_equal(pool(x), want)


def test_maxpool_sends_each_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 0.0]]]])
    pool = nn.MaxPool2d(2)
    np.testing.assert_array_equal(pool(x), [[[[3.0, 3.0]]]])
    np.testing.assert_array_equal(pool.backward(np.array([[[[1.0, 2.0]]]])),
                                  [[[[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    overlap = nn.MaxPool2d(2, stride=1)  # one pixel, the maximum of four windows, gets all four gradients
    overlap(np.array([[[[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]]))
    assert overlap.backward(np.ones((1, 1, 2, 2)))[0, 0, 1, 1] == 4.0


def test_a_cnn_in_graph_infers_shapes_and_names_a_wrong_one_at_build_time():
    x = nn.Input((3, 32, 32))
    h = nn.ReLU()(nn.Conv2d(3, 8, 3, padding=1, rng=0)(x))
    skip = h
    h = nn.BatchNorm2d(8)(nn.Conv2d(8, 8, 3, padding="same", rng=1)(h))
    h = nn.MaxPool2d(2)(nn.Add()(h, skip))
    h = nn.Upsample(scale_factor=2)(nn.ConvTranspose2d(8, 4, 2, stride=2, rng=2)(h))
    h = nn.AdaptiveAvgPool2d(1)(nn.ZeroPad2d(1)(nn.Dropout2d(0.1, rng=0)(h)))
    assert h.shape == (4, 1, 1)
    model = nn.Graph(x, nn.Linear(4, 2, rng=3)(nn.Flatten()(h)))
    assert model(np.ones((2, 3, 32, 32))).shape == (2, 2)
    with pytest.raises(ValueError, match=r"Conv2d\(4, 2.*expected a feature shape \(4, H, W\), got \(8, 32, 32\)"):
        nn.Conv2d(4, 2, 3)(nn.Conv2d(3, 8, 3, padding=1)(nn.Input((3, 32, 32))))
    with pytest.raises(ValueError, match=r"MaxPool2d.*larger than the padded input"):
        nn.MaxPool2d(5)(nn.Input((1, 3, 3)))


def test_summary_shows_output_shapes_and_parameter_counts():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3, rng=0))
    lines = []
    model.summary(input_shape=(1, 8, 8), print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 4, 8, 8)  40" in text and "(None, 4, 4, 4)" in text and "(None, 4, 2, 2)" in text
    assert "Total params: 91" in text


def test_state_dict_save_load_and_float32(tmp_path):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ConvTranspose2d(3, 2, 2, rng=1))
    x = np.random.default_rng(7).normal(size=(2, 2, 6, 6))
    model(x)
    path = tmp_path / "cnn.npz"
    nn.save(path, model)
    other = nn.Sequential(nn.Conv2d(2, 3, 3, rng=5), nn.BatchNorm2d(3), nn.ConvTranspose2d(3, 2, 2, rng=6))
    nn.load(path, other)
    assert sorted(other.state_dict()) == sorted(model.state_dict())
    np.testing.assert_array_equal(other.eval()(x), model.eval()(x))
    model.to(np.float32)
    y = model(x.astype(np.float32))
    assert y.dtype == np.float32 and model.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("make, x, error, match", [
    (lambda: nn.Conv2d(3, 4, 3), np.ones((2, 3, 5)), ValueError, r"Conv2d\(3, 4.*expected input of shape \(N, 3, H, W\), got \(2, 3, 5\)"),
    (lambda: nn.Conv2d(3, 4, 3), np.ones((2, 2, 5, 5)), ValueError, r"expected input of shape \(N, 3, H, W\), got \(2, 2, 5, 5\)"),
    (lambda: nn.Conv2d(1, 1, 5, padding=1), np.ones((1, 1, 2, 2)), ValueError, r"kernel \(5, 5\) .* larger than the padded input \(4, 4\)"),
    (lambda: nn.Conv2d(1, 1, 3, dilation=3), np.ones((1, 1, 6, 6)), ValueError, r"kernel \(7, 7\) \(dilation included\)"),
    (lambda: nn.Conv1d(1, 1, 3, padding=4, padding_mode="reflect"), np.ones((1, 1, 4)), ValueError, r"reflect.*smaller than the input size"),
    (lambda: nn.Conv2d(1, 1, 3), np.ones((1, 1, 5, 5), dtype=np.int64), TypeError, r"Conv2d\(1, 1.*floating-point"),
    (lambda: nn.Conv2d(1, 1, 3), np.ones((1, 1, 5, 5), dtype=np.float16), TypeError, r"dtype float64, got float16"),
    (lambda: nn.MaxPool2d(2), np.ones((1, 1, 4, 4), dtype=np.float16), TypeError, r"MaxPool2d.*float32 and float64"),
    (lambda: nn.MaxPool2d(2), np.ones((1, 4, 4)), ValueError, r"MaxPool2d.*\(N, C, H, W\), got \(1, 4, 4\)"),
    (lambda: nn.ConvTranspose2d(2, 2, 1, padding=2), np.ones((1, 2, 3, 3)), ValueError, r"empty output"),
    (lambda: nn.BatchNorm2d(3), np.ones((1, 3, 1, 1)), ValueError, r"more than 1 value per channel"),
    (lambda: nn.ZeroPad2d(-2), np.ones((1, 1, 3, 3)), ValueError, r"empty"),
    (lambda: nn.Dropout2d(0.5, rng=0), np.ones((2, 3)), ValueError, r"Dropout2d.*\(N, C, H, W\)"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_is_named_before_anything_changes(make, x, error, match):
    layer = make()
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    with pytest.raises(error, match=match):
        layer(x)
    assert all(np.array_equal(before[k], v) for k, v in layer.state_dict().items())


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, r"groups to divide in_channels, got in_channels=3"),
    (lambda: nn.Conv2d(2, 4, 3, stride=2, padding="same"), ValueError, r"'same' needs stride 1"),
    (lambda: nn.Conv2d(2, 4, 0), ValueError, r"kernel_size to be an int >= 1, got 0"),
    (lambda: nn.Conv2d(2, 4, (3, 3, 3)), ValueError, r"kernel_size to be an int or a tuple of 2"),
    (lambda: nn.Conv2d(2, 4, 3, padding="full"), ValueError, r"'valid' or 'same'"),
    (lambda: nn.Conv2d(2, 4, 3, padding_mode="mirror"), ValueError, r"padding_mode in"),
    (lambda: nn.Conv2d(2, 4, 2.5), TypeError, r"kernel_size to be an int"),
    (lambda: nn.Conv2d(2, 4, 3, stride=float("nan")), TypeError, r"stride to be an int"),
    (lambda: nn.Conv2d(2, 4, 3, dtype=np.int32), TypeError, r"floating-point dtype"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=2), ValueError, r"output_padding smaller"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError, r"at most half the kernel"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, r"divisor_override to be an int >= 1"),
    (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), ValueError, r"an int \(or None\) or a tuple of 2"),
    (lambda: nn.BatchNorm2d(3, momentum=float("nan")), ValueError, r"finite momentum"),
    (lambda: nn.Dropout2d(1.0), ValueError, r"Dropout2d expected p in \[0, 1\)"),
    (lambda: nn.Upsample(scale_factor=2, size=3), ValueError, r"exactly one of size and scale_factor"),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), ValueError, r"nearest"),
    (lambda: nn.Upsample(scale_factor=-1), ValueError, r"scale_factor > 0"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_hyperparameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_conv_in_sequential_skips_the_data_gradient_and_writes_no_returned_array():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.Conv2d(2, 2, 3, rng=1), nn.ReLU())
    x = np.random.default_rng(8).normal(size=(3, 1, 5, 5))
    y1 = model(x)
    keep = y1.copy()
    g = np.random.default_rng(9).normal(size=y1.shape)
    assert model.backward(g, input_grad=False) is None
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    dx = model.backward(g)
    assert dx.shape == x.shape
    for p, want in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, want, rtol=1e-13)
    model(x * 2)
    np.testing.assert_array_equal(y1, keep)  # an output the model returned is never overwritten later
    report = nn.check_gradients(model, x, rng=0)
    assert report.ok, report


def test_float32_layers_stay_float32_and_mixed_dtypes_are_refused():
    conv = nn.Conv2d(2, 3, 3, dtype=np.float32, rng=0)
    y = conv(np.ones((1, 2, 4, 4), dtype=np.float32))
    assert y.dtype == np.float32 and conv.backward(np.ones_like(y)).dtype == np.float32
    with pytest.raises(TypeError, match=r"dtype float32, got float64"):
        conv(np.ones((1, 2, 4, 4)))
    report = nn.check_gradients(conv, np.ones((2, 2, 4, 4), dtype=np.float32), rng=0)  # in a float64 copy
    assert report.ok and report.model_dtype == "float32"


@pytest.mark.parametrize("cls, kernel, shape", [(nn.MaxPool2d, 2, (2, 3, 5, 7)), (nn.MaxPool2d, (3, 2), (1, 2, 6, 4)),
                                                 (nn.MaxPool2d, (1, 2), (2, 1, 3, 4)), (nn.MaxPool1d, 3, (2, 2, 10))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_tiles_agree_with_the_window_path_on_ties(cls, kernel, shape, dtype):
    tiled, general = cls(kernel), cls(kernel)
    general._tiled = False  # the general path (window view, flat winners), as for overlapping windows
    assert tiled._tiled
    x = np.random.default_rng(3).integers(-2, 3, size=shape).astype(dtype)  # many ties: the first wins
    y = tiled(x)
    np.testing.assert_array_equal(y, general(x))
    assert tiled._tiles is not None and general._tiles is None
    g = np.random.default_rng(4).normal(size=y.shape).astype(dtype)
    dx = tiled.backward(g)
    assert dx.dtype == dtype and y.dtype == dtype
    np.testing.assert_array_equal(dx, general.backward(g).astype(dtype))


def _max_pool_reference(x, kernel, g):
    """Each whole tile's first maximum in row-major order (np.argmax), and ``g`` sent to it."""
    (n, c, h, w), (kh, kw) = x.shape, kernel
    ho, wo = h // kh, w // kw
    tiles = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw).transpose(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(n, c, ho, wo, kh * kw)
    first = np.argmax(tiles, axis=-1)[..., None]
    spread = np.zeros_like(tiles)
    np.put_along_axis(spread, first, g[..., None], axis=-1)
    dx = np.zeros_like(x)
    dx[:, :, :ho * kh, :wo * kw] = spread.reshape(n, c, ho, wo, kh, kw).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, ho * kh, wo * kw)
    return np.take_along_axis(tiles, first, axis=-1)[..., 0], dx


@pytest.mark.parametrize("kernel, shape", [(2, (64, 16, 8, 8)), (2, (64, 32, 4, 4)), (2, (3, 5, 7, 9)),
                                           ((2, 3), (2, 3, 5, 9)), ((16, 17), (1, 2, 33, 35))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_tiles_are_bit_identical_to_a_reference_on_ties(kernel, shape, dtype, monkeypatch):
    """The flat, chunked tile path: outputs and dJ/dx exactly the reference's (ties to the first maximum)."""
    from nanonet.layers import _tiles

    monkeypatch.setattr(_tiles, "CHUNK", 3 * shape[2] * shape[3])  # several chunks of 3 planes, a short last one
    gen = np.random.default_rng(5)
    x = gen.integers(-2, 3, size=shape).astype(dtype)  # many ties
    pool = nn.MaxPool2d(kernel)
    for x_in in (x, np.asfortranarray(x)):  # a non-contiguous input too
        y = pool(x_in)
        assert pool._tiles is not None  # the tile path ran
        g = gen.integers(-9, 10, size=y.shape).astype(dtype)
        want_y, want_dx = _max_pool_reference(x, pool.kernel_size, g)
        dx = pool.backward(g)
        assert y.dtype == dx.dtype == dtype
        assert y.tobytes() == want_y.tobytes() and dx.tobytes() == want_dx.tobytes()


@pytest.mark.parametrize("shape", [(6, 16, 4, 4), (2, 3, 8, 8)], ids=["channels-last", "general"])
def test_float32_conv2d_agrees_with_float64_to_float_rounding(shape):
    """Both Conv2d paths keep float32 throughout (no float64 promotion) and agree with float64 to rounding."""
    from nanonet.layers import _conv_nhwc

    gen = np.random.default_rng(3)
    x, layers = gen.normal(size=shape), {}
    for dtype in (np.float64, np.float32):
        conv = layers[dtype] = nn.Conv2d(shape[1], 5, 3, padding=1, dtype=dtype, rng=0)
        conv.load_state_dict({k: v.astype(dtype) for k, v in layers[np.float64].state_dict().items()})
    assert _conv_nhwc.fits(layers[np.float32], shape, shape[2:]) == (shape[1] == 16)
    results = {}
    for dtype, conv in layers.items():
        y = conv(x.astype(dtype))
        g = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
        results[dtype] = (y, conv.backward(g), conv.weight.grad, conv.bias.grad)
    for ours, exact in zip(results[np.float32], results[np.float64]):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())
