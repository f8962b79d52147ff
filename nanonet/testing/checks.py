"""The individual conformance checks run by ``check_layer``.

Each check takes a ``LayerSpec``, builds fresh objects from it, and raises
``AssertionError`` (or any exception) on failure, ``SkipCheck`` when it does
not apply; it returns a short detail text on success.
"""

import copy

import numpy as np

from ..gradcheck import check_gradients, freeze_randomness
from ..layers.shape import Identity
from .spec import LayerSpec

__all__ = ["ALL_CHECKS", "LAYER_CHECKS", "LOSS_CHECKS", "LayerSpec", "SkipCheck"]

_FULL_LIMIT = 1500  # elements (input + parameters) up to which gradients are checked element by element


class SkipCheck(Exception):
    """Raised by a check that does not apply to the layer."""


def _grad_out(spec, out, dtype=None):
    return spec.gen().normal(size=np.shape(out)).astype(dtype or out.dtype)


def _param_grads(layer):
    return {name: p.grad.copy() for name, p in layer.named_parameters()}


def _assert_close(got, want, what, rtol=1e-10, atol=1e-12):
    if np.shape(got) != np.shape(want) or not np.allclose(got, want, rtol=rtol, atol=atol):
        err = np.max(np.abs(np.asarray(got) - np.asarray(want))) if np.shape(got) == np.shape(want) else "shape"
        raise AssertionError(f"{what}: values differ (max abs difference {err})")


def _frozen(spec):
    layer = spec.make()
    freeze_randomness(layer)
    return layer


# -- layer checks -------------------------------------------------------------------------
def check_gradients_match(spec):
    """Input and parameter Jacobians match finite differences (kinks accepted)."""
    if spec.is_loss:
        pred, target = spec.inputs()
        report = check_gradients(Identity(), pred, target, loss_fn=spec.make(), rng=spec.seed, mode="full")
    else:
        layer = spec.make()
        x = spec.inputs()
        size = x.size + sum(p.size for p in layer.parameters())
        mode = "full" if size <= _FULL_LIMIT else "projected"
        report = check_gradients(layer, x, rng=spec.seed, mode=mode)
    if not report.ok:
        raise AssertionError("gradient check failed:\n" + str(report))
    return f"{report.mode}, max rel_error {max(r.rel_error for r in report.rows):.1e}"


def check_grad_out_linearity(spec):
    """backward(c * g) == c * backward(g), for the input and every parameter gradient."""
    layer = _frozen(spec)
    x = spec.inputs()
    out = layer.forward(x)
    g = _grad_out(spec, out)
    layer.zero_grad()
    dx = _copy(layer.backward(g))
    grads = _param_grads(layer)
    layer.zero_grad()
    dx3 = layer.backward(2.5 * g)
    if dx is not None or dx3 is not None:  # None: an integer input has no gradient
        _assert_close(dx3, 2.5 * dx, "dJ/dx for 2.5 * grad_out vs 2.5 * dJ/dx")
    for name, p in layer.named_parameters():
        _assert_close(p.grad, 2.5 * grads[name], f"{name}.grad for 2.5 * grad_out")


def check_accumulation(spec):
    """Two backward calls after one forward give twice the gradient; zero_grad resets it."""
    layer = _frozen(spec)
    if not layer.parameters():
        raise SkipCheck("no parameters")
    x = spec.inputs()
    out = layer.forward(x)
    g = _grad_out(spec, out)
    layer.zero_grad()
    layer.backward(g)
    once = _param_grads(layer)
    layer.backward(g)
    for name, p in layer.named_parameters():
        _assert_close(p.grad, 2 * once[name], f"{name}.grad after two backward calls (must accumulate: +=)")
    layer.zero_grad()
    for name, p in layer.named_parameters():
        if np.any(p.grad):
            raise AssertionError(f"{name}.grad is not zero after zero_grad()")


def check_batch_independence(spec):
    """Row i of the output (and of dJ/dx) depends only on row i, when the layer declares it."""
    layer = _frozen(spec)
    if not getattr(layer, "batch_independent", False):
        raise SkipCheck("the layer does not declare batch_independent")
    x = spec.inputs()
    if x.ndim == 0 or x.shape[0] < 2:
        raise SkipCheck("needs at least 2 rows")
    out = np.array(layer.forward(x), copy=True)
    changed = x.copy()
    changed[1:] = spec.inputs(x.dtype, np.random.default_rng(spec.seed + 1))[1:] * (3 if x.dtype.kind == "f" else 1)
    out2 = layer.forward(changed)
    _assert_close(out2[0], out[0], "row 0 of the output after changing rows 1..N-1", rtol=0, atol=0)
    g = np.zeros_like(out2)
    g[0] = 1
    dx = layer.backward(g)
    if dx is not None and np.any(dx[1:]):
        raise AssertionError("dJ/dx has nonzero rows 1..N-1 for a grad_out that is zero outside row 0")


