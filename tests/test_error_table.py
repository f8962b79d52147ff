"""Bad input for every public entry point, in the style of PyTorch's OpInfo ``error_inputs``.

Each case is a call, the exception type it must raise and a fragment of the
message (plain text, not a regex). The message must also name the culprit:
the module's class name for a layer or a loss. Part one here: layers, losses,
containers, the module API and the checker's entry points; part two
(``test_error_table_training.py``): optimizers, schedulers, callbacks, fit,
evaluate, batches, save/load and every CLI command.

**Layers and losses get their generic cases for free**: every entry of
``TABLE`` in ``layer_table.py`` (the one place that lists layer and
loss factories with an example input shape) is run through ``layer_cases`` or
``loss_cases`` below: non-arrays, non-numeric and wrong-kind dtypes (strings,
objects, datetimes, structured, bytes, complex, bool, int: whatever the
layer's ``input_kinds`` does not allow), NaN/Inf, for a layer with
parameters a float32 input and every feature axis one longer (opt out with
``expected_failures=("wrong_input",)``), backward before forward, and
grad_out of the wrong shape, dtype or type (for an array output). A layer
with several inputs is skipped here.
"""

import numpy as np
import pytest

import nanonet as nn
from nanonet.testing import check_layer
from test_contract import Scale as ContractScale
from layer_table import TABLE


def case(case_id, call, error, fragment, who=None):
    """One row: ``call()`` raises ``error``; ``fragment`` (a str or a tuple) and ``who`` are in its message."""
    return pytest.param(call, error, fragment, who, id=case_id)


def run_case(call, error, fragment, who):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for piece in (fragment,) if isinstance(fragment, str) else fragment:
        assert piece in message, f"{piece!r} not in {type(info.value).__name__}: {message}"
    if who is not None:
        assert who in message, f"the message should name {who}: {message}"


BAD_ARRAYS = {  # kind letter: (label, a maker from the good input's shape)
    "U": ("strings", lambda shape: np.full(shape, "a")),
    "O": ("objects", lambda shape: np.full(shape, None, dtype=object)),
    "M": ("datetimes", lambda shape: np.zeros(shape, dtype="datetime64[D]")),
    "m": ("timedeltas", lambda shape: np.zeros(shape, dtype="timedelta64[s]")),
    "V": ("structured", lambda shape: np.zeros(shape, dtype=[("a", "f8"), ("b", "i4")])),
    "S": ("bytes", lambda shape: np.full(shape, b"a")),
    "c": ("complex", lambda shape: np.ones(shape, dtype=complex)),
    "b": ("bool", lambda shape: np.ones(shape, dtype=bool)),
    "i": ("int", lambda shape: np.ones(shape, dtype=np.int64)),
    "f": ("float", lambda shape: np.ones(shape)),
}


def _kinds(layer):
    kinds = getattr(layer, "input_kinds", "f")
    return "f" if kinds is None else kinds if isinstance(kinds, str) else kinds[0] or "f"


def _ready(spec):
    """A fresh layer that has run forward on the spec's input, and its output."""
    layer = spec.make()
    out = layer.forward(spec.inputs())
    return layer, out


