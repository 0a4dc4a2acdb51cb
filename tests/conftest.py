"""Shared fixtures. Tests use the real embedded data (fetched once into the cache with pip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# No report.html or TensorBoard pictures when a test's run ends (seconds each), but for the
# shared runs below, which the report tests read.
os.environ.setdefault("BIGMODEL_TF_REPORT", "0")
# train.precision=auto chooses by the CPU: the suite trains alike on every machine (float32).
os.environ.setdefault("BIGMODEL_TF_NATIVE_BF16", "0")

from tests.helpers import (
    TINY_CNN,
    TINY_GRU_LM,
    TINY_SEQ2SEQ,
    TINY_TRANSFORMER,
    TINY_TRANSFORMER_LM,
)


def _trained(tmp_path_factory, family: str, overrides: dict) -> Path:
    """A finished one-epoch run of `family` with `overrides`, in a fresh temporary folder."""
    from bigmodel_tf import training

    run_dir = tmp_path_factory.mktemp("runs") / family
    config = training.make_config(family, overrides={**overrides, "train.epochs": 1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIGMODEL_TF_REPORT", "1")  # its report, as `train` writes it
        training.train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny CNN run on mnist5k (shared, treat as read-only)."""
    return _trained(tmp_path_factory, "cnn", TINY_CNN)


@pytest.fixture(scope="session")
def trained_gru_lm(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny GRU language model run on Shakespeare (shared, read-only)."""
    return _trained(tmp_path_factory, "gru-lm", TINY_GRU_LM)


@pytest.fixture(scope="session")
def trained_transformer(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny Transformer classifier run on Rotten Tomatoes (shared, read-only)."""
    return _trained(tmp_path_factory, "transformer", TINY_TRANSFORMER)


@pytest.fixture(scope="session")
def trained_transformer_lm(tmp_path_factory) -> Path:
    """A finished short tiny Transformer language model run on Shakespeare (shared, read-only)."""
    return _trained(tmp_path_factory, "transformer-lm", TINY_TRANSFORMER_LM)


@pytest.fixture(scope="session")
def trained_seq2seq(tmp_path_factory) -> Path:
    """A finished tiny seq2seq run on CMUdict, a few hundred steps (shared, read-only)."""
    return _trained(tmp_path_factory, "seq2seq", TINY_SEQ2SEQ)
