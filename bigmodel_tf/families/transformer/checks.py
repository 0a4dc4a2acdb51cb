"""Config checks every Transformer family makes before it builds a model."""

from __future__ import annotations

from bigmodel_tf.errors import UserError
from bigmodel_tf.training.config import RunConfig


def check_heads(config: RunConfig) -> None:
    """The heads split `hidden_dim` evenly, or a `UserError`."""
    model = config.model
    if model.hidden_dim % model.num_heads:
        raise UserError(
            f"model.hidden_dim={model.hidden_dim} must be a multiple of "
            f"model.num_heads={model.num_heads}"
        )
