"""The contract's own checks (nanonet/_contract.py): what every layer gets without writing it."""

import re
from pathlib import Path

import numpy as np
import pytest

import nanonet as nn
from nanonet.testing import check_layer

ROOT = Path(__file__).resolve().parents[1]


class Scale(nn.Module):
    """The shortest honest layer: no checks of its own."""

    def __init__(self, features):
        self.s = nn.Parameter(np.linspace(0.5, 1.5, features))

    def forward(self, x):
        self._x = x
        return x * self.s.value

    def backward(self, grad_out):
        self.s.grad += (grad_out * self._x).sum(axis=0)
        return grad_out * self.s.value

    def extra_repr(self):
        return str(self.s.value.shape[0])


def test_the_docs_scale_layer_passes_check_layer_verbatim():
    text = (ROOT / "docs" / "index.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    source = next(b for b in blocks if "class Scale(nn.Module)" in b)
    namespace = {"np": np, "nn": nn}
    exec(source, namespace)
    docs_scale = namespace["Scale"]
    assert "check" not in source.split("class Scale")[1].split("net =")[0]  # verbatim: no checks of its own
    report = check_layer(lambda: docs_scale(4), (5, 4))
    assert report.ok, report
    assert report["wrong_input"].status == "PASS"


def test_backward_before_forward_is_a_runtime_error_naming_the_layer():
    with pytest.raises(RuntimeError, match=r"Scale\(3\): backward called before forward"):
        Scale(3).backward(np.ones((2, 3)))


@pytest.mark.parametrize("bad, kind", [
    (np.ones((2, 3), dtype=np.int64), "int64"),
    (np.ones((2, 3), dtype=bool), "bool"),
    (np.array([["a", "b", "c"]]), "<U1"),
    (np.array([[None, None, None]], dtype=object), "object"),
    (np.zeros((2, 3), dtype="datetime64[s]"), "datetime64"),
    ([[1.0, 2.0, 3.0]], "list"),
])
def test_inputs_of_the_wrong_kind_are_refused_before_forward_runs(bad, kind):
    layer = Scale(3)
    for call in (layer, layer.forward):
        with pytest.raises(TypeError, match=r"Scale\(3\) expected") as info:
            call(bad)
        assert kind in str(info.value)
    assert "_x" not in vars(layer)  # the layer's own code never ran


def test_grad_out_must_match_the_last_output_in_shape_and_dtype():
    layer = Scale(3)
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Scale\(3\) expected grad_out of shape \(2, 3\), got \(2, 4\)"):
        layer.backward(np.ones((2, 4)))
    with pytest.raises(TypeError, match=r"Scale\(3\) expected grad_out of dtype float64, got float32"):
        layer.backward(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=r"Scale\(3\) expected grad_out to be a numpy.ndarray, got float"):
        layer.backward(1.0)
    assert np.array_equal(layer.s.grad, np.zeros(3))  # nothing was accumulated by the refused calls
    layer.backward(np.ones((2, 3)))
    assert np.array_equal(layer.s.grad, [2.0, 2.0, 2.0])


def test_errors_inside_a_layer_name_it_and_keep_their_type():
    layer = Scale(3)
    with pytest.raises(ValueError, match=r"Scale\(3\) failed in forward \(given \(2, 5\)\): operands could not"):
        layer(np.ones((2, 5)))


def test_a_failed_forward_forgets_the_last_output():
    layer = Scale(3)
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError):
        layer(np.ones((2, 5)))  # Scale cached the bad input before failing
    with pytest.raises(RuntimeError, match="backward called before forward \\(or after a forward that failed\\)"):
        layer.backward(np.ones((2, 3)))


def test_a_subclass_overriding_only_backward_stays_consistent():
    class Doubled(Scale):
        def backward(self, grad_out):
            return 2 * super().backward(grad_out)

    layer = Doubled(3)
    layer(np.ones((2, 3)))
    assert np.array_equal(layer.backward(np.ones((2, 3))), 2 * np.linspace(0.5, 1.5, 3) * np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Doubled\(3\) expected grad_out of shape"):
        layer.backward(np.ones((1, 3)))


def test_the_function_the_class_body_wrote_is_reachable_and_opting_out_is_explicit():
    assert Scale.forward.__wrapped__.__qualname__ == "Scale.forward"

    class Raw(Scale):
        checks_itself = True

        def forward(self, x):
            self._x = x
            return x * self.s.value

    assert not hasattr(Raw.forward, "__wrapped__")
    with pytest.raises(AttributeError):  # no check: the layer's own code fails as written
        Raw(3).backward(np.ones((2, 3)))


def test_several_outputs_take_a_tuple_of_gradients():
    split = nn.Split([1, 2])
    split(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"expected a tuple of 2 gradients \(one per output\), got ndarray"):
        split.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"grad_out 1 of shape \(2, 2\), got \(2, 1\)"):
        split.backward((np.ones((2, 1)), np.ones((2, 1))))
    # an unused output's gradient may be None: it counts as zeros
    assert np.array_equal(split.backward((np.ones((2, 1)), None)), [[1, 0, 0], [1, 0, 0]])


def test_losses_get_the_contract_too():
    class Half(nn.Loss):
        def forward(self, pred, target):
            self._d = pred - target
            return float((self._d ** 2).sum() / 2)

        def backward(self, grad=1.0):
            return self._d * grad

    loss = Half()
    with pytest.raises(RuntimeError, match="Half.*backward called before forward"):
        loss.backward()
    assert loss(np.ones((2, 1)), np.zeros((2, 1))) == 1.0


@pytest.mark.parametrize("build", [
    lambda l: nn.Sequential(l, nn.Tanh(), l),
    lambda l: nn.Sequential(nn.Sequential(l, nn.Tanh()), l),
    lambda l: nn.Sequential(l).append(nn.Tanh()).append(l),
])
def test_sequential_refuses_one_instance_in_two_places(build):
    layer = nn.Linear(3, 3, rng=0)
    with pytest.raises(ValueError, match=r"Linear\(3 -> 3\) is used twice.*nn.shared_copy"):
        build(layer)


def test_graph_refuses_one_instance_in_two_places_even_nested():
    layer = nn.Linear(3, 3, rng=0)
    x = nn.Input(3)
    with pytest.raises(ValueError, match=r"Linear\(3 -> 3\) is used twice.*nn.shared_copy"):
        nn.Graph(x, nn.Sequential(layer, nn.Tanh())(layer(x)))


def test_shared_copy_is_the_way_to_tie_weights_and_its_gradients_are_right():
    layer = nn.Linear(3, 3, rng=0)
    tied = nn.Sequential(layer, nn.Tanh(), nn.shared_copy(layer))
    assert len(tied.parameters()) == 2
    x = np.random.default_rng(0).normal(size=(4, 3))
    assert nn.check_gradients(tied, x, rng=0).ok
