"""The PyTorch side of the peers suite: a family's `Peer` trained by a standard PyTorch loop
with our trainer's optimizer settings.

PyTorch is an optional extra (`pip install -e '.[peers]'`), imported only when a peer is built
or trained; `torch_version()` says whether it is installed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import keras
import numpy as np

from bigmodel_tf.bench.harness import Peer
from bigmodel_tf.training.config import TrainConfig
from bigmodel_tf.training.trainer import make_optimizer

INSTALL = "pip install -e '.[peers]'"


def torch_version() -> str | None:
    """The installed PyTorch's version, or None without it."""
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def threads() -> int:
    """The cores this process may run on: PyTorch's thread count, as TensorFlow uses them all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def weight_count(module: Any) -> int:
    """Trainable weights of a `torch.nn.Module` (batch norm's running statistics are buffers,
    as they are non-trainable weights in Keras)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def learning_rates(train: TrainConfig, steps_per_epoch: int) -> list[float]:
    """Our optimizer's learning rate at each step of its schedule (warm-up, decay); it holds
    the last one after that."""
    optimizer = make_optimizer(train, steps_per_epoch)
    rates = []
    for step in range(max(train.epochs * steps_per_epoch, 1)):
        optimizer.iterations.assign(step)
        rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return rates


def optimizer(train: TrainConfig, parameters: Any) -> Any:
    """PyTorch's optimizer for `make_optimizer`'s: AdamW with weight decay (Keras decouples the
    decay from the gradient for Adam and AdamW alike), else Adam, with Keras' epsilon; the
    learning rate is set at each step."""
    import torch

    if train.optimizer not in ("adam", "adamw"):
        raise ValueError(f"the PyTorch peers mirror Adam and AdamW, not {train.optimizer!r}")
    kind = torch.optim.AdamW if train.weight_decay else torch.optim.Adam
    return kind(
        parameters,
        lr=train.learning_rate,
        betas=(0.9, train.adam_beta_2),
        eps=1e-7,
        weight_decay=train.weight_decay,
    )


class PeerTrainer:
    """Trains a `Peer` on NumPy examples in rounds of `steps` batches: a standard PyTorch loop
    over shuffled passes (a fresh permutation each pass, whole batches), with our optimizer,
    learning-rate schedule and gradient clipping.

    Args:
        peer: Peer. The family's network, loss and tensor conversion.
        train: TrainConfig. Our run's training settings (optimizer, schedule, clipping, seed).
        inputs: NumPy arrays. Every training example as our model takes them.
        targets: NumPy array. Their targets.
        batch_size: int. Examples per step.
        steps: int. Steps per round, and per epoch of the learning-rate schedule (as ours).
    """

    def __init__(
        self,
        peer: Peer,
        train: TrainConfig,
        inputs: Any,
        targets: np.ndarray,
        batch_size: int,
        steps: int,
    ):
        import torch

        torch.set_num_threads(threads())
        torch.manual_seed(train.seed)
        self.peer, self.batch_size, self.steps = peer, batch_size, steps
        self.clipnorm = train.global_clipnorm or None
        self.rates = learning_rates(train, steps)
        self.optimizer = optimizer(train, peer.model.parameters())
        self.inputs, self.targets = peer.tensors(inputs, targets)
        self.examples = len(self.targets)
        if self.examples < batch_size:
            raise ValueError(f"{self.examples} examples do not fill a batch of {batch_size}")
        self.generator = torch.Generator().manual_seed(train.seed)
        self.order, self.position, self.step = None, self.examples, 0

    def _batch(self) -> tuple[Any, Any]:
        import torch

        if self.position + self.batch_size > self.examples:
            self.order = torch.randperm(self.examples, generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.inputs[index], self.targets[index]

    def train_round(self) -> float:
        """Trains `steps` batches; examples/s from the end of the first to the end of the
        last (start-up excluded, as `_StepClock` times ours)."""
        import torch

        model, optimizer = self.peer.model, self.optimizer
        model.train()
        first = 0.0
        for step in range(self.steps):
            inputs, targets = self._batch()
            for group in optimizer.param_groups:
                group["lr"] = self.rates[min(self.step, len(self.rates) - 1)]
            optimizer.zero_grad(set_to_none=True)
            loss = self.peer.loss(model(inputs), targets)
            loss.backward()
            if self.clipnorm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clipnorm)
            optimizer.step()
            self.step += 1
            if step == 0:
                first = time.perf_counter()
        return self.batch_size * (self.steps - 1) / (time.perf_counter() - first)
