"""CNN image classifier (Keras functional API).

One builder serves both presets: `seed` is the documents' network, `default` is ours (batch norm,
dropout, augmentation), the one `bigmodel-tf train cnn` uses.

    >>> model = build_cnn(CnnConfig(), input_shape=(28, 28, 1), num_classes=10)
    >>> model(np.zeros((2, 28, 28, 1), "float32")).shape  # class probabilities
    (2, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from bigmodel_tf.config import option
from bigmodel_tf.families.cnn.augmentation import RandomAffine
from bigmodel_tf.layers.normalization import FusedBatchNormalization


@dataclass
class CnnConfig:
    """Hyper-parameters of the CNN. Inputs are float images in [0, 1], shape `(H, W, C)`."""

    # One block per entry; a 2x2 max-pool sits between consecutive blocks.
    filters: tuple[int, ...] = option((32, 64, 128), min=1)
    # Two 3x3 convolutions see 5x5 at the cost of 2x9 weights per channel pair instead of 25.
    convs_per_block: int = option(2, min=1, max=8)
    padding: str = option("same", choices=("same", "valid"))
    batch_norm: bool = option(True)
    # "flatten" keeps spatial detail; "average" (global average pooling) is size-agnostic.
    pooling: str = option("flatten", choices=("flatten", "average"))
    dense_units: int = option(128, min=1)
    # Strong dropout before the classifier: 3,500 training images overfit a 0.9M-weight net fast.
    dropout: float = option(0.4, min=0.0, max=0.95)
    # Small random shifts, rotations and zooms: the digits' natural variation; off at inference.
    augment: bool = option(True)
    # Input side in pixels; images are resized to it (0: the data's own size, or the most
    # common one among your images).
    image_size: int = option(0, min=0, max=4096)
    # Input channels, 1 (grey) or 3 (RGB); images are converted (0: the data's own, which is 3
    # for your images when any of them has colour).
    channels: int = option(0, choices=(0, 1, 3))


PRESETS: dict[str, dict] = {
    "default": {},
    # The documents' network: Conv32-Pool-Conv64-Pool-Conv64-Flatten-Dense64-Dense(classes).
    "seed": {
        "filters": (32, 64, 64),
        "convs_per_block": 1,
        "padding": "valid",
        "batch_norm": False,
        "pooling": "flatten",
        "dense_units": 64,
        "dropout": 0.0,
        "augment": False,
    },
    # A distillation student, 38x fewer weights than `default` (28k): global average pooling
    # instead of a 1,152-wide flatten, one convolution per block, and no dropout (this small, it
    # underfits: test accuracy 0.980 without dropout, 0.972 with 0.4, trained from scratch).
    "small": {
        "filters": (16, 32, 64),
        "convs_per_block": 1,
        "pooling": "average",
        "dense_units": 64,
        "dropout": 0.0,
    },
}


def build_cnn(
    config: CnnConfig, input_shape: tuple[int, int, int], num_classes: int, seed: int = 1
) -> keras.Model:
    """Builds the classifier; returns a functional model from images to class probabilities.

    Args:
        config: CnnConfig. The architecture.
        input_shape: tuple. `(height, width, channels)` of the float images.
        num_classes: int. Number of output classes.
        seed: int. Seed of the augmentation and dropout layers. Defaults to 1.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    if config.augment:
        x = RandomAffine(seed=seed, name="augment")(x)
    for block, filters in enumerate(config.filters):
        if block:
            x = keras.layers.MaxPooling2D(name=f"pool{block}")(x)
        for conv in range(config.convs_per_block):
            name = f"block{block + 1}_conv{conv + 1}"
            x = keras.layers.Conv2D(
                filters,
                3,
                padding=config.padding,
                # Batch norm's shift makes a bias redundant.
                use_bias=not config.batch_norm,
                activation=None if config.batch_norm else "relu",
                name=name,
            )(x)
            if config.batch_norm:
                # momentum 0.9, not Keras' 0.99: with ~55 steps an epoch the slow moving
                # averages lag the weights so far that validation accuracy collapsed to ~10%.
                x = FusedBatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
    if config.pooling == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, seed=seed + 3, name="dropout")(x)
    # float32 output keeps the softmax and the loss accurate under mixed precision.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(
        x
    )
    return keras.Model(inputs, outputs, name="cnn")
