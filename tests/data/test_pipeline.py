import tensorflow as tf

from bigmodel_tf.data.pipeline import num_batches, training_epochs


def batches(
    first_epoch: int, epochs: int, seed: int = 3, first_step: int = 0, steps=None
) -> list[list[int]]:
    examples = tf.data.Dataset.range(10)
    ds = training_epochs(
        examples,
        lambda d: d.batch(4),
        seed=seed,
        first_epoch=first_epoch,
        epochs=epochs,
        first_step=first_step,
        steps_per_epoch=steps,
    )
    return [b.tolist() for b in ds.as_numpy_iterator()]


def test_epoch_order_depends_only_on_seed_and_epoch():
    full = batches(0, 4)
    assert len(full) == 4 * 3  # 10 examples in batches of 4 → 3 batches an epoch
    # A run resumed at epoch 2 sees exactly the batches an uninterrupted run sees there.
    assert batches(2, 4) == full[6:]
    # And one resumed mid-epoch, at epoch 1's second batch, those from there on.
    assert batches(1, 4, first_step=1) == full[4:]
    # Every epoch is a permutation, and epochs differ from one another.
    epochs = [sorted(x for batch in full[i : i + 3] for x in batch) for i in range(0, 12, 3)]
    assert all(e == list(range(10)) for e in epochs)
    assert full[0:3] != full[3:6]
    assert batches(0, 4, seed=4) != full


def test_capped_epochs_are_the_first_batches_of_each_full_epoch():
    full = batches(0, 3)
    assert batches(0, 3, steps=2) == full[0:2] + full[3:5] + full[6:8]


def test_num_batches_counts_partial_batches():
    examples = tf.data.Dataset.range(10)
    assert num_batches(examples, lambda d: d.batch(4)) == 3
    unknown = examples.filter(lambda x: x % 2 == 0)  # cardinality unknown
    assert num_batches(unknown, lambda d: d.batch(4)) == 2
    assert num_batches(unknown, lambda d: d.batch(4), at_most=1) == 1
    assert num_batches(examples, lambda d: d.batch(4), at_most=5) == 3


def test_datasets_are_sharded_by_element_across_workers():
    ds = training_epochs(
        tf.data.Dataset.range(10), lambda d: d.batch(4), seed=3, first_epoch=0, epochs=1
    )
    policy = ds.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