def layer_cases(spec):
    """The generic bad-input cases of one layer spec (a single-input layer)."""
    x = spec.inputs()
    if not isinstance(x, np.ndarray):
        return []  # several inputs: not generic
    probe = spec.make()
    name, kinds, label = type(probe).__name__, _kinds(probe), spec.label
    out = []
    for kind, (what, make) in BAD_ARRAYS.items():
        if kind in kinds or (kind == "i" and "u" in kinds):
            continue
        for how in ("call", "forward"):
            call = (lambda make=make, how=how: getattr(spec.make(), "__call__" if how == "call" else "forward")(
                make(x.shape)))
            out.append(case(f"{label}-{how}-{what}", call, TypeError, "dtype", name))
    for how in ("call", "forward"):
        out.append(case(f"{label}-{how}-None", lambda how=how: getattr(spec.make(), how if how == "forward"
                                                                       else "__call__")(None),
                        TypeError, "numpy.ndarray, got NoneType", name))
        out.append(case(f"{label}-{how}-list", lambda how=how: getattr(spec.make(), how if how == "forward"
                                                                       else "__call__")(x.tolist()),
                        TypeError, "numpy.ndarray, got list", name))
    if "f" in kinds:
        for bad in (np.nan, np.inf):
            poisoned = x.copy()
            poisoned.flat[-1] = bad
            out.append(case(f"{label}-call-{bad}", lambda p=poisoned: spec.make()(p), FloatingPointError,
                            "non-finite input: 1 NaN/Inf value(s)", name))
    if probe.parameters() and "f" in kinds:
        out.append(case(f"{label}-float32-input", lambda: spec.make()(x.astype(np.float32)), TypeError,
                        "float32", name))
        if x.ndim >= 2 and "wrong_input" not in spec.expected_failures:
            wider = np.ones(x.shape[:1] + tuple(d + 1 for d in x.shape[1:]))  # every feature axis one longer
            out.append(case(f"{label}-wrong-features", lambda: spec.make()(wider), ValueError, "", name))
    out.append(case(f"{label}-backward-before-forward", lambda: spec.make().backward(np.ones(spec.input_shape)),
                    RuntimeError, "backward called before forward", name))
    _, y = _ready(spec)
    if isinstance(y, np.ndarray):
        wrong = np.ones(y.shape[:-1] + (y.shape[-1] + 1,)) if y.ndim else np.ones(2)
        other = np.float64 if y.dtype == np.float32 else np.float32  # the other float dtype than the output's
        grads = [("shape", wrong, ValueError, "expected grad_out of shape"),
                 ("other-float", np.ones(y.shape, other), TypeError, ("grad_out", np.dtype(other).name)),
                 ("int", np.ones(y.shape, np.int64), TypeError, ("grad_out", "int64")),
                 ("None", None, TypeError, "expected grad_out to be a numpy.ndarray, got NoneType"),
                 ("list", np.ones(y.shape).tolist(), TypeError, "expected grad_out to be a numpy.ndarray, got list")]
        for what, g, error, fragment in grads:
            out.append(case(f"{label}-grad_out-{what}", lambda g=g: _ready(spec)[0].backward(g), error, fragment,
                            name))
    return out


def loss_cases(spec):
    """The generic bad-input cases of one loss spec."""
    loss = spec.make()
    name, label = type(loss).__name__, spec.label
    pred, target = spec.inputs()
    out = []
    for slot in ("pred", "target"):
        for kind, (what, make) in BAD_ARRAYS.items():
            if kind == "f" or (slot == "target" and kind == target.dtype.kind):
                continue
            for how in ("call", "forward"):
                def call(make=make, slot=slot, how=how):
                    args = (make(pred.shape), target) if slot == "pred" else (pred, make(target.shape))
                    return getattr(spec.make(), "__call__" if how == "call" else "forward")(*args)

                error = (TypeError, ValueError) if slot == "target" and kind in "iub" else TypeError  # class indices?
                out.append(case(f"{label}-{how}-{slot}-{what}", call, error, slot, name))
        args = (None, target) if slot == "pred" else (pred, None)
        out.append(case(f"{label}-{slot}-None", lambda args=args: spec.make()(*args), TypeError,
                        f"{slot} to be a numpy.ndarray, got NoneType", name))
        if slot == "pred" or target.dtype.kind == "f":
            poisoned = (pred if slot == "pred" else target).copy()
            poisoned.flat[0] = np.nan
            args = (poisoned, target) if slot == "pred" else (pred, poisoned)
            out.append(case(f"{label}-{slot}-nan", lambda args=args: spec.make()(*args), FloatingPointError,
                            f"non-finite {slot}", name))
    empty = (pred[:0], target[:0])
    out.append(case(f"{label}-empty-batch", lambda: spec.make()(*empty), ValueError, "got an empty batch", name))
    out.append(case(f"{label}-empty-batch-forward", lambda: spec.make().forward(*empty), ValueError,
                    "got an empty batch", name))
    out.append(case(f"{label}-backward-before-forward", lambda: spec.make().backward(), RuntimeError,
                    "backward called before forward", name))
    out.append(case(f"{label}-int-pred", lambda: spec.make()(pred.astype(np.int64), target), TypeError,
                    ("pred", "int64"), name))
    bad_target = target[:-1]
    out.append(case(f"{label}-target-rows", lambda: spec.make()(pred, bad_target), ValueError, "target", name))
    return out


GENERIC = [c for spec in TABLE for c in (loss_cases(spec) if spec.is_loss else layer_cases(spec))]


