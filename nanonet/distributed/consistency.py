"""What every rank must agree on before training, and the start-up broadcast from rank 0.

:func:`check_same` compares a small description of each rank's run (model
structure, optimizer, loss, data, shuffling seed, options); a difference is
one ``ValueError`` raised on every rank, naming what differs on which rank,
instead of a hang or silently wrong training. :func:`broadcast_state` then
copies rank 0's weights, buffers and optimizer state to every rank.
"""

import hashlib
import json
import zlib

import numpy as np

from .runtime import collective_error


def describe_model(model):
    """``{key: text}``: the structure of ``model`` (repr, parameter and buffer names, shapes, dtypes)."""
    out = {"model": repr(model)}
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, item in items:
            out[f"model {kind} {name!r}"] = f"{item.value.dtype}{tuple(item.value.shape)}"
    return out


def describe_optimizer(optimizer):
    """The optimizer's type, hyperparameters per group, and the keys and shapes of its state."""
    out = {}
    state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else {}
    for key, value in state.items():
        arr = np.asarray(value)
        name = "optimizer" if key == "type" else f"optimizer {key}"   # the type sorts first
        if key.startswith("state.") and not key.endswith(".step"):
            out[name] = f"{arr.dtype}{arr.shape}"
        else:
            out[name] = repr(arr.tolist())
    return out


def describe_array(name, array):
    """Shape, dtype and a checksum of the bytes (adler32: one fast pass)."""
    data = np.ascontiguousarray(array)
    checksum = zlib.adler32(data.reshape(-1).view(np.uint8)) if data.size else 0
    return {f"data {name}": f"{data.dtype}{data.shape} checksum {checksum:08x}"}


def describe_rng(generator):
    state = json.dumps(generator.bit_generator.state, sort_keys=True, default=str)
    return {"shuffling rng": hashlib.blake2b(state.encode(), digest_size=8).hexdigest()}


_HINTS = {
    "model": "build the same model on every rank (the weights themselves are broadcast from rank 0)",
    "optimizer": "create the same optimizer with the same hyperparameters on every rank, and load a "
                 "checkpoint (nn.load) on every rank, not only on one",
    "data": "pass the same x, y (and validation data) on every rank: each rank takes its share of every batch",
    "shuffling": "pass the same rng= seed on every rank (or rng=None: rank 0 then draws one for all)",
    "fit": "call fit with the same arguments (loss, callbacks, epochs, batch_size...) on every rank",
}


def _brief(value, reference):
    """``value`` on one line: for a multi-line text (a model's repr), its first line that differs."""
    if "\n" not in value:
        return value
    lines, ref = value.splitlines(), reference.splitlines()
    for i, line in enumerate(lines):
        if i >= len(ref) or line != ref[i]:
            return f"line {i + 1} {line.strip()!r}"
    return f"{len(lines)} lines"


def check_same(group, description, what):
    """Raise the same ``ValueError`` on every rank unless all ranks passed equal ``description`` dicts.

    Keys start with their family (``model``, ``optimizer``, ``data``, ``fit``,
    ``shuffling``), which picks the hint printed with the difference.
    """
    text = json.dumps(description, sort_keys=True)
    digests = group.allgather_text(hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
    if len(set(digests)) == 1:
        return
    ranks = [json.loads(t) for t in group.allgather_text(text)]
    lines, hints = [], []
    for key in sorted(set().union(*ranks)):
        values = [r.get(key, "(missing)") for r in ranks]
        if len(set(values)) == 1:
            continue
        other = next(v for v in values if v != values[0])
        shown = [f"rank 0 has {_brief(values[0], other)}"]
        shown += [f"rank {i} has {_brief(v, values[0])}" for i, v in enumerate(values) if v != values[0]]
        lines.append(f"{key}: " + ", ".join(shown))
        hint = _HINTS.get(key.split()[0])
        if hint and hint not in hints:
            hints.append(hint)
    more = f"\n  ... and {len(lines) - 12} more" if len(lines) > 12 else ""
    raise collective_error(ValueError(
        f"{what}: the {group.size} ranks disagree at start ({len(lines)} difference(s)):\n  - "
        + "\n  - ".join(lines[:12]) + more + "".join(f"\nFix: {h}." for h in hints)))


def broadcast_state(group, model, optimizer=None, root=0):
    """Copy ``root``'s parameters, buffers (and the optimizer's state arrays) to every rank, in place.

    The structures must already agree (:func:`check_same`).
    """
    arrays = [p.value for p in model.parameters()] + [b.value for _, b in model.named_buffers()]
    if optimizer is not None and hasattr(optimizer, "state"):
        for p in optimizer.parameters():
            state = optimizer.state.get(p, {})
            arrays += [state[k] for k in sorted(state) if isinstance(state[k], np.ndarray)]
    for arr in arrays:
        broadcast_array(group, arr, root)


def broadcast_array(group, array, root=0):
    """Copy ``root``'s ``array`` into every rank's, in place (any memory layout)."""
    if array.flags.c_contiguous:
        group.bcast(array, root=root)
    else:
        tmp = np.ascontiguousarray(array)
        group.bcast(tmp, root=root)
        array[...] = tmp
