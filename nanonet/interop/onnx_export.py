"""ONNX export: ``export(model, path, input_shape)`` builds the graph with the ``onnx`` package and checks it.

Each module is written by its converter (``onnx_converters``: a registry keyed
by module class, so a new layer needs one function). The model is exported
as it computes in eval mode: Dropout is the identity and BatchNorm uses its
running statistics. Needs onnx, nanonet's optional ``onnx`` extra (with
onnxruntime, which runs the tests).
"""

import os
import pathlib
import tempfile

import numpy as np

from .._extras import missing

try:
    import onnx
    from onnx import checker, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - exercised only without onnx
    raise missing("nn.export_onnx", "onnx", "onnx") from exc

from ..containers import Graph, Sequential
from ..containers.graph_build import infer_output_shapes
from ..inference import predict
from ..module import Module
from . import onnx_converters_conv  # noqa: F401  (registers the convolutional layers' converters)
from . import onnx_converters_attention, onnx_converters_seq  # noqa: F401  (the sequence layers' converters)
from .onnx_converters import convert

DEFAULT_OPSET = 17
MIN_OPSET = 13   # Split takes its sizes as an input from opset 13 on


class GraphBuilder:
    """Collects the nodes and the weights (initializers) of one ONNX graph; converters call it."""

    def __init__(self, dtype, opset):
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.elem_type = helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes, self.initializers = [], []
        self._names = set()
        self._shapes = {}  # tensor name -> its feature shape (no batch axis), or why it is unknown

    def unique(self, name):
        """``name``, or ``name_1``, ``name_2``, ... if it is taken."""
        candidate, k = name, 0
        while candidate in self._names:
            k += 1
            candidate = f"{name}_{k}"
        self._names.add(candidate)
        return candidate

    def weight(self, name, array):
        """A float initializer in the graph's dtype (a copy of ``array``); returns its name."""
        return self.constant(name, np.asarray(array, dtype=self.dtype))

    def ints(self, name, values):
        """An int64 initializer (sizes, axes, indices; a 0-d one for a scalar); returns its name."""
        return self.constant(name, np.asarray(values, dtype=np.int64))

    def scalar(self, name, value):
        """A float scalar initializer in the graph's dtype."""
        return self.weight(name, np.array(value))

    def constant(self, name, array):
        """An initializer holding ``array`` as it is (e.g. int64 sizes); returns its name."""
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def node(self, op, inputs, outputs, **attributes):
        """Add an ``op`` node; ``outputs`` is a name (one output, returned as a str) or a list of names."""
        single = isinstance(outputs, str)
        names = [self.unique(o) for o in ([outputs] if single else outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=self.unique(f"{names[0]}/{op}"),
                                           **attributes))
        return names[0] if single else names

    def set_shape(self, name, shape):
        """Declare the feature shape (without the batch axis) of tensor ``name``, e.g. a graph input's."""
        self._shapes[name] = tuple(shape)

    def made(self, module, inputs, outputs):
        """Record the feature shapes of ``outputs``, what ``module`` made of ``inputs`` (``convert`` calls it).

        Known already for a container's outputs (its children recorded them);
        otherwise inferred as ``nn.Graph`` does (``output_shape``, else a probe
        on a copy). A failure is kept and raised only if a converter asks.
        """
        if all(o in self._shapes for o in outputs):
            return
        try:
            shapes, _ = infer_output_shapes(module, [self.feature_shape(i) for i in inputs])
        except Exception as exc:
            shapes = [exc] * len(outputs)
        for out, shape in zip(outputs, shapes):
            self._shapes.setdefault(out, shape)

    def feature_shape(self, name):
        """The feature shape of tensor ``name``, for converters whose nodes depend on it (the batch axis
        alone is dynamic, so a pooling window or an upsampling index can be fixed at export)."""
        shape = self._shapes.get(name)
        if shape is None or isinstance(shape, Exception):
            why = f": {shape}" if shape is not None else ""
            raise RuntimeError(f"export_onnx: the feature shape of tensor {name!r} is unknown{why}")
        return shape

    def require_opset(self, minimum, module):
        if self.opset < minimum:
            raise ValueError(f"export_onnx: {module.short_repr()} needs opset >= {minimum}, got opset={self.opset}")


def _input_shapes(model, input_shape):
    if input_shape is None:
        if isinstance(model, Graph):
            return [tuple(s) for s in model.input_shapes]
        first = next(iter(model.children()), model)
        if hasattr(first, "in_features"):
            return [(first.in_features,)]
        example = "(10,)"
        if hasattr(first, "in_channels"):  # a CNN: the channels are known, the spatial size is not
            example = f"({first.in_channels}, *spatial) for its first layer {first.short_repr()}"
        elif hasattr(first, "num_embeddings"):  # indices: their number per example is the user's
            example = f"(L,) (L indices per example) for its first layer {first.short_repr()}"
        raise ValueError(f"export_onnx: give input_shape, the feature shape of one example, e.g. {example}, "
                         f"for {model.short_repr()}")
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    shapes = [input_shape] if all(isinstance(d, (int, np.integer)) for d in input_shape) else list(input_shape)
    for shape in shapes:
        if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                                for d in shape):
            raise ValueError(f"export_onnx expected input_shape as the feature shape of one example (positive "
                             f"ints, without the batch axis), or a list of them, got {input_shape!r}")
    return [tuple(int(d) for d in s) for s in shapes]