@pytest.mark.parametrize("call, error, fragment, who", GENERIC)
def test_generic_bad_inputs_of_every_layer_and_loss(call, error, fragment, who):
    run_case(call, error, fragment, who)


NAN, INF = float("nan"), float("inf")
X = np.ones((4, 3))


def _used(model):
    model(X)
    return model


def _seq():
    return nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())


def _graph():
    inp = nn.Input(3)
    return nn.Graph(inp, nn.Linear(3, 2, rng=0)(inp))


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


HYPER = [  # (id, constructor, error, fragment); the fragment names the class
    *[case(f"Linear-{arg}-{v!r}", lambda arg=arg, v=v: nn.Linear(**{"in_features": 3, "out_features": 2, arg: v}),
           e, f"Linear expected {arg}") for arg in ("in_features", "out_features")
      for v, e in ((0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError), ("3", TypeError),
                   (NAN, TypeError), (None, TypeError))],
    case("Linear-dtype-int", lambda: nn.Linear(3, 2, dtype=np.int64), TypeError, "Linear expected a floating-point"),
    case("Linear-init", lambda: nn.Linear(3, 2, init="xavier"), ValueError, "Linear expected init"),
    case("Linear-rng-negative", lambda: nn.Linear(3, 2, rng=-1), ValueError, "rng must be an int seed >= 0"),
    case("Linear-rng-str", lambda: nn.Linear(3, 2, rng="0"), TypeError, "rng must be an int seed"),
    *[case(f"{cls.__name__}-{arg}-{v!r}", lambda cls=cls, arg=arg, v=v: cls(**{arg: v}),
           ValueError if _is_number(v) else TypeError, f"{cls.__name__} expected")
      for cls, arg, values in ((nn.LeakyReLU, "negative_slope", (NAN, INF, "0.1", True, None)),
                               (nn.ELU, "alpha", (NAN, -INF, "1", None)),
                               (nn.Softplus, "beta", (0, -1.0, NAN, INF, "2")),
                               (nn.Softplus, "threshold", (NAN, INF, None)),
                               (nn.Dropout, "p", (-0.1, 1.0, 1.5, NAN, "0.5", True)),
                               (nn.HuberLoss, "delta", (0, -1.0, NAN, INF, "1")))
      for v in values],
    *[case(f"{cls.__name__}-{arg}-{v!r}", lambda cls=cls, arg=arg, v=v: cls(**{"features": 3, arg: v}), e,
           f"{cls.__name__} expected")
      for cls in (nn.LayerNorm, nn.BatchNorm1d)
      for arg, v, e in (("features", 0, ValueError), ("features", 2.5, TypeError), ("features", "3", TypeError),
                        ("eps", 0, ValueError), ("eps", -1e-5, ValueError), ("eps", NAN, ValueError),
                        ("eps", INF, ValueError), ("eps", "1e-5", TypeError), ("dtype", np.int32, TypeError))],
    *[case(f"BatchNorm1d-momentum-{v!r}", lambda v=v: nn.BatchNorm1d(3, momentum=v), e, "BatchNorm1d expected")
      for v, e in ((-0.1, ValueError), (1.5, ValueError), (NAN, ValueError), ("0.1", TypeError))],
    *[case(f"{cls.__name__}-reduction-{v!r}", lambda cls=cls, v=v: cls(reduction=v), ValueError,
           f"{cls.__name__} expected reduction")
      for cls in (nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.CrossEntropyLoss, nn.BCEWithLogitsLoss)
      for v in ("avg", None, "none")],
    *[case(f"Concat-axis-{v!r}", lambda v=v: nn.Concat(axis=v), e, "Concat expected axis")
      for v, e in ((0, ValueError), (1.5, TypeError), ("1", TypeError), (None, TypeError))],
    *[case(f"Split-{v!r}", lambda v=v: nn.Split(v), e, "Split expected sizes")
      for v, e in (([3], ValueError), ([2, 0], ValueError), ([2, 1.5], TypeError), ("ab", TypeError), (5, TypeError))],
    case("Split-axis-0", lambda: nn.Split([1, 2], axis=0), ValueError, "Split expected axis"),
]


@pytest.mark.parametrize("call, error, fragment, who", HYPER)
def test_bad_hyperparameters(call, error, fragment, who):
    run_case(call, error, fragment, who)


