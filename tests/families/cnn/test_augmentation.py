import numpy as np
import pytest

from bigmodel_tf.families.cnn.augmentation import RandomAffine
from tests.helpers import assert_keras_file_round_trip

SIDE = 29  # odd: one pixel is the centre


def dots(count: int, row: int, col: int) -> np.ndarray:
    images = np.zeros((count, SIDE, SIDE, 1), "float32")
    images[:, row, col] = 1.0
    return images


def centroids(images) -> np.ndarray:
    """`(count, 2)` intensity-weighted (row, column) of each image."""
    grid = np.indices((SIDE, SIDE)).reshape(2, -1).T  # (pixels, 2)
    weights = np.asarray(images).reshape(len(images), -1)
    return weights @ grid / weights.sum(axis=1, keepdims=True)


def test_identity_outside_training_and_with_empty_ranges():
    images = np.random.default_rng(0).random((3, SIDE, SIDE, 2), dtype="float32")
    np.testing.assert_array_equal(RandomAffine(seed=1)(images), images)
    still = RandomAffine(shift=0.0, turn=0.0, zoom=0.0, seed=1)
    np.testing.assert_allclose(still(images, training=True), images, atol=1e-5)


def test_turns_and_zooms_keep_the_centre_in_place():
    centre = SIDE // 2
    images = dots(64, centre, centre)
    moved = RandomAffine(shift=0.0, turn=0.25, zoom=0.3, seed=2)(images, training=True)
    np.testing.assert_allclose(np.asarray(moved)[:, centre, centre, 0], 1.0, atol=1e-5)


def test_turns_move_an_off_centre_dot_along_a_circle_within_the_bound():
    centre, radius = SIDE // 2, 10
    images = dots(256, centre, centre + radius)
    moved = centroids(RandomAffine(shift=0.0, turn=0.05, zoom=0.0, seed=3)(images, training=True))
    offsets = moved - centre
    np.testing.assert_allclose(np.hypot(*offsets.T), radius, atol=0.05)
    turns = np.abs(np.arctan2(offsets[:, 0], offsets[:, 1])) / (2 * np.pi)
    assert turns.max() <= 0.05 + 1e-3 and turns.max() > 0.04  # uniform up to the bound


@pytest.mark.parametrize("axis", [0, 1])
def test_shifts_are_uniform_up_to_the_bound(axis):
    centre = SIDE // 2
    images = dots(512, centre, centre)
    moved = centroids(RandomAffine(shift=0.2, turn=0.0, zoom=0.0, seed=4)(images, training=True))
    shifts = (moved[:, axis] - centre) / SIDE
    assert np.abs(shifts).max() <= 0.2 + 1e-3 and np.abs(shifts).max() > 0.18
    assert abs(np.mean(shifts)) < 0.02


def test_a_seed_repeats_its_draws_and_the_layer_round_trips(tmp_path):
    images = np.random.default_rng(5).random((4, SIDE, SIDE, 1), dtype="float32")
    first = RandomAffine(seed=7)(images, training=True)
    np.testing.assert_array_equal(RandomAffine(seed=7)(images, training=True), first)
    layer = RandomAffine(shift=0.05, turn=0.01, zoom=0.2, seed=7)
    clone = RandomAffine.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert_keras_file_round_trip(layer, images, tmp_path)
