"""`scripts/bench.py --quick`: the harness runs end to end and writes well-formed results.

Toy models and two rounds: the figures are checked for form, never for speed.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bigmodel_tf.bench.results import SUITES

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("cnn", "gru_lm", "seq2seq", "transformer", "transformer_lm")
# The figure names that carry the benchmark targets.
MACHINE = {"machine.matmul_peak", "machine.matmul_peak_bf16"}
REQUIRED = {
    *MACHINE,
    "cnn.mnist5k.test_accuracy",
    "gru_lm.shakespeare.test_loss_nats",
    "gru_lm.generate_speedup",
    "seq2seq.cmudict.per",
    "seq2seq.cmudict.wer",
    "seq2seq.decode_speedup",
    "transformer.rotten_tomatoes.test_accuracy",
    "transformer_lm.shakespeare.test_loss_nats",
    "transformer_lm.kv_cache_speedup",
    *(f"train.{family}.{what}" for family in FAMILIES for what in ("throughput_ratio", "mfu")),
    *(
        f"settings.{family}.{what}"
        for family in FAMILIES
        for what in ("bf16_speedup", "auto_of_best")
    ),
    *(
        f"time_to_accuracy.{family}.{what}"
        for family in ("cnn", "gru_lm")
        for what in ("auto_minutes", "float32_minutes", "speedup")
    ),
    *(
        f"export.{family}.{what}"
        for family in FAMILIES
        for what in ("int8_size_ratio", "int8_latency_ratio", "int8_metric_delta")
    ),
}


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def required(families: tuple[str, ...], suites: list[str]) -> set[str]:
    """The required names of `families` (the machine's peak belongs to none) in `suites`."""
    return {
        name
        for name in REQUIRED
        if (name in MACHINE or any(f in name.split(".") for f in families))
        and (name.split(".")[0] not in ("settings", "peers") or name.split(".")[0] in suites)
    }


# All five toy families take 3.5 minutes (Seq2Seq 1.6 of them: it reads its whole training
# split, decodes its test split greedily and by beam search and converts its unrolled encoder
# twice), more than the default run can spend; it checks one family through every suite (the
# CNN, ~20 s), the slow test every family.
@pytest.mark.parametrize(
    "families",
    [("cnn",), pytest.param(FAMILIES, marks=pytest.mark.slow)],
    ids=["one-family", "every-family"],
)
def test_quick_run_writes_every_figure_and_leaves_the_results_page_alone(tmp_path, families):
    page = (ROOT / "docs" / "results.md").read_text()
    out = tmp_path / "results.json"
    names = ",".join(family.replace("_", "-") for family in families)
    # The default run leaves out the settings and peers suites (four compiled models; PyTorch):
    # the slow run and tests/bench/test_peers.py take them.
    suites = SUITES if len(families) > 1 else [s for s in SUITES if s not in ("settings", "peers")]
    result = bench("--quick", "--out", str(out), "--family", names, "--only", ",".join(suites))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True and results["date"]
    figures = {figure["name"]: figure for figure in results["figures"]}
    assert set(figures) >= required(families, suites), required(families, suites) - set(figures)
    for figure in figures.values():
        assert math.isfinite(figure["value"]), figure
        assert figure["command"].startswith(("python scripts/bench.py", "bigmodel-tf ")), figure
        assert (figure["met"] is None) == (figure["target"] is None), figure
        assert figure["family"] in (*families, None), figure
    assert figures["train.cnn.throughput_ratio"]["value"] > 0
    assert 0 < figures["train.cnn.mfu"]["value"] < 1
    assert 0 <= figures["cnn.mnist5k.test_accuracy"]["value"] <= 1
    assert figures["time_to_accuracy.cnn.auto_minutes"]["value"] > 0
    assert 0 <= figures["time_to_accuracy.cnn.float32_test_accuracy"]["value"] <= 1
    assert all(figure["cpu"] for figure in figures.values())
    # A classifier is also timed through `model.predict`; a language model is not (its
    # deployed form is a loop of stateful steps).
    assert figures["inference.cnn.keras_predict.throughput"]["value"] > 0
    assert "inference.transformer_lm.keras_predict.throughput" not in figures
    assert "**train**" in result.stdout
    assert (ROOT / "docs" / "results.md").read_text() == page


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ("--only", "speed"),
            "--only 'speed': choose from peak, settings, train, peers, time_to_accuracy, "
            "generation, inference, quality",
        ),
        (
            ("--family", "rnn"),
            "--family 'rnn': choose from cnn, gru-lm, transformer, transformer-pretrained, "
            "transformer-student, transformer-lm, seq2seq",
        ),
    ],
)
def test_an_unknown_suite_or_family_is_one_clear_line(option, message):
    result = bench(*option)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
