"""Property tests (hypothesis) of the conv family, and max pooling's ties as declared kinks.

Hypothesis draws the hyperparameters and shapes; each example is checked
against finite differences (``check_gradients``) and against a reference
that uses no im2col (a loop over kernel offsets), so no torch is needed.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanonet as nn
from nanonet.gradcheck.engine import KinkWatch
from nanonet.testing import check_layer
from nanonet.testing.strategies import SEEDS, conv2d_cases, pool2d_cases

_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _reference_conv(conv, x):
    """Convolution as a sum over kernel offsets of shifted, strided slices (no im2col, no matmul)."""
    (kh, kw), (sh, sw), (dh, dw), g = conv.kernel_size, conv.stride, conv.dilation, conv.groups
    xp = np.pad(x, ((0, 0), (0, 0)) + conv._pads, mode=_NUMPY_MODE[conv.padding_mode])
    oh, ow = conv.output_shape(x.shape[1:])[1:]
    out = np.zeros((x.shape[0], conv.out_channels, oh, ow))
    cin, cout = conv.in_channels // g, conv.out_channels // g
    for o in range(conv.out_channels):
        group = o // cout
        for c in range(cin):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, group * cin + c, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                    out[:, o] += conv.weight.value[o, c, i, j] * patch
    if conv.bias is not None:
        out += conv.bias.value[:, None, None]
    return out


@settings(deadline=None, max_examples=25)
@given(case=conv2d_cases(), seed=SEEDS)
def test_conv2d_equals_the_offset_loop_and_its_gradients_check(case, seed):
    kw, shape = case
    conv = nn.Conv2d(**kw, rng=seed)
    if conv.bias is not None:
        conv.bias.value[:] = np.random.default_rng(seed).normal(size=conv.out_channels)
    x = np.random.default_rng(seed + 1).normal(size=shape)
    np.testing.assert_allclose(conv(x), _reference_conv(conv, x), rtol=1e-12, atol=1e-12)
    report = nn.check_gradients(conv, x, rng=seed, mode="projected")
    assert report.ok, report


@settings(deadline=None, max_examples=25)
@given(case=pool2d_cases(), seed=SEEDS, average=st.booleans())
def test_pooling_gradients_check_on_random_and_on_tied_inputs(case, seed, average):
    kw, shape = case
    layer = nn.AvgPool2d(**kw) if average else nn.MaxPool2d(**kw)
    gen = np.random.default_rng(seed)
    for x in (gen.normal(size=shape), gen.integers(0, 2, size=shape).astype(np.float64)):
        report = nn.check_gradients(layer, x, rng=seed, mode="full")
        assert report.ok, report
        assert all(row.undeclared_kinks == 0 for row in report.rows), report


@settings(deadline=None, max_examples=25)
@given(case=conv2d_cases(), seed=SEEDS)
def test_output_shape_is_what_forward_makes(case, seed):
    kw, shape = case
    for layer in (nn.Conv2d(**kw, rng=seed), nn.MaxPool2d(kw["kernel_size"], padding=0, ceil_mode=True)):
        assert layer(np.zeros(shape)).shape[1:] == layer.output_shape(shape[1:])


# -- ties are kinks ---------------------------------------------------------------------------------
TIES = np.random.default_rng(0).integers(0, 3, size=(2, 2, 4, 4)).astype(np.float64)


@pytest.mark.parametrize("mode", ["full", "projected", "fast"])
def test_maxpool_ties_pass_as_declared_kinks(mode):
    report = nn.check_gradients(nn.MaxPool2d(2), TIES, rng=0, mode=mode)
    assert report.ok, report
    assert sum(row.kinks for row in report.rows) > 0
    assert all(row.undeclared_kinks == 0 for row in report.rows)
    assert "MaxPool2d(kernel_size=(2, 2), stride=(2, 2)) at ties in a window" in "\n".join(report.notes)


def test_ties_inside_a_cnn_and_through_check_layer():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(12, 2, rng=1))
    assert nn.check_gradients(model, TIES, rng=0, mode="full").ok
    report = check_layer(lambda: nn.MaxPool2d(2, stride=1), (2, 2, 4, 4),
                         input=lambda shape, gen: gen.integers(0, 2, size=shape))
    assert report.ok and "full" in report["gradients"].detail


class _Undeclared(nn.MaxPool2d):
    kinks = ()


class _Doubled(nn.MaxPool2d):
    def backward(self, grad_out):
        return 2 * super().backward(grad_out)


def test_an_undeclared_tie_is_reported_and_a_wrong_value_fails():
    undeclared = nn.check_gradients(_Undeclared(2), TIES, rng=0, mode="full")
    assert undeclared.ok and undeclared["input"].undeclared_kinks > 0
    assert any("declare it in the layer's `kinks`" in note for note in undeclared.notes)
    assert not nn.check_gradients(_Doubled(2), TIES, rng=0, mode="full").ok


def test_kink_pieces_count_winners_that_change():
    pool = nn.MaxPool2d(2)
    watch = KinkWatch(nn.Sequential(pool))
    x = np.zeros((1, 1, 2, 2))

    def run(value):
        def go():
            y = x.copy()
            y[0, 0, 1, 1] = value
            pool.forward(y)
        return go

    assert watch.crossings(run(1e-9), run(-1e-9)) == 1  # the winner changes: across a tie
    assert watch.crossings(run(2.0), run(1.0)) == 0


def test_a_named_kink_needs_kink_pieces():
    class Broken(nn.Identity):
        kinks = ("somewhere",)

    with pytest.raises(TypeError, match=r"declares the kink\(s\) \['somewhere'\] but has no kink_pieces"):
        nn.check_gradients(Broken(), np.ones((2, 2)), rng=0)
