"""Recurrent layers: ``RNN`` (tanh or relu), ``LSTM`` and ``GRU``, with backprop through time by hand.

Each is ``torch.nn``'s: the same arguments and defaults, gate orders and
parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``..._reverse`` for the second direction), so a torch
``state_dict`` loads as it is. The recurrences themselves are in
``nanonet.layers.recurrent_cells``; this file stacks them into layers and
directions, with dropout between layers.

Calling conventions (within nanonet's Module contract):

- ``rnn(x)`` returns the output sequence; ``rnn(x, h0)`` (``lstm(x, h0, c0)``)
  starts from the given states, and ``backward`` then returns
  ``(dx, dh0)`` (``(dx, dh0, dc0)``): the gradients flow into the states.
- ``return_state=True`` (an argument of the constructor) makes ``forward``
  return ``(output, h_n)`` (``(output, h_n, c_n)`` for an LSTM), and
  ``backward`` take one gradient per output (None for one that is unused).
- Layouts: ``x`` is ``(L, N, input_size)``, or ``(N, L, input_size)`` with
  ``batch_first=True``. The states are ``(num_layers * D, N, hidden_size)``
  as in torch, **except with** ``batch_first=True``, **where they are**
  ``(N, num_layers * D, hidden_size)``: every array a batch-first module
  takes or returns then has the batch on axis 0, as ``Graph`` requires.
"""

import math
import warnings

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module, Parameter
from .recurrent_cells import GRUCell, LSTMCell, RNNReLU, RNNTanh, flat_rows, last_state, scratch


