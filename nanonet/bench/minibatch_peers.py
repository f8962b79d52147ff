"""nanonet, PyTorch, JAX and scikit-learn peers of the mini-batch family.

Every factory takes a :class:`~nanonet.bench.minibatch_problem.MiniProblem`
and returns ``epoch()``, one epoch of the problem's shuffled mini-batches.

- ``nanonet-fit``: ``nn.fit(..., epochs=4, batch_size=B, verbose=0, rng=gen)``,
  the step exactly as fit runs it (its per-call set-up spread over the
  4 epochs' batches, as a real run spreads it over more);
- ``nanonet-loop``: the bare loop a user writes: ``nn.batches``,
  ``optimizer.zero_grad()``, ``loss_fn(model(xb), yb)``,
  ``model.backward(loss_fn.backward(), input_grad=False)``, ``optimizer.step()``;
- ``nanonet-graph``: ``nanonet-fit`` with the mlp built as a ``Graph`` (the
  same layers), to compare the two containers;
- ``torch``: eager ``torch.nn`` modules, ``torch.optim``, the usual loop;
- ``jax``: the whole step (gather, forward, loss, gradients, optimizer)
  under one ``jax.jit``;
- ``sklearn``: ``MLPClassifier`` / ``MLPRegressor`` ``partial_fit`` per batch (mlp only).
"""

import inspect

import numpy as np

from .minibatch_problem import BETAS, DROPOUT, EPS, HIDDEN, MOMENTUM, N_IN, N_OUT
from .peers import PeerUnavailable, blas_threads, import_optional


# -- nanonet -----------------------------------------------------------------------------------
def build_model(nn, problem, as_graph=False):
    """The configuration's model in nanonet module ``nn``, holding the problem's initial weights."""
    cfg, dt = problem.config, problem.dtype
    if cfg.model == "mlp":
        layers = [nn.Linear(N_IN, HIDDEN, dtype=dt, rng=0), nn.ReLU(), nn.Linear(HIDDEN, N_OUT, dtype=dt, rng=0)]
        if as_graph:
            x = nn.Input(N_IN)
            model = nn.Graph(x, layers[2](layers[1](layers[0](x))))
        else:
            model = nn.Sequential(*layers)
        owners = [layers[0].weight, layers[0].bias, layers[2].weight, layers[2].bias]
    elif cfg.model == "residual":
        first, second, last = (nn.Linear(a, b, dtype=dt, rng=0) for a, b in
                               ((N_IN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, N_OUT)))
        x = nn.Input(N_IN)
        h = nn.ReLU()(first(x))
        model = nn.Graph(x, last(nn.Add()(h, nn.ReLU()(second(h)))))
        owners = [first.weight, first.bias, second.weight, second.bias, last.weight, last.bias]
    else:
        first, norm, last = (nn.Linear(N_IN, HIDDEN, dtype=dt, rng=0), nn.LayerNorm(HIDDEN, dtype=dt),
                             nn.Linear(HIDDEN, N_OUT, dtype=dt, rng=0))
        model = nn.Sequential(first, norm, nn.GELU(), nn.Dropout(DROPOUT, rng=problem.seed + 1), last)
        owners = [first.weight, first.bias, norm.weight, norm.bias, last.weight, last.bias]
    for param, value in zip(owners, problem.params):
        param.value[...] = value
    return model, owners


def _optimizer(nn, problem, params):
    if problem.config.optimizer == "sgd":
        return nn.optim.SGD(params, lr=problem.lr, momentum=MOMENTUM)
    return nn.optim.Adam(params, lr=problem.lr, betas=BETAS, eps=EPS)


def _loss(nn, problem):
    return nn.CrossEntropyLoss() if problem.config.loss == "ce" else nn.MSELoss()


FIT_EPOCHS = 4  # epochs per fit call: fit's once-per-call work (checking the data...) weighs as in a real run


