"""The model families, one package each (its config and presets, model, data preparation,
training task, serving side and benchmark entries), and `language_model`, the pieces the two
character-level language-model families share.

`TASK_MODULES` names each family's module that registers its task (`registry.register`), in the
order `--help` lists them. Names only, not imports: listing the families must not import
TensorFlow, and the core finds a family through `bigmodel_tf.registry`, never by importing it.
"""

TASK_MODULES = {
    "cnn": "bigmodel_tf.families.cnn.task",
    "gru-lm": "bigmodel_tf.families.gru_lm.task",
    "transformer": "bigmodel_tf.families.transformer.classifier_task",
    "transformer-mlm": "bigmodel_tf.families.transformer.masked_lm_task",
    "transformer-lm": "bigmodel_tf.families.transformer.causal_lm_task",
    "seq2seq": "bigmodel_tf.families.seq2seq.task",
}
