"""Shared fixtures. Tests use the real embedded data (fetched once into the cache with pip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests.helpers import (
    TINY_CNN,
    TINY_GRU_LM,
    TINY_SEQ2SEQ,
    TINY_TRANSFORMER,
    TINY_TRANSFORMER_LM,
)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny CNN run on mnist5k (shared, treat as read-only)."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / "cnn"
    config = training.make_config("cnn", overrides={**TINY_CNN, "train.epochs": 1})
    training.train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_gru_lm(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny GRU language model run on Shakespeare (shared, read-only)."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / "gru-lm"
    config = training.make_config("gru-lm", overrides={**TINY_GRU_LM, "train.epochs": 1})
    training.train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_transformer(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny Transformer classifier run on Rotten Tomatoes (shared, read-only)."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / "transformer"
    config = training.make_config("transformer", overrides={**TINY_TRANSFORMER, "train.epochs": 1})
    training.train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_transformer_lm(tmp_path_factory) -> Path:
    """A finished short tiny Transformer language model run on Shakespeare (shared, read-only)."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / "transformer-lm"
    overrides = {**TINY_TRANSFORMER_LM, "train.epochs": 1}
    training.train(training.make_config("transformer-lm", overrides=overrides), run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_seq2seq(tmp_path_factory) -> Path:
    """A finished tiny seq2seq run on CMUdict, a few hundred steps (shared, read-only)."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / "seq2seq"
    training.train(training.make_config("seq2seq", overrides=TINY_SEQ2SEQ), run_dir, verbose=0)
    return run_dir
