"""``nanonet demo text``: a character-level language model of Shakespeare, trained by hand-written backprop.

The text (``nanonet.datasets.load_text``, shipped with the package) is split
90/10 into training and validation text. The model reads ``context``
characters and predicts each next one: a small causal Transformer by
default (token and position embeddings, pre-norm encoder layers, a linear
head), or an LSTM with ``--model lstm``. The demo prints the model summary,
a gradient-check table of the model, the training and validation loss in
bits per character (with a progress bar), the unigram baseline (the
character frequencies of the training text), and a sample generated from
``--prompt``.

Generation uses a cached forward step: the Transformer keeps every layer's
keys and values (``TransformerEncoder.step``), the LSTM its states, so each
new character costs one position, not a pass over the whole prefix.
"""

import math
import sys
import time

import numpy as np

import nanonet as nn
from nanonet import _demo_options as options
from nanonet._rng import as_generator
from nanonet.datasets import load_text
from nanonet.losses import CrossEntropyLoss, Loss

LN2 = math.log(2)
MAX_CONTEXT = 2048  # windows must fit many times into the validation text (about 25,000 characters)


class Vocabulary:
    """The distinct characters of a text, and the maps between characters and indices."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary of the training text")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, indices):
        return "".join(self.chars[i] for i in indices)


class BitsPerCharacter(Loss):
    """Cross-entropy of logits ``(N, T, V)`` against next characters ``(N, T)``, in bits: the mean over N * T.

    ``CrossEntropyLoss`` (in nats) divided by ln 2, so that the training log,
    the progress bar and the baseline all speak bits per character.
    """

    def __init__(self):
        super().__init__("mean")
        self._ce = CrossEntropyLoss()
        self._shape = None

    def forward(self, pred, target):
        self._shape = pred.shape
        return self._ce.forward(pred.reshape(-1, pred.shape[-1]), target.reshape(-1)) / LN2

    def backward(self, grad=1.0):
        return self._ce.backward(grad / LN2).reshape(self._shape)


class CharTransformer(nn.Module):
    """Token + position embeddings -> causal pre-norm TransformerEncoder -> Linear head to the vocabulary.

    Shape:
        - x: ``(N, T)`` character indices, ``T <= context`` -> logits ``(N, T, vocab)``
    """

    input_kinds = "iu"

    def __init__(self, vocab, context, d_model=64, nhead=4, num_layers=2, dim_feedforward=256, rng=None,
                 dtype=np.float32):
        gen = as_generator(rng)
        self.context = context
        self.tok = nn.Embedding(vocab, d_model, rng=gen, dtype=dtype)
        self.pos = nn.Embedding(context, d_model, rng=gen, dtype=dtype)
        for emb in (self.tok, self.pos):
            emb.weight.value *= 0.1  # small embeddings: the residual stream starts near zero
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0, batch_first=True,
                                           norm_first=True, rng=gen, dtype=dtype)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model, dtype=dtype), rng=gen)
        self.head = nn.Linear(d_model, vocab, rng=gen, dtype=dtype, init="glorot")

    def forward(self, x):
        steps = x.shape[1]
        h = self.tok.forward(x) + self.pos.forward(np.arange(steps))
        return self.head.forward(self.encoder.forward(h, is_causal=True))

    def backward(self, grad_out):
        g = self.encoder.backward(self.head.backward(grad_out))
        self.pos.backward(g.sum(axis=0))
        return self.tok.backward(g)

    def start(self, prompt):
        """Cached generation: state for ``prompt`` (N, T) and the logits of its last position."""
        state = {"caches": [], "length": prompt.shape[1]}
        h = self.tok.forward(prompt) + self.pos.forward(np.arange(prompt.shape[1]))
        return state, self.head.forward(self.encoder.step(h, state["caches"]))[:, -1]

    def advance(self, state, token, history):
        """One new character (N,) -> the next logits; re-primes on the last half when the context is full."""
        if state["length"] == self.context:
            return self.start(history[:, -(self.context // 2):])
        h = self.tok.forward(token[:, None]) + self.pos.forward(np.array([state["length"]]))
        state["length"] += 1
        return state, self.head.forward(self.encoder.step(h, state["caches"]))[:, -1]

    def extra_repr(self):
        return f"context={self.context}"


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear head; generation carries the LSTM's states.

    The LSTM returns its final states (``return_state=True``): training
    ignores them (their gradient is None), generation feeds them back.

    Shape:
        - x: ``(N, T)`` character indices -> logits ``(N, T, vocab)``
    """

    input_kinds = "iu"

    def __init__(self, vocab, embed=64, hidden=256, num_layers=1, rng=None, dtype=np.float32):
        gen = as_generator(rng)
        self.tok = nn.Embedding(vocab, embed, rng=gen, dtype=dtype)
        self.lstm = nn.LSTM(embed, hidden, num_layers=num_layers, batch_first=True, return_state=True, rng=gen,
                            dtype=dtype)
        self.head = nn.Linear(hidden, vocab, rng=gen, dtype=dtype, init="glorot")

    def forward(self, x):
        out, _, _ = self.lstm.forward(self.tok.forward(x))
        return self.head.forward(out)

    def backward(self, grad_out):
        return self.tok.backward(self.lstm.backward((self.head.backward(grad_out), None, None)))

    def _run(self, tokens, states):
        out, h, c = self.lstm.forward(self.tok.forward(tokens), *states)
        return (h, c), self.head.forward(out[:, -1])

    def start(self, prompt):
        return self._run(prompt, ())

    def advance(self, state, token, history):
        return self._run(token[:, None], state)


