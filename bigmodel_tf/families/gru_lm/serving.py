"""The GRU language model's serving side: the state of `step` is one `state_i` per GRU layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.export.serving import TOKEN, state_names
from bigmodel_tf.families.language_model.data import CharSpec
from bigmodel_tf.families.language_model.serving import LanguageModelServing
from bigmodel_tf.training.config import RunConfig


def gru_step_signature(rnn_units: int, num_layers: int) -> list[tf.TensorSpec]:
    """`TOKEN`, then one `(batch, rnn_units)` float32 state per GRU layer."""
    states = [
        tf.TensorSpec((None, rnn_units), tf.float32, name=name) for name in state_names(num_layers)
    ]
    return [TOKEN, *states]


class GruLmServing(LanguageModelServing):
    """The state of `step` is one `state_i` per GRU layer."""

    def step_signature(self, config: RunConfig) -> list[tf.TensorSpec]:
        return gru_step_signature(config.model.rnn_units, config.model.num_layers)

    def step_endpoint(self, model: keras.Model) -> tuple[Callable, list[tf.TensorSpec]]:
        names = state_names(model.num_layers)

        def step(token, *states):  # (batch,) and n x (batch, units)
            logits, states = model.step(token, list(states))
            return {"logits": logits, **dict(zip(names, states, strict=True))}

        return step, gru_step_signature(model.rnn_units, model.num_layers)

    def metadata(self, config: RunConfig, spec: CharSpec) -> dict[str, Any]:
        states = self.step_signature(config)[1:]
        return {**super().metadata(config, spec), "state_sizes": [s.shape[-1] for s in states]}
