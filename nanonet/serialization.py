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
    path = _check_path("nn.save", path)
    _check_model("nn.save", model)
    _check_optimizer("nn.save", optimizer)
    try:
        meta_text = json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"nn.save: meta must be JSON-serializable (numbers, strings, lists, dicts): {exc}") from None
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"nn.save: {path!r} is a folder; give the name of a file to write")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"nn.save: the folder {folder!r} does not exist (create it first)")
    arrays = {"nanonet_format": np.array(FORMAT), "nanonet_version": np.array(VERSION)}
    arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.frombuffer(meta_text.encode("utf-8"), dtype=np.uint8)
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"nn.save: {key!r} is an object array, which cannot be saved without pickle")
    _atomic_write(path, arrays)


def _check_path(caller, path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{caller} expected path to be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"{caller} got an empty path; give the name of a checkpoint file, e.g. 'model.npz'")
    return path


def _check_model(caller, model):
    if isinstance(model, type) or not all(callable(getattr(model, m, None)) for m in
                                           ("state_dict", "load_state_dict", "state_dict_problems")):
        what = f"the class {model.__name__}" if isinstance(model, type) else type(model).__name__
        raise TypeError(f"{caller} expected model to be a nanonet Module instance, got {what}")


def _check_optimizer(caller, optimizer):
    if optimizer is None:
        return
    if isinstance(optimizer, type) or not all(callable(getattr(optimizer, m, None)) for m in
                                               ("state_dict", "load_state_dict", "state_dict_problems")):
        what = f"the class {optimizer.__name__}" if isinstance(optimizer, type) else type(optimizer).__name__
        raise TypeError(f"{caller} expected optimizer to be a nanonet optimizer instance (or None), got {what}")


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
    changed. A pickled, foreign, truncated or corrupt file (metadata
    included) raises :class:`CheckpointError` (a ``ValueError``) and nothing
    in it is executed. If the file holds optimizer state and ``optimizer`` is
    None, only the model is restored.

    **All or nothing.** Everything is parsed and checked first (the
    metadata, every model and optimizer entry); only then are the model and
    the optimizer changed, and should that still fail, both get their
    previous state back before the error propagates.
    """
    path = _check_path("nn.load", path)
    _check_model("nn.load", model)
    _check_optimizer("nn.load", optimizer)
    if not os.path.exists(path):
        raise FileNotFoundError(f"nn.load: there is no file {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"nn.load: {path!r} is a folder, not a checkpoint file")
    arrays = read_checkpoint(path)
    meta = _read_meta(path, arrays["meta"])
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
    _apply_all_or_nothing(model, model_state, optimizer, optim_state)
    return meta


def _read_meta(path, raw):
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"nn.load: {path!r} has corrupt metadata (not UTF-8 JSON: {exc}); "
                              f"nothing was loaded") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"nn.load: {path!r} has corrupt metadata (a JSON {type(meta).__name__}, expected "
                              f"an object); nothing was loaded")
    return meta


def _apply_all_or_nothing(model, model_state, optimizer, optim_state):
    """Load both, or restore both: a failure after validation leaves no half-loaded model."""
    saved_model = model.state_dict()
    saved_optim = optimizer.state_dict() if optimizer is not None else None
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
    except BaseException:
        model.load_state_dict(saved_model)
        if optimizer is not None:
            optimizer.load_state_dict(saved_optim)
        raise


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
