"""Knowledge distillation (Hinton et al. 2015): a small student learns from a trained teacher.

The trainer wraps the student in a `Distiller` when `train.distill_from` names a finished run of
the same family; everything else (data, checkpoints, resume, export) is unchanged, and
`student_of` unwraps a loaded checkpoint so that evaluation and export see the student alone.

    >>> teacher = {"train.distill_from": "runs/cnn/demo"}
    >>> config = make_config("cnn", preset="small", overrides=teacher)
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class Distiller(keras.Model):
    """Trains `student` on `alpha` x the compiled loss + (1 - alpha) x T² x KL(teacher ‖ student).

    Both models output class probabilities; their logs are logits up to a constant, so dividing
    them by the temperature T and re-normalising softens both distributions alike. The T² keeps
    the soft term's gradients on the scale of the hard one's (Hinton et al., section 2).
    `call` is the student's, so metrics and predictions are the student's.

    Args:
        student: keras.Model. The model being trained.
        teacher: keras.Model. A trained model of the same classes; frozen.
        alpha: float. Weight of the true-label loss. Defaults to 0.1.
        temperature: float. Softening temperature. Defaults to 4.0.
        teacher_inputs: keras.layers.Layer. Makes the teacher's inputs from the student's
            (e.g. `data.subwords.Retokenizer` for a teacher with its own vocabulary). Defaults
            to None: the teacher reads the student's inputs.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        alpha: float = 0.1,
        temperature: float = 4.0,
        teacher_inputs: keras.layers.Layer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = alpha
        self.temperature = temperature
        self.teacher_inputs = teacher_inputs
        # Nothing of its own to build; BackupAndRestore needs a built model before fit.
        self.built = student.built and teacher.built

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        hard = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if self.teacher_inputs is not None:
            x = self.teacher_inputs(x)
        teacher_probabilities = self.teacher(x, training=False)
        soft_targets = self._soften(teacher_probabilities)
        log_student = ops.log_softmax(self._logits(y_pred) / self.temperature, axis=-1)
        # KL(p ‖ q) = Σ p (log p − log q), averaged over the batch.
        kl = ops.sum(soft_targets * (ops.log(soft_targets + 1e-12) - log_student), axis=-1)
        soft = ops.mean(kl) * self.temperature**2
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def _logits(self, probabilities):
        return ops.log(ops.maximum(ops.cast(probabilities, "float32"), 1e-12))

    def _soften(self, probabilities):
        return ops.softmax(self._logits(probabilities) / self.temperature, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "student": keras.saving.serialize_keras_object(self.student),
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "alpha": self.alpha,
                "temperature": self.temperature,
                "teacher_inputs": keras.saving.serialize_keras_object(self.teacher_inputs),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        if config.get("teacher_inputs") is not None:
            config["teacher_inputs"] = keras.saving.deserialize_keras_object(
                config["teacher_inputs"]
            )
        return cls(**config)


def student_of(model: keras.Model) -> keras.Model:
    """The model to evaluate and export: a `Distiller`'s student, any other model itself."""
    return model.student if isinstance(model, Distiller) else model
