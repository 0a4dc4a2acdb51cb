"""Our own layers: multi-head attention, position encodings, Transformer blocks, and a GRU with
a faster training loop."""

from bigmodel_tf.layers.attention import MultiHeadAttention
from bigmodel_tf.layers.gru import GRU
from bigmodel_tf.layers.position import PositionEmbedding, SinusoidalPositionEncoding
from bigmodel_tf.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "GRU",
    "MultiHeadAttention",
    "PositionEmbedding",
    "SinusoidalPositionEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
]