def make_fit(problem, nn=None, as_graph=False, epochs=FIT_EPOCHS):
    """``nn.fit`` for ``epochs`` epochs per call (``epoch.batches`` says how many batches that is)."""
    if nn is None:
        import nanonet as nn
    model, owners = build_model(nn, problem, as_graph)
    opt, loss_fn = _optimizer(nn, problem, model.parameters()), _loss(nn, problem)
    shuffle = np.random.default_rng(problem.seed)
    x, y, b = problem.x, problem.y, problem.config.batch

    def epoch():
        nn.fit(model, loss_fn, opt, x, y, epochs=epochs, batch_size=b, verbose=0, rng=shuffle)

    epoch.params = lambda: [p.value for p in owners]
    epoch.batches = epochs * problem.batches_per_call()
    return epoch


def make_graph(problem, nn=None):
    if problem.config.model != "mlp":
        raise PeerUnavailable("nanonet-graph is the mlp built as a Graph; the other models have their own")
    return make_fit(problem, nn, as_graph=True)


def make_loop(problem, nn=None):
    """The bare training loop a user writes by hand."""
    if nn is None:
        import nanonet as nn
    model, owners = build_model(nn, problem)
    opt, loss_fn = _optimizer(nn, problem, model.parameters()), _loss(nn, problem)
    shuffle = np.random.default_rng(problem.seed)
    x, y, b = problem.x, problem.y, problem.config.batch
    skip_input = "input_grad" in inspect.signature(model.backward).parameters

    def epoch():
        for xb, yb in nn.batches(x, y, b, rng=shuffle):
            opt.zero_grad()
            loss_fn(model(xb), yb)
            if skip_input:
                model.backward(loss_fn.backward(), input_grad=False)
            else:
                model.backward(loss_fn.backward())
            opt.step()

    epoch.params = lambda: [p.value for p in owners]
    return epoch


# -- torch --------------------------------------------------------------------------------------
def make_torch(problem):
    torch = import_optional("torch")
    torch.set_num_threads(blas_threads())
    cfg = problem.config
    tdt = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[problem.dtype]
    nn_, F = torch.nn, torch.nn.functional
    w = [torch.tensor(a.T if a.ndim == 2 else a, dtype=tdt) for a in problem.params]

    def linear(a, b, weight, bias):
        layer = nn_.Linear(a, b, dtype=tdt)
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        return layer

    if cfg.model == "mlp":
        model = nn_.Sequential(linear(N_IN, HIDDEN, w[0], w[1]), nn_.ReLU(), linear(HIDDEN, N_OUT, w[2], w[3]))
    elif cfg.model == "residual":
        first, second, last = linear(N_IN, HIDDEN, w[0], w[1]), linear(HIDDEN, HIDDEN, w[2], w[3]), \
            linear(HIDDEN, N_OUT, w[4], w[5])

        def model(xb):
            h = torch.relu(first(xb))
            return last(h + torch.relu(second(h)))

        model.parameters = lambda: [*first.parameters(), *second.parameters(), *last.parameters()]
    else:
        norm = nn_.LayerNorm(HIDDEN, dtype=tdt)
        with torch.no_grad():
            norm.weight.copy_(w[2])
            norm.bias.copy_(w[3])
        model = nn_.Sequential(linear(N_IN, HIDDEN, w[0], w[1]), norm, nn_.GELU(), nn_.Dropout(DROPOUT),
                               linear(HIDDEN, N_OUT, w[4], w[5]))
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=problem.lr, momentum=MOMENTUM)
    else:
        opt = torch.optim.Adam(params, lr=problem.lr, betas=BETAS, eps=EPS)
    loss_fn = F.cross_entropy if cfg.loss == "ce" else F.mse_loss
    x, y = torch.from_numpy(problem.x), torch.from_numpy(problem.y)
    shuffle, b = np.random.default_rng(problem.seed), cfg.batch

    def epoch():
        order = torch.from_numpy(shuffle.permutation(len(x)))
        for start in range(0, len(x), b):
            idx = order[start:start + b]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()

    return epoch


