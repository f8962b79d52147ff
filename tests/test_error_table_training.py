"""The bad-input table, part two: optimizers, schedulers, clipping, callbacks, fit, evaluate, batches,
save/load and every CLI command (part one, with the rules, is ``test_error_table.py``)."""

import sys

import numpy as np
import pytest

import nanonet as nn
from nanonet import optim
from nanonet.cli import main as cli_main
from test_error_table import case, run_case

NAN, INF = float("nan"), float("inf")
X, Y = np.random.default_rng(0).normal(size=(12, 3)), np.random.default_rng(1).normal(size=(12, 1))


def _params():
    return [nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))]


def _nan_grads():
    p = nn.Parameter(np.ones(2))
    p.grad.fill(NAN)
    return [p]


def _sgd():
    return optim.SGD(_params(), lr=0.1)


def _replaced_grad(grad):
    opt = _sgd()
    opt.param_groups[0]["params"][1].grad = grad
    return opt.step


OPTIMIZERS = {"SGD": optim.SGD, "Adam": optim.Adam, "AdamW": optim.AdamW, "RMSprop": optim.RMSprop}
SHARED = [("lr", 0, ValueError), ("lr", -0.1, ValueError), ("lr", NAN, ValueError), ("lr", INF, ValueError),
          ("lr", "0.1", TypeError), ("lr", True, TypeError), ("lr", None, TypeError),
          ("weight_decay", -1.0, ValueError), ("weight_decay", NAN, ValueError), ("weight_decay", "0", TypeError)]
OWN = {"SGD": [("momentum", -0.5, ValueError), ("momentum", NAN, ValueError), ("dampening", NAN, ValueError),
               ("nesterov", 1, TypeError)],
       "Adam": [("betas", (0.9,), ValueError), ("betas", (1.0, 0.999), ValueError), ("betas", (NAN, 0.9), ValueError),
                ("betas", "ab", ValueError), ("eps", -1.0, ValueError), ("eps", NAN, ValueError),
                ("amsgrad", "yes", TypeError)],
       "AdamW": [("betas", (0.9, -0.1), ValueError), ("eps", -1e-8, ValueError), ("eps", INF, ValueError)],
       "RMSprop": [("alpha", 1.5, ValueError), ("alpha", NAN, ValueError), ("eps", -1e-8, ValueError),
                   ("momentum", -1.0, ValueError), ("centered", 1, TypeError)]}