class _RNNBase(Module):
    """The stacking, layouts, checks and dropout shared by RNN, LSTM and GRU."""

    _cell = None
    _n_states = 1  # 2 for an LSTM: (h, c)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, *, return_state=False, rng=None, dtype=np.float64):
        name = type(self).__name__
        self.input_size = check_number(name, "input_size", input_size, low=1, integer=True)
        self.hidden_size = check_number(name, "hidden_size", hidden_size, low=1, integer=True)
        self.num_layers = check_number(name, "num_layers", num_layers, low=1, integer=True)
        self.dropout = check_number(name, "dropout", dropout, low=0, high=1, high_open=True)
        for flag, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional),
                            ("return_state", return_state)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} expected {flag} to be a bool, got {value!r}")
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional, self.return_state = bool(bidirectional), bool(return_state)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{name}: dropout={self.dropout:g} acts between layers only, and num_layers=1",
                          UserWarning, stacklevel=2)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name} expected a floating-point dtype, got {dtype}")
        gen = as_generator(rng)
        bound = 1 / math.sqrt(self.hidden_size)  # torch's U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias
        width = self._cell.gates * self.hidden_size
        self._names = []
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.hidden_size * self.directions
            for suffix in ("", "_reverse")[:self.directions]:
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(width, layer_in), (width, self.hidden_size)]
                if self.bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(width,), (width,)]
                for pname, shape in zip(names, shapes):
                    setattr(self, pname, Parameter(gen.uniform(-bound, bound, shape).astype(dtype)))
                self._names.append(names)
        self.rng = gen
        self.frozen = False  # the gradient checker sets it: reuse the last dropout masks
        self._masks = []
        self._cache = None
        self._work = {}  # per (layer, direction): scratch arrays reused from step to step (recurrent_cells.scratch)

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    def _params(self, layer, direction):
        """``(w_ih, w_hh, b_ih, b_hh)`` Parameters (biases None without bias)."""
        found = [getattr(self, n) for n in self._names[layer * self.directions + direction]]
        return found + [None, None] if len(found) == 2 else found

    # -- checks -----------------------------------------------------------------------
    def _layout_text(self):
        return "(N, L, {})" if self.batch_first else "(L, N, {})"

    def _check_input(self, x, states):
        dtype = self.weight_ih_l0.value.dtype
        if len(states) not in (0, self._n_states):
            wanted = "x, h0, c0" if self._n_states == 2 else "x, h0"
            raise TypeError(f"{who(self)} expected x alone or ({wanted}), got {1 + len(states)} arrays")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{who(self)} expected input of shape {self._layout_text().format(self.input_size)} "
                             f"(L: sequence length, N: batch), got {shape_text(x.shape)}")
        if x.shape[int(self.batch_first)] == 0:  # as torch; a batch of 0 is fine
            raise ValueError(f"{who(self)} expected a sequence of length >= 1, got input {shape_text(x.shape)}")
        batch = x.shape[0] if self.batch_first else x.shape[1]
        layers = self.num_layers * self.directions
        want = (batch, layers, self.hidden_size) if self.batch_first else (layers, batch, self.hidden_size)
        for arr, label in zip((x,) + states, ("input", "h0", "c0")):
            if arr.dtype != dtype:
                raise TypeError(f"{who(self)} expected {label} of dtype {dtype}, got {arr.dtype} "
                                f"(nanonet does not cast silently)")
            if label != "input" and arr.shape != want:
                layout = "N, num_layers * num_directions" if self.batch_first else "num_layers * num_directions, N"
                raise ValueError(f"{who(self)} expected {label} of shape {shape_text(want)} ({layout}, "
                                 f"hidden_size), got {shape_text(arr.shape)}")

    def _time_major(self, arr):
        return np.ascontiguousarray(arr.transpose(1, 0, 2)) if self.batch_first else arr

    def _user_layout(self, arr):
        return np.ascontiguousarray(arr.transpose(1, 0, 2)) if self.batch_first else arr

    def _draw_mask(self, layer, shape, dtype):
        if self.frozen and len(self._masks) > layer and self._masks[layer].shape == shape:
            return self._masks[layer]
        mask = (self.rng.random(shape) >= self.dropout).astype(dtype) * (1 / (1 - self.dropout))
        del self._masks[layer:]
        self._masks.append(mask)
        return mask

    # -- forward and backward -------------------------------------------------------------
    def forward(self, x, *states):
        """x (and the initial states) -> the output sequence (and the final states with return_state)."""
        self._check_input(x, states)
        layer_in = self._time_major(x)
        steps, batch, _ = layer_in.shape
        hidden, dirs = self.hidden_size, self.directions
        layers = self.num_layers * dirs
        init = [self._time_major(s) for s in states] or [np.zeros((layers, batch, hidden), x.dtype)] * self._n_states
        finals = [np.empty((layers, batch, hidden), x.dtype) for _ in range(self._n_states)]
        caches = []
        drop = self.training and self.dropout > 0
        self._cache = None  # the scratch arrays below are the last cache's: it is dead from here on
        for layer in range(self.num_layers):
            out = np.empty((steps, batch, dirs * hidden), x.dtype)
            flat_in = flat_rows(layer_in, self._work.setdefault((layer, "in"), {}))
            kernels = []
            for d in range(dirs):
                k = layer * dirs + d
                w_ih, w_hh, b_ih, b_hh = self._params(layer, d)
                work = self._work.setdefault(k, {})
                scale = self._cell.row_scale(hidden, x.dtype)  # sigmoid rows at 1/2: sigma(a) = (tanh(a/2) + 1) / 2
                xw = scratch(work, "xw", (steps * batch, w_ih.value.shape[0]), x.dtype)
                np.dot(flat_in, _scaled(w_ih.value, scale).T, out=xw)
                result = self._run_cell(xw.reshape(steps, batch, xw.shape[1]), _scaled(w_hh.value, scale), b_ih, b_hh,
                                        scale, [s[k] for s in init], bool(d), work)
                kernels.append(result[-1])
                out[:, :, d * hidden:(d + 1) * hidden] = _out_view(result[0], bool(d))
                for final, hs in zip(finals, result[:-1]):
                    final[k] = last_state(hs, bool(d))
            mask = None
            if drop and layer < self.num_layers - 1:
                mask = self._draw_mask(layer, out.shape, x.dtype)
            caches.append((flat_in, kernels, mask))
            layer_in = out if mask is None else out * mask
        self._cache = (caches, len(states), steps, batch)
        output = self._user_layout(layer_in)
        if not self.return_state:
            return output
        return (output,) + tuple(self._user_layout(f) for f in finals)

    def _run_cell(self, xw, w_hh, b_ih, b_hh, scale, init, reverse, work):
        """Add the (scaled) biases into ``xw`` and run the kernel: ``(hs, [cs,] cache)``."""
        if b_ih is not None:
            xw += _scaled(b_ih.value + b_hh.value, scale)
        return self._cell.forward(xw, w_hh, *init, reverse, work)

    def backward(self, grad_out, *, input_grad=True):
        """grad_out (a tuple with return_state) -> dJ/dx, or (dJ/dx, dJ/dh0[, dJ/dc0]) when states were given.

        ``input_grad=False`` skips dJ/dx (None in its place), as ``Sequential.backward`` does: in
        training nobody needs the gradient of the data. Every other gradient is the same.
        """
        caches, n_given, steps, batch = self._cache
        hidden, dirs = self.hidden_size, self.directions
        grads = grad_out if self.return_state else (grad_out,)
        g_finals = [None if g is None else self._time_major(g) for g in grads[1:]] or [None] * self._n_states
        dtype = caches[0][0].dtype
        g = np.zeros((steps, batch, dirs * hidden), dtype) if grads[0] is None else self._time_major(grads[0])
        d_init = [np.empty((self.num_layers * dirs, batch, hidden), dtype) for _ in range(self._n_states)]
        for layer in range(self.num_layers - 1, -1, -1):
            flat_in, kernels, _ = caches[layer]
            d_in = None
            for d in range(dirs):
                k = layer * dirs + d
                params = self._params(layer, d)
                finals = [None if gf is None else gf[k] for gf in g_finals]
                d_xw, d_hw, *d_states = self._backward_cell(g[:, :, d * hidden:(d + 1) * hidden], finals,
                                                             params[1].value, kernels[d], bool(d))
                for store, value in zip(d_init, d_states):
                    store[k] = value
                d_in = self._accumulate(params, d_xw, d_hw, flat_in, kernels[d], bool(d), d_in,
                                        input_grad or layer > 0)
            g = None if d_in is None else d_in.reshape(steps, batch, flat_in.shape[1])
            if layer > 0 and caches[layer - 1][2] is not None:
                g *= caches[layer - 1][2]
        dx = None if g is None else self._user_layout(g)
        if not n_given:
            return dx
        return (dx,) + tuple(self._user_layout(s) for s in d_init)

    def _backward_cell(self, g_out, finals, w_hh, cache, reverse):
        return self._cell.backward(g_out, *finals, w_hh, cache, reverse)

    def _accumulate(self, params, d_xw, d_hw, flat_in, cache, reverse, d_in, input_grad):
        """Add the weight and bias gradients of one direction; return dJ/d(layer input), summed over directions."""
        w_ih, w_hh, b_ih, b_hh = params
        rows = flat_in.shape[0]
        d_xw, d_hw = d_xw.reshape(rows, d_xw.shape[2]), d_hw.reshape(rows, d_hw.shape[2])  # no -1: rows may be 0
        prev = _prev_view(cache[0], reverse).reshape(rows, self.hidden_size)
        w_ih.grad += np.dot(d_xw.T, flat_in)
        w_hh.grad += np.dot(d_hw.T, prev)
        if b_ih is not None:
            ones = np.ones(rows, d_xw.dtype)
            summed = np.dot(ones, d_xw)
            b_ih.grad += summed
            b_hh.grad += summed if d_hw is d_xw else np.dot(ones, d_hw)  # RNN, LSTM: one sum serves both
        if not input_grad:
            return None
        part = np.dot(d_xw, w_ih.value)
        return part if d_in is None else np.add(d_in, part, out=d_in)

    # -- shapes and display -----------------------------------------------------------
    def output_shape(self, x_shape, *state_shapes):
        """Feature shapes (the batch axis left out): ``(L, input_size)`` with batch_first -> ``(L, D * hidden)``."""
        name = type(self).__name__
        if len(x_shape) != 2 or x_shape[1] != self.input_size:
            raise ValueError(f"{who(self)} expected input of shape {self._layout_text().format(self.input_size)}, "
                             f"got feature shape {tuple(x_shape)}")
        state = (self.num_layers * self.directions, self.hidden_size)
        if (state_shapes or self.return_state) and not self.batch_first:
            raise ValueError(f"{name} in a graph with states needs batch_first=True (states are batch-second "
                             f"otherwise, and a graph puts the batch on axis 0)")
        if state_shapes and (len(state_shapes) != self._n_states or any(tuple(s) != state for s in state_shapes)):
            raise ValueError(f"{who(self)} expected {self._n_states} state(s) of feature shape {state}, "
                             f"got {[tuple(s) for s in state_shapes]}")
        out = (x_shape[0], self.directions * self.hidden_size)
        return [out] + [state] * self._n_states if self.return_state else out

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False,
                    "return_state": False}
        text += "".join(f", {k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v)
        if self.weight_ih_l0.value.dtype != np.float64:
            text += f", dtype={self.weight_ih_l0.value.dtype}"
        return text


def _scaled(weights, scale):
    """``weights`` with row k times ``scale[k]`` (a copy), or as they are when ``scale`` is None."""
    return weights if scale is None else weights * (scale[:, None] if weights.ndim == 2 else scale)


def _out_view(hs, reverse):
    return hs[:-1] if reverse else hs[1:]


def _prev_view(hs, reverse):
    return hs[1:] if reverse else hs[:-1]


_COMMON_ARGS = """
    Args:
        input_size: features of each input step.
        hidden_size: features of the state (and of each output step, per direction).
        num_layers: stacked layers; layer k > 0 reads layer k - 1's outputs.
        bias: if False, no ``bias_ih``/``bias_hh`` parameters.
        batch_first: ``x`` (and the states, see the module docstring) batch-first.
        dropout: drop probability on the outputs of every layer but the last, in training.
        bidirectional: add a reverse direction (``..._reverse`` parameters);
            the output concatenates both directions: ``(..., 2 * hidden_size)``.
        return_state: also return the final states (see the module docstring).
        rng: int seed or ``numpy.random.Generator`` for the weights (torch's
            ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``) and the dropout masks.
        dtype: ``np.float64`` (default) or ``np.float32``.
"""


class RNN(_RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{{t-1}} W_hh^T + b_hh)`` (or relu), as ``torch.nn.RNN``.
    {args}
        nonlinearity: ``"tanh"`` (default) or ``"relu"`` (the 4th argument, as in torch).

    Shape:
        - x: ``(L, N, input_size)`` (``(N, L, input_size)`` with batch_first)
        - output: ``(L, N, D * hidden_size)``, D = 2 if bidirectional else 1
        - h0, h_n: ``(num_layers * D, N, hidden_size)`` (``(N, num_layers * D, hidden_size)`` with batch_first)
        - weight_ih_l{{k}}: ``(hidden_size, input_size or D * hidden_size)``;
          weight_hh_l{{k}}: ``(hidden_size, hidden_size)``; biases ``(hidden_size,)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> rnn = nn.RNN(3, 5, num_layers=2, batch_first=True, rng=0)
        >>> rnn
        RNN(3, 5, num_layers=2, batch_first=True)
        >>> y = rnn(np.ones((4, 7, 3)))
        >>> y.shape, rnn.backward(np.ones_like(y)).shape
        ((4, 7, 5), (4, 7, 3))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, return_state=False, rng=None, dtype=np.float64):
        cells = {"tanh": RNNTanh, "relu": RNNReLU}
        if nonlinearity not in cells:
            raise ValueError(f"RNN expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = cells[nonlinearity]
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         return_state=return_state, rng=rng, dtype=dtype)

    def extra_repr(self):
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity='relu'"


