"""tf.data pipelines shared by every model family.

Training data is one dataset that runs from the step a run starts (or resumes) at up to the last
epoch, each epoch shuffled with a seed derived from (seed, epoch). Keras does not restore a tf.data
iterator's position on resume, so this is what makes a resumed run see exactly the batches an
uninterrupted run would have seen.

Under a multi-worker strategy every worker builds the same global batches and keeps its replicas'
share of each (`AutoShardPolicy.DATA`): our datasets are cached in memory from a handful of files,
too few to give each worker files of its own, and sharding by file would change which examples
meet in a batch with the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Examples held for shuffling; datasets up to this size get a perfect shuffle each epoch.
MAX_SHUFFLE_BUFFER = 100_000

Batcher = Callable[[tf.data.Dataset], tf.data.Dataset]


def epoch_seed(seed: int, epoch: int | tf.Tensor) -> int | tf.Tensor:
    """The seed of epoch `epoch` in a run seeded with `seed` (works on ints and int64 tensors)."""
    return seed * 1_000_003 + epoch


def batch_uniform(ids: tf.Tensor, seed: int) -> Callable[..., tf.Tensor]:
    """`uniform(offset, **kwargs)`: stateless uniform draws of `ids`' shape, a function of
    `seed`, the batch's ids and `offset` (one stream per offset).

    What a training batch's augmentation draws from: a resumed run sees the batches an
    uninterrupted one would (`training_epochs`), so it draws the same numbers too, where a
    stateful generator would start again from its seed."""
    content = tf.strings.reduce_join(tf.strings.as_string(tf.reshape(ids, [-1])), separator=",")
    batch_seed = tf.strings.to_hash_bucket_fast(content, 2**31 - 1)

    def uniform(offset: int, **kwargs) -> tf.Tensor:
        stream = tf.stack([tf.constant(seed, tf.int64), batch_seed + offset])
        return tf.random.stateless_uniform(tf.shape(ids), stream, **kwargs)

    return uniform


def shard_by_data(batches: tf.data.Dataset) -> tf.data.Dataset:
    """Marks `batches` to be split by element, not by file, across the workers of a cluster."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options)


def fill_cache(examples: tf.data.Dataset) -> tf.data.Dataset:
    """`examples`, a cached dataset, after one full pass: its in-memory cache is then complete.

    Keras builds the model from one iterator, drops it and trains from another. With several
    local devices (MirroredStrategy's multi-device iterator) the first can still be filling the
    cache in the background when the second reads it, which then ends early: "Input dataset was
    expected to contain 4 elements but contained only 3" in the first validation of about half
    of the runs on 2 CPU replicas (measured). A complete cache is only read.
    """
    examples.reduce(0, lambda count, _: count + 1)
    return examples


def training_epochs(
    examples: tf.data.Dataset,
    batcher: Batcher,
    *,
    seed: int,
    first_epoch: int,
    epochs: int,
    first_step: int = 0,
    steps_per_epoch: int | None = None,
) -> tf.data.Dataset:
    """Epochs `first_epoch .. epochs-1` of `examples`, each shuffled by (seed, epoch) then batched,
    from batch `first_step` of the first.

    Args:
        examples: tf.data.Dataset. Unbatched examples, cached (they are iterated once per epoch).
        batcher: callable. Turns examples into batches (`batch`, `padded_batch`, bucketing, ...)
            and applies any per-batch map.
        seed: int. The run's seed.
        first_epoch: int. The first epoch to produce (0, or the epoch a resumed run restarts at).
        epochs: int. One past the last epoch.
        first_step: int. Batches of the first epoch to skip (a run resumed mid-epoch). Defaults
            to 0.
        steps_per_epoch: int. Batches to keep of each epoch (its first ones); None keeps all.
    """
    buffer = min(int(examples.cardinality()), MAX_SHUFFLE_BUFFER)
    if buffer <= 0:  # unknown or infinite cardinality
        buffer = MAX_SHUFFLE_BUFFER

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        shuffled = examples.shuffle(
            buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False
        )
        batches = batcher(shuffled)
        return batches.take(steps_per_epoch) if steps_per_epoch else batches

    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).skip(first_step)
    return shard_by_data(batches.prefetch(AUTOTUNE))


def evaluation_batches(examples: tf.data.Dataset, batcher: Batcher) -> tf.data.Dataset:
    """Examples in their stored order, batched, prefetched, with their number of batches known.

    The count matters: on fixed-size batches (`drop_remainder=True`) of unknown number, Keras
    3.15's graph-mode `evaluate` (jit_compile off) updates every metric once more after the
    last batch, which biases means down by a factor n / (n + 1) (keras-team/keras#23084).
    """
    count = num_batches(examples, batcher)
    batches = batcher(examples).apply(tf.data.experimental.assert_cardinality(count))
    return shard_by_data(batches.prefetch(AUTOTUNE))


def num_batches(examples: tf.data.Dataset, batcher: Batcher, at_most: int | None = None) -> int:
    """Number of batches `batcher` makes of one pass over `examples`, or `at_most` if it makes
    more. Counting an unknown number reads the examples, so a cap reads only as many as needed."""
    batches = batcher(examples)
    if at_most is not None:
        batches = batches.take(at_most)
    count = int(batches.cardinality())
    if count < 0:
        count = int(batches.reduce(0, lambda n, _: n + 1))
    return count
