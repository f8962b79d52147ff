"""summary() tables for Sequential and Graph, and Graph.to_dot()."""

import html
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

import nanonet as nn
from nanonet.summary import summary_text


def rows_of(text):
    """The table rows between the two '=' rules, split on runs of 2+ spaces."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    return [re.split(r"\s{2,}", line) for line in lines[rules[0] + 1: rules[1]]]


def residual():
    x = nn.Input(10, name="x")
    h = nn.ReLU()(nn.Linear(10, 64, rng=0)(x))
    r = nn.Add()(nn.Linear(64, 64, rng=1)(h), h)
    return nn.Graph(x, nn.Linear(128, 1, rng=2)(nn.Concat()(r, h)))


def test_sequential_summary(capsys):
    model = nn.Sequential(nn.Linear(10, 64, rng=0), nn.ReLU(), nn.Linear(64, 1, rng=1))
    model.summary()
    text = capsys.readouterr().out
    rows = rows_of(text)
    assert [r[0] for r in rows] == ["0 (Linear)", "1 (ReLU)", "2 (Linear)"]
    assert [r[1] for r in rows] == ["(None, 64)", "(None, 64)", "(None, 1)"]
    assert [int(r[2].replace(",", "")) for r in rows] == [sum(p.size for p in m.parameters()) for m in model]
    total = sum(p.size for p in model.parameters())
    nbytes = sum(p.value.nbytes for p in model.parameters())
    assert f"Total params: {total:,} ({nbytes:,} bytes" in text
    assert "Connected to" not in text


def test_sequential_summary_input_shape_and_unknown_shapes():
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, rng=0))
    assert [r[1] for r in rows_of(summary_text(model))] == ["?", "?"]
    assert [r[1] for r in rows_of(summary_text(model, input_shape=(3,)))] == ["(None, 3)", "(None, 2)"]
    with pytest.raises(ValueError, match=r"Linear\(3 -> 2\) cannot take"):
        summary_text(model, input_shape=(4,))


def test_graph_summary_has_connections(capsys):
    net = residual()
    net.summary()
    text = capsys.readouterr().out
    rows = rows_of(text)
    names = [r[0] for r in rows]
    assert names == ["x (Input)", "linear_0 (Linear)", "relu_0 (ReLU)", "linear_1 (Linear)", "add_0 (Add)",
                     "concat_0 (Concat)", "linear_2 (Linear)"]
    connected = {r[0].split()[0]: (r[3] if len(r) > 3 else "") for r in rows}
    assert connected["add_0"] == "linear_1, relu_0"
    assert connected["concat_0"] == "add_0, relu_0"
    assert connected["x"] == ""
    assert dict((r[0].split()[0], r[1]) for r in rows)["concat_0"] == "(None, 128)"
    assert f"Total params: {sum(p.size for p in net.parameters()):,}" in text


def test_shared_parameters_count_once_in_the_total():
    a = nn.Linear(3, 3, rng=0)
    x = nn.Input(3)
    net = nn.Graph(x, nn.shared_copy(a)(a(x)))
    text = summary_text(net)
    assert [int(r[2]) for r in rows_of(text)][1:] == [12, 12]
    assert "Total params: 12 (96 bytes)" in text
    assert "shared Parameter counts" in text


def test_bytes_follow_the_dtype_and_buffers_are_counted():
    class Running(nn.Module):
        def __init__(self):
            self.mean = nn.Buffer(np.zeros(4))

        def forward(self, x):
            return x

        def backward(self, grad_out):
            return grad_out

    model = nn.Sequential(nn.Linear(3, 4, rng=0), Running())
    text64 = summary_text(model)
    assert "Buffers: 4 values (32 bytes)" in text64
    assert "Total size: 160 bytes" in text64
    model.to(np.float32)
    assert "Total params: 16 (64 bytes)" in summary_text(model)


def test_multi_output_rows():
    x = nn.Input(5, name="x")
    a, b = nn.Split([2, 3])(x)
    net = nn.Graph(x, [nn.ReLU()(a), b])
    rows = rows_of(summary_text(net))
    assert rows[1][:2] == ["split_0 (Split)", "(None, 2), (None, 3)"]
    assert rows[2][3] == "split_0:0"


def test_to_dot_matches_the_graph():
    net = residual()
    dot = net.to_dot()
    assert dot.startswith("digraph G {") and dot.endswith("}")
    nodes = re.findall(r'^  "([^"]+)" \[', dot, re.M)
    assert nodes == [name for name, *_ in net.records()]
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)"', dot, re.M)
    expected = [(src, name) for name, _, _, connected in net.records() for src in connected]
    assert edges == expected
    assert re.search(r'"linear_2" \[.*peripheries=2', dot)
    assert 'label="linear_1: Linear(64 -> 64)\\n(None, 64)"' in dot


def test_to_dot_labels_ports_of_multi_output_layers():
    x = nn.Input(5, name="x")
    a, b = nn.Split([2, 3])(x)
    dot = nn.Graph(x, nn.Concat()(b, a)).to_dot()
    assert '"split_0" -> "concat_0" [label="1"];' in dot
    assert '"split_0" -> "concat_0" [label="0"];' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graphviz_renders_the_dot_text(tmp_path):
    result = subprocess.run(["dot", "-Tsvg"], input=residual().to_dot(), capture_output=True, text=True, check=True)
    assert "<svg" in result.stdout and "concat_0" in result.stdout


def test_the_committed_diagram_shows_the_docs_network():
    root = pathlib.Path(__file__).resolve().parent.parent
    first_block = re.findall(r"^```python\n(.*?)^```", (root / "docs" / "graph.md").read_text(), re.S | re.M)[0]
    namespace = {}
    exec(first_block, namespace)
    residual = namespace["residual"]
    svg = (root / "docs" / "graph-residual.svg").read_text()
    titles = [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", svg)]
    nodes = [name for name, *_ in residual.records()]
    edges = [f"{src}->{name}" for name, _, _, connected in residual.records() for src in connected]
    assert sorted(t for t in titles if t != "G") == sorted(nodes + edges)
