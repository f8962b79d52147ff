"""The one place that lists every built-in layer and loss, with an example input, for the test suite.

``LayerSpec(factory, input_shape, ...)`` rows. ``test_layers_builtin.py`` and
the family tests run ``check_layer`` over their part; ``test_error_table.py``
runs the generic bad-input cases over all of ``TABLE``: a layer added here
gets both for free.
"""

import numpy as np

import nanonet as nn
from nanonet.testing import LayerSpec

CORE = [
    LayerSpec(lambda rng=0: nn.Linear(5, 3, rng=rng), (4, 5)),
    LayerSpec(lambda rng=0: nn.Linear(5, 3, bias=False, rng=rng), (4, 5)),
    LayerSpec(nn.ReLU, (4, 5)),
    LayerSpec(lambda: nn.LeakyReLU(0.1), (4, 5)),
    LayerSpec(nn.Tanh, (4, 5)),
    LayerSpec(nn.Sigmoid, (4, 5)),
    LayerSpec(nn.GELU, (4, 5)),
    LayerSpec(lambda: nn.Softplus(beta=2.0), (4, 5)),
    LayerSpec(nn.ELU, (4, 5)),
    LayerSpec(lambda: nn.ELU(alpha=0.5), (4, 5)),
    LayerSpec(nn.Identity, (4, 5)),
    LayerSpec(nn.Flatten, (4, 2, 3)),
    LayerSpec(lambda rng=0: nn.Dropout(0.3, rng=rng), (4, 5)),
    LayerSpec(lambda: nn.LayerNorm(5), (4, 5)),
    LayerSpec(lambda: nn.BatchNorm1d(5), (4, 5)),
    LayerSpec(lambda: nn.BatchNorm1d(5).eval(), (4, 5), label="BatchNorm1d(5).eval()"),
    LayerSpec(lambda: nn.SyncBatchNorm(5), (4, 5)),   # one process: exactly BatchNorm1d
    LayerSpec(lambda rng=0: nn.Sequential(nn.Linear(4, 6, rng=rng), nn.Tanh(), nn.LayerNorm(6),
                                          nn.Linear(6, 2, rng=rng)), (3, 4), label="Sequential(MLP)"),
    LayerSpec(nn.MSELoss, (4, 3)),
    LayerSpec(lambda: nn.MSELoss("sum"), (4, 3), label="MSELoss(sum)"),
    LayerSpec(nn.L1Loss, (4, 3)),
    LayerSpec(lambda: nn.HuberLoss(delta=0.5), (4, 3)),
    LayerSpec(nn.CrossEntropyLoss, (4, 3)),
    LayerSpec(nn.CrossEntropyLoss, (4, 3), label="CrossEntropyLoss(probabilities)",
              target=lambda shape, gen: gen.dirichlet(np.ones(shape[1]), size=shape[0])),
    LayerSpec(lambda: nn.CrossEntropyLoss("sum"), (4, 3), label="CrossEntropyLoss(sum)"),
    LayerSpec(nn.BCEWithLogitsLoss, (4, 3)),
    LayerSpec(lambda: nn.CrossEntropyLoss(weight=np.array([0.5, 2.0, 1.0]), ignore_index=1, label_smoothing=0.2),
              (6, 3), label="CrossEntropyLoss(weight, ignore_index, label_smoothing)",
              target=lambda shape, gen: np.array([0, 1, 2, 2, 0, 1])),
    LayerSpec(lambda: nn.CrossEntropyLoss("sum", weight=np.array([0.5, 2.0, 1.0]), label_smoothing=0.3), (4, 3),
              label="CrossEntropyLoss(sum, weight, label_smoothing, probabilities)",
              target=lambda shape, gen: gen.dirichlet(np.ones(shape[1]), size=shape[0])),
    LayerSpec(lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([0.5, 1.0, 4.0])), (4, 3),
              label="BCEWithLogitsLoss(pos_weight)"),
]


