"""The CNN written plainly in PyTorch: the peers suite trains it against ours.

The same network as `model.build_cnn` for a `CnnConfig` (layers, sizes, trainable weights,
batch norm's momentum and epsilon, dropout) in PyTorch's own modules, images in its NCHW layout;
the loss is the cross-entropy of the class logits (ours: of the softmax, the same function).
PyTorch is imported when `cnn_peer` is called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bigmodel_tf.bench.harness import Peer
from bigmodel_tf.families.cnn.augmentation import SHIFT, TURN, ZOOM
from bigmodel_tf.families.cnn.model import CnnConfig
from bigmodel_tf.training.config import RunConfig


def build_torch_cnn(config: CnnConfig, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """`model.build_cnn`'s network as a `torch.nn.Module` from NCHW images to class logits."""
    import torch
    from torch import nn

    class RandomAffine(nn.Module):
        """`augmentation.RandomAffine`: one random affine map per image while training
        (bilinear, zeros outside), drawn and applied to the whole batch at once."""

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            if not self.training:
                return images
            count, _, height, width = images.shape

            def uniform(bound: float) -> torch.Tensor:
                return (torch.rand(count) * 2 - 1) * bound

            angle, scale = uniform(TURN * 2 * math.pi), 1 + uniform(ZOOM)
            cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
            # A turn in pixels, in the [-1, 1] coordinates of `affine_grid`.
            theta = torch.stack(
                [
                    torch.stack([cos, -sin * height / width, 2 * uniform(SHIFT)], 1),
                    torch.stack([sin * width / height, cos, 2 * uniform(SHIFT)], 1),
                ],
                1,
            )
            grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
            return nn.functional.grid_sample(images, grid, align_corners=False)

    height, width, channels = input_shape
    layers: list[nn.Module] = [RandomAffine()] if config.augment else []
    padding = 1 if config.padding == "same" else 0
    for block, filters in enumerate(config.filters):
        if block:
            layers.append(nn.MaxPool2d(2))
        for _ in range(config.convs_per_block):
            layers.append(
                nn.Conv2d(channels, filters, 3, padding=padding, bias=not config.batch_norm)
            )
            if config.batch_norm:
                # Keras' momentum 0.9 keeps 0.9 of the old average, PyTorch's 0.1 the same.
                layers.append(nn.BatchNorm2d(filters, eps=1e-3, momentum=0.1))
            layers.append(nn.ReLU())
            channels = filters
    if config.pooling == "flatten":
        with torch.no_grad():  # the flattened size, as Keras infers it
            features = nn.Sequential(*layers).eval()(torch.zeros(1, input_shape[2], height, width))
        layers.append(nn.Flatten())
        width_in = features.numel()
    else:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        width_in = channels
    layers += [nn.Linear(width_in, config.dense_units), nn.ReLU()]
    if config.dropout:
        layers.append(nn.Dropout(config.dropout))
    layers.append(nn.Linear(config.dense_units, num_classes))
    return nn.Sequential(*layers)


def cnn_peer(config: RunConfig, spec: Any) -> Peer:
    """The run's CNN in PyTorch, its loss, and NHWC NumPy images as NCHW tensors."""
    import torch

    def tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        nchw = np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)), dtype=np.float32)
        return torch.from_numpy(nchw), torch.from_numpy(labels.astype(np.int64))

    return Peer(
        build_torch_cnn(config.model, spec.input_shape, spec.num_classes),
        torch.nn.functional.cross_entropy,
        tensors,
    )
