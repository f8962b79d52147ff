"""Every ```python block in README.md and docs/*.md runs (in order, per file)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NEEDS = re.compile(r"<!-- test_docs needs: ([\w ]+) -->")  # a page whose examples need optional extras


@pytest.mark.parametrize("path", [p for p in FILES if p.exists()], ids=lambda p: p.name)
def test_markdown_python_blocks_run(path, tmp_path, monkeypatch):
    text = path.read_text()
    for needs in NEEDS.findall(text):
        for package in needs.split():
            pytest.importorskip(package, reason=f"{path.name}'s examples need {package} (an optional extra)")
    blocks = BLOCK.findall(text)
    if path.name == "README.md" or path.parent.name == "docs" and path.name in ("index.md",):
        assert blocks, f"{path.name} should show runnable code"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"doc_{path.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{path.name} block {i} failed: {exc!r}\n{code}") from exc


def test_ci_runs_exactly_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(.*?)\n```", readme, re.S | re.M)
    test_commands = [c for c in commands if "pytest" in c]
    assert len(test_commands) == 1
    assert test_commands[0] in (ROOT / ".ci" / "run").read_text().splitlines()
