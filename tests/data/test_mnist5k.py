import hashlib
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bigmodel_tf import data
from bigmodel_tf.data.builders import Mnist5k
from bigmodel_tf.errors import UserError


def split_arrays(split: str, data_dir=None):
    if data_dir is None:
        ds, _ = data.load("mnist5k", split)
    else:
        ds = tfds.load("mnist5k", split=split, data_dir=str(data_dir), as_supervised=True)
    images, labels = zip(*ds.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


def test_split_counts_are_as_documented_and_class_balanced():
    for split, count in Mnist5k.SPLIT_SIZES.items():
        images, labels = split_arrays(split)
        assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == [count // 10] * 10


def test_splits_are_disjoint():
    digests = {
        split: {hashlib.sha1(image.tobytes()).hexdigest() for image in split_arrays(split)[0]}
        for split in Mnist5k.SPLIT_SIZES
    }
    assert not digests["train"] & digests["test"]
    assert not digests["train"] & digests["validation"]
    assert not digests["validation"] & digests["test"]


def test_preparation_is_deterministic_and_loads_through_tfds(tmp_path):
    Mnist5k(data_dir=str(tmp_path)).download_and_prepare()
    fresh_images, fresh_labels = split_arrays("test", data_dir=tmp_path)
    images, labels = split_arrays("test")
    np.testing.assert_array_equal(fresh_images, images)
    np.testing.assert_array_equal(fresh_labels, labels)
    # Split slicing works like any TFDS dataset.
    assert len(split_arrays("train[:10%]", data_dir=tmp_path)[1]) == 350


def test_unknown_dataset_and_bad_split_are_user_errors():
    with pytest.raises(UserError, match="unknown dataset 'mnist6k'"):
        data.load("mnist6k", "train")
    with pytest.raises(UserError, match="bad split"):
        data.load("mnist5k", "training")


def test_catalogue_dataset_fails_fast_when_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("BIGMODEL_TF_CACHE", str(tmp_path))

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("socket.create_connection", unreachable)
    started = time.monotonic()
    with pytest.raises(UserError, match=r"tfds:mnist is not prepared.*unreachable"):
        data.load("tfds:mnist", "train")
    assert time.monotonic() - started < 30