MODULES = [
    case("Sequential-int", lambda: nn.Sequential(3), TypeError, "Sequential expected Module arguments, got int"),
    case("Sequential-class", lambda: nn.Sequential(nn.ReLU), TypeError, "Sequential expected Module arguments"),
    case("Sequential-reuse", lambda: (lambda l: nn.Sequential(l, nn.Tanh(), l))(nn.Linear(3, 3, rng=0)), ValueError,
         "is used twice"),
    case("Sequential-reuse-nested", lambda: (lambda l: nn.Sequential(nn.Sequential(l), l))(nn.Tanh()), ValueError,
         "is used twice"),
    case("Sequential-append-class", lambda: nn.Sequential().append(nn.ReLU), TypeError, "Sequential.append"),
    case("Sequential-index-range", lambda: _seq()[5], IndexError, "Sequential(2 children) has 2 children"),
    case("Sequential-index-negative", lambda: _seq()[-3], IndexError, "index -3 is out of range"),
    case("Sequential-index-str", lambda: _seq()["0"], TypeError, "Sequential(2 children) expected an int position"),
    case("Sequential-index-float", lambda: _seq()[1.0], TypeError, "got float 1.0"),
    case("Sequential-index-None", lambda: _seq()[None], TypeError, "got NoneType"),
    case("Sequential-wrong-input", lambda: _seq()(np.ones((4, 5))), ValueError, "Sequential[0] Linear(3 -> 2)"),
    case("Sequential-backward-shape", lambda: _used(_seq()).backward(np.ones((4, 3))), ValueError, "Sequential["),
    case("Graph-index-range", lambda: _graph()[3], IndexError, "Graph(inputs="),
    case("Graph-index-name", lambda: _graph()["nope"], KeyError, "has no layer named 'nope'"),
    case("Graph-index-type", lambda: _graph()[None], TypeError, "expected a layer name (str) or an int position"),
    case("Graph-outputs", lambda: nn.Graph(nn.Input(3), 3), TypeError, "Graph expected outputs"),
    case("Graph-inputs", lambda: nn.Graph(3, _graph()), TypeError, "Graph expected inputs"),
    case("Graph-reuse", lambda: (lambda i, l: nn.Graph(i, l(nn.Tanh()(l(i)))))(nn.Input(3), nn.Linear(3, 3, rng=0)),
         ValueError, "twice"),
    case("Graph-input-strings", lambda: _graph()(np.full((2, 3), "a")), TypeError, "dtype"),
    case("Input-shape-0", lambda: nn.Input(0), ValueError, "Input expected shape"),
    case("Input-shape-str", lambda: nn.Input("a"), ValueError, "Input expected shape"),
    case("shared_copy-int", lambda: nn.shared_copy(3), TypeError, "shared_copy expected a Module"),
    case("Parameter-list", lambda: nn.Parameter([1.0]), TypeError, "Parameter expected a numpy.ndarray"),
    case("Parameter-int", lambda: nn.Parameter(np.ones(2, int)), TypeError, "Parameter expected a floating-point"),
    case("Buffer-str", lambda: nn.Buffer("x"), TypeError, "Buffer expected a numpy.ndarray"),
    case("to-int", lambda: nn.Linear(2, 2, rng=0).to(np.int64), TypeError, "Linear(2 -> 2).to expected a floating"),
    case("load_state_dict-int", lambda: nn.Linear(2, 2, rng=0).load_state_dict(3), TypeError,
         "Linear(2 -> 2) expected a state dict"),
    case("load_state_dict-missing", lambda: nn.Linear(2, 2, rng=0).load_state_dict({}), ValueError,
         "missing key 'weight'"),
    case("load_state_dict-strings", lambda: nn.Linear(2, 2, rng=0).load_state_dict(
        {"weight": np.full((2, 2), "a"), "bias": np.zeros(2)}), ValueError, "'weight': expected an array of numbers"),
    case("load_state_dict-shape", lambda: nn.Linear(2, 2, rng=0).load_state_dict(
        {"weight": np.zeros((3, 2)), "bias": np.zeros(2)}), ValueError, "expected shape (2, 2), got (3, 2)"),
    case("load_state_dict-dtype", lambda: nn.Linear(2, 2, rng=0).load_state_dict(
        {"weight": np.zeros((2, 2), np.float32), "bias": np.zeros(2)}), ValueError, "expected dtype float64"),
    case("Add-one-input", lambda: nn.Add()(np.ones((2, 3))), TypeError, "at least 2 input arrays"),
    case("Add-shapes", lambda: nn.Add()(np.ones((2, 3)), np.ones((2, 4))), ValueError, "no broadcasting"),
    case("Add-strings", lambda: nn.Add()(np.ones((2, 3)), np.full((2, 3), "a")), TypeError, "dtype"),
    case("Multiply-dtypes", lambda: nn.Multiply()(np.ones((2, 3)), np.ones((2, 3), np.float32)), TypeError,
         "float32"),
    case("Concat-nan", lambda: nn.Concat()(np.ones((2, 3)), np.full((2, 1), np.nan)), FloatingPointError,
         "non-finite input 1"),
    case("Split-size", lambda: nn.Split([1, 1])(np.ones((2, 3))), ValueError, "expected input of size 2"),
    case("CrossEntropy-class-range", lambda: nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3])), ValueError,
         "class indices in [0, 3)"),
    case("CrossEntropy-logits-1d", lambda: nn.CrossEntropyLoss()(np.zeros(3), np.array([0])), ValueError,
         "expected pred (logits) of shape (N, C)"),
    case("MSELoss-broadcast", lambda: nn.MSELoss()(np.ones((5, 1)), np.ones(5)), ValueError, "does not broadcast"),
]


