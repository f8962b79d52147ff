"""``nanonet bench --only seq``: the sequence workloads run, and every peer takes the same step.

Nothing here asserts a speed.
"""

import json

import numpy as np
import pytest

from nanonet import cli
from nanonet.bench import sequence


def test_seq_part_runs_and_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sequence, "QUICK_SIZE", (2, 3, 8))
    path = tmp_path / "seq.json"
    assert cli.main(["bench", "--quick", "--only", "seq", "--peers", "nanonet", "--dtypes", "float64",
                     "--repeats", "1", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["seq"]
    assert [(r["workload"], r["size"], r["dtype"]) for r in rows] == [("lstm", "2x3x8", "float64"),
                                                                     ("transformer", "2x3x8", "float64")]
    assert all(r["peers"]["nanonet"]["median"] > 0 for r in rows)
    assert "Sequence-model training steps" in capsys.readouterr().out


@pytest.mark.parametrize("workload", sequence.WORKLOADS)
@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_peers_take_the_same_step_as_nanonet(workload, peer, monkeypatch):
    pytest.importorskip(peer)
    monkeypatch.setattr(sequence, "LR", 0.5)  # a step large enough to show any difference
    steps = {name: sequence.make_step(name, workload, "float64", (2, 5, 8)) for name in ("nanonet", peer)}
    before = steps["nanonet"].params()
    before = {k: v.copy() for k, v in before.items()}
    for step in steps.values():
        step()
        step()
    ours, theirs = steps["nanonet"].params(), steps[peer].params()
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert any(not np.allclose(ours[k], before[k]) for k in ours)
