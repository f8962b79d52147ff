"""The documentation site: every page in the nav, every public name in the API reference, a strict build."""

import pathlib
import re
import subprocess
import sys

import pytest

import nanonet

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Public modules below nanonet that have their own entry (besides the names of nanonet.__all__).
PUBLIC_MODULES = ["nanonet.metrics", "nanonet.optim", "nanonet.testing", "nanonet.sklearn",
                  "nanonet.interop.onnx_converters", "nanonet.interop.onnx_converters_attention"]


def nav_pages():
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", nav, re.M)


def api_entries():
    return {m.group(1) for page in sorted((DOCS / "api").glob("*.md"))
            for m in re.finditer(r"^::: (\S+)", page.read_text(), re.M)}


def test_every_page_is_in_the_nav_once():
    pages = nav_pages()
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_ext" not in p.parts)
    assert sorted(pages) == on_disk, "add the page to mkdocs.yml's nav (one line), or remove the stray entry"
    assert len(set(pages)) == len(pages)


def test_every_public_name_has_an_api_reference_entry():
    entries = api_entries()
    missing = [name for name in nanonet.__all__ if f"nanonet.{name}" not in entries]
    missing += [module for module in PUBLIC_MODULES if module not in entries]
    assert not missing, f"add `::: nanonet.<name>` for {missing} to a page of docs/api/"
    unknown = [e for e in entries if e.startswith("nanonet.") and e.count(".") == 1
               and e.split(".")[1] not in nanonet.__all__ and e not in PUBLIC_MODULES]
    assert not unknown, f"docs/api/ documents names nanonet does not export: {unknown}"


def test_mkdocs_build_strict(tmp_path):
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(package, reason=f"{package} is not installed (nanonet's `docs` extra)")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-5000:]
    html = "\n".join(p.read_text() for p in (site / "api").rglob("*.html"))
    anchors = set(re.findall(r'id="(nanonet\.[\w.]+)"', html))
    rendered = [name for name in nanonet.__all__ if f"nanonet.{name}" not in anchors]
    assert not rendered, f"no rendered API entry for {rendered}"
    for page in nav_pages():
        assert (site / page.replace(".md", "/index.html").replace("index/index.html", "index.html")).exists(), page