class LSTM(_RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gate order ``i, f, g, o``).

    ``i, f, o = sigma(.)``, ``g = tanh(.)`` of ``x_t W_ih^T + b_ih + h_{{t-1}} W_hh^T + b_hh``;
    ``c_t = f * c_{{t-1}} + i * g``; ``h_t = o * tanh(c_t)``.
    {args}
    Shape:
        - x: ``(L, N, input_size)`` (``(N, L, input_size)`` with batch_first)
        - output: ``(L, N, D * hidden_size)``, D = 2 if bidirectional else 1
        - h0, c0, h_n, c_n: ``(num_layers * D, N, hidden_size)``
          (``(N, num_layers * D, hidden_size)`` with batch_first)
        - weight_ih_l{{k}}: ``(4 * hidden_size, input_size or D * hidden_size)``;
          weight_hh_l{{k}}: ``(4 * hidden_size, hidden_size)``; biases ``(4 * hidden_size,)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> lstm = nn.LSTM(3, 5, bidirectional=True, return_state=True, rng=0)
        >>> x, h0, c0 = np.ones((7, 2, 3)), np.zeros((2, 2, 5)), np.zeros((2, 2, 5))
        >>> out, h_n, c_n = lstm(x, h0, c0)
        >>> out.shape, h_n.shape
        ((7, 2, 10), (2, 2, 5))
        >>> dx, dh0, dc0 = lstm.backward((np.ones_like(out), None, None))
        >>> dx.shape, dc0.shape
        ((7, 2, 3), (2, 2, 5))
    """

    _cell = LSTMCell
    _n_states = 2


class GRU(_RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gate order ``r, z, n``).

    ``r, z = sigma(x_t W_i^T + b_i + h W_h^T + b_h)`` for each gate;
    ``n = tanh(x_t W_in^T + b_in + r * (h W_hn^T + b_hn))``; ``h_t = (1 - z) * n + z * h_{{t-1}}``.
    {args}
    Shape:
        - x: ``(L, N, input_size)`` (``(N, L, input_size)`` with batch_first)
        - output: ``(L, N, D * hidden_size)``, D = 2 if bidirectional else 1
        - h0, h_n: ``(num_layers * D, N, hidden_size)`` (``(N, num_layers * D, hidden_size)`` with batch_first)
        - weight_ih_l{{k}}: ``(3 * hidden_size, input_size or D * hidden_size)``;
          weight_hh_l{{k}}: ``(3 * hidden_size, hidden_size)``; biases ``(3 * hidden_size,)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> gru = nn.GRU(3, 4, rng=0)
        >>> [name for name, _ in gru.named_parameters()]
        ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
        >>> gru(np.ones((6, 2, 3)), np.zeros((1, 2, 4))).shape
        (6, 2, 4)
    """

    _cell = GRUCell

    def _run_cell(self, xw, w_hh, b_ih, b_hh, scale, init, reverse, work):
        split = 2 * self.hidden_size  # b_hn stays inside r * (h W_hn^T + b_hn); the n rows are not scaled
        if b_ih is None:
            b_hn = np.zeros(self.hidden_size, xw.dtype)
        else:
            xw += _scaled(b_ih.value, scale)
            xw[:, :, :split] += _scaled(b_hh.value, scale)[:split]
            b_hn = b_hh.value[split:]
        return GRUCell.forward(xw, w_hh, b_hn, *init, reverse, work)


for _cls in (RNN, LSTM, GRU):
    _cls.__doc__ = _cls.__doc__.format(args=_COMMON_ARGS)
