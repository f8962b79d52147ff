"""save/load: round trip, strict checks, hostile files, atomic writes under kill -9, bit-identical resume."""

import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nanonet as nn
from nanonet.datasets import make_regression
from nanonet.serialization import CheckpointError, generator_from_state

ROOT = pathlib.Path(__file__).resolve().parent.parent


def small_model(seed=0, hidden=8):
    return nn.Sequential(nn.Linear(4, hidden, rng=seed), nn.ReLU(), nn.Linear(hidden, 1, rng=seed + 1))


def trained(seed=0):
    x, y, _, _ = make_regression(n_train=64, n_test=8, n_features=4, rng=0)
    model = small_model(seed)
    opt = nn.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    nn.fit(model, nn.MSELoss(), opt, x, y, epochs=2, batch_size=16, verbose=0, rng=0)
    return model, opt


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert np.array_equal(sa[key], sb[key]) and sa[key].dtype == sb[key].dtype, key


# -- round trip ---------------------------------------------------------------------
def test_round_trip_restores_model_optimizer_and_meta(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.npz"
    nn.save(path, model, opt, epoch=2, note="hello", scores=[1.5, float("nan")])
    fresh = small_model(seed=9)
    fresh_opt = nn.optim.Adam(fresh.parameters(), lr=0.5, amsgrad=True)
    meta = nn.load(path, fresh, fresh_opt)
    assert meta["epoch"] == 2 and meta["note"] == "hello" and meta["scores"][0] == 1.5
    assert_same_state(model, fresh)
    ours, theirs = opt.state_dict(), fresh_opt.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key
    with np.load(path, allow_pickle=False) as npz:  # a plain npz, readable without nanonet
        assert "model/0.weight" in npz.files and "optim/state.0.exp_avg" in npz.files


def test_float32_model_round_trips_and_weights_only_load(tmp_path):
    model, opt = trained()
    model.to(np.float32)
    nn.save(tmp_path / "m.npz", model, epoch=1)
    fresh = small_model(seed=3).to(np.float32)
    assert nn.load(tmp_path / "m.npz", fresh) == {"epoch": 1}
    assert_same_state(model, fresh)
    with pytest.raises(ValueError, match="the file holds no optimizer state"):
        nn.load(tmp_path / "m.npz", fresh, nn.optim.SGD(fresh.parameters(), lr=0.1))


# -- strict checks ------------------------------------------------------------------
def test_load_onto_a_different_architecture_lists_every_mismatch_and_changes_nothing(tmp_path):
    model, opt = trained()
    nn.save(tmp_path / "ckpt.npz", model, opt)
    other = nn.Sequential(nn.Linear(4, 16, rng=0), nn.ReLU(), nn.Linear(16, 1, rng=1), nn.ReLU(),
                          nn.Linear(1, 1, rng=2))
    before = other.state_dict()
    other_opt = nn.optim.Adam(other.parameters(), amsgrad=True)
    with pytest.raises(ValueError) as info:
        nn.load(tmp_path / "ckpt.npz", other, other_opt)
    text = str(info.value)
    assert "model: missing key '4.weight'" in text and "model: missing key '4.bias'" in text
    assert "model: '0.weight': expected shape (4, 16), got (4, 8)" in text
    assert "model: '2.weight': expected shape (16, 1), got (8, 1)" in text
    assert "optimizer: " in text
    for key, value in other.state_dict().items():
        assert np.array_equal(value, before[key])
    assert other_opt.state == {}


def test_dtype_mismatch_and_wrong_optimizer_type_are_listed(tmp_path):
    model, opt = trained()
    nn.save(tmp_path / "ckpt.npz", model, opt)
    fresh = small_model().to(np.float32)
    with pytest.raises(ValueError) as info:
        nn.load(tmp_path / "ckpt.npz", fresh, nn.optim.SGD(fresh.parameters(), lr=0.1))
    text = str(info.value)
    assert "5 mismatch(es)" in text
    assert "model: '0.weight': expected dtype float32, got float64" in text
    assert "optimizer: optimizer type: expected 'SGD', got 'Adam'" in text


def test_meta_must_be_json_and_nothing_is_written(tmp_path):
    with pytest.raises(TypeError, match="meta must be JSON-serializable"):
        nn.save(tmp_path / "x.npz", small_model(), when=object())
    assert list(tmp_path.iterdir()) == []


# -- hostile and broken files: clear errors, nothing executed --------------------------
class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_pickled_file_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"model": Evil(marker)}))
    with pytest.raises(CheckpointError, match="looks like a pickle file; nanonet never unpickles"):
        nn.load(path, small_model())
    assert not marker.exists()


def test_npz_with_a_pickled_object_array_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    arr = np.empty(1, dtype=object)
    arr[0] = Evil(marker)
    np.savez(path, nanonet_format=np.array("nanonet.checkpoint"), evil=arr)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="holds pickled \\(object\\) arrays; nanonet never unpickles"):
        nn.load(path, small_model())
    assert not marker.exists()


