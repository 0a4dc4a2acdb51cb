"""Labels from a trained `transformer` run: `classify`, the Python side of `bigmodel-tf classify`.

>>> from bigmodel_tf.training import classify
>>> classify("runs/transformer/demo", ["A gorgeous, witty film.", "Two hours I will not get back."])
[{'text': 'A gorgeous, witty film.', 'label': 'fresh', 'probability': 0.93}, ...]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.families.transformer.classifier_task import TransformerClassifierTask
from bigmodel_tf.families.transformer.text_classifier import TextClassifier
from bigmodel_tf.training.runs import load_run, load_trained


def _checked_texts(texts: Sequence[str | bytes]) -> list[str]:
    if isinstance(texts, (str, bytes)) or not texts:
        raise UserError("give a list of at least one text")
    checked = []
    for number, text in enumerate(texts, 1):
        try:
            # A str from the command line holds undecodable bytes as surrogates.
            text = text.decode("utf-8") if isinstance(text, bytes) else text
            text.encode("utf-8")
        except UnicodeError:
            raise UserError(f"text {number} is not valid UTF-8") from None
        if not text.strip():
            raise UserError(f"text {number} is empty")
        checked.append(text)
    return checked


def classify(run_dir: Path | str, texts: Sequence[str | bytes]) -> list[dict[str, Any]]:
    """The label and its probability for each text, from a `transformer` run's best checkpoint.

    Texts longer than the model's `sequence_length` subwords are truncated to it, with a warning
    on stderr. Exactly what the exported `serve` signature computes, except that an empty text
    or one that is not UTF-8 is refused here rather than classified.

    Args:
        run_dir: path. A trained `transformer` run.
        texts: sequence of str or bytes. At least one, none empty.

    Returns:
        One `{"text", "label", "probability", "probabilities"}` per text, in order;
        `probabilities` maps every label to its probability.
    """
    texts = _checked_texts(texts)
    family, expected = load_run(run_dir).family, TransformerClassifierTask.family
    if family != expected:
        raise UserError(f"{run_dir} is a {family!r} run; classify takes a {expected!r} run")
    _, _, spec, model = load_trained(run_dir)
    classifier = TextClassifier(model, spec)
    subwords = classifier.tokenizer.tokenize(tf.constant(texts))  # eagerly: lists of ids
    room = spec.sequence_length - 1 - (spec.sep_id is not None)  # besides [CLS] and [SEP]
    for number, count in enumerate(map(len, subwords), 1):
        if count > room:
            print(
                f"warning: text {number} has {count} subwords; the model reads the first {room}",
                file=sys.stderr,
            )
    probabilities = classifier(tf.constant(texts))["probabilities"].numpy()
    return [
        {
            "text": text,
            "label": spec.labels[int(row.argmax())],
            "probability": float(row.max()),
            "probabilities": dict(zip(spec.labels, map(float, row), strict=True)),
        }
        for text, row in zip(texts, probabilities, strict=True)
    ]