@pytest.mark.parametrize("call, error, fragment, who", MODULES)
def test_containers_and_the_module_api(call, error, fragment, who):
    run_case(call, error, fragment, who)


def _tripled():
    return nn.Linear(3, 2, rng=0)


CHECKER = [
    *[case(f"check_gradients-{k}={v!r}", lambda k=k, v=v: nn.check_gradients(_tripled(), X, rng=0, **{k: v}), e,
           f"check_gradients expected {frag}")
      for k, v, e, frag in (("n_directions", 0, ValueError, "n_directions to be an int >= 1"),
                            ("n_directions", -2, ValueError, "n_directions"), ("n_directions", 1.5, TypeError, "n_dir"),
                            ("eps", 0.0, ValueError, "eps > 0"), ("eps", -1e-6, ValueError, "eps > 0"),
                            ("eps", NAN, ValueError, "a finite eps"), ("eps", INF, ValueError, "a finite eps"),
                            ("eps", "1e-6", TypeError, "eps to be a real number"),
                            ("rtol", -1.0, ValueError, "rtol >= 0"), ("rtol", NAN, ValueError, "a finite rtol"),
                            ("atol", -1.0, ValueError, "atol >= 0"), ("atol", INF, ValueError, "a finite atol"),
                            ("mode", "exact", ValueError, "mode in"), ("diagnose", "yes", TypeError, "diagnose"))],
    case("check_gradients-x-nan", lambda: nn.check_gradients(_tripled(), np.full((2, 3), NAN)), FloatingPointError,
         "check_gradients got a non-finite x"),
    case("check_gradients-param-inf", lambda: nn.check_gradients(
        (lambda m: (m.weight.value.fill(INF), m)[1])(_tripled()), X), FloatingPointError, "parameter 'weight'"),
    case("check_gradients-x-list", lambda: nn.check_gradients(_tripled(), X.tolist()), TypeError, "numpy.ndarray"),
    case("check_gradients-x-empty", lambda: nn.check_gradients(_tripled(), X[:0]), ValueError, "empty x"),
    case("check_gradients-x-strings", lambda: nn.check_gradients(_tripled(), np.full((2, 3), "a")), TypeError,
         "numeric (real) x"),
    case("check_gradients-y-without-loss", lambda: nn.check_gradients(_tripled(), X, X), ValueError, "both y and"),
    case("check_gradients-y-nan", lambda: nn.check_gradients(_tripled(), X, np.full((4, 2), NAN), nn.MSELoss()),
         FloatingPointError, "non-finite y"),
    case("check_gradients-loss-class", lambda: nn.check_gradients(_tripled(), X, X, nn.MSELoss), TypeError,
         "got the class MSELoss"),
    case("check_gradients-model-class", lambda: nn.check_gradients(nn.Linear, X), TypeError, "got the class Linear"),
    case("check_gradients-model-int", lambda: nn.check_gradients(3, X), TypeError, "expected a module"),
    case("check_gradients-rng", lambda: nn.check_gradients(_tripled(), X, rng=-5), ValueError, "rng must be"),
    case("eps_sweep-n_directions", lambda: nn.eps_sweep(_tripled(), X, n_directions=0), ValueError, "eps_sweep"),
    case("eps_sweep-empty", lambda: nn.eps_sweep(_tripled(), X, eps_values=[]), ValueError, "no eps_values"),
    case("eps_sweep-zero-step", lambda: nn.eps_sweep(_tripled(), X, eps_values=[0.1, 0]), ValueError,
         "eps_values[1] > 0"),
    case("eps_sweep-nan-step", lambda: nn.eps_sweep(_tripled(), X, eps_values=[NAN]), ValueError, "finite"),
    case("eps_sweep-str", lambda: nn.eps_sweep(_tripled(), X, eps_values="1e-3"), TypeError, "eps_values"),
    case("eps_sweep-x-nan", lambda: nn.eps_sweep(_tripled(), np.full((2, 3), NAN)), FloatingPointError, "eps_sweep"),
    case("numerical_jacobian-eps", lambda: nn.numerical_jacobian(np.tanh, X, eps=0), ValueError, "eps > 0"),
    case("numerical_jacobian-f", lambda: nn.numerical_jacobian(None, X), TypeError, "a callable f(x)"),
    case("numerical_jacobian-x-inf", lambda: nn.numerical_jacobian(np.tanh, [INF]), FloatingPointError, "non-finite"),
    case("numerical_jacobian-x-None", lambda: nn.numerical_jacobian(np.tanh, None), TypeError, "array of numbers"),
    case("numerical_jacobian-x-str", lambda: nn.numerical_jacobian(np.tanh, ["a"]), TypeError, "array of numbers"),
    case("analytic_jacobian-x", lambda: nn.analytic_jacobian(nn.Tanh(), [1.0]), TypeError, "numpy.ndarray"),
    case("analytic_jacobian-module", lambda: nn.analytic_jacobian(3, X), TypeError, "expected a module"),
    *[case(f"check_layer-{i}", lambda args=args, kw=kw: check_layer(*args, **kw), e, frag)
      for i, (args, kw, e, frag) in enumerate((
          ((nn.Tanh, (4, 0)), {}, ValueError, "input_shape[1] to be an int >= 1, got 0"),
          ((nn.Tanh, (4, -1)), {}, ValueError, "input_shape[1]"), ((nn.Tanh, (4, 2.5)), {}, TypeError, "an int"),
          ((nn.Tanh, ()), {}, ValueError, "at least one axis"), ((nn.Tanh, None), {}, TypeError, "input_shape"),
          ((nn.Tanh, "4,3"), {}, TypeError, "input_shape"), ((nn.Linear, (4, 3)), {}, TypeError, "needs argument"),
          ((lambda: None, (4, 3)), {}, TypeError, "returned NoneType"), ((3, (4, 3)), {}, TypeError, "3 is of type int"),
          ((nn.Tanh, (4, 3)), {"expected_failures": "dtype"}, TypeError, "expected_failures"),
          ((nn.Tanh, (4, 3)), {"expected_failures": ("nope",)}, ValueError, "unknown expected_failures"),
          ((nn.Tanh, (4, 3)), {"rng": -1}, ValueError, "rng must be an int seed >= 0")))],
]


@pytest.mark.parametrize("call, error, fragment, who", CHECKER)
def test_checker_entry_points(call, error, fragment, who):
    run_case(call, error, fragment, who)


def test_the_table_is_large_and_every_layer_of_the_layer_table_is_in_it():
    ids = [p.id for p in GENERIC + HYPER + MODULES + CHECKER]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    labels = {spec.label for spec in TABLE}
    assert all(any(i.startswith(label + "-") for i in ids) for label in labels)
    assert len(ids) >= 400


class DtypeCheckedScale(ContractScale):
    """The contract test's Scale plus the one check the contract leaves to a layer: its parameters' dtype."""

    def forward(self, x):
        if x.dtype != self.s.value.dtype:
            raise TypeError(f"{self!r} expected input of dtype {self.s.value.dtype}, got {x.dtype}")
        return super().forward(x)


def test_a_new_layer_in_the_table_gets_its_generic_cases_for_free():
    from nanonet.testing import LayerSpec

    cases = layer_cases(LayerSpec(lambda: DtypeCheckedScale(3), (4, 3)))
    assert len(cases) >= 30
    for param in cases:
        run_case(*param.values)
