"""ONNX converters: one function per module class, in a registry keyed by the class.

A converter ``convert(module, builder, inputs, name) -> [output names]``
writes the ONNX nodes that compute ``module``'s eval-mode forward: ``inputs``
are the names of its input tensors, ``name`` a readable prefix for the
tensors it creates, and ``builder`` (``onnx_export.GraphBuilder``) adds nodes
(``builder.node``) and weights (``builder.weight``), and tells the feature
shape of a tensor (``builder.feature_shape``: only the batch axis is
dynamic). Adding a layer to the exporter is one decorated function::

    @register_converter(MyLayer)
    def _my_layer(module, builder, inputs, name):
        return [builder.node("Relu", inputs, name)]

The convolutional layers' converters are in ``onnx_converters_conv``, the sequence layers' in
``onnx_converters_seq`` and ``onnx_converters_attention``.
This module imports no onnx: converters only call the builder. A subclass
uses its base class's converter unless it defines its own ``forward``; a
module with no converter is an error that names it (``converter_for``).
"""

import math

import numpy as np

from ..containers import Graph, Sequential
from .. import layers

CONVERTERS = {}


def register_converter(cls):
    """Decorator: ``fn`` converts modules of class ``cls`` (and of subclasses that keep its forward)."""
    def decorate(fn):
        CONVERTERS[cls] = fn
        return fn
    return decorate


def converter_for(module):
    """The converter of ``module``'s class, or a ``NotImplementedError`` naming the module.

    A subclass inherits its base's converter only if no class in between
    defines ``forward``: a layer that computes something else must not be
    exported as its base.
    """
    for cls in type(module).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
        if "forward" in vars(cls) or "_forward_into" in vars(cls):
            break
    known = ", ".join(sorted(c.__name__ for c in CONVERTERS))
    raise NotImplementedError(
        f"export_onnx: {module.short_repr()} ({type(module).__module__}.{type(module).__qualname__}) has no ONNX "
        f"converter. Exportable: {known}. Add one with "
        f"@nanonet.interop.onnx_converters.register_converter({type(module).__name__})")


def convert(module, builder, inputs, name):
    """Run ``module``'s converter; returns the list of its output tensor names."""
    outputs = converter_for(module)(module, builder, list(inputs), name)
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    builder.made(module, inputs, outputs)
    return outputs


# -- containers -----------------------------------------------------------------------------
@register_converter(Sequential)
def _sequential(module, builder, inputs, name):
    for child_name, child in module.named_children():
        inputs = convert(child, builder, inputs, f"{name}{child_name}.")
    return inputs


@register_converter(Graph)
def _graph(module, builder, inputs, name):
    values = dict(zip(module.input_names, inputs))
    for node, child, shapes, sources in module.records():
        if child is None:
            continue
        outs = convert(child, builder, [_lookup(values, s, module) for s in sources], f"{name}{node}.")
        if len(shapes) != len(outs):
            raise RuntimeError(f"export_onnx: the converter of {child.short_repr()} made {len(outs)} outputs, "
                               f"the graph expects {len(shapes)}")
        if len(outs) == 1:
            values[node] = outs[0]
        values.update({f"{node}:{i}": out for i, out in enumerate(outs)})
    return [_lookup(values, out, module) for out in module.output_names]


def _lookup(values, node, graph):
    if node not in values:
        raise RuntimeError(f"export_onnx: {graph.short_repr()} refers to node {node!r} before it is computed")
    return values[node]


# -- affine and normalization -----------------------------------------------------------------
@register_converter(layers.Linear)
def _linear(module, builder, inputs, name):
    # nanonet's weight is (in, out): x @ W is a plain MatMul, for 2-D and N-D inputs alike
    out = builder.node("MatMul", [inputs[0], builder.weight(name + "weight", module.weight.value)], name + "matmul")
    if module.bias is None:
        return [out]
    return [builder.node("Add", [out, builder.weight(name + "bias", module.bias.value)], name + "out")]


@register_converter(layers.LayerNorm)
def _layer_norm(module, builder, inputs, name):
    builder.require_opset(17, module)
    scale = builder.weight(name + "weight", module.weight.value)
    bias = builder.weight(name + "bias", module.bias.value)
    return [builder.node("LayerNormalization", [inputs[0], scale, bias], name + "out", axis=-1, epsilon=module.eps)]


