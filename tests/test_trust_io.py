"""Saving and loading: clear errors, and loads that are all or nothing."""

import numpy as np
import pytest

import nanonet as nn
from nanonet.serialization import CheckpointError


def _model(seed=0):
    return nn.Sequential(nn.Linear(3, 4, rng=seed), nn.Tanh(), nn.Linear(4, 1, rng=seed + 1))


def _stepped_adam(model):
    opt = nn.optim.Adam(model.parameters(), lr=0.1)
    model(np.ones((2, 3)))
    model.backward(np.ones((2, 1)))
    opt.step()
    return opt


def _state(model, opt):
    return {**{f"m/{k}": v for k, v in model.state_dict().items()},
            **{f"o/{k}": np.asarray(v) for k, v in opt.state_dict().items()}}


def _assert_unchanged(before, model, opt):
    after = _state(model, opt)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


@pytest.mark.parametrize("meta", [b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_corrupt_metadata_is_refused_before_the_model_changes(tmp_path, meta):
    source = _model(0)
    source_opt = _stepped_adam(source)
    path = tmp_path / "ckpt.npz"
    nn.save(path, source, source_opt, epoch=3)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    target = _model(7)
    target_opt = _stepped_adam(target)
    before = _state(target, target_opt)
    with pytest.raises(CheckpointError, match="corrupt metadata.*nothing was loaded"):
        nn.load(path, target, target_opt)
    _assert_unchanged(before, target, target_opt)


def test_a_failure_while_applying_restores_model_and_optimizer(tmp_path, monkeypatch):
    source = _model(0)
    source_opt = _stepped_adam(source)
    path = tmp_path / "ckpt.npz"
    nn.save(path, source, source_opt)
    target = _model(7)
    target_opt = _stepped_adam(target)
    before = _state(target, target_opt)

    real = nn.optim.Adam.load_state_dict
    calls = []

    def broken_once(self, state):
        calls.append(1)
        if len(calls) > 1:  # the restore
            return real(self, state)
        self.param_groups[0]["lr"] = 123.0  # changes something, then fails
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(nn.optim.Adam, "load_state_dict", broken_once, raising=True)
    with pytest.raises(RuntimeError, match="disk on fire"):
        nn.load(path, target, target_opt)
    monkeypatch.undo()
    _assert_unchanged(before, target, target_opt)


@pytest.mark.parametrize("call, error, match", [
    (lambda p: nn.save("", _model()), ValueError, r"nn.save got an empty path"),
    (lambda p: nn.save(None, _model()), TypeError, r"nn.save expected path to be a file name"),
    (lambda p: nn.save(p / "m.npz", "model"), TypeError, r"nn.save expected model to be a nanonet Module .*got str"),
    (lambda p: nn.save(p / "m.npz", nn.Linear), TypeError, r"got the class Linear"),
    (lambda p: nn.save(p / "m.npz", _model(), optimizer=3), TypeError, r"expected optimizer to be a nanonet optim"),
    (lambda p: nn.save(p / "m.npz", _model(), note=object()), TypeError, r"meta must be JSON-serializable"),
    (lambda p: nn.save(p, _model()), IsADirectoryError, r"is a folder"),
    (lambda p: nn.save(p / "no" / "m.npz", _model()), FileNotFoundError, r"the folder .* does not exist"),
    (lambda p: nn.load("", _model()), ValueError, r"nn.load got an empty path"),
    (lambda p: nn.load(p / "missing.npz", _model()), FileNotFoundError, r"nn.load: there is no file"),
    (lambda p: nn.load(p, _model()), IsADirectoryError, r"is a folder, not a checkpoint"),
    (lambda p: nn.load(p / "m.npz", {"0.weight": 1}), TypeError, r"nn.load expected model to be a nanonet Module"),
])
def test_save_and_load_bad_arguments(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)
    assert [f.name for f in tmp_path.iterdir()] == []  # nothing written, no temporary file left
