"""The Transformer family (KerasHub's layout): a backbone that makes features, and the tasks
that add a head: `TransformerClassifier` (text classification)."""

from bigmodel_tf.models.transformer.backbone import BackboneConfig, TransformerBackbone
from bigmodel_tf.models.transformer.classifier import (
    TransformerClassifier,
    TransformerClassifierConfig,
    build_classifier,
)

__all__ = [
    "BackboneConfig",
    "TransformerBackbone",
    "TransformerClassifier",
    "TransformerClassifierConfig",
    "build_classifier",
]
