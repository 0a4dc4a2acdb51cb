"""The Transformer families' benchmark entries: the classifier (trained from scratch, the
pretrained MiniLM fine-tuned, and a student distilled from it) and the causal language model."""

from __future__ import annotations

import keras
import tensorflow as tf

from bigmodel_tf.bench.harness import QUICK, Family, Quality, graph_flops, mean_length
from bigmodel_tf.families.language_model.bench import LOSS, generation_speed


def forward_flops(config, model: keras.Model, inputs, spec) -> float:
    """One call on the mean text length: batches are padded to their longest text only."""
    signature = tf.TensorSpec((1, mean_length(inputs)), tf.int32)
    return graph_flops(lambda x: model(x, training=False), [signature])


ENTRIES = (
    Family(
        "transformer",
        (Quality("test_accuracy", "accuracy", target=">= 0.80"),),
        mfu_target=">= 0.30",
        quick_overrides={
            "model.vocabulary_size": 500,
            "model.sequence_length": 32,
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.hidden_dim": 16,
            "model.intermediate_dim": 32,
            **QUICK,
        },
        forward_flops=forward_flops,
    ),
    Family(
        "transformer",
        (Quality("pretrained_test_accuracy", "accuracy", target=">= 0.84"),),
        # The architecture is the checkpoint's: quick runs take few, short steps instead.
        quick_overrides={"model.sequence_length": 16, **QUICK, "train.max_steps_per_epoch": 2},
        variant="pretrained",
        preset="minilm",
        train_steps=10,
        train_suite=False,
        forward_flops=forward_flops,
    ),
    Family(
        "transformer",
        (Quality("student_test_accuracy", "accuracy", target=">= 0.80"),),
        quick_overrides={"model.sequence_length": 16, **QUICK},
        variant="student",
        preset="student",
        teacher="transformer-pretrained",
        train_suite=False,
        settings_suite=False,  # the default classifier's, which it is
        forward_flops=forward_flops,
    ),
    Family(
        # Below the GRU LM's 1.550 on the unseen plays, in at most 30 minutes of training.
        "transformer-lm",
        (Quality("test_loss_nats", "loss", target="<= 1.50", **LOSS),),
        quick_overrides={
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.hidden_dim": 16,
            "model.intermediate_dim": 32,
            "model.sequence_length": 32,
            # Compiling a toy model with XLA costs more than its 10 steps save.
            "train.jit_compile": "false",
            **QUICK,
        },
        export_unit="nats/char",
        # As fast as the GRU's carried states (~2,000 characters a second).
        generation=generation_speed(
            "kv_cache_speedup", ">= 5", (512, 64, 256, 1024), speed_target=">= 2000"
        ),
    ),
)