def _copy(a):
    return None if a is None else np.array(a, copy=True)


def _run(layer, spec):
    x = spec.inputs()
    out = np.array(layer.forward(x), copy=True)
    dx = _copy(layer.backward(_grad_out(spec, out)))
    return out, dx, _param_grads(layer)


def check_determinism(spec):
    """Two layers built the same way (and seeded alike) give bit-identical results."""
    seeded = spec.make_seeded(spec.seed) is not None
    first = spec.make()
    pairs = [(first, copy.deepcopy(first))]
    if seeded:
        pairs.append((spec.make_seeded(spec.seed), spec.make_seeded(spec.seed)))
    for a, b in pairs:
        if spec.is_loss:
            pred, target = spec.inputs()
            va, vb = a.forward(pred, target), b.forward(pred, target)
            if va != vb or not np.array_equal(a.backward(), b.backward()):
                raise AssertionError("two copies of the loss gave different results")
            continue
        sa, sb = a.state_dict(), b.state_dict()
        if sa.keys() != sb.keys() or any(not np.array_equal(sa[k], sb[k]) for k in sa):
            raise AssertionError("two layers built with the same rng (or copies of one) have different state_dicts")
        for u, v in zip(_run(a, spec)[:2], _run(b, spec)[:2]):
            if not np.array_equal(u, v):
                raise AssertionError("two identical layers gave different outputs or gradients "
                                     "(global random state? use rng=)")
    return "seeded factory" if seeded else "copies"


def check_input_not_mutated(spec):
    """forward and backward never modify the caller's arrays (x, grad_out, pred, target)."""
    obj = spec.make()
    if spec.is_loss:
        pred, target = spec.inputs()
        keep = pred.copy(), target.copy()
        obj.forward(pred, target)
        obj.backward()
        arrays = [("pred", pred, keep[0]), ("target", target, keep[1])]
    else:
        x = spec.inputs()
        keep_x = x.copy()
        out = obj.forward(x)
        g = _grad_out(spec, out)
        keep_g = g.copy()
        obj.backward(g)
        arrays = [("x", x, keep_x), ("grad_out", g, keep_g)]
    for name, arr, before in arrays:
        if not np.array_equal(arr, before):
            raise AssertionError(f"the caller's {name} was modified in place")


def check_dtype(spec):
    """float32 in gives float32 out (output, dJ/dx, parameter gradients)."""
    obj = spec.make()
    if spec.is_loss:
        pred, target = spec.inputs(np.float32)
        value = obj.forward(pred, target)
        if not isinstance(value, float):
            raise AssertionError(f"forward must return a Python float, got {type(value).__name__}")
        grad = obj.backward()
        if grad.dtype != np.float32:
            raise AssertionError(f"backward returned {grad.dtype} for float32 pred")
        return
    obj.to(np.float32)
    x = spec.inputs(np.float32)
    out = obj.forward(x)
    dx = obj.backward(_grad_out(spec, out, np.float32))
    found = {"output": out.dtype} if dx is None else {"output": out.dtype, "dJ/dx": dx.dtype}
    found.update({f"{n}.grad": p.grad.dtype for n, p in obj.named_parameters()})
    found.update({n: p.value.dtype for n, p in obj.named_parameters()})
    wrong = {k: str(v) for k, v in found.items() if v != np.float32}
    if wrong:
        raise AssertionError(f"float32 in, but these are not float32: {wrong}")


def check_state_dict(spec):
    """state_dict returns copies and holds all the state: a fresh layer loaded from it gives the same outputs.

    The layer first runs a forward in training mode (running statistics move)
    and gets random parameters, so a state kept outside Parameters and
    Buffers shows up as a difference.
    """
    if spec.is_loss:
        raise SkipCheck("a loss has no state")
    layer = _frozen(spec).train()
    x = spec.inputs()
    layer.forward(x)
    gen = spec.gen()
    for p in layer.parameters():
        p.value += gen.normal(size=p.value.shape).astype(p.value.dtype) * 0.1
    layer.eval()
    state = layer.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise AssertionError("state_dict must be a dict of numpy arrays")
    want = np.array(layer.forward(x), copy=True)
    for v in state.values():
        v += 1  # a copy: the layer must not change
    _assert_close(layer.forward(x), want, "output after modifying the returned state_dict", 0, 0)
    state = layer.state_dict()
    other = spec.make()
    other.load_state_dict(state)
    _assert_close(other.eval().forward(x), want, "eval output of a fresh layer after load_state_dict", 0, 0)
    return f"{len(state)} array(s)"