OPTIM = [
    *[case(f"{name}-{arg}={v!r}", lambda cls=cls, arg=arg, v=v: cls(_params(), **{arg: v}), e, f"{name} expected")
      for name, cls in OPTIMIZERS.items() for arg, v, e in SHARED + OWN[name]],
    *[case(f"{name}-params-{what}", lambda cls=cls, p=p: cls(p(), lr=0.1), e, frag)
      for name, cls in OPTIMIZERS.items()
      for what, p, e, frag in (("module", lambda: nn.Linear(2, 2, rng=0), TypeError, "got a Module"),
                               ("None", lambda: None, TypeError, "got NoneType"),
                               ("int", lambda: 3, TypeError, "got int"),
                               ("empty", lambda: [], ValueError, "empty parameter list"),
                               ("array", lambda: [np.ones(3)], TypeError, "expected Parameters, got ndarray"),
                               ("one-parameter", lambda: nn.Parameter(np.ones(2)), TypeError, "single Parameter"))],
    case("SGD-nesterov-without-momentum", lambda: optim.SGD(_params(), lr=0.1, nesterov=True), ValueError,
         "nesterov=True needs momentum > 0"),
    case("SGD-duplicate-parameter", lambda: (lambda p: optim.SGD([p, p], lr=0.1))(nn.Parameter(np.ones(2))),
         ValueError, "appears more than once"),
    case("SGD-unknown-group-key", lambda: optim.SGD([{"params": _params(), "lrate": 1}], lr=0.1), ValueError,
         "unknown hyperparameter(s) ['lrate']"),
    case("SGD-group-without-params", lambda: optim.SGD([{"lr": 0.1}], lr=0.1), TypeError, "'params' key"),
    case("SGD-step-grad-shape", _replaced_grad(np.ones((1, 2))), ValueError, "SGD.step: parameter #1"),
    case("SGD-step-grad-dtype", _replaced_grad(np.ones((2, 2), np.float32)), TypeError, "its .grad is float32"),
    case("SGD-step-grad-list", _replaced_grad([[1.0, 1.0], [1.0, 1.0]]), TypeError, "its .grad is list"),
    case("SGD-step-grad-None", _replaced_grad(None), TypeError, "its .grad is NoneType"),
    case("SGD-load-int", lambda: _sgd().load_state_dict(3), TypeError, "SGD.load_state_dict expected a dict"),
    case("SGD-load-Adam", lambda: _sgd().load_state_dict(optim.Adam(_params()).state_dict()), ValueError,
         "optimizer type: expected 'SGD', got 'Adam'"),
    case("SGD-load-groups", lambda: _sgd().load_state_dict({"type": np.array("SGD")}), ValueError,
         "parameter group(s)"),
    case("SGD-load-nan-lr", lambda: _sgd().load_state_dict({**_sgd().state_dict(), "param_groups.0.lr": np.nan}),
         ValueError, "a finite lr"),
    *[case(f"clip-{what}", lambda f=f: f(), e, frag) for what, f, e, frag in (
        ("module", lambda: optim.clip_grad_norm(nn.Linear(2, 2, rng=0), 1.0), TypeError, "got a Module"),
        ("arrays", lambda: optim.clip_grad_norm([np.ones(2)], 1.0), TypeError, "expected Parameters"),
        ("max_norm-0", lambda: optim.clip_grad_norm(_params(), 0), ValueError, "clip_grad_norm expected max_norm > 0"),
        ("max_norm-nan", lambda: optim.clip_grad_norm(_params(), NAN), ValueError, "a finite max_norm"),
        ("max_norm-str", lambda: optim.clip_grad_norm(_params(), "1"), TypeError, "max_norm"),
        ("norm_type-0", lambda: optim.clip_grad_norm(_params(), 1.0, norm_type=0), ValueError, "norm_type > 0"),
        ("norm_type-nan", lambda: optim.clip_grad_norm(_params(), 1.0, norm_type=NAN), ValueError, "norm_type"),
        ("nonfinite", lambda: optim.clip_grad_norm(_nan_grads(), 1.0, error_if_nonfinite=True),
         FloatingPointError, "total gradient norm is nan"))],
]

SCHEDULES = [
    *[case(f"{cls.__name__}-{kw}", lambda cls=cls, kw=kw: cls(_sgd(), **kw), e, f"{cls.__name__} expected")
      for cls, kw, e in (
          (optim.StepLR, dict(step_size=0), ValueError), (optim.StepLR, dict(step_size=1.5), TypeError),
          (optim.StepLR, dict(step_size=NAN), TypeError), (optim.StepLR, dict(step_size=2, gamma=0), ValueError),
          (optim.StepLR, dict(step_size=2, gamma=NAN), ValueError), (optim.StepLR, dict(step_size=2, gamma="x"),
                                                                     TypeError),
          (optim.StepLR, dict(step_size=2, last_epoch=-2), ValueError), (optim.ExponentialLR, dict(gamma=-1),
                                                                         ValueError),
          (optim.ExponentialLR, dict(gamma=INF), ValueError), (optim.CosineAnnealingLR, dict(T_max=0), ValueError),
          (optim.CosineAnnealingLR, dict(T_max=5, eta_min=-1.0), ValueError),
          (optim.CosineAnnealingLR, dict(T_max=5, eta_min=NAN), ValueError),
          (optim.LinearLR, dict(start_factor=0), ValueError), (optim.LinearLR, dict(start_factor=1.5), ValueError),
          (optim.LinearLR, dict(start_factor=NAN), ValueError), (optim.LinearLR, dict(end_factor=2.0), ValueError),
          (optim.LinearLR, dict(total_iters=0), ValueError), (optim.LinearWarmup, dict(warmup_epochs=0), ValueError),
          (optim.LinearWarmup, dict(warmup_epochs=2, start_factor=1.0), ValueError),
          (optim.LinearWarmup, dict(warmup_epochs=2, start_factor=NAN), ValueError))],
    case("StepLR-not-an-optimizer", lambda: optim.StepLR(3, step_size=1), TypeError, "StepLR expected an optimizer"),
    case("LinearWarmup-after-other-optimizer", lambda: optim.LinearWarmup(
        _sgd(), 2, after=optim.CosineAnnealingLR(_sgd(), T_max=2)), ValueError, "same optimizer"),
    case("StepLR-load-bad", lambda: optim.StepLR(_sgd(), step_size=1).load_state_dict({"a": 1}), ValueError,
         "StepLR.load_state_dict expected"),
]

