"""pytest, for the whole checkout: the doctests of an optional module run only where its extra is installed.

``--doctest-modules`` imports every module under ``nanonet/``; a module that
needs an optional package (scikit-learn, onnx) cannot be imported without it,
so it is left out of the collection there. Its tests in ``tests/`` skip with
the reason instead.
"""

import importlib.util

OPTIONAL = {"nanonet/sklearn.py": "sklearn", "nanonet/interop/onnx_export.py": "onnx"}

collect_ignore = [path for path, package in OPTIONAL.items() if importlib.util.find_spec(package) is None]
