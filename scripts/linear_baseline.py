#!/usr/bin/env python
"""Scores a linear text classifier (TF-IDF n-grams -> logistic regression) on a labelled text
dataset's test split: the yardstick docs/results.md puts beside the Transformer classifier.

    python scripts/linear_baseline.py                    # rotten_tomatoes, the embedded default

The dataset needs `train`, `validation` and `test` splits of (text, 0-or-1 label). Each
setting (n-grams up to 1 or 2, L2 weight) trains with Adam and keeps the epoch with the best
validation accuracy; the setting with the best validation accuracy is the one whose test
accuracy counts. Run it from the repository's .venv (`source scripts/setup.sh` first).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NGRAMS = (1, 2)
L2_WEIGHTS = (1e-5, 1e-4, 1e-3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="rotten_tomatoes", help="default: rotten_tomatoes")
    parser.add_argument("--max-tokens", type=int, default=60000, help="n-gram vocabulary size")
    parser.add_argument("--epochs", type=int, default=15, help="most epochs per setting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from bigmodel_tf.io import import_tensorflow_quietly

    import_tensorflow_quietly()
    import numpy as np

    from bigmodel_tf.errors import UserError

    try:
        splits = [_split(args.dataset, name) for name in ("train", "validation", "test")]
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    (train_x, _), (val_x, _), (test_x, test_y) = splits
    labels = set(np.unique(np.concatenate([y for _, y in splits])).tolist())
    if not labels <= {0, 1}:
        print(f"error: {args.dataset} has labels {sorted(labels)}, not 0 and 1", file=sys.stderr)
        return 2
    majority = max(np.mean(test_y), 1 - np.mean(test_y))
    print(
        f"{args.dataset}: {len(train_x)} train, {len(val_x)} validation, {len(test_x)} test; "
        f"test majority class {majority:.4f}"
    )
    best = None
    for ngrams in NGRAMS:
        batches, width = _vectorised(splits, ngrams, args.max_tokens, args.seed)
        for l2 in L2_WEIGHTS:
            val, test = _score(*batches, width, l2, args.epochs, args.seed)
            print(f"n-grams up to {ngrams}, L2 {l2:g}: validation {val:.4f}, test {test:.4f}")
            if best is None or val > best[0]:
                best = (val, test, ngrams, l2)
    val, test, ngrams, l2 = best
    print(f"chosen on validation: n-grams up to {ngrams}, L2 {l2:g}: test accuracy {test:.4f}")
    return 0


def _split(dataset: str, name: str):
    """`(texts, labels)` of a split as NumPy arrays; a dataset without text is a `UserError`."""
    import numpy as np

    from bigmodel_tf import data
    from bigmodel_tf.errors import UserError

    texts, labels = zip(*data.load(dataset, name)[0].as_numpy_iterator(), strict=True)
    if not isinstance(texts[0], bytes):
        raise UserError(f"{dataset} is not a text dataset: its inputs are not strings")
    return np.array([t.decode("utf-8", "replace") for t in texts]), np.array(labels)


def _vectorised(splits: list, ngrams: int, max_tokens: int, seed: int) -> tuple[list, int]:
    """Each split as batches of tf-idf rows over n-grams up to `ngrams` learnt from the training
    texts (the training batches shuffled), and the rows' width."""
    import keras
    import tensorflow as tf

    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, ngrams=ngrams, output_mode="tf_idf"
    )
    vectorizer.adapt(splits[0][0])

    def batches(texts, labels, shuffle=False):
        # Vectorised batch by batch: the whole split as dense tf-idf rows would take GBs.
        examples = tf.data.Dataset.from_tensor_slices((texts, labels))
        if shuffle:
            examples = examples.shuffle(len(texts), seed=seed)
        return examples.batch(64).map(lambda t, y: (vectorizer(t), y)).prefetch(tf.data.AUTOTUNE)

    train, validation, test = splits
    vectorised = [batches(*train, shuffle=True), batches(*validation), batches(*test)]
    return vectorised, vectorizer.vocabulary_size()


def _score(train, validation, test, width: int, l2: float, epochs: int, seed: int):
    """Validation and test accuracy of logistic regression with L2 weight `l2`, trained with
    Adam and kept at its best validation epoch."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((width,)),
            keras.layers.Dense(
                1, activation="sigmoid", kernel_regularizer=keras.regularizers.l2(l2)
            ),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=3, mode="max", restore_best_weights=True
    )
    model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        shuffle=False,  # the dataset shuffles its examples itself
        callbacks=[stop],
        verbose=0,
    )
    return model.evaluate(validation, verbose=0)[1], model.evaluate(test, verbose=0)[1]


if __name__ == "__main__":
    raise SystemExit(main())
