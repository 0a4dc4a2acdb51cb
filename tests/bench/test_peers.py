"""The peers suite: our trainer against the CNN and the GRU LM written plainly in PyTorch.

The peers must be our networks (the same weights compute the same outputs); the suite runs on
toy sizes, checked for form, never for speed.
"""

import sys

import numpy as np
import pytest

from bigmodel_tf import bench
from bigmodel_tf.bench.results import Figure
from bigmodel_tf.families.cnn.model import CnnConfig, build_cnn
from bigmodel_tf.families.cnn.peer import build_torch_cnn
from bigmodel_tf.families.gru_lm.model import GruLanguageModel, GruLmConfig
from bigmodel_tf.families.gru_lm.peer import build_torch_gru_lm
from bigmodel_tf.io import read_json


def test_without_pytorch_the_suite_says_so_in_one_line_and_keeps_earlier_figures(
    monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    out = tmp_path / "results.json"
    earlier = Figure("peers.cnn.ratio", 1.3, "x", "peers", target=">= 1.2", family="cnn")
    bench.write_results(out, [earlier], quick=True)
    lines = []

    def save(figures):
        bench.write_results(out, figures, quick=True)

    assert bench.run(["peers"], quick=True, log=lines.append, on_suite=save) == []
    assert lines == [
        "[peers] PyTorch is not installed (pip install -e '.[peers]'); no figures recorded"
    ]
    assert [f["name"] for f in read_json(out)["figures"]] == ["peers.cnn.ratio"]


def weights(module) -> int:
    return sum(p.numel() for p in module.parameters())


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


SMALL_CNNS = {
    # Our default network, small: batch norm, flatten, dropout, augmentation.
    "default": CnnConfig(filters=(4, 8), dense_units=16),
    # The documents' network.
    "seed": CnnConfig(
        filters=(4, 8, 8),
        convs_per_block=1,
        padding="valid",
        batch_norm=False,
        dense_units=16,
        dropout=0.0,
        augment=False,
    ),
    "average": CnnConfig(filters=(4, 8), pooling="average", dense_units=16),
}


@pytest.mark.parametrize("name", list(SMALL_CNNS))
def test_the_cnn_peer_is_our_network(name):
    torch = pytest.importorskip("torch")
    config = SMALL_CNNS[name]
    ours = build_cnn(config, (28, 28, 1), 10)
    theirs = build_torch_cnn(config, (28, 28, 1), 10)
    assert weights(theirs) == trainable(ours)
    # Our weights in theirs compute our outputs (inference: no augmentation, no dropout).
    layers = {layer.name: layer for layer in ours.layers}
    convs = [m for m in theirs if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in theirs if isinstance(m, torch.nn.BatchNorm2d)]
    linears = [m for m in theirs if isinstance(m, torch.nn.Linear)]
    names = [n for n in layers if "_conv" in n and not n.endswith(("_bn", "_relu"))]
    with torch.no_grad():
        for conv, layer in zip(convs, names, strict=True):
            kernel, *bias = layers[layer].get_weights()
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
            if bias:
                conv.bias.copy_(torch.from_numpy(bias[0]))
        for norm, layer in zip(norms, [n for n in names if f"{n}_bn" in layers], strict=True):
            gamma, beta, mean, variance = layers[f"{layer}_bn"].get_weights()
            for tensor, value in zip(
                (norm.weight, norm.bias, norm.running_mean, norm.running_var),
                (gamma, beta, mean, variance),
                strict=True,
            ):
                tensor.copy_(torch.from_numpy(value))
        kernel, bias = layers["dense"].get_weights()
        if config.pooling == "flatten":  # Keras flattens (h, w, c), PyTorch (c, h, w)
            shape = ours.get_layer("flatten").input.shape[1:]
            kernel = kernel.reshape(*shape, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
        linears[0].weight.copy_(torch.from_numpy(kernel.T.copy()))
        linears[0].bias.copy_(torch.from_numpy(bias))
        kernel, bias = layers["probs"].get_weights()
        linears[1].weight.copy_(torch.from_numpy(kernel.T.copy()))
        linears[1].bias.copy_(torch.from_numpy(bias))
        images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
        logits = theirs.eval()(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(
        torch.softmax(logits, -1).numpy(), ours(images, training=False), atol=1e-5
    )
    theirs.train()(torch.zeros(2, 1, 28, 28)).sum().backward()  # augmentation trains too


@pytest.mark.parametrize("layers", [1, 2])
def test_the_gru_lm_peer_is_our_network(layers):
    torch = pytest.importorskip("torch")
    config = GruLmConfig(embedding_dim=8, rnn_units=16, num_layers=layers, dropout=0.1)
    ours = GruLanguageModel(70, 8, 16, layers, 0.1)
    ours.build((None, None))
    theirs = build_torch_gru_lm(config, 70)
    assert weights(theirs) == trainable(ours)
    # Keras orders a GRU's gates (update, reset, candidate), PyTorch (reset, update, candidate).
    order = np.r_[16:32, 0:16, 32:48]
    with torch.no_grad():
        theirs.embedding.weight.copy_(torch.from_numpy(ours.embedding.get_weights()[0]))
        for layer, gru in enumerate(ours.grus):
            kernel, recurrent, bias = gru.get_weights()
            for name, value in (
                ("weight_ih", kernel[:, order].T),
                ("weight_hh", recurrent[:, order].T),
                ("bias_ih", bias[0, order]),
                ("bias_hh", bias[1, order]),
            ):
                getattr(theirs.grus, f"{name}_l{layer}").copy_(torch.from_numpy(value.copy()))
        kernel, bias = ours.head.get_weights()
        theirs.head.weight.copy_(torch.from_numpy(kernel.T.copy()))
        theirs.head.bias.copy_(torch.from_numpy(bias))
        tokens = np.random.default_rng(0).integers(0, 70, (3, 12))
        logits = theirs.eval()(torch.from_numpy(tokens))
    np.testing.assert_allclose(logits.numpy(), ours(tokens, training=False), atol=1e-5)


def test_a_quick_run_times_both_peers():
    pytest.importorskip("torch")
    figures = bench.run(["peers"], families=["cnn", "gru-lm", "seq2seq"], quick=True, log=print)
    by_name = {figure.name: figure for figure in figures}
    assert set(by_name) == {
        f"peers.{family}.{what}"
        for family in ("cnn", "gru_lm")
        for what in ("ratio", "examples_per_s", "torch_examples_per_s")
    }
    for figure in figures:
        assert figure.value > 0 and figure.suite == "peers", figure
        assert figure.command == "python scripts/bench.py --only peers", figure
    assert by_name["peers.cnn.ratio"].target == ">= 1.2"
    assert by_name["peers.gru_lm.ratio"].met is not None
