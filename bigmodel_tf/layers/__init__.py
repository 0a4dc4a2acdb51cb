"""Our own layers: multi-head attention, position encodings and Transformer blocks, and the
seq2seq attention mechanisms (`layers.seq2seq_attention`)."""

from bigmodel_tf.layers.attention import MultiHeadAttention
from bigmodel_tf.layers.position import PositionEmbedding, SinusoidalPositionEncoding
from bigmodel_tf.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "MultiHeadAttention",
    "PositionEmbedding",
    "SinusoidalPositionEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
]
