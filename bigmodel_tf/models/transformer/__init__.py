"""The Transformer family (KerasHub's layout): a backbone that makes features, and the tasks
that add a head: `TransformerClassifier` (text classification) and `TransformerLanguageModel`
(next-token prediction with a key/value cache)."""

from bigmodel_tf.models.transformer.backbone import BackboneConfig, TransformerBackbone, cache_shape
from bigmodel_tf.models.transformer.causal_lm import (
    TransformerLanguageModel,
    TransformerLmConfig,
    build_language_model,
)
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
    "TransformerLanguageModel",
    "TransformerLmConfig",
    "build_classifier",
    "build_language_model",
    "cache_shape",
]
