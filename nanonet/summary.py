"""Model summaries (a Keras-like table) and Graphviz diagrams.

``summary_text(model, input_shape=None)`` returns the table that
``Sequential.summary()`` and ``Graph.summary()`` print: one row per layer
with its name and type, its output shape (``None`` is the batch), its
parameter count and, for a Graph, the nodes it is connected to; then the
totals: distinct parameters (a shared Parameter counts once), buffers, and
their bytes.

``graph_to_dot(graph)`` (also ``graph.to_dot()``) returns Graphviz text:
inputs as ellipses, layers as boxes, outputs with a double border, and an
edge label ``k`` on edges that leave output ``k`` of a multi-output layer.
"""

from .containers.graph_build import infer_output_shapes, shape_text
from .module import Module

# The containers call this module (``model.summary()``), so it knows them by what they have, not by
# importing them: a Graph has ``records()`` and ``input_shapes``; a Sequential is a Module that
# iterates over its children.


def _is_graph(model):
    return isinstance(model, Module) and callable(getattr(model, "records", None))


def _is_chain(model):
    return isinstance(model, Module) and not _is_graph(model) and callable(getattr(type(model), "__iter__", None))


def _count(module):
    return sum(p.size for p in module.parameters())


def _bytes_text(n):
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "B" else f"{n:,} bytes, {size:.1f} {unit}"
        size /= 1024
    return f"{n:,} bytes"  # pragma: no cover


def _shapes_text(shapes):
    if shapes is None:
        return "?"
    return ", ".join(shape_text(s) for s in shapes)


def _guess_input_shape(model):
    first = model
    while _is_chain(first) and len(first):
        first = first[0]
    if _is_graph(first) and len(first.input_shapes) == 1:
        return first.input_shapes[0]
    features = getattr(first, "in_features", None)
    return (int(features),) if isinstance(features, int) else None


def _sequential_rows(model, input_shape):
    shape = tuple(input_shape) if input_shape is not None else _guess_input_shape(model)
    rows = []
    for i, layer in enumerate(model):
        shapes = None
        if shape is not None:
            shapes, multi = infer_output_shapes(layer, [shape])
            shape = None if multi else shapes[0]
        rows.append((f"{i} ({type(layer).__name__})", _shapes_text(shapes), _count(layer), None))
    return rows


def _graph_rows(graph):
    rows = []
    for name, module, shapes, connected in graph.records():
        kind = "Input" if module is None else type(module).__name__
        params = 0 if module is None else _count(module)
        rows.append((f"{name} ({kind})", _shapes_text(shapes), params, ", ".join(connected)))
    return rows


def _table(rows, with_connections):
    header = ("Layer (type)", "Output shape", "Param #") + (("Connected to",) if with_connections else ())
    body = [(a, b, f"{c:,}") + ((d,) if with_connections else ()) for a, b, c, d in rows]
    widths = [max(len(r[k]) for r in [header] + body) for k in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    rule = sum(widths) + 2 * (len(widths) - 1)
    return [line(header), "=" * rule] + [line(r) for r in body] + ["=" * rule]


def summary_text(model, input_shape=None):
    """The summary table of a ``Sequential`` or ``Graph``, as a string.

    Example:
        >>> import nanonet as nn
        >>> print(summary_text(nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU())))
        Sequential
        Layer (type)  Output shape  Param #
        ===================================
        0 (Linear)    (None, 4)     16
        1 (ReLU)      (None, 4)     0
        ===================================
        Total params: 16 (128 bytes)
        Buffers: 0 values (0 bytes)
        Total size: 128 bytes
    """
    if _is_graph(model):
        if input_shape is not None:
            raise ValueError("summary_text: a Graph knows its input shapes; do not pass input_shape")
        rows, title = _graph_rows(model), f"Graph: inputs {model.input_names}, outputs {model.output_names}"
    elif _is_chain(model):
        rows, title = _sequential_rows(model, input_shape), "Sequential"
    else:
        raise TypeError(f"summary_text expected a Sequential or a Graph, got {type(model).__name__}")
    params = model.parameters()
    buffers = [b for _, b in model.named_buffers()]
    n_params = sum(p.size for p in params)
    p_bytes = sum(p.value.nbytes for p in params)
    b_bytes = sum(b.value.nbytes for b in buffers)
    lines = [title] + _table(rows, _is_graph(model))
    lines.append(f"Total params: {n_params:,} ({_bytes_text(p_bytes)})")
    if sum(r[2] for r in rows) != n_params:
        lines.append("(a shared Parameter counts in every row that uses it and once in the total)")
    lines.append(f"Buffers: {sum(b.value.size for b in buffers):,} values ({_bytes_text(b_bytes)})")
    lines.append(f"Total size: {_bytes_text(p_bytes + b_bytes)}")
    return "\n".join(lines)


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_to_dot(graph):
    """Graphviz text for ``graph``; render it with ``dot -Tsvg graph.dot -o graph.svg``.

    Example:
        >>> import nanonet as nn
        >>> x = nn.Input(2, name="x")
        >>> print(nn.Graph(x, nn.ReLU()(x)).to_dot())
        digraph G {
          rankdir=TB;
          node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];
          "x" [shape=ellipse, label="x: Input\\n(None, 2)"];
          "relu_0" [label="relu_0: ReLU()\\n(None, 2)", peripheries=2];
          "x" -> "relu_0";
        }
    """
    records = graph.records()
    names = {name for name, *_ in records}
    outputs = {out if out in names else out.rpartition(":")[0] for out in graph.output_names}
    lines = ["digraph G {", "  rankdir=TB;",
             '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];']
    edges = []
    for name, module, shapes, connected in records:
        what = "Input" if module is None else module.short_repr()
        attrs = ["shape=ellipse"] if module is None else []
        attrs.append(f"label={_quote(f'{name}: {what}' + chr(10) + _shapes_text(shapes))}".replace(chr(10), "\\n"))
        if name in outputs:
            attrs.append("peripheries=2")
        lines.append(f"  {_quote(name)} [{', '.join(attrs)}];")
        for source in connected:
            if source in names:
                edges.append(f"  {_quote(source)} -> {_quote(name)};")
            else:
                producer, _, port = source.rpartition(":")
                edges.append(f"  {_quote(producer)} -> {_quote(name)} [label={_quote(port)}];")
    return "\n".join(lines + edges + ["}"])
