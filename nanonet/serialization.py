"""Save and load a model (and optimizer) as one ``.npz`` file, without pickle.

The file is a plain numpy ``.npz`` archive holding only numeric and string
arrays:

- ``nanonet_format``: the marker ``"nanonet.checkpoint"``; ``nanonet_version``: ``1``;
- ``model/<dotted name>``: each entry of ``model.state_dict()``;
- ``optim/<key>``: each entry of ``optimizer.state_dict()`` (if saved);
- ``meta``: the ``**meta`` keywords as UTF-8 JSON text (a uint8 array).

Loading uses ``allow_pickle=False``: nothing in the file is ever executed.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "nanonet.checkpoint"
VERSION = 1
_PICKLE_MAGIC = (b"\x80", b"(", b"c", b"]", b"}")


class CheckpointError(ValueError):
    """The file is not a loadable nanonet checkpoint (foreign, pickled, truncated, corrupt)."""


def save(path, model, optimizer=None, **meta):
    """Write ``model`` (and ``optimizer``) state plus JSON ``meta`` to ``path``, atomically.

    The arrays are written to a temporary file in the same folder, flushed
    and fsynced, then moved over ``path`` with ``os.replace``: a reader (or a
    crash) sees either the old file or the new one, never a partial one.
    ``path`` is used exactly as given (no ``.npz`` is appended).

    Args:
        path: the file to write.
        model: a Module; its ``state_dict()`` is saved.
        optimizer: an optional optimizer; its ``state_dict()`` is saved.
        **meta: JSON-serializable values (e.g. ``epoch=3``), returned by ``load``.

    Example:
        >>> import os, tempfile
        >>> import nanonet as nn
        >>> model = nn.Linear(3, 2, rng=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> nn.save(path, model, epoch=4)
        >>> nn.load(path, nn.Linear(3, 2, rng=1))
        {'epoch': 4}
    """
    try:
        meta_text = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"nn.save: meta must be JSON-serializable: {exc}") from None
    arrays = {"nanonet_format": np.array(FORMAT), "nanonet_version": np.array(VERSION)}
    arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.frombuffer(meta_text.encode("utf-8"), dtype=np.uint8)
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"nn.save: {key!r} is an object array, which cannot be saved without pickle")
    _atomic_write(os.fspath(path), arrays)


def _atomic_write(path, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path, model, optimizer=None):
    """Restore ``model`` (and ``optimizer``) from ``path`` in place; return the meta dict.

    Names, shapes and dtypes must match exactly: every mismatch (model and
    optimizer) is listed in one ``ValueError``, raised before anything is
    changed. A pickled, foreign, truncated or corrupt file raises
    :class:`CheckpointError` (a ``ValueError``) and nothing in it is executed.
    If the file holds optimizer state and ``optimizer`` is None, only the
    model is restored.
    """
    path = os.fspath(path)
    arrays = read_checkpoint(path)
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    problems = [f"model: {p}" for p in model.state_dict_problems(model_state)]
    if optimizer is not None:
        if not optim_state:
            problems.append("optimizer: the file holds no optimizer state (saved without optimizer=)")
        else:
            problems += [f"optimizer: {p}" for p in optimizer.state_dict_problems(optim_state)]
    if problems:
        raise ValueError(f"nn.load({path!r}) into {model.short_repr()}: {len(problems)} mismatch(es):\n  - "
                         + "\n  - ".join(problems))
    model.load_state_dict(model_state)
    if optimizer is not None:
        optimizer.load_state_dict(optim_state)
    return json.loads(arrays["meta"].tobytes().decode("utf-8"))


def read_checkpoint(path):
    """Every array of a nanonet checkpoint, as a dict; ``CheckpointError`` if it is not one."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] in _PICKLE_MAGIC:
        raise CheckpointError(f"nn.load: {path!r} looks like a pickle file; nanonet never unpickles "
                              f"(it could run arbitrary code). Save with nn.save instead")
    if head != b"PK\x03\x04":
        raise CheckpointError(f"nn.load: {path!r} is not a nanonet checkpoint (not an .npz archive: starts "
                              f"with {head!r})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(f"nn.load: {path!r} holds pickled (object) arrays; nanonet never unpickles "
                                  f"(it could run arbitrary code)") from None
        raise CheckpointError(f"nn.load: {path!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from None
    marker = arrays.get("nanonet_format")
    if marker is None or marker.dtype.kind != "U" or str(marker) != FORMAT:
        raise CheckpointError(f"nn.load: {path!r} is an .npz file but not a nanonet checkpoint (no "
                              f"'nanonet_format' marker); it holds {sorted(arrays)[:10]}")
    version = arrays.get("nanonet_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu" or int(version) > VERSION:
        raise CheckpointError(f"nn.load: {path!r} has checkpoint version {version!r}; this nanonet reads "
                              f"version {VERSION} and older")
    if "meta" not in arrays or arrays["meta"].dtype != np.uint8:
        raise CheckpointError(f"nn.load: {path!r} has no readable 'meta' entry")
    return arrays


def generator_from_state(state):
    """A ``numpy.random.Generator`` in the state ``gen.bit_generator.state`` had.

    Used to resume a run bit-identically from ``meta["rng_state"]`` (saved by
    ``ModelCheckpoint``).

    Example:
        >>> import numpy as np
        >>> gen = np.random.default_rng(5)
        >>> copy = generator_from_state(gen.bit_generator.state)
        >>> bool(copy.random() == gen.random())
        True
    """
    known = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "MT19937": np.random.MT19937,
             "Philox": np.random.Philox, "SFC64": np.random.SFC64}
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in known:
        raise ValueError(f"generator_from_state expected a bit generator state of one of {sorted(known)}, "
                         f"got {name!r}")
    bit_generator = known[name]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