def unigram_bits(train, val, vocab_size):
    """Bits per character of ``val`` under the character frequencies of ``train`` (add-one smoothing)."""
    counts = np.bincount(train, minlength=vocab_size) + 1.0
    return float(-np.log2(counts[val] / counts.sum()).mean())


def windows(data, context, stride):
    """``(x, y)``: windows of ``context`` characters and the next character of each position."""
    starts = np.arange(0, len(data) - context - 1, stride)
    idx = starts[:, None] + np.arange(context + 1)
    chunks = data[idx]
    return chunks[:, :-1], chunks[:, 1:]


def sample(model, vocab, prompt, length, temperature, rng):
    """``prompt`` followed by ``length`` characters drawn from the model (cached steps)."""
    gen = np.random.default_rng(rng)
    tokens = vocab.encode(prompt)[None, :]
    if isinstance(model, CharTransformer):
        tokens = tokens[:, -model.context:]
    model.eval()
    state, logits = model.start(tokens)
    out = list(tokens[0])
    for _ in range(length):
        z = logits[0].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        nxt = int(gen.choice(len(p), p=p / p.sum()))
        out.append(nxt)
        state, logits = model.advance(state, np.array([nxt]), np.array([out]))
    return vocab.decode(out)


def build(kind, vocab_size, context, seed):
    if kind == "lstm":
        return CharLSTM(vocab_size, rng=seed)
    return CharTransformer(vocab_size, context, rng=seed)


