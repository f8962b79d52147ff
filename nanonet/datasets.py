"""Built-in synthetic data sets: deterministic, documented, no downloads."""

import numpy as np

from ._checks import check_number
from ._rng import as_generator


def make_regression(n_train=500, n_test=200, n_features=10, *, noise=0.1, rng=0):
    """The demo's regression problem, the stand-in for the seed's data.

    Rows of ``x`` are drawn i.i.d. from ``Normal(0, 1)``. Two unit vectors
    ``u`` and ``v`` are drawn once from the same generator, and

        y = 2 * tanh(x @ u) + (x @ v) ** 2 + noise * Normal(0, 1)

    a smooth non-linear target (a saturating ridge plus a quadratic one) that a
    small ReLU network fits well. The same
    ``rng`` gives bit-identical arrays.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with shapes ``(n_train, n_features)``,
        ``(n_train, 1)``, ``(n_test, n_features)`` and ``(n_test, 1)``, all float64.

    Example:
        >>> x, y, xt, yt = make_regression(rng=0)
        >>> x.shape, y.shape, xt.shape, yt.shape
        ((500, 10), (500, 1), (200, 10), (200, 1))
    """
    n_train = check_number("make_regression", "n_train", n_train, low=1, integer=True)
    n_test = check_number("make_regression", "n_test", n_test, low=0, integer=True)
    n_features = check_number("make_regression", "n_features", n_features, low=1, integer=True)
    noise = check_number("make_regression", "noise", noise, low=0)
    gen = as_generator(rng)
    u, v = gen.standard_normal((2, n_features))
    u /= np.linalg.norm(u)
    v /= np.linalg.norm(v)
    x = gen.standard_normal((n_train + n_test, n_features))
    y = 2.0 * np.tanh(x @ u) + (x @ v) ** 2 + noise * gen.standard_normal(n_train + n_test)
    y = y.reshape(-1, 1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def load_digits(*, dtype=np.float64):
    """The 8x8 handwritten digits (UCI, 1,797 images, 10 classes), shipped with nanonet: no download.

    The data are stored in the package (``nanonet/_data/digits.npz``; source
    and licence, CC BY 4.0, in ``nanonet/_data/README.md``) and are the same
    as ``sklearn.datasets.load_digits()``.

    Returns:
        ``(images, labels)``: images ``(1797, 1, 8, 8)`` of ``dtype``, the
        pixel counts 0..16 divided by 16 (so in [0, 1]), NCHW with one
        channel; labels ``(1797,)`` int64 in 0..9.

    Example:
        >>> images, labels = load_digits()
        >>> images.shape, labels.shape, float(images.max()), sorted(set(labels.tolist())) == list(range(10))
        ((1797, 1, 8, 8), (1797,), 1.0, True)
    """
    from importlib import resources

    with resources.files("nanonet").joinpath("_data", "digits.npz").open("rb") as f, \
            np.load(f, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    return (images[:, None] / np.float64(16)).astype(dtype), labels.astype(np.int64)
TEXTS = {"tinyshakespeare": "tinyshakespeare.txt.gz"}


def load_text(name="tinyshakespeare"):
    """A public-domain English text shipped with nanonet, as one ``str`` (no download).

    ``"tinyshakespeare"``: the first 249,547 characters (62 distinct) of
    Andrej Karpathy's *tiny shakespeare* (``data/tinyshakespeare/input.txt``
    of github.com/karpathy/char-rnn): Shakespeare's plays, in the public
    domain. See ``nanonet/_data/README.md``.

    Example:
        >>> text = load_text()
        >>> len(text), text[:14]
        (249547, 'First Citizen:')
    """
    import gzip
    from importlib import resources

    if name not in TEXTS:
        raise ValueError(f"load_text expected a name in {sorted(TEXTS)}, got {name!r}")
    with resources.files("nanonet").joinpath("_data", TEXTS[name]).open("rb") as raw:
        with gzip.open(raw, "rt", encoding="utf-8") as f:
            return f.read()