# -- JAX ----------------------------------------------------------------------------------------
def make_jax(problem):
    jax = import_optional("jax")
    jnp = import_optional("jax.numpy")
    jax.config.update("jax_enable_x64", True)
    cfg, dt, lr = problem.config, problem.dtype, problem.lr

    def forward(p, xb, key):
        h = jax.nn.relu(xb @ p[0] + p[1])
        if cfg.model == "mlp":
            return h @ p[2] + p[3]
        if cfg.model == "residual":
            return (h + jax.nn.relu(h @ p[2] + p[3])) @ p[4] + p[5]
        z = xb @ p[0] + p[1]
        c = z - z.mean(axis=1, keepdims=True)
        ln = c / jnp.sqrt((c * c).mean(axis=1, keepdims=True) + 1e-5) * p[2] + p[3]
        keep = jax.random.bernoulli(key, 1 - DROPOUT, ln.shape)
        d = jnp.where(keep, jax.nn.gelu(ln, approximate=False) / (1 - DROPOUT), 0)
        return d @ p[4] + p[5]

    def loss(p, xb, yb, key):
        out = forward(p, xb, key)
        if cfg.loss == "mse":
            return jnp.mean((out - yb) ** 2)
        logp = jax.nn.log_softmax(out)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(p, state, xall, yall, idx, key):
        grads = jax.grad(loss)(p, xall[idx], yall[idx], key)
        if cfg.optimizer == "sgd":
            state = [MOMENTUM * s + g for s, g in zip(state, grads)]
            return [q - lr * s for q, s in zip(p, state)], state
        (b1, b2), (m, v, t) = BETAS, state
        t = t + 1
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        size = lr / (1 - b1 ** t)
        root = jnp.sqrt(1 - b2 ** t)
        return [q - size * mi / (jnp.sqrt(vi) / root + EPS) for q, mi, vi in zip(p, m, v)], (m, v, t)

    jitted = jax.jit(step, donate_argnums=(0, 1))
    params = [jnp.asarray(a) for a in problem.params]
    if params[0].dtype != dt:
        raise PeerUnavailable(f"jax gave {params[0].dtype} for {dt}")
    zeros = [jnp.zeros_like(a) for a in params]
    holder = {"p": params, "s": zeros if cfg.optimizer == "sgd" else
              (zeros, [jnp.zeros_like(a) for a in params], jnp.asarray(0, dt))}
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)
    shuffle, key, b = np.random.default_rng(problem.seed), jax.random.PRNGKey(problem.seed), cfg.batch

    def epoch():
        order = shuffle.permutation(len(problem.x))
        for k, start in enumerate(range(0, len(order), b)):
            holder["p"], holder["s"] = jitted(holder["p"], holder["s"], x, y, order[start:start + b],
                                              jax.random.fold_in(key, k))
        jax.block_until_ready(holder["p"])

    return epoch


# -- scikit-learn ------------------------------------------------------------------------------
def make_sklearn(problem):
    cfg = problem.config
    if cfg.model != "mlp":
        raise PeerUnavailable("scikit-learn's MLP has no residual or LayerNorm model")
    neural = import_optional("sklearn.neural_network")
    cls = neural.MLPClassifier if cfg.loss == "ce" else neural.MLPRegressor
    est = cls(hidden_layer_sizes=(HIDDEN,), activation="relu", solver=cfg.optimizer, alpha=0.0,
              batch_size=cfg.batch, learning_rate_init=problem.lr, momentum=MOMENTUM, nesterovs_momentum=False,
              beta_1=BETAS[0], beta_2=BETAS[1], epsilon=EPS, shuffle=False, random_state=0)
    x, y, b = problem.x, problem.y, cfg.batch
    if cfg.loss == "ce":
        est.partial_fit(x[:b], y[:b], classes=np.arange(N_OUT))
    else:
        est.partial_fit(x[:b], y[:b])
    for target, value in zip(est.coefs_ + est.intercepts_, problem.params[0::2] + problem.params[1::2]):
        if target.shape != value.shape or target.dtype != value.dtype:
            raise PeerUnavailable(f"sklearn made {target.dtype}{target.shape}, expected {value.dtype}{value.shape}")
        target[...] = value
    shuffle = np.random.default_rng(problem.seed)

    def epoch():
        order = shuffle.permutation(len(x))
        for start in range(0, len(x), b):
            idx = order[start:start + b]
            est.partial_fit(x[idx], y[idx])

    return epoch
