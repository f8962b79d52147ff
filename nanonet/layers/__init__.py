"""Layers: one file per family."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .attention import ScaledDotProductAttention, scaled_dot_product_attention
from .conv import Conv1d, Conv2d
from .conv_transpose import ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .linear import Linear
from .merge import Add, Concat, Multiply, Split
from .multihead import MultiheadAttention
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool1d, MaxPool2d
from .projection import Projection
from .recurrent import GRU, LSTM, RNN
from .shape import Flatten, Identity
from .softmax import LogSoftmax, Softmax
from .spatial import Upsample, ZeroPad2d
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Add", "BatchNorm1d", "Concat", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Multiply", "ReLU", "Sigmoid", "Softplus", "Split", "Tanh",
    # convolutional networks
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv1d", "Conv2d", "ConvTranspose2d", "Dropout2d",
    "MaxPool1d", "MaxPool2d", "Upsample", "ZeroPad2d",
    # sequence models (docs/sequence.md)
    "Embedding", "GRU", "LSTM", "LogSoftmax", "MultiheadAttention", "Projection", "RNN",
    "ScaledDotProductAttention", "Softmax", "TransformerEncoder", "TransformerEncoderLayer",
    "scaled_dot_product_attention",
]