def test_foreign_files_get_a_clear_error(tmp_path):
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match=r"is an .npz file but not a nanonet checkpoint .* holds \['weights'\]"):
        nn.load(tmp_path / "foreign.npz", small_model())
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not a nanonet checkpoint \\(not an .npz archive"):
        nn.load(tmp_path / "text.npz", small_model())
    model = small_model()
    nn.save(tmp_path / "future.npz", model)
    with np.load(tmp_path / "future.npz") as npz:
        arrays = dict(npz)
    arrays["nanonet_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(CheckpointError, match="has checkpoint version .*99.*reads version 1"):
        nn.load(tmp_path / "future.npz", model)


def test_truncated_and_corrupted_files_get_a_clear_error(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.npz"
    nn.save(path, model, opt)
    data = path.read_bytes()
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 30):
        broken = tmp_path / f"cut{cut}.npz"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            nn.load(broken, small_model(), nn.optim.Adam(small_model().parameters(), amsgrad=True))
    flipped = bytearray(data)
    start = data.index(b"model/0.weight.npy") + 200   # inside that member's data
    flipped[start] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        nn.load(tmp_path / "flipped.npz", small_model())


# -- atomic writes --------------------------------------------------------------------
def test_a_failed_save_leaves_the_previous_file_and_no_temp_file(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "ckpt.npz"
    nn.save(path, model, version=1)
    good = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        nn.save(path, small_model(seed=4), version=2)
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    import nanonet as nn
    path, stall = sys.argv[1], sys.argv[2] == "stall"
    model = nn.Linear(500, 1000, rng=0)            # 4 MB of weights
    real_savez = np.savez

    class StallingFile:
        def __init__(self, f):
            self.f, self.written = f, 0
        def write(self, data):
            out = self.f.write(data)
            self.written += len(data)
            if self.written > 1_000_000:          # a quarter of the way through the weights
                print("midwrite", flush=True)
                time.sleep(60)
            return out
        def __getattr__(self, name):
            return getattr(self.f, name)

    k = 0
    while True:
        model.weight.value.fill(k)
        model.bias.value.fill(k)
        if k == 1 and stall:
            np.savez = lambda f, **arrays: real_savez(StallingFile(f), **arrays)
        nn.save(path, model, version=k)
        if k == 0:
            print("ready", flush=True)
        k += 1
""")


def _writer(tmp_path, mode):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "ckpt.npz"), mode],
                            stdout=subprocess.PIPE, text=True)


def _assert_intact(path, at_least=0):
    model = nn.Linear(500, 1000, rng=1)
    meta = nn.load(path, model)
    k = meta["version"]
    assert k >= at_least
    assert (model.weight.value == k).all() and (model.bias.value == k).all()
    return k


@pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX")
def test_kill_9_in_the_middle_of_a_write_keeps_the_previous_checkpoint(tmp_path):
    proc = _writer(tmp_path, "stall")
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip() == "midwrite"
        temps = [p for p in os.listdir(tmp_path) if p.startswith(".ckpt.npz.") and p.endswith(".tmp")]
        assert temps, "the writer should be part-way through its temporary file"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert _assert_intact(tmp_path / "ckpt.npz") == 0


@pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX")
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.29])
def test_kill_9_at_any_moment_leaves_a_complete_checkpoint(tmp_path, delay):
    import time

    proc = _writer(tmp_path, "free")
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    _assert_intact(tmp_path / "ckpt.npz")


# -- bit-identical resume ---------------------------------------------------------------
def run(tmp_path, epochs, initial_epoch=0, resume_from=None):
    x, y, _, _ = make_regression(n_train=80, n_test=8, n_features=4, rng=1)
    model = small_model(seed=0 if resume_from is None else 7)   # resuming overwrites every weight
    opt = nn.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
    sched = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    rng = np.random.default_rng(123)
    if resume_from is not None:
        meta = nn.load(resume_from, model, opt)
        assert meta["epoch"] == initial_epoch
        rng = generator_from_state(meta["rng_state"])
    ckpt = nn.ModelCheckpoint(str(tmp_path / "epoch-{epoch}.npz"))
    history = nn.fit(model, nn.MSELoss(), opt, x, y, epochs=epochs, batch_size=16, validation_split=0.2,
                     callbacks=[sched, ckpt], verbose=0, rng=rng, initial_epoch=initial_epoch)
    return model, opt, history


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full_model, full_opt, full = run(tmp_path / "a", epochs=6)
    part_model, _, part = run(tmp_path / "b", epochs=3)
    resumed_model, resumed_opt, resumed = run(tmp_path / "b", epochs=6, initial_epoch=3,
                                              resume_from=tmp_path / "b" / "epoch-3.npz")
    assert part.history["loss"] == full.history["loss"][:3]
    assert resumed.epoch == [4, 5, 6]
    assert resumed.history["loss"] == full.history["loss"][3:]
    assert resumed.history["val_loss"] == full.history["val_loss"][3:]
    assert_same_state(full_model, resumed_model)
    a, b = full_opt.state_dict(), resumed_opt.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_generator_from_state_rejects_unknown_generators():
    with pytest.raises(ValueError, match="bit generator state"):
        generator_from_state({"bit_generator": "os.system"})
    json.dumps(np.random.default_rng(0).bit_generator.state)  # the state is JSON-able meta
