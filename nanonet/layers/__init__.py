"""Layers: one file per family."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .attention import ScaledDotProductAttention, scaled_dot_product_attention
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .merge import Add, Concat, Multiply, Split
from .multihead import MultiheadAttention
from .normalization import BatchNorm1d, LayerNorm
from .projection import Projection
from .recurrent import GRU, LSTM, RNN
from .shape import Flatten, Identity
from .softmax import LogSoftmax, Softmax
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Add", "BatchNorm1d", "Concat", "Dropout", "ELU", "Flatten", "GELU", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Multiply", "ReLU", "Sigmoid", "Softplus", "Split", "Tanh",
    # sequence models (docs/sequence.md)
    "Embedding", "GRU", "LSTM", "LogSoftmax", "MultiheadAttention", "Projection", "RNN",
    "ScaledDotProductAttention", "Softmax", "TransformerEncoder", "TransformerEncoderLayer",
    "scaled_dot_product_attention",
]
