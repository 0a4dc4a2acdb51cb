"""Our own layers: multi-head attention, position encodings, Transformer blocks, a GRU with a
faster training loop, and batch and layer norms that train through fused kernels."""

from bigmodel_tf.layers.attention import MultiHeadAttention
from bigmodel_tf.layers.gru import GRU
from bigmodel_tf.layers.normalization import FusedBatchNormalization, FusedLayerNormalization
from bigmodel_tf.layers.position import PositionEmbedding, SinusoidalPositionEncoding
from bigmodel_tf.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "GRU",
    "FusedBatchNormalization",
    "FusedLayerNormalization",
    "MultiHeadAttention",
    "PositionEmbedding",
    "SinusoidalPositionEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
]