def run(model="transformer", epochs=3, context=64, batch_size=32, train_chars=None, lr=None, seed=0,
        prompt="ROMEO:", length=300, temperature=0.8, verbose=1, out=print):
    """Train and sample; returns ``(report, history, val_bits, unigram)`` (bits per character)."""
    text = load_text()
    vocab = Vocabulary(text)
    data = vocab.encode(text)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    if train_chars is not None:
        train = train[:train_chars]
    x, y = windows(train, context, stride=context // 2)
    x_val, y_val = windows(val, context, stride=context)
    net = build(model, len(vocab), context, seed)
    out(f"data: {len(train):,} training and {len(val):,} validation characters, {len(vocab)} distinct; "
        f"{len(x):,} windows of {context}")
    out(f"model: {type(net).__name__} ({net.extra_repr() or model}), float32")
    out(_summary(net))
    report = nn.check_gradients(net, x[:2, :8], y[:2, :8], loss_fn=BitsPerCharacter(), rng=seed, n_directions=4)
    out(str(report))
    baseline = unigram_bits(train, val, len(vocab))
    out(f"unigram baseline (character frequencies): {baseline:.3f} bits per character")
    opt = nn.optim.Adam(net.parameters(), lr=lr or (3e-3 if model == "transformer" else 5e-3))
    bits = nn.LambdaCallback(on_epoch_end=lambda epoch, logs: out(
        f"epoch {epoch + 1}/{epochs}: training {logs['loss']:.3f}, validation {logs['val_loss']:.3f} bits per "
        f"character (unigram baseline {baseline:.3f})"))
    start = time.perf_counter()
    history = nn.fit(net, BitsPerCharacter(), opt, x, y, epochs=epochs, batch_size=batch_size,
                     validation_data=(x_val, y_val), callbacks=[bits], verbose=verbose, rng=seed,
                     clip_grad_norm=1.0)
    val_bits = history.history["val_loss"][-1]
    out(f"trained in {time.perf_counter() - start:.0f} s: validation {val_bits:.3f} bits per character, "
        f"unigram baseline {baseline:.3f} ({baseline - val_bits:+.3f} better)")
    out(f"sample (temperature {temperature}, seed {seed}):\n{sample(net, vocab, prompt, length, temperature, seed)}")
    return report, history, val_bits, baseline


def _summary(net):
    """One row per child: name, type, parameters; and the total."""
    rows = [(name, repr(m) if not m.children() else m.short_repr(), sum(p.size for p in m.parameters()))
            for name, m in net.named_children()]
    width = max(len(r[1]) for r in rows)
    lines = [f"  {'layer':<8} {'module':<{width}} {'params':>9}"]
    lines += [f"  {name:<8} {what:<{width}} {count:>9,}" for name, what, count in rows]
    lines.append(f"  {'total':<8} {'':<{width}} {sum(p.size for p in net.parameters()):>9,}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--model", choices=["transformer", "lstm"], default="transformer",
                        help="a small causal Transformer (default) or an LSTM")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training windows (default 3)")
    parser.add_argument("--context", type=int, default=64, help="characters per training window (default 64)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default 3e-3, lstm 5e-3)")
    parser.add_argument("--prompt", default="ROMEO:", help="text the sample starts from (default ROMEO:)")
    parser.add_argument("--length", type=int, default=300, help="characters to generate (default 300)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, batches and sampling (default 0)")


def check_arguments(args):
    """Check every option; ValueError (one line) for a bad one."""
    for name in ("epochs", "context", "batch_size", "length"):
        options.at_least_one(name, getattr(args, name))
    if not 2 <= args.context <= MAX_CONTEXT:
        raise ValueError(f"--context must be in [2, {MAX_CONTEXT}], got {args.context}")
    if not args.prompt:
        raise ValueError("--prompt must not be empty")
    for name in ("temperature", "lr"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name} must be a positive number, got {value}")
    options.seed(args.seed)
    try:
        Vocabulary(load_text()).encode(args.prompt)
    except ValueError as exc:
        raise ValueError(f"--prompt: {exc}") from None


def main(args):
    """``nanonet demo text``; bad options: one line, exit 2."""
    try:
        check_arguments(args)
    except ValueError as exc:
        print(f"nanonet demo text: {exc}", file=sys.stderr)
        return 2
    report, _, val_bits, baseline = run(args.model, args.epochs, args.context, args.batch_size, lr=args.lr,
                                        seed=args.seed, prompt=args.prompt, length=args.length,
                                        temperature=args.temperature)
    return 0 if report.ok and val_bits < baseline else 1