CALLBACKS = [
    *[case(f"EarlyStopping-{kw}", lambda kw=kw: nn.EarlyStopping(**kw), e, "EarlyStopping expected")
      for kw, e in ((dict(patience=-1), ValueError), (dict(patience=1.5), TypeError), (dict(patience=NAN), TypeError),
                    (dict(min_delta=NAN), ValueError), (dict(min_delta=INF), ValueError),
                    (dict(min_delta="0"), TypeError), (dict(baseline=NAN), ValueError), (dict(mode="up"), ValueError),
                    (dict(monitor=3), TypeError), (dict(monitor=""), TypeError))],
    *[case(f"ModelCheckpoint-{what}", lambda kw=kw: nn.ModelCheckpoint(**kw), e, frag)
      for what, kw, e, frag in (("empty", dict(path=""), TypeError, "non-empty file name"),
                                ("None", dict(path=None), TypeError, "ModelCheckpoint expected path"),
                                ("int", dict(path=3), TypeError, "ModelCheckpoint expected path"),
                                ("unclosed", dict(path="m-{epoch"), ValueError, "is malformed"),
                                ("positional", dict(path="m-{}.npz"), ValueError, "positional field"),
                                ("numbered", dict(path="m-{0}.npz"), ValueError, "positional field"),
                                ("mode", dict(path="m.npz", mode="best"), ValueError, "expected mode"))],
    case("ProgressBar-min_interval", lambda: nn.ProgressBar(min_interval=-1), ValueError, "ProgressBar expected"),
    case("ProgressBar-nan", lambda: nn.ProgressBar(min_interval=NAN), ValueError, "ProgressBar expected a finite"),
    case("ProgressBar-file", lambda: nn.ProgressBar(file=3), TypeError, "ProgressBar expected file"),
    case("LambdaCallback-typo", lambda: nn.LambdaCallback(on_epoch_ed=print), TypeError, "on_epoch_ed"),
    case("LambdaCallback-not-callable", lambda: nn.LambdaCallback(on_epoch_end=3), TypeError, "LambdaCallback"),
]


def _model(seed=0):
    return nn.Sequential(nn.Linear(3, 4, rng=seed), nn.Tanh(), nn.Linear(4, 1, rng=seed + 1))


def _fit(x=X, y=Y, *, model=None, loss=None, optimizer=None, **kwargs):
    model = _model() if model is None else model
    opt = optim.SGD(model.parameters(), lr=0.1) if optimizer is None else optimizer
    kwargs = {"epochs": 1, "batch_size": 4, "verbose": 0, **kwargs}
    return nn.fit(model, nn.MSELoss() if loss is None else loss, opt, x, y, **kwargs)