@register_converter(layers.BatchNorm1d)
@register_converter(layers.BatchNorm2d)
def _batch_norm(module, builder, inputs, name):
    # exported in eval mode: the running statistics. ONNX's epsilon is a float32 attribute: the variance
    # carries the difference, so that a float64 graph divides by sqrt(var + eps) with nanonet's eps
    eps32 = float(np.float32(module.eps))
    args = [builder.weight(name + key, getattr(module, key).value) for key in ("weight", "bias", "running_mean")]
    args.append(builder.weight(name + "running_var", module.running_var.value + (module.eps - eps32)))
    return [builder.node("BatchNormalization", [inputs[0], *args], name + "out", epsilon=eps32)]


# -- activations ------------------------------------------------------------------------------
def _simple(op, **attributes):
    def convert_simple(module, builder, inputs, name):
        attrs = {key: get(module) for key, get in attributes.items()}
        return [builder.node(op, inputs[:1], name + "out", **attrs)]
    return convert_simple


register_converter(layers.ReLU)(_simple("Relu"))
register_converter(layers.Tanh)(_simple("Tanh"))
register_converter(layers.Sigmoid)(_simple("Sigmoid"))
register_converter(layers.Identity)(_simple("Identity"))
register_converter(layers.Dropout)(_simple("Identity"))        # eval mode: Dropout passes its input through
register_converter(layers.Dropout2d)(_simple("Identity"))
register_converter(layers.LeakyReLU)(_simple("LeakyRelu", alpha=lambda m: m.negative_slope))
register_converter(layers.ELU)(_simple("Elu", alpha=lambda m: m.alpha))
register_converter(layers.Flatten)(_simple("Flatten", axis=lambda m: 1))


@register_converter(layers.GELU)
def _gelu(module, builder, inputs, name):
    """Exact GELU, ``0.5 * x * (1 + erf(x / sqrt(2)))``, from Erf (every opset; ONNX's Gelu op needs 20)."""
    x = inputs[0]
    scaled = builder.node("Mul", [x, builder.scalar(name + "rsqrt2", 1 / math.sqrt(2))], name + "scaled")
    erf = builder.node("Erf", [scaled], name + "erf")
    one_plus = builder.node("Add", [erf, builder.scalar(name + "one", 1.0)], name + "one_plus")
    half_x = builder.node("Mul", [x, builder.scalar(name + "half", 0.5)], name + "half_x")
    return [builder.node("Mul", [half_x, one_plus], name + "out")]


@register_converter(layers.Softplus)
def _softplus(module, builder, inputs, name):
    """``where(beta * x > threshold, x, softplus(beta * x) / beta)``, PyTorch's definition."""
    x = inputs[0]
    bx = builder.node("Mul", [x, builder.scalar(name + "beta", module.beta)], name + "bx")
    soft = builder.node("Softplus", [bx], name + "softplus")
    scaled = builder.node("Div", [soft, builder.scalar(name + "beta_div", module.beta)], name + "soft")
    above = builder.node("Greater", [bx, builder.scalar(name + "threshold", module.threshold)], name + "above")
    return [builder.node("Where", [above, x, scaled], name + "out")]


# -- merges -----------------------------------------------------------------------------------
@register_converter(layers.Add)
def _add(module, builder, inputs, name):
    return [builder.node("Sum", inputs, name + "out")]


@register_converter(layers.Multiply)
def _multiply(module, builder, inputs, name):
    out = inputs[0]
    for i, other in enumerate(inputs[1:]):
        out = builder.node("Mul", [out, other], f"{name}mul{i}")
    return [out]


@register_converter(layers.Concat)
def _concat(module, builder, inputs, name):
    return [builder.node("Concat", inputs, name + "out", axis=module.axis)]


@register_converter(layers.Split)
def _split(module, builder, inputs, name):
    sizes = builder.constant(name + "sizes", np.array(module.sizes, dtype=np.int64))
    outs = [f"{name}out{i}" for i in range(len(module.sizes))]
    return builder.node("Split", [inputs[0], sizes], outs, axis=module.axis)
