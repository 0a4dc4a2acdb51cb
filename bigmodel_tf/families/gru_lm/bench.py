"""The GRU language model's benchmark entry."""

from __future__ import annotations

import keras
import tensorflow as tf

from bigmodel_tf.bench.harness import QUICK, Family, Quality, Target, graph_flops
from bigmodel_tf.families.gru_lm.peer import gru_lm_peer
from bigmodel_tf.families.language_model.bench import LOSS, generation_speed


def forward_flops(config, model: keras.Model, inputs, spec) -> float:
    """The `step` times the window: the profiler counts a graph loop's body once."""
    units, layers = model.rnn_units, model.num_layers
    signature = [tf.TensorSpec((1,), tf.int32)] + [
        tf.TensorSpec((1, units), tf.float32) for _ in range(layers)
    ]
    return inputs.shape[-1] * graph_flops(lambda t, *s: model.step(t, list(s)), signature)


ENTRIES = (
    Family(
        "gru-lm",
        (Quality("test_loss_nats", "loss", target="<= 1.60", **LOSS),),
        quick_overrides={
            "model.embedding_dim": 8,
            "model.rnn_units": 32,
            "model.num_layers": 1,
            "model.sequence_length": 20,
            **QUICK,
        },
        train_steps=10,
        export_unit="nats/char",
        generation=generation_speed("generate_speedup", ">= 20", (1000,)),
        forward_flops=forward_flops,
        # Four checks an epoch: the default run has two (~7 min each).
        time_to_accuracy=Target("loss", "<= 1.60", checks_per_epoch=4, unit="nats/char"),
        peer=gru_lm_peer,
    ),
)
