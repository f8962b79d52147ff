"""Every install hint nanonet prints or documents is the README's command: ``pip install ".[extra]"``."""

import pathlib
import re
import sys
import tomllib

import pytest

from nanonet import _extras

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "nanonet").rglob("*.py")) + [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
EXTRA_HINT = re.compile(r'pip install "\.\[([a-z]+)\]"')


def test_the_extras_are_those_of_pyproject():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(_extras.EXTRAS) == set(extras)
    test_extra = " ".join(extras["test"])
    for extra in ("sklearn", "onnx", "docs", "mpi"):  # CI installs `test` only: it must bring these along
        for requirement in extras[extra]:
            assert requirement.split(">")[0] in test_extra, (extra, requirement)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hint_has_the_readme_form(path):
    text = path.read_text()
    assert "nanonet[" not in text, f"{path.name}: write pip install \".[extra]\" (from the checkout), as the README"
    for line in text.splitlines():
        for command in re.findall(r"pip install [^`)\n]*", line):
            if "[" in command and "{extra}" not in command:  # _extras.install_hint's template itself
                match = EXTRA_HINT.match(command)
                assert match and match.group(1) in _extras.EXTRAS, f"{path.name}: {command!r}"


def test_the_readme_lists_every_extra_with_the_printed_command():
    readme = (ROOT / "README.md").read_text()
    for extra in _extras.EXTRAS:
        command = _extras.install_hint(extra).split(" (")[0]
        assert f"| `{command}` |" in readme, command


def test_a_missing_extra_names_the_readme_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    import nanonet as nn

    with pytest.raises(ImportError) as info:
        nn.History().plot()
    assert str(info.value) == ("History.plot needs matplotlib, nanonet's optional `plot` extra: "
                               "pip install \".[plot]\" (in the nanonet checkout)")
    with pytest.raises(ValueError, match="unknown extra 'plots'"):
        _extras.install_hint("plots")
