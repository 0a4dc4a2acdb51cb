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
    import keras
    import numpy as np
    import tensorflow as tf

    from bigmodel_tf import data
    from bigmodel_tf.errors import UserError

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        texts, labels = zip(*data.load(args.dataset, name)[0].as_numpy_iterator(), strict=True)
        if not isinstance(texts[0], bytes):
            raise UserError(f"{args.dataset} is not a text dataset: its inputs are not strings")
        return np.array([t.decode("utf-8", "replace") for t in texts]), np.array(labels)

    try:
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = map(
            split, ("train", "validation", "test")
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    labels = set(np.unique(np.concatenate([train_y, val_y, test_y])).tolist())
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
        vectorizer = keras.layers.TextVectorization(
            max_tokens=args.max_tokens, ngrams=ngrams, output_mode="tf_idf"
        )
        vectorizer.adapt(train_x)

        def batches(texts: np.ndarray, labels: np.ndarray, shuffle=False, vectorizer=vectorizer):
            # Vectorised batch by batch: the whole split as dense tf-idf rows would take GBs.
            examples = tf.data.Dataset.from_tensor_slices((texts, labels))
            if shuffle:
                examples = examples.shuffle(len(texts), seed=args.seed)
            return (
                examples.batch(64).map(lambda t, y: (vectorizer(t), y)).prefetch(tf.data.AUTOTUNE)
            )

        train, val_data, test_data = (
            batches(train_x, train_y, shuffle=True),
            batches(val_x, val_y),
            batches(test_x, test_y),
        )
        for l2 in L2_WEIGHTS:
            keras.utils.set_random_seed(args.seed)
            model = keras.Sequential(
                [
                    keras.Input((vectorizer.vocabulary_size(),)),
                    keras.layers.Dense(
                        1, activation="sigmoid", kernel_regularizer=keras.regularizers.l2(l2)
                    ),
                ]
            )
            model.compile(
                keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
            )
            stop = keras.callbacks.EarlyStopping(
                "val_accuracy", patience=3, mode="max", restore_best_weights=True
            )
            model.fit(
                train,
                validation_data=val_data,
                epochs=args.epochs,
                shuffle=False,  # the dataset shuffles its examples itself
                callbacks=[stop],
                verbose=0,
            )
            val = model.evaluate(val_data, verbose=0)[1]
            test = model.evaluate(test_data, verbose=0)[1]
            print(f"n-grams up to {ngrams}, L2 {l2:g}: validation {val:.4f}, test {test:.4f}")
            if best is None or val > best[0]:
                best = (val, test, ngrams, l2)
    val, test, ngrams, l2 = best
    print(f"chosen on validation: n-grams up to {ngrams}, L2 {l2:g}: test accuracy {test:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
