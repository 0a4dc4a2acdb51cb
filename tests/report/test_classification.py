"""The classifiers' shared report pieces: the confusion matrix and the most confidently wrong."""

import io

import numpy as np
from matplotlib import image as mpl_image

from bigmodel_tf.report.classification import (
    confidently_wrong,
    confusion_image,
    confusion_matrix,
    examples_at,
)
from tests.helpers import assert_drawn


def test_the_confusion_matrix_counts_true_rows_against_predicted_columns():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(
        confusion_matrix(labels, predictions, 3), [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    )


def test_the_most_confidently_wrong_come_first_and_right_ones_never():
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.95, 0.05]])
    labels = np.array([1, 0, 0, 1, 0])
    np.testing.assert_array_equal(confidently_wrong(probabilities, labels, 10), [0, 2, 1, 3])
    np.testing.assert_array_equal(confidently_wrong(probabilities, labels, 2), [0, 2])
    assert len(confidently_wrong(probabilities, probabilities.argmax(-1), 3)) == 0


def test_examples_at_returns_them_in_the_order_asked():
    import tensorflow as tf

    examples = tf.data.Dataset.range(100).map(lambda i: (i, i * 2))
    assert [int(b) for _, b in examples_at(examples, np.array([7, 3, 50]))] == [14, 6, 100]


def test_the_confusion_image_is_drawn_for_few_and_many_classes():
    rng = np.random.default_rng(0)
    for classes in (2, 40):
        labels = rng.integers(classes, size=500)
        predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(classes, size=500))
        image = confusion_image(labels, predictions, [f"class {i}" for i in range(classes)])
        assert_drawn(mpl_image.imread(io.BytesIO(image.png), format="png")[..., :3], str(classes))
