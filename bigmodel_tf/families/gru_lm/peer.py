"""The character GRU language model written plainly in PyTorch: the peers suite trains it
against ours.

The same network as `GruLanguageModel` (embedding, stacked GRUs with dropout after each, the
logits' dense layer): PyTorch's GRU computes the candidate state as Keras' `reset_after=True`
does, with the same weights (input and recurrent kernels, two biases per gate). The loss is the
mean cross-entropy over every predicted character, from the logits. PyTorch is imported when
`gru_lm_peer` is called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bigmodel_tf.bench.harness import Peer
from bigmodel_tf.families.gru_lm.model import GruLmConfig
from bigmodel_tf.training.config import RunConfig


def build_torch_gru_lm(config: GruLmConfig, vocabulary_size: int) -> Any:
    """`GruLanguageModel` as a `torch.nn.Module` from `(batch, time)` ids to logits."""
    import torch
    from torch import nn

    class GruLanguageModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocabulary_size, config.embedding_dim)
            # One stacked GRU, dropout between its layers; the last layer's after it.
            self.grus = nn.GRU(
                config.embedding_dim,
                config.rnn_units,
                num_layers=config.num_layers,
                dropout=config.dropout if config.num_layers > 1 else 0.0,
                batch_first=True,
            )
            self.dropout = nn.Dropout(config.dropout)
            self.head = nn.Linear(config.rnn_units, vocabulary_size)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            states, _ = self.grus(self.embedding(tokens))  # (batch, time, units)
            return self.head(self.dropout(states))  # (batch, time, vocab)

    return GruLanguageModel()


def gru_lm_peer(config: RunConfig, spec: Any) -> Peer:
    """The run's GRU language model in PyTorch, its loss, and NumPy windows as tensors."""
    import torch

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def tensors(inputs: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(targets.astype(np.int64))

    return Peer(build_torch_gru_lm(config.model, spec.vocabulary_size), loss, tensors)
