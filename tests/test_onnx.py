"""nn.export_onnx: every exportable layer, Sequential and Graph, run by ONNX Runtime and compared with nanonet."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (nanonet's `onnx` extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (nanonet's `onnx` extra)")

import nanonet as nn  # noqa: E402
from nanonet.interop import onnx_converters  # noqa: E402
from onnx_helpers import assert_close, run_onnx  # noqa: E402


def trained_batchnorm(features, dtype=np.float32):
    bn = nn.BatchNorm1d(features, dtype=dtype)
    bn(np.random.default_rng(5).normal(2.0, 3.0, size=(32, features)).astype(dtype))  # running stats move
    bn.weight.value[:] = np.linspace(0.5, 2.0, features)
    bn.bias.value[:] = np.linspace(-1.0, 1.0, features)
    return bn


def mlp_of_every_layer(dtype=np.float32):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 16, rng=0, dtype=dtype), nn.ReLU(),
        nn.Linear(16, 16, rng=1, dtype=dtype), nn.LeakyReLU(0.2), nn.LayerNorm(16, dtype=dtype),
        nn.Linear(16, 12, rng=2, dtype=dtype), trained_batchnorm(12, dtype), nn.Tanh(), nn.Dropout(0.5, rng=0),
        nn.Linear(12, 12, bias=False, rng=3, dtype=dtype), nn.GELU(), nn.Sigmoid(), nn.Identity(),
        nn.Linear(12, 10, rng=4, dtype=dtype), nn.Softplus(beta=2.0, threshold=1.0), nn.ELU(0.5),
        nn.Sequential(nn.Linear(10, 3, rng=5, dtype=dtype)),
    ).to(dtype)


def residual_graph(dtype=np.float32):
    x = nn.Input(8, name="features")
    h = nn.ReLU()(nn.Linear(8, 8, rng=0, dtype=dtype)(x))
    r = nn.Add()(nn.Linear(8, 8, rng=1, dtype=dtype)(h), h, x)
    gate = nn.Sigmoid()(nn.Linear(8, 8, rng=2, dtype=dtype)(x))
    left, right = nn.Split([3, 5])(nn.Multiply()(r, gate))
    both = nn.Concat()(nn.Tanh()(left), nn.Sequential(nn.Linear(5, 4, rng=3, dtype=dtype), nn.GELU())(right))
    return nn.Graph(x, nn.Linear(7, 2, rng=4, dtype=dtype)(both))


def two_in_two_out(dtype=np.float32):
    a, b = nn.Input(3, name="a"), nn.Input(5, name="b")
    joined = nn.Concat()(nn.Linear(3, 4, rng=0, dtype=dtype)(a), b)
    return nn.Graph([a, b], [nn.Linear(9, 2, rng=1, dtype=dtype)(joined), nn.ReLU()(b)])


CASES = [("every layer", mlp_of_every_layer, [(2, 3)]), ("residual graph", residual_graph, [(8,)]),
         ("two inputs, two outputs", two_in_two_out, [(3,), (5,)])]


@pytest.mark.parametrize("label, make, shapes", CASES, ids=[c[0] for c in CASES])
def test_onnx_runtime_computes_what_nanonet_computes_in_float32(tmp_path, label, make, shapes):
    model = make()
    model.train()
    path = tmp_path / "model.onnx"
    nn.export_onnx(model, path, shapes if len(shapes) > 1 else shapes[0])
    assert model.training and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    rng = np.random.default_rng(1)
    for batch in (1, 7):  # the batch axis is dynamic
        xs = [rng.normal(scale=2.0, size=(batch, *s)).astype(np.float32) for s in shapes]
        expected = nn.predict(model, xs[0] if len(xs) == 1 else tuple(xs))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = run_onnx(path, xs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_close(g, e)


def test_float64_models_export_as_double(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 2, rng=1))
    proto = nn.export_onnx(model, tmp_path / "m.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = np.random.default_rng(0).normal(size=(5, 4))
    assert_close(run_onnx(tmp_path / "m.onnx", [x])[0], nn.predict(model, x), rtol=1e-10)


def test_float64_batchnorm_divides_with_nanonets_eps_not_its_float32_rounding(tmp_path):
    bn = trained_batchnorm(4, np.float64)
    bn.eps = 1e-3  # float32(1e-3) differs by 5e-11 relative: visible in float64
    bn.running_var.value[:] = np.array([1e-3, 0.01, 1.0, 2.0])
    nn.export_onnx(nn.Sequential(bn), tmp_path / "m.onnx", (4,))
    x = np.random.default_rng(0).normal(size=(5, 4))
    assert_close(run_onnx(tmp_path / "m.onnx", [x])[0], nn.predict(bn, x), rtol=1e-13)


def test_a_layer_without_a_converter_is_named_and_one_function_adds_it(tmp_path):
    class Square(nn.Module):
        batch_independent = True

        def forward(self, x):
            self._x = x
            return x * x

        def backward(self, grad_out):
            return 2 * self._x * grad_out

    model = nn.Sequential(nn.Linear(3, 3, rng=0).to(np.float32), Square())
    with pytest.raises(NotImplementedError, match=r"export_onnx: Square\(\) \(.*Square\) has no ONNX converter\. "
                                                  r"Exportable: .*Linear.*register_converter\(Square\)"):
        nn.export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())

    @onnx_converters.register_converter(Square)
    def _square(module, builder, inputs, name):
        return [builder.node("Mul", [inputs[0], inputs[0]], name + "out")]

    try:
        nn.export_onnx(model, tmp_path / "m.onnx")
        x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
        assert_close(run_onnx(tmp_path / "m.onnx", [x])[0], model(x))
    finally:
        del onnx_converters.CONVERTERS[Square]


def test_converters_can_ask_the_feature_shape_of_their_inputs(tmp_path):
    class Tap(nn.Module):  # the identity; its converter notes the shape it is given
        batch_independent = True

        def forward(self, x):
            return x

        def backward(self, grad_out):
            return grad_out

    seen = []

    @onnx_converters.register_converter(Tap)
    def _tap(module, builder, inputs, name):
        seen.append(builder.feature_shape(inputs[0]))
        return [builder.node("Identity", inputs[:1], name + "out")]

    x = nn.Input(8)
    left, right = nn.Split([3, 5])(nn.Linear(8, 8, rng=0)(x))  # shapes through a multi-output layer
    nested = nn.Sequential(nn.Linear(5, 6, rng=1), nn.ReLU(), Tap())  # and through a nested container
    model = nn.Graph(x, nn.Concat()(Tap()(left), nested(right), Tap()(x)))
    try:
        nn.export_onnx(model, tmp_path / "m.onnx")
    finally:
        del onnx_converters.CONVERTERS[Tap]
    assert seen == [(3,), (6,), (8,)]
    from nanonet.interop.onnx_export import GraphBuilder

    with pytest.raises(RuntimeError, match=r"export_onnx: the feature shape of tensor 'nowhere' is unknown"):
        GraphBuilder(np.float32, 17).feature_shape("nowhere")


def test_a_subclass_that_changes_forward_does_not_pass_as_its_base(tmp_path):
    class ScaledReLU(nn.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    class QuietLinear(nn.Linear):  # changes backward only: still a Linear for export
        def backward(self, grad_out):
            return super().backward(grad_out)

    with pytest.raises(NotImplementedError, match=r"ScaledReLU\(\) .* has no ONNX converter"):
        nn.export_onnx(nn.Sequential(nn.Linear(2, 2, rng=0), ScaledReLU()), tmp_path / "a.onnx")
    nn.export_onnx(nn.Sequential(QuietLinear(2, 2, rng=0)), tmp_path / "b.onnx")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(input_shape=(0,)), ValueError, r"input_shape as the feature shape of one example"),
    (dict(input_shape=(5,)), ValueError, r"does not run on inputs of feature shape\(s\) \[\(5,\)\] in float64: .*"
                                         r"expected input of shape \(N, 4\), got \(2, 5\)"),
    (dict(opset=11), ValueError, r"opset an int in \[13, \d+\]"),
    (dict(opset=16), ValueError, r"LayerNorm\(4.*\) needs opset >= 17, got opset=16"),
    (dict(dtype=np.int32), TypeError, r"floating-point dtype, got int32"),
])
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, error, match):
    model = nn.Sequential(nn.Linear(4, 4, rng=0), nn.LayerNorm(4))
    with pytest.raises(error, match=match):
        nn.export_onnx(model, tmp_path / "m.onnx", **kwargs)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"give input_shape"):
        nn.export_onnx(nn.Sequential(nn.ReLU()), tmp_path / "m.onnx")
