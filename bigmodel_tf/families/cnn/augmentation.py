"""Random shifts, turns and zooms of training images, drawn per image and applied as one affine
map, so each image is resampled once.

    >>> layer = RandomAffine(seed=1)
    >>> images = np.random.rand(4, 28, 28, 1).astype("float32")
    >>> layer(images, training=True).shape
    (4, 28, 28, 1)
    >>> bool(np.all(layer(images) == images))  # the identity outside training
    True
"""

from __future__ import annotations

import math

import keras
from keras import ops

# The ranges of the digits' natural variation: shifts of up to 10% of each side, turns of up to
# 0.03 of a full turn (~11°), zooms of up to 10% in or out.
SHIFT, TURN, ZOOM = 0.1, 0.03, 0.1


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class RandomAffine(keras.layers.Layer):
    """While training, each image is shifted by up to `shift` of its height and width, turned
    about its centre by up to `turn` of a full turn and zoomed by a factor within
    `1 ± zoom`, all drawn uniformly, and resampled once (bilinear, zeros outside). Keras'
    `RandomTranslation`, `RandomRotation` and `RandomZoom` in a row draw the same maps but
    resample three times: three passes over the batch in each step, and a blurrier image.

    Args:
        shift: float. Largest shift, as a fraction of each side. Defaults to `SHIFT`.
        turn: float. Largest turn, as a fraction of a full turn. Defaults to `TURN`.
        zoom: float. Largest change of scale. Defaults to `ZOOM`.
        seed: int. Of the draws. Defaults to None.

    Call arguments:
        images: float tensor `(batch, height, width, channels)`.
        training: bool. Transform only when true.
    """

    def __init__(
        self,
        shift: float = SHIFT,
        turn: float = TURN,
        zoom: float = ZOOM,
        seed: int | None = None,
        **kwargs,
    ):
        # Resampling runs in float32 whatever the model computes in: pixels are interpolated before
        # any rounding to bf16.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.shift, self.turn, self.zoom, self.seed = shift, turn, zoom, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # XLA has no kernel for the resampling op (`ImageProjectiveTransformV3`); this tells
        # Keras to compile the model without XLA rather than fail in the first step.
        self.supports_jit = False

    def call(self, images, training=None):
        if not training:
            return images
        count = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]

        def uniform(bound: float):
            return keras.random.uniform((count,), -bound, bound, seed=self.seed_generator)

        angle = uniform(self.turn * 2 * math.pi)
        scale = 1 + uniform(self.zoom)
        dx, dy = uniform(self.shift) * width, uniform(self.shift) * height
        # The output pixel (x, y) reads the input at A (x - c) + c + d: A turns and scales
        # about the centre c, d shifts. `affine_transform` takes that map's 8 coefficients
        # (the last two, 0, make it affine rather than projective).
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        cx, cy = (width - 1) / 2, (height - 1) / 2
        zero = ops.zeros_like(cos)
        transform = ops.stack(
            [
                cos,
                -sin,
                cx - cos * cx + sin * cy + dx,
                sin,
                cos,
                cy - sin * cx - cos * cy + dy,
                zero,
                zero,
            ],
            axis=1,
        )
        return ops.image.affine_transform(
            images, transform, interpolation="bilinear", fill_mode="constant"
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"shift": self.shift, "turn": self.turn, "zoom": self.zoom, "seed": self.seed}
        )
        return config
