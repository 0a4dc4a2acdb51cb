import json

import keras
import numpy as np
import pytest

from bigmodel_tf import training
from bigmodel_tf.errors import UserError
from bigmodel_tf.export import export
from bigmodel_tf.families.transformer.data import Retokenizer
from bigmodel_tf.training.distill import Distiller, student_of
from bigmodel_tf.training.runs import load_trained
from tests.helpers import TINY_CNN, TINY_TRANSFORMER

STUDENT = {
    **TINY_CNN,
    "model.filters": (8, 16),
    "model.dense_units": 8,
    "train.epochs": 1,
}


def tiny_classifier(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name=f"m{seed}"
    )


def distiller(student, teacher, alpha):
    model = Distiller(student, teacher, alpha=alpha, temperature=2.0)
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def test_loss_mixes_the_labels_and_the_teacher():
    x, y = np.random.default_rng(0).normal(size=(8, 4)).astype("float32"), np.arange(8) % 3
    student, teacher = tiny_classifier(1), tiny_classifier(2)
    labels_only = distiller(student, teacher, alpha=1.0)
    plain = keras.losses.sparse_categorical_crossentropy(y, student(x))
    assert float(labels_only.compute_loss(x, y, student(x))) == pytest.approx(
        float(np.mean(plain)), rel=1e-5
    )
    # A student identical to its teacher has nothing left to learn from it.
    twin = tiny_classifier(2)
    assert float(distiller(twin, teacher, alpha=0.0).compute_loss(x, y, twin(x))) == (
        pytest.approx(0.0, abs=1e-5)
    )
    assert float(distiller(student, teacher, alpha=0.0).compute_loss(x, y, student(x))) > 1e-3


def test_saved_distiller_reloads_safely_and_unwraps_to_the_student(tmp_path):
    x = np.ones((2, 4), "float32")
    model = distiller(tiny_classifier(1), tiny_classifier(2), alpha=0.3)
    model.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True, compile=False)
    assert isinstance(loaded, Distiller) and (loaded.alpha, loaded.temperature) == (0.3, 2.0)
    np.testing.assert_allclose(student_of(loaded)(x), model.student(x), atol=1e-7)
    assert student_of(model.student) is model.student


def test_distilled_run_trains_evaluates_and_exports_the_student(trained_cnn, tmp_path):
    config = training.make_config(
        "cnn", overrides={**STUDENT, "train.distill_from": str(trained_cnn)}
    )
    metrics = training.train(config, tmp_path / "student", verbose=0)
    _, _, _, model = load_trained(tmp_path / "student")
    assert not isinstance(model, Distiller)
    assert (
        metrics["parameters"]
        == model.count_params()
        < 0.25 * load_trained(trained_cnn)[3].count_params()
    )
    assert metrics["test"]["accuracy"] > 0.3  # the student learns in one epoch (chance: 0.1)

    out = export(tmp_path / "student", tmp_path / "export", quantize=("none",))
    report = json.loads((out / "report.json").read_text())
    rows = [row["variant"] for row in report["rows"]]
    assert rows == ["keras", "saved_model", "tflite float32", "teacher keras",
                    "teacher tflite float32"]  # fmt: skip
    (size,) = [t for t in report["targets"] if t["target"].startswith("student size")]
    assert size["met"], size


def test_teacher_must_be_a_finished_run_of_the_same_data(trained_cnn, tmp_path):
    with pytest.raises(UserError, match="is not a run directory"):
        training.train(
            training.make_config("cnn", overrides={**STUDENT, "train.distill_from": str(tmp_path)}),
            tmp_path / "a",
        )
    other_data = training.make_config(
        "cnn", dataset="tfds:mnist", overrides={**STUDENT, "train.distill_from": str(trained_cnn)}
    )
    with pytest.raises(UserError, match="is a cnn run on mnist5k, not cnn on tfds:mnist"):
        training.train(other_data, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_family_without_class_probabilities_is_refused(trained_gru_lm, tmp_path):
    config = training.make_config("gru-lm", overrides={"train.distill_from": str(trained_gru_lm)})
    with pytest.raises(UserError, match="gru-lm runs cannot be distilled"):
        training.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ~30 s: trains two tiny classifiers with their own vocabularies.
@pytest.mark.slow
def test_a_teacher_with_its_own_vocabulary_reads_the_students_batches(
    trained_transformer, tmp_path
):
    student = {
        **TINY_TRANSFORMER,
        "model.vocabulary_size": 1000,
        "model.hidden_dim": 16,
        "train.epochs": 1,
        "train.max_steps_per_epoch": 30,
        "train.distill_from": str(trained_transformer),
        # Words dropped, replaced or cut from the training texts reach the teacher so too.
        "model.token_dropout": 0.1,
        "model.word_replacement": 0.1,
        "model.span_sampling": 0.25,
    }
    config = training.make_config("transformer", overrides=student)
    metrics = training.train(config, tmp_path / "student", verbose=0)
    checkpoint = keras.saving.load_model(
        tmp_path / "student" / "checkpoints" / "last.keras", safe_mode=True, compile=False
    )
    assert isinstance(checkpoint.teacher_inputs, Retokenizer)
    assert (
        checkpoint.teacher.backbone.vocabulary_size != checkpoint.student.backbone.vocabulary_size
    )
    _, _, spec, model = load_trained(tmp_path / "student")
    assert spec.vocabulary_size < 1000 < model.count_params() and not isinstance(model, Distiller)
    assert metrics["test"]["accuracy"] > 0.55  # majority class: 0.578 at best; chance 0.5

    # The export's teacher rows read the student's test batches through the same translation.
    out = export(tmp_path / "student", tmp_path / "export", quantize=("none",))
    rows = {row["variant"]: row for row in json.loads((out / "report.json").read_text())["rows"]}
    teacher_test = json.loads((trained_transformer / "metrics.json").read_text())["test"]
    assert rows["teacher keras"]["accuracy"] == pytest.approx(teacher_test["accuracy"], abs=0.01)
    teacher_tflite = rows["teacher tflite float32"]["accuracy"]
    assert teacher_tflite == pytest.approx(rows["teacher keras"]["accuracy"], abs=1e-3)
