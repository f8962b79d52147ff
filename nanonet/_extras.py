"""Optional extras: the one place that says how to install each.

nanonet installs from its checkout (``pip install .``, as the README says),
so every hint it prints has the README's form, ``pip install ".[plot]"``,
run in the nanonet checkout. ``install_hint`` writes it and ``missing``
builds the ``ImportError`` a feature raises when its extra is absent.

>>> install_hint("plot")
'pip install ".[plot]" (in the nanonet checkout)'
"""

EXTRAS = {
    "plot": "matplotlib",
    "progress": "tqdm",
    "sklearn": "scikit-learn",
    "onnx": "onnx and onnxruntime",
    "docs": "mkdocs-material and mkdocstrings",
    "mpi": "mpi4py and the mpich wheel (which ships mpiexec)",
    "bench": "the benchmark peers",
    "test": "pytest, hypothesis and the optional extras",
}


def install_hint(extra):
    """The command that installs nanonet's optional ``extra``, as the README writes it."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; nanonet's extras are {sorted(EXTRAS)}")
    return f'pip install ".[{extra}]" (in the nanonet checkout)'


def missing(feature, package, extra, *, alternative=None):
    """An ``ImportError`` saying that ``feature`` needs ``package`` and how to install it.

    ``extra=None`` for a package that no extra installs (torch: its wheels
    are large and platform-specific).

    >>> str(missing("History.plot", "matplotlib", "plot"))
    'History.plot needs matplotlib, nanonet\\'s optional `plot` extra: pip install ".[plot]" (in the nanonet checkout)'
    """
    if extra is None:
        text = f"{feature} needs {package}, which no nanonet extra installs: pip install {package}"
    else:
        text = f"{feature} needs {package}, nanonet's optional `{extra}` extra: {install_hint(extra)}"
    if alternative:
        text += f"; {alternative}"
    return ImportError(text)
