"""What the ONNX export tests share: run an exported file, and compare its outputs with nanonet's; and
``check_export``, which does both for a model on random inputs of several batch sizes (the sequence tests).

Imported by test modules after their ``pytest.importorskip("onnx")`` and
``("onnxruntime")``, so importing it needs both.
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

import nanonet as nn

RTOL = 1e-5  # the bar for float32


def run_onnx(path, inputs):
    """The outputs of the ONNX file at ``path`` run by ONNX Runtime (CPU) on ``inputs`` (in input order)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def run_reference(proto, inputs):
    """The outputs of ``proto`` run by onnx's reference evaluator (the specification's numpy
    implementation): it runs the float64 models whose ops ONNX Runtime's CPU kernels take in float32 only."""
    names = [i.name for i in proto.graph.input]
    return ReferenceEvaluator(proto).run(None, dict(zip(names, inputs)))


def assert_close(got, expected, rtol=RTOL):
    """Relative to the output's scale (elementwise relative error is meaningless next to 0)."""
    scale = max(float(np.abs(expected).max()), 1e-30)
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.shape, got.dtype, expected.shape)
    assert float(np.abs(got - expected).max()) <= rtol * scale, float(np.abs(got - expected).max()) / scale


F64_RTOL = 1e-10  # float64 graphs (LayerNorm's own rounding reaches ~1e-13)


def randomized(model, seed=0):
    """Every parameter drawn anew (biases and LayerNorm start at 0 and 1, which would hide a misplaced one);
    an Embedding's padding row stays zero, as it is in training."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.value[...] = rng.normal(scale=0.5, size=p.value.shape)
    for m in model.modules():
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            m.weight.value[m.padding_idx] = 0
    return model


def inputs_for(proto, model, batch, seed):
    """Random inputs for the graph's inputs: int64 indices where it declares them, else its float type."""
    rng = np.random.default_rng(seed)
    tables = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    xs = []
    for value in proto.graph.input:
        tensor = value.type.tensor_type
        shape = (batch, *(d.dim_value for d in tensor.shape.dim[1:]))
        if tensor.elem_type == onnx.TensorProto.INT64:
            xs.append(rng.integers(0, min(tables), size=shape))
        else:
            xs.append(rng.normal(size=shape).astype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return xs


def check_export(tmp_path, model, shapes, dtype=np.float32, runner="ort", rtol=None, batches=(1, 3)):
    """Export ``model``, check the file, run it on random inputs of each batch size, compare with nanonet.

    ``batches`` are sizes of axis 0, the graph's dynamic axis: the batch, or with a time-major recurrent
    layer the sequence length (so that 1 runs a sequence of one step). Returns the ModelProto."""
    path = tmp_path / "model.onnx"
    proto = nn.export_onnx(model, path, shapes if len(shapes) > 1 else shapes[0], dtype=dtype)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    rtol = rtol if rtol is not None else (1e-5 if dtype == np.float32 else F64_RTOL)
    for seed, batch in enumerate(batches):
        xs = inputs_for(proto, model, batch, seed)
        expected = nn.predict(model, xs[0] if len(xs) == 1 else tuple(xs))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = run_onnx(path, xs) if runner == "ort" else run_reference(proto, xs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_close(g, e, rtol)
    return proto
