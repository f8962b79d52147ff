"""Before/after in one run: a peer built from nanonet as it was at a git revision.

``nanonet bench --baseline REV`` extracts the ``nanonet/`` folder of ``REV``
(``git archive``) into a temporary directory, imports it under another
name, and times its training step next to today's, interleaved, in the same
process. Needs git and a checkout; the package itself needs neither.
"""

import functools
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile

from . import peers


def load_revision(rev, repo="."):
    """Import ``nanonet`` as of git revision ``rev`` under a private name; return the module."""
    try:
        data = subprocess.run(["git", "-C", repo, "archive", "--format=tar", rev, "nanonet"],
                              check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise SystemExit(f"nanonet bench: cannot read nanonet at {rev!r} with git: {detail.decode().strip() or exc}")
    name = "nanonet_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    root = tempfile.mkdtemp(prefix="nanonet-baseline-")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            member.name = name + member.name[len("nanonet"):]
            tar.extract(member, root, filter="data")
    sys.path.insert(0, root)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(root)


def register(rev, repo="."):
    """Add peer ``nanonet@REV`` (shown right after ``nanonet``); returns its name."""
    module = load_revision(rev, repo)
    label = f"nanonet@{rev}"
    items = list(peers.PEERS.items())
    items.insert(1, (label, functools.partial(peers.make_nanonet, nn=module)))
    peers.PEERS.clear()
    peers.PEERS.update(items)
    from . import conv, minibatch

    minibatch.register_baseline(label, module)
    conv.register_baseline(label, module)
    return label