CONV = [
    LayerSpec(lambda rng=0: nn.Conv2d(2, 4, 3, padding=1, rng=rng), (2, 2, 5, 4)),
    LayerSpec(lambda rng=0: nn.Conv2d(4, 4, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                                      padding_mode="reflect", rng=rng), (2, 4, 5, 6), label="Conv2d(grouped, reflect)"),
    LayerSpec(lambda rng=0: nn.Conv2d(3, 3, 3, groups=3, padding="same", bias=False, padding_mode="circular",
                                      rng=rng), (2, 3, 4, 5), label="Conv2d(depthwise, same, circular)"),
    LayerSpec(lambda rng=0: nn.Conv1d(2, 3, 3, stride=2, padding=1, padding_mode="replicate", rng=rng), (2, 2, 7)),
    LayerSpec(lambda rng=0: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2, rng=rng),
              (2, 4, 3, 3)),
    LayerSpec(lambda: nn.MaxPool2d(2), (2, 3, 4, 4)),
    LayerSpec(lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True), (2, 2, 5, 7)),
    LayerSpec(lambda: nn.MaxPool2d(2), (2, 3, 4, 4), label="MaxPool2d(2) on ties",
              input=lambda shape, gen: gen.integers(0, 3, size=shape)),
    LayerSpec(lambda: nn.MaxPool1d(3, stride=2), (2, 2, 7)),
    LayerSpec(lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 2, 5, 6)),
    LayerSpec(lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 2, 5, 7)),
    LayerSpec(lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    LayerSpec(lambda: nn.BatchNorm2d(3).eval(), (2, 3, 4, 4), label="BatchNorm2d(3).eval()"),
    LayerSpec(lambda: nn.distributed.SyncBatchNorm2d(3), (2, 3, 4, 4)),   # one process: exactly BatchNorm2d
    LayerSpec(lambda rng=0: nn.Dropout2d(0.3, rng=rng), (2, 3, 4, 4)),
    LayerSpec(lambda: nn.ZeroPad2d((1, -1, 2, 0)), (2, 2, 4, 4)),
    LayerSpec(lambda: nn.Upsample(scale_factor=2), (2, 2, 3, 3)),
    LayerSpec(lambda rng=0: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Flatten(), nn.Linear(12, 2, rng=rng)), (2, 1, 4, 4), label="Sequential(CNN)"),
]


def indices(high):
    return lambda shape, gen: gen.integers(0, high, size=shape)


SEQ = [
    LayerSpec(lambda rng=0: nn.Embedding(7, 3, rng=rng), (4, 5), input=indices(7)),
    LayerSpec(lambda rng=0: nn.Embedding(7, 3, rng=rng, dtype=np.float32), (6,), input=indices(7),
              label="Embedding(float32)"),
    LayerSpec(nn.Softmax, (3, 4)),
    LayerSpec(lambda: nn.Softmax(1), (3, 4, 2), label="Softmax(dim=1)"),
    LayerSpec(nn.LogSoftmax, (3, 4)),
    LayerSpec(lambda rng=0: nn.Linear(4, 3, rng=rng), (2, 3, 4), label="Linear(3-D input)"),
    LayerSpec(lambda rng=0: nn.Projection(4, 3, rng=rng), (2, 3, 4)),
    LayerSpec(lambda rng=0: nn.RNN(3, 4, rng=rng), (5, 2, 3)),
    LayerSpec(lambda rng=0: nn.RNN(3, 2, 2, "relu", bidirectional=True, batch_first=True, rng=rng), (2, 4, 3)),
    LayerSpec(lambda rng=0: nn.LSTM(3, 3, num_layers=2, batch_first=True, rng=rng), (2, 4, 3)),
    LayerSpec(lambda rng=0: nn.LSTM(2, 2, num_layers=2, dropout=0.3, bidirectional=True, rng=rng), (3, 2, 2),
              label="LSTM(dropout)"),
    LayerSpec(lambda rng=0: nn.GRU(3, 3, bidirectional=True, rng=rng), (4, 2, 3)),
    LayerSpec(lambda rng=0: nn.GRU(2, 3, bias=False, batch_first=True, rng=rng), (2, 3, 2)),
    LayerSpec(lambda rng=0: nn.MultiheadAttention(4, 2, rng=rng), (5, 2, 4)),
    LayerSpec(lambda rng=0: nn.MultiheadAttention(4, 2, dropout=0.2, batch_first=True, rng=rng), (2, 5, 4),
              label="MultiheadAttention(dropout)"),
    LayerSpec(lambda rng=0: nn.TransformerEncoderLayer(4, 2, 6, rng=rng), (3, 2, 4)),
    LayerSpec(lambda rng=0: nn.TransformerEncoderLayer(4, 2, 6, activation="gelu", norm_first=True,
                                                       batch_first=True, rng=rng), (2, 3, 4), label="pre-norm"),
    LayerSpec(lambda rng=0: nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 1, 4, rng=rng), 2,
                                                  norm=nn.LayerNorm(4)), (2, 2, 4), label="TransformerEncoder"),
]


TABLE = CORE + CONV + SEQ
