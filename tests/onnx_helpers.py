"""What the ONNX export tests share: run an exported file, and compare its outputs with nanonet's.

Imported by test modules after their ``pytest.importorskip("onnx")`` and
``("onnxruntime")``, so importing it needs both.
"""

import numpy as np
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

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
