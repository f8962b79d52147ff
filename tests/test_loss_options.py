"""CrossEntropyLoss(weight, ignore_index, label_smoothing) and BCEWithLogitsLoss(pos_weight): torch-equal, checked."""

import itertools

import numpy as np
import pytest

import nanonet as nn

WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
CLASSES = np.array([0, 1, 2, 3, 1, -100, 0, 7])   # 7 is ignored when ignore_index=7


def logits(shape=(8, 4), seed=0):
    z = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    z[0, :2] = [1000.0, -1000.0]
    return z


def compare(ours, theirs, pred, target, torch):
    value = ours(pred, target)
    grad = ours.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tv = theirs(tp, torch.tensor(target))
    tv.backward()
    assert value == pytest.approx(tv.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-14)


CE_CASES = list(itertools.product(["mean", "sum"], [None, WEIGHT], [-100, 7], [0.0, 0.25]))


@pytest.mark.parametrize("reduction, weight, ignore_index, smoothing", CE_CASES)
def test_cross_entropy_options_match_torch(reduction, weight, ignore_index, smoothing):
    torch = pytest.importorskip("torch")
    classes = np.where(CLASSES == -100, 0, CLASSES) if ignore_index == 7 else np.where(CLASSES == 7, 3, CLASSES)
    options = dict(weight=weight, ignore_index=ignore_index, label_smoothing=smoothing)
    ours = nn.CrossEntropyLoss(reduction, **options)
    theirs = torch.nn.CrossEntropyLoss(reduction=reduction, ignore_index=ignore_index, label_smoothing=smoothing,
                                       weight=None if weight is None else torch.tensor(weight))
    compare(ours, theirs, logits(), classes, torch)
    probabilities = np.random.default_rng(1).dirichlet(np.ones(4), size=8)
    if ignore_index == -100:
        compare(ours, theirs, logits(), probabilities, torch)
    else:  # torch: "ignore_index is not supported for floating point target"
        with pytest.raises(ValueError, match="probability targets, for which ignore_index does not apply"):
            ours(logits(), probabilities)


def test_cross_entropy_with_every_row_ignored_is_nan_with_a_zero_gradient_as_torch():
    torch = pytest.importorskip("torch")
    loss = nn.CrossEntropyLoss(weight=WEIGHT, label_smoothing=0.1)
    z = logits((3, 4))
    value = loss(z, np.full(3, -100))
    assert np.isnan(value) and not loss.backward().any()
    tp = torch.tensor(z, requires_grad=True)
    tv = torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT), label_smoothing=0.1)(tp, torch.full((3,), -100))
    tv.backward()
    assert np.isnan(tv.item()) and not tp.grad.numpy().any()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("pos_weight", [np.array([0.5, 1.0, 4.0]), np.array([2.5])])
def test_bce_pos_weight_matches_torch(reduction, pos_weight):
    torch = pytest.importorskip("torch")
    z = logits((5, 3))
    target = np.random.default_rng(2).uniform(size=(5, 3))
    target[1] = [0.0, 1.0, 1.0]
    theirs = torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(pos_weight))
    compare(nn.BCEWithLogitsLoss(reduction, pos_weight=pos_weight), theirs, z, target, torch)


def test_defaults_give_the_plain_losses_bit_for_bit():
    z, classes = logits(), np.where(CLASSES < 0, 0, CLASSES) % 4
    plain, explicit = nn.CrossEntropyLoss(), nn.CrossEntropyLoss(weight=np.ones(4), label_smoothing=0.0)
    assert plain(z, classes) == pytest.approx(explicit(z, classes), rel=1e-15)
    np.testing.assert_allclose(plain.backward(), explicit.backward(), rtol=1e-15, atol=1e-300)
    target = np.random.default_rng(3).uniform(size=(8, 4))
    bce, ones = nn.BCEWithLogitsLoss(), nn.BCEWithLogitsLoss(pos_weight=np.ones(4))
    assert bce(z, target) == pytest.approx(ones(z, target), rel=1e-14)
    np.testing.assert_allclose(bce.backward(), ones.backward(), rtol=1e-12, atol=1e-15)


def test_float32_logits_keep_float32_gradients_with_float64_weights():
    z = logits().astype(np.float32)
    ce = nn.CrossEntropyLoss(weight=WEIGHT, label_smoothing=0.1)
    ce(z, np.where(CLASSES == 7, 3, CLASSES))
    assert ce.backward().dtype == np.float32
    bce = nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 1.0, 1.0, 0.5]))
    bce(z, np.ones_like(z))
    assert bce.backward().dtype == np.float32


def test_repr_shows_the_options():
    assert repr(nn.CrossEntropyLoss(weight=np.array([1.0, 2.0]), ignore_index=-1, label_smoothing=0.1)) == (
        "CrossEntropyLoss(reduction='mean', weight=[1., 2.], ignore_index=-1, label_smoothing=0.1)")
    assert repr(nn.BCEWithLogitsLoss(pos_weight=np.array([3.0]))) == (
        "BCEWithLogitsLoss(reduction='mean', pos_weight=[3.])")


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.CrossEntropyLoss(weight=[1.0, 2.0]), TypeError, r"weight to be None or a numpy.ndarray, got list"),
    (lambda: nn.CrossEntropyLoss(weight=np.ones((2, 2))), ValueError, r"1-D float array.*shape \(2, 2\)"),
    (lambda: nn.CrossEntropyLoss(weight=np.array([1, 2])), ValueError, r"1-D float array.*dtype int64"),
    (lambda: nn.CrossEntropyLoss(weight=np.array([1.0, -1.0])), ValueError, r"weight to be finite and >= 0"),
    (lambda: nn.CrossEntropyLoss(weight=np.array([1.0, np.nan])), ValueError, r"weight to be finite and >= 0"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ValueError, r"label_smoothing in \[0, 1\], got 1.5"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=float("nan")), ValueError, r"finite label_smoothing"),
    (lambda: nn.CrossEntropyLoss(ignore_index=1.5), TypeError, r"ignore_index to be an int, got 1.5"),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([np.inf])), ValueError, r"pos_weight to be finite"),
])
def test_bad_options_are_refused_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_options_that_do_not_fit_the_data_are_clear_errors():
    with pytest.raises(ValueError, match=r"has weight for 4 classes, but pred has 3 \(shape \(2, 3\)\)"):
        nn.CrossEntropyLoss(weight=WEIGHT)(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\) or ignore_index=-100, got values from 0 to 5"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"has pos_weight for 2 classes, but pred has 3"):
        nn.BCEWithLogitsLoss(pos_weight=np.ones(2))(np.zeros((2, 3)), np.zeros((2, 3)))
    weights = np.array([1.0, 2.0])
    loss = nn.CrossEntropyLoss(weight=weights)
    weights[0] = 100.0  # the loss keeps its own copy
    assert loss.weight[0] == 1.0 and not loss.weight.flags.writeable
