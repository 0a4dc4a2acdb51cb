"""Report sections every classifier shares: its predictions on a split, the confusion matrix and
the examples it gets most confidently wrong (a family shows those its own way: images, texts).

    >>> probabilities, labels = predict_split(serving, config, spec, model, "test")
    >>> section = classifier_section(probabilities, labels, spec.labels, show_wrong)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bigmodel_tf.pictures import png_bytes, pyplot
from bigmodel_tf.report.sections import Block, Image, Section, Text

if TYPE_CHECKING:
    import keras

    from bigmodel_tf.export.serving import ClassificationServing

# Examples per forward pass when predicting a split.
PREDICT_BATCH = 256
# The most confidently wrong examples a report shows.
WRONG_EXAMPLES = 12
# Above this many classes the matrix has no tick labels, above a third of it no counts: they
# would overlap.
LABELLED_CLASSES = 30


def predict_split(
    serving: ClassificationServing, config: Any, spec: Any, model: keras.Model, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """`(probabilities (examples, classes), labels (examples,))` of the model on `split`, in the
    order of the family's `raw_batches`."""
    probabilities, labels = [], []
    for inputs, targets in serving.raw_batches(config, spec, split, PREDICT_BATCH):
        probabilities.append(np.asarray(model(serving.model_inputs(inputs), training=False)))
        labels.append(np.asarray(targets))
    return np.concatenate(probabilities), np.concatenate(labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """`(classes, classes)` counts: row the true class, column the predicted one."""
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(
        classes, classes
    )


def confidently_wrong(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to `count` misclassified examples, the most confident prediction first."""
    predictions = probabilities.argmax(-1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def confusion_image(labels: np.ndarray, predictions: np.ndarray, names: Sequence[str]) -> Image:
    """The confusion matrix as a heatmap: each cell's count, coloured by its share of the row
    (the true class), so that rare classes show as clearly as common ones."""
    classes = len(names)
    counts = confusion_matrix(labels, predictions, classes)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = min(4 + 0.45 * classes, 14)
    figure, axes = pyplot().subplots(figsize=(side + 1, side), dpi=100)
    shown = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(shown, ax=axes, fraction=0.046, label="share of the true class")
    if classes <= LABELLED_CLASSES:
        axes.set_xticks(range(classes), names, rotation=45 if classes > 5 else 0, ha="right")
        axes.set_yticks(range(classes), names)
    size = min(14, max(6, 90 // classes))  # counts as large as the cells allow
    if classes <= LABELLED_CLASSES // 3 * 2:
        for (row, column), count in np.ndenumerate(counts):
            color = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=color, fontsize=size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = float(np.mean(labels == predictions))
    axes.set_title(f"{len(labels):,} test examples, accuracy {accuracy:.4f}")
    figure.tight_layout()
    return Image("confusion_matrix", png_bytes(figure), "Rows: the true class; columns: predicted.")


def classifier_section(
    probabilities: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    show_wrong: Callable[[np.ndarray], Block],
) -> Section:
    """The test split's confusion matrix and the most confidently wrong examples, which
    `show_wrong(indices)` shows (most confident first)."""
    wrong = confidently_wrong(probabilities, labels, WRONG_EXAMPLES)
    blocks: list[Block] = [confusion_image(labels, probabilities.argmax(-1), names)]
    if len(wrong):
        blocks.append(show_wrong(wrong))
    else:
        blocks.append(Text("most_confidently_wrong", "Every test example is classified right."))
    return Section(
        "Test predictions",
        blocks,
        note="The confusion matrix of the best checkpoint on the test split, and the test "
        "examples it gets wrong with the highest probability.",
    )


def examples_at(examples: Any, indices: Sequence[int]) -> list[Any]:
    """The elements of a `tf.data.Dataset` at `indices`, as numpy, in the order of `indices`;
    reads the dataset only as far as the last of them."""
    wanted, found = {int(i) for i in indices}, {}
    for index, element in enumerate(examples.as_numpy_iterator()):
        if index in wanted:
            found[index] = element
            if len(found) == len(wanted):
                break
    return [found[int(i)] for i in indices]


def wrong_caption(names: Sequence[str], label: int, probabilities: np.ndarray) -> str:
    """`"true → predicted (p)"` for one misclassified example."""
    predicted = int(probabilities.argmax())
    return f"{names[label]} → {names[predicted]} ({probabilities[predicted]:.2f})"