FIT = [
    *[case(f"fit-{k}={v!r}", lambda k=k, v=v: _fit(**{k: v}), e, k, "fit expected")
      for k, v, e in (("batch_size", 0, ValueError), ("batch_size", -4, ValueError), ("batch_size", 2.5, TypeError),
                      ("batch_size", True, TypeError), ("batch_size", None, TypeError), ("epochs", 0, ValueError),
                      ("epochs", 1.5, TypeError), ("epochs", NAN, TypeError), ("initial_epoch", -1, ValueError),
                      ("verbose", 3, ValueError), ("verbose", True, ValueError), ("clip_grad_norm", 0, ValueError),
                      ("clip_grad_norm", NAN, ValueError), ("clip_grad_norm", "1", TypeError),
                      ("validation_split", 0, ValueError), ("validation_split", 1.0, ValueError),
                      ("validation_split", 1.5, ValueError), ("validation_split", NAN, ValueError),
                      ("validation_split", "0.2", TypeError))],
    case("fit-initial-after-epochs", lambda: _fit(epochs=2, initial_epoch=3), ValueError, "initial_epoch <= epochs"),
    case("fit-split-leaves-nothing", lambda: _fit(validation_split=0.99), ValueError, "leaves no training data"),
    case("fit-split-and-data", lambda: _fit(validation_split=0.2, validation_data=(X, Y)), ValueError, "not both"),
    case("fit-validation-data-shape", lambda: _fit(validation_data=(X,)), ValueError, "validation_data=(x_val, y_val)"),
    case("fit-validation-data-nan", lambda: _fit(validation_data=(np.full((2, 3), NAN), Y[:2])), FloatingPointError,
         "fit got a non-finite x_val"),
    case("fit-x-list", lambda: _fit(x=X.tolist()), TypeError, "fit expected x to be a numpy.ndarray"),
    case("fit-y-rows", lambda: _fit(y=Y[:5]), ValueError, "same number of samples, got 12 and 5"),
    case("fit-empty", lambda: _fit(x=X[:0], y=Y[:0]), ValueError, "fit got empty data"),
    case("fit-x-nan", lambda: _fit(x=np.full_like(X, NAN)), FloatingPointError, "fit got a non-finite x"),
    case("fit-x-strings", lambda: _fit(x=np.full((12, 3), "a")), TypeError, "fit expected a numeric x"),
    case("fit-model-int", lambda: _fit(model=3, optimizer=_sgd()), TypeError, "fit expected model to be a nanonet"),
    case("fit-model-class", lambda: _fit(model=nn.Linear, optimizer=_sgd()), TypeError, "got the class Linear"),
    case("fit-loss-class", lambda: _fit(loss=nn.MSELoss), TypeError, "got the class MSELoss"),
    case("fit-loss-function", lambda: _fit(loss=np.mean), TypeError, "fit expected loss_fn to be a Loss"),
    case("fit-optimizer-class", lambda: _fit(optimizer=optim.Adam), TypeError, "got the class Adam"),
    case("fit-optimizer-int", lambda: _fit(optimizer=3), TypeError, "fit expected an optimizer"),
    case("fit-foreign-optimizer", lambda: _fit(optimizer=optim.SGD(_model(5).parameters(), lr=0.1)), ValueError,
         "are not parameters of Sequential"),
    case("fit-callbacks-int", lambda: _fit(callbacks=3), TypeError, "fit expected callbacks to be a list"),
    case("fit-callback-class", lambda: _fit(callbacks=[nn.EarlyStopping]), TypeError, "got the class EarlyStopping"),
    case("fit-callback-object", lambda: _fit(callbacks=[object()]), TypeError, "at least one of"),
    case("fit-metrics", lambda: _fit(metrics=[3]), TypeError, "fit expected metrics to be names or callables"),
    case("fit-metric-name", lambda: _fit(metrics={"loss": np.mean}), ValueError, "may not be called 'loss'"),
    case("fit-rng", lambda: _fit(rng=-1), ValueError, "rng must be an int seed >= 0"),
    case("fit-early-stopping-monitor", lambda: _fit(callbacks=[nn.EarlyStopping()]), ValueError,
         "EarlyStopping monitors 'val_loss', but fit logs only ['loss']"),
    case("fit-checkpoint-field", lambda: _fit(callbacks=[nn.ModelCheckpoint("m-{val_loss}.npz")]), ValueError,
         "uses ['val_loss'], which fit does not log"),
    case("fit-checkpoint-folder", lambda: _fit(callbacks=[nn.ModelCheckpoint("/no/such/dir/m-{epoch}.npz")]),
         FileNotFoundError, "does not exist"),
    case("evaluate-model", lambda: nn.evaluate(3, nn.MSELoss(), X, Y), TypeError, "evaluate expected model"),
    case("evaluate-loss-class", lambda: nn.evaluate(_model(), nn.MSELoss, X, Y), TypeError, "evaluate expected loss"),
    case("evaluate-batch_size", lambda: nn.evaluate(_model(), nn.MSELoss(), X, Y, batch_size=0), ValueError,
         "evaluate expected batch_size"),
    case("evaluate-rows", lambda: nn.evaluate(_model(), nn.MSELoss(), X, Y[:3]), ValueError, "same number of samples"),
    case("batches-batch_size", lambda: list(nn.batches(X, Y, 0)), ValueError, "batches expected batch_size"),
    case("batches-x", lambda: list(nn.batches(X.tolist(), Y, 2)), TypeError, "batches expected x"),
    case("batches-0d", lambda: list(nn.batches(np.array(1.0), Y, 2)), ValueError, "first (sample) axis"),
    case("batches-rng", lambda: list(nn.batches(X, Y, 2, rng="seed")), TypeError, "rng must be"),
]


