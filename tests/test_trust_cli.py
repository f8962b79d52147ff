"""The command line never prints a traceback: one line on stderr and exit status 2 for what the user got wrong."""

import os
import subprocess
import sys
import textwrap

import pytest

from nanonet.cli import main as cli_main

LAYERS = """
import numpy as np
import nanonet as nn

instance = nn.Tanh()
number = 42

def make_layer():
    return nn.Tanh()

def needs_args(width, depth=2):
    return nn.Linear(width, width)

def raises():
    raise RuntimeError("factory exploded")

def returns_int():
    return 7
"""


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "good_layers.py").write_text(textwrap.dedent(LAYERS))
    (tmp_path / "bad_at_import.py").write_text("raise RuntimeError('import exploded')\n")
    (tmp_path / "bad_syntax.py").write_text("def f(:\n")
    (tmp_path / "imports_missing.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("good_layers", "bad_at_import", "bad_syntax", "imports_missing"):
        sys.modules.pop(name, None)
    return tmp_path


@pytest.mark.parametrize("target, fragment", [
    ("no_such_module_xyz:make", "there is no module 'no_such_module_xyz'"),
    ("bad_at_import:make", "importing 'bad_at_import' raised RuntimeError: import exploded"),
    ("bad_syntax:make", "importing 'bad_syntax' raised SyntaxError"),
    ("imports_missing:make", "importing 'imports_missing' failed: ModuleNotFoundError"),
    ("good_layers:missing", "'good_layers' has no attribute 'missing'"),
    ("good_layers:number", "'good_layers:number' is of type int, not a layer, a loss or a factory"),
    ("good_layers:needs_args", "'good_layers:needs_args' needs argument(s) width"),
    ("good_layers:raises", "cannot use 'good_layers:raises': RuntimeError: factory exploded"),
    ("good_layers:returns_int", "returned int, not a layer or a loss"),
    ("good_layers", "expected MODULE:NAME"),
    (":make_layer", "expected MODULE:NAME"),
])
def test_gradcheck_cannot_load_is_one_line_and_exit_2(project, capsys, target, fragment):
    assert cli_main(["gradcheck", target, "--input-shape", "4,3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nanonet gradcheck: "), captured.err
    assert fragment in lines[0]


@pytest.mark.parametrize("argv, fragment", [
    (["--input-shape", "4,0"], "--input-shape expected positive integers"),
    (["--input-shape", "4,3", "--seed", "-1"], "--seed expected an int >= 0, got -1"),
])
def test_gradcheck_bad_options(project, capsys, argv, fragment):
    assert cli_main(["gradcheck", "good_layers:make_layer", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and fragment in err


def test_gradcheck_accepts_an_instance_and_a_factory(project, capsys):
    assert cli_main(["gradcheck", "good_layers:instance", "--input-shape", "4,3"]) == 0
    assert cli_main(["gradcheck", "good_layers:make_layer", "--input-shape", "4,3"]) == 0
    assert "all checks passed" in capsys.readouterr().out


def test_an_unhandled_error_is_one_line_not_a_traceback(capsys, monkeypatch):
    import nanonet.demo

    def boom(**kwargs):
        raise RuntimeError("no such thing\nsecond line")

    monkeypatch.setattr(nanonet.demo, "run", boom)
    assert cli_main(["demo", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["nanonet demo: error: RuntimeError: no such thing; second line"]


def test_no_traceback_through_the_real_entry_point(project):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), *sys.path])}
    for argv in (["gradcheck", "bad_at_import:make", "--input-shape", "4,3"], ["demo", "--lr", "nan"],
                 ["bench", "--repeats", "0"]):
        done = subprocess.run([sys.executable, "-m", "nanonet", *argv], capture_output=True, text=True, env=env,
                              cwd=project, timeout=120)
        assert done.returncode in (1, 2), (argv, done.returncode)
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