def check_repr(spec):
    """repr names the class and its configuration, on one line for a leaf."""
    obj = spec.make()
    text = repr(obj)
    name = type(obj).__name__
    if " object at 0x" in text or not text.startswith(name + "("):
        raise AssertionError(f"repr should look like {name}(<configuration>), got {text!r}")
    if not spec.is_loss and not obj.children() and "\n" in text:
        raise AssertionError(f"a leaf's repr should be one line, got {text!r}")
    return text


def check_train_eval(spec):
    """train()/eval() return the layer and set .training; eval forward is repeatable and changes no state."""
    if spec.is_loss:
        raise SkipCheck("a loss has no train/eval mode")
    layer = spec.make()
    if layer.eval() is not layer or any(m.training for m in layer.modules()):
        raise AssertionError("eval() must return the layer and set training=False everywhere")
    x = spec.inputs()
    before = layer.state_dict()
    first = np.array(layer.forward(x), copy=True)
    _assert_close(layer.forward(x), first, "two forwards in eval mode", 0, 0)
    after = layer.state_dict()
    for k in before:
        if not np.array_equal(before[k], after[k]):
            raise AssertionError(f"forward in eval mode changed {k!r}")
    if layer.train() is not layer or not all(m.training for m in layer.modules()):
        raise AssertionError("train() must return the layer and set training=True everywhere")


def _raises(fn, types, who, what):
    try:
        fn()
    except types as exc:
        if who not in str(exc):
            raise AssertionError(f"{what}: the error should name {who}, got {type(exc).__name__}: {exc}") from exc
        return str(exc)
    except Exception as exc:
        raise AssertionError(f"{what}: expected {' or '.join(t.__name__ for t in types)}, "
                             f"got {type(exc).__name__}: {exc}") from exc
    return None


def check_wrong_input(spec):
    """Clear errors, naming the layer: wrong input shape, wrong grad_out shape, int input, backward first."""
    obj = spec.make()
    who = type(obj).__name__
    msg = _raises(lambda: obj.backward() if spec.is_loss else obj.backward(np.ones(spec.input_shape)),
                  (RuntimeError,), who, "backward before forward")
    if msg is None:
        raise AssertionError("backward before forward must raise RuntimeError")
    if spec.is_loss:
        pred, target = spec.inputs()
        bad = (np.concatenate([target, target[:, :1]], axis=1) if target.ndim == pred.ndim == 2
               else target[:-1])
        if _raises(lambda: obj.forward(pred, bad), (ValueError, TypeError), who, "a wrong target shape") is None:
            raise AssertionError(f"a target of shape {bad.shape} for pred {pred.shape} must raise")
        return
    x = spec.inputs()
    wrong = np.int64 if x.dtype.kind == "f" else np.float64  # an index layer refuses floats
    if _raises(lambda: obj.forward(x.astype(wrong)), (TypeError,), who, f"an input of dtype {wrong.__name__}") is None:
        raise AssertionError(f"an input of dtype {wrong.__name__} must raise TypeError")
    shape = x.shape[:-1] + (x.shape[-1] + 1,) if x.ndim else (2,)
    _raises(lambda: obj.forward(np.ones(shape)), (ValueError, TypeError), who, f"an input of shape {shape}")
    out = obj.forward(x)
    bad_g = np.ones(out.shape[:-1] + (out.shape[-1] + 1,) if out.ndim else (2,))
    if _raises(lambda: obj.backward(bad_g), (ValueError,), who, "a wrong grad_out shape") is None:
        raise AssertionError(f"grad_out of shape {bad_g.shape} for an output of shape {out.shape} must raise")


LAYER_CHECKS = {
    "gradients": check_gradients_match,
    "grad_out_linearity": check_grad_out_linearity,
    "accumulation": check_accumulation,
    "batch_independence": check_batch_independence,
    "determinism": check_determinism,
    "input_not_mutated": check_input_not_mutated,
    "dtype": check_dtype,
    "state_dict": check_state_dict,
    "repr": check_repr,
    "train_eval": check_train_eval,
    "wrong_input": check_wrong_input,
}

LOSS_CHECKS = {name: LAYER_CHECKS[name] for name in
               ("gradients", "determinism", "input_not_mutated", "dtype", "repr", "wrong_input")}


def _check_grad_scaling(spec):
    """backward(grad=c) == c * backward()."""
    loss = spec.make()
    pred, target = spec.inputs()
    loss.forward(pred, target)
    base = np.array(loss.backward(), copy=True)
    _assert_close(loss.backward(2.5), 2.5 * base, "backward(2.5) vs 2.5 * backward()")


LOSS_CHECKS["grad_scaling"] = _check_grad_scaling
ALL_CHECKS = tuple(LAYER_CHECKS) + ("grad_scaling",)
