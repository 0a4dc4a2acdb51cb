"""The Transformer families (KerasHub's layout): a backbone that makes features, and the tasks
that add a head: `TransformerClassifier` (text classification, `bigmodel-tf train transformer`),
`TransformerMaskedLM` (its pretraining, `transformer-mlm`) and `TransformerLanguageModel`
(next-token prediction with a key/value cache, `transformer-lm`)."""

from bigmodel_tf.families.transformer.backbone import (
    BackboneConfig,
    TransformerBackbone,
    build_backbone,
    cache_shape,
)
from bigmodel_tf.families.transformer.causal_lm import (
    TransformerLanguageModel,
    TransformerLmConfig,
    build_language_model,
)
from bigmodel_tf.families.transformer.classifier import (
    TransformerClassifier,
    TransformerClassifierConfig,
    build_classifier,
)
from bigmodel_tf.families.transformer.masked_lm import (
    TransformerMaskedLM,
    TransformerMlmConfig,
    build_masked_lm,
)

__all__ = [
    "BackboneConfig",
    "TransformerBackbone",
    "TransformerClassifier",
    "TransformerClassifierConfig",
    "TransformerLanguageModel",
    "TransformerLmConfig",
    "TransformerMaskedLM",
    "TransformerMlmConfig",
    "build_backbone",
    "build_classifier",
    "build_language_model",
    "build_masked_lm",
    "cache_shape",
]