def _saved(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(path, _model())
    return path


IO = [  # each call gets tmp_path
    case("save-empty-path", lambda p: nn.save("", _model()), ValueError, "nn.save got an empty path"),
    case("save-path-int", lambda p: nn.save(3, _model()), TypeError, "nn.save expected path"),
    case("save-folder", lambda p: nn.save(p, _model()), IsADirectoryError, "is a folder"),
    case("save-missing-folder", lambda p: nn.save(p / "a" / "m.npz", _model()), FileNotFoundError, "does not exist"),
    case("save-non-model", lambda p: nn.save(p / "m.npz", {"w": np.ones(2)}), TypeError, "nanonet Module"),
    case("save-model-class", lambda p: nn.save(p / "m.npz", nn.Linear), TypeError, "got the class Linear"),
    case("save-optimizer", lambda p: nn.save(p / "m.npz", _model(), "adam"), TypeError, "expected optimizer"),
    case("save-meta", lambda p: nn.save(p / "m.npz", _model(), when=object()), TypeError, "JSON-serializable"),
    case("save-meta-bytes", lambda p: nn.save(p / "m.npz", _model(), blob=b"x"), TypeError, "JSON-serializable"),
    case("load-empty-path", lambda p: nn.load("", _model()), ValueError, "nn.load got an empty path"),
    case("load-missing", lambda p: nn.load(p / "x.npz", _model()), FileNotFoundError, "there is no file"),
    case("load-folder", lambda p: nn.load(p, _model()), IsADirectoryError, "is a folder"),
    case("load-non-model", lambda p: nn.load(_saved(p), "model"), TypeError, "nn.load expected model"),
    case("load-optimizer", lambda p: nn.load(_saved(p), _model(), 3), TypeError, "nn.load expected optimizer"),
    case("load-other-model", lambda p: nn.load(_saved(p), nn.Linear(3, 1, rng=0)), ValueError, "mismatch(es)"),
    case("load-no-optimizer-state", lambda p: (lambda m: nn.load(_saved(p), m, optim.SGD(m.parameters(), lr=0.1)))(
        _model()), ValueError, "holds no optimizer state"),
    case("load-text-file", lambda p: (p.joinpath("t.npz").write_text("hello"), nn.load(p / "t.npz", _model())),
         ValueError, "not a nanonet checkpoint"),
    case("load-pickle", lambda p: (p.joinpath("t.pkl").write_bytes(b"\x80\x04K\x01."), nn.load(p / "t.pkl",
                                                                                              _model())),
         ValueError, "looks like a pickle file"),
]


@pytest.mark.parametrize("call, error, fragment, who", OPTIM + SCHEDULES + CALLBACKS + FIT)
def test_training_api(call, error, fragment, who):
    run_case(call, error, fragment, who)


@pytest.mark.parametrize("call, error, fragment, who", IO)
def test_save_and_load(tmp_path, call, error, fragment, who):
    run_case(lambda: call(tmp_path), error, fragment, who)


CLI = [  # (argv, exit status, fragment of the one line on stderr)
    (["gradcheck", "no_such_module_xyz:f", "--input-shape", "4,3"], 2, "there is no module 'no_such_module_xyz'"),
    (["gradcheck", "nanonet:Linear", "--input-shape", "4,3"], 2, "needs argument(s) in_features, out_features"),
    (["gradcheck", "nanonet:__version__", "--input-shape", "4,3"], 2, "is of type str, not a layer"),
    (["gradcheck", "nanonet:nope", "--input-shape", "4,3"], 2, "has no attribute 'nope'"),
    (["gradcheck", "nanonet", "--input-shape", "4,3"], 2, "expected MODULE:NAME"),
    (["gradcheck", "nanonet:Tanh", "--input-shape", "4,x"], 2, "--input-shape expected positive integers"),
    (["gradcheck", "nanonet:Tanh", "--input-shape", "0"], 2, "--input-shape expected positive integers"),
    (["gradcheck", "nanonet:Tanh", "--input-shape", "4,3", "--seed", "-2"], 2, "--seed expected an int >= 0"),
    (["gradcheck", "nanonet:Tanh", "--input-shape", "4,3", "--expected-failure", "x"], 2, "invalid choice: 'x'"),
    (["gradcheck", "nanonet:Tanh"], 2, "the following arguments are required: --input-shape"),
    (["demo", "--hidden", "x"], 2, "--hidden expects comma-separated positive ints"),
    (["demo", "--hidden", "64,-1"], 2, "--hidden expects comma-separated positive ints"),
    (["demo", "--lr", "nan"], 2, "--lr must be a finite number > 0, got nan"),
    (["demo", "--lr=-inf"], 2, "--lr must be a finite number > 0"),
    (["demo", "--lr", "0"], 2, "--lr must be a finite number > 0, got 0.0"),
    (["demo", "--lr", "quick"], 2, "argument --lr: invalid float value"),
    (["demo", "--seed", "-7"], 2, "--seed must be an int >= 0, got -7"),
    (["demo", "--seed", "abc"], 2, "argument --seed: invalid int value"),
    (["demo", "--epochs", "-1"], 2, "--epochs must be at least 1"),
    (["demo", "--optimizer", "lbfgs"], 2, "invalid choice: 'lbfgs'"),
    (["bench", "--repeats", "0"], 1, "--repeats must be at least 1"),
    (["bench", "--only", "nothing"], 1, "unknown part ['nothing']"),
    (["bench", "--peers", "tensorflow"], 1, "unknown peer ['tensorflow']"),
    (["bench", "--from-json", "/no/such/file.json"], 1, "cannot read results from /no/such/file.json"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ([], 2, "the following arguments are required: command"),
]


@pytest.mark.parametrize("argv, status, fragment", CLI, ids=[" ".join(a) or "no-command" for a, _, _ in CLI])
def test_cli_commands(capsys, monkeypatch, argv, status, fragment):
    monkeypatch.setattr(sys, "argv", ["nanonet"])
    try:
        code = cli_main(argv)
    except SystemExit as exc:  # argparse's usage errors and the commands' SystemExit(message)
        code = exc.code if isinstance(exc.code, int) else (print(exc.code, file=sys.stderr) or 1)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == status, captured.err
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


def test_part_two_is_counted():
    assert len(OPTIM + SCHEDULES + CALLBACKS + FIT + IO + CLI) >= 200
