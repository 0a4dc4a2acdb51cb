"""What the `transformer` task adds to a `TransformerClassifier`: the string-in `serve` endpoint.

>>> TextClassifier(model, spec)(tf.constant(["A gorgeous, witty film."]))["label"]
<tf.Tensor: shape=(1,), dtype=string, numpy=array([b'fresh'], dtype=object)>
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.transformer.data import SubwordSpec, encode, wordpiece_tokenizer


class TextClassifier(tf.Module):
    """Strings in: the exported `serve(texts) -> probabilities, label`.

    Tokenises in the graph (`subwords.encode`: `[CLS]` and at most `sequence_length - 1`
    subwords, longer texts truncated; bytes that are not UTF-8 read as U+FFFD; an empty text is
    `[CLS]` alone, which gives the model's prior), pads the batch to its longest text and runs
    the classifier. A `tf.Module`, so that an export saves the tokenizer with it.

    Args:
        model: keras.Model. Token ids `(batch, time)` -> class probabilities.
        spec: SubwordSpec. The run's vocabulary, labels and sequence length.
    """

    def __init__(self, model: keras.Model, spec: SubwordSpec):
        super().__init__(name="text_classifier")
        self.model = model
        self.tokenizer = wordpiece_tokenizer(spec.vocabulary)
        self.labels = tf.constant(spec.labels)
        self.sequence_length = spec.sequence_length
        self.special_ids = (spec.cls_id, spec.sep_id)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = encode(texts, self.tokenizer, self.sequence_length, *self.special_ids)
        ids = ids.to_tensor(PAD_ID)
        probabilities = self.model(ids, training=False)  # (batch, classes)
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.labels, tf.argmax(probabilities, axis=-1)),
        }