def takes_indices(module, position=0):
    """True when ``module`` reads its input ``position`` as integer indices (e.g. a model that starts with an
    Embedding): the graph then declares that input int64. A Sequential asks its first child; a Graph every
    module that reads the input (all must take indices, as ``Graph`` itself requires); any other module its
    ``input_kinds`` (integer kinds without ``"f"``).
    """
    if isinstance(module, Sequential):
        first = next(iter(module.children()), None)
        return first is not None and takes_indices(first, 0)
    if isinstance(module, Graph):
        name = module.input_names[position]
        uses = [takes_indices(child, i) for _, child, _, sources in module.records() if child is not None
                for i, source in enumerate(sources) if source == name]
        return bool(uses) and all(uses)
    kinds = module.input_kinds
    kind = kinds[position] if isinstance(kinds, tuple) and position < len(kinds) else kinds
    return isinstance(kind, str) and "i" in kind and "f" not in kind


def _dtype(model, dtype):
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"export_onnx expected a floating-point dtype, got {dtype}")
        return dtype
    found = {p.value.dtype for p in model.parameters()}
    if len(found) > 1:
        raise TypeError(f"export_onnx: the model mixes parameter dtypes {sorted(map(str, found))}; "
                        f"convert it with model.to(...) first")
    return found.pop() if found else np.dtype(np.float64)


def _check_opset(opset):
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export_onnx expected opset an int in [{MIN_OPSET}, {newest}] (this onnx's newest), "
                         f"got {opset!r}")
    return int(opset)


def _probe(model, shapes, dtype, indices):
    """Run the model once (eval mode) on random inputs of ``shapes`` (zeros for the ``indices`` inputs, valid
    for any table): the output shapes, or a clear error."""
    rng = np.random.default_rng(0)
    xs = [np.zeros((2, *s), np.int64) if index else rng.standard_normal((2, *s)).astype(dtype)
          for s, index in zip(shapes, indices)]
    try:
        out = predict(model, xs[0] if len(xs) == 1 else tuple(xs))
    except Exception as exc:
        kinds = ", ".join(sorted({str(x.dtype) for x in xs}))
        raise ValueError(f"export_onnx: {model.short_repr()} does not run on inputs of feature shape(s) "
                         f"{shapes} in {kinds}: {exc}") from exc
    return [o.shape[1:] for o in (out if isinstance(out, tuple) else (out,))]


def export(model, path, input_shape=None, *, opset=None, dtype=None):
    """The implementation of :func:`nanonet.export_onnx` (see there)."""
    if not isinstance(model, Module):
        raise TypeError(f"export_onnx expected a nanonet Module, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"export_onnx expected path to be a str or os.PathLike, got {type(path).__name__}")
    opset = _check_opset(DEFAULT_OPSET if opset is None else opset)
    shapes = _input_shapes(model, input_shape)
    dtype = _dtype(model, dtype)
    names = model.input_names if isinstance(model, Graph) else ["input"]
    if len(names) != len(shapes):
        raise ValueError(f"export_onnx: {model.short_repr()} takes {len(names)} input(s), got {len(shapes)} shape(s)")
    indices = [takes_indices(model, i) for i in range(len(names))]
    out_shapes = _probe(model, shapes, dtype, indices)
    builder = GraphBuilder(dtype, opset)
    for name, shape in zip(names, shapes):
        builder.unique(name)
        builder.set_shape(name, shape)
    outputs = convert(model, builder, names, "")
    out_names = [builder.node("Identity", [o], "output" if len(outputs) == 1 else f"output_{i}")
                 for i, o in enumerate(outputs)]
    graph = helper.make_graph(
        builder.nodes, type(model).__name__,
        [helper.make_tensor_value_info(n, onnx.TensorProto.INT64 if index else builder.elem_type, ["batch", *s])
         for n, s, index in zip(names, shapes, indices)],
        [helper.make_tensor_value_info(n, builder.elem_type, ["batch", *s]) for n, s in zip(out_names, out_shapes)],
        initializer=builder.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="nanonet",
                              ir_version=helper.find_min_ir_version_for(opsets))
    checker.check_model(proto, full_check=True)
    _save_atomically(proto, pathlib.Path(path))
    return proto


def _save_atomically(proto, path):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
