"""The Seq2Seq's benchmark entry and its decoding-speed figures."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from bigmodel_tf.bench.harness import (
    BENCH,
    QUICK,
    Family,
    Quality,
    batch_of_one,
    graph_flops,
    mean_length,
    timed_rounds,
)
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.seq2seq.data import reference_batches
from bigmodel_tf.families.seq2seq.decoding import beam_decode, decode_step_by_step, greedy_decode
from bigmodel_tf.registry import serving_for
from bigmodel_tf.training.runs import load_trained


def forward_flops(config, model: keras.Model, inputs, spec) -> float:
    """The unrolled `encode` (scaled from the longest source to the mean one) plus the decoder
    `step` times the mean target length: the profiler counts a graph loop's body once."""
    endpoints = serving_for(config.family).serving_endpoints(model, spec)
    source, decoder_input = inputs
    encode, step = (
        graph_flops(function, batch_of_one(signature))
        for function, signature in (endpoints["encode"], endpoints["step"])
    )
    source_share = mean_length(source) / spec.max_source_length
    return source_share * encode + mean_length(decoder_input) * step


# Words the per-word Python loop is timed on (~35 s a round for the default model).
PER_WORD_SAMPLE = 200


def decode_speed(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """Greedy decoding of the test split three ways, in alternating rounds: the compiled
    in-graph loop over batches of 256 words; a Python loop calling the model once per step
    over the same batches; and the documents' way, that loop one word at a time (timed on
    `PER_WORD_SAMPLE` words spread over the split, as words/s). Beam search (width 5)
    over the batches is timed beside them."""
    config, _, spec, model = load_trained(run_dir)
    max_length = spec.max_target_length + 1
    test = reference_batches(config.dataset, "test", spec, 256, config.data)
    batches = [
        source[:, : int((source != PAD_ID).sum(1).max())]  # each batch to its longest word
        for source, _ in test.as_numpy_iterator()
    ][: 1 if quick else None]
    words = [word[None, : int((word != PAD_ID).sum())] for batch in batches for word in batch]
    sample = words[:: max(1, len(words) // (10 if quick else PER_WORD_SAMPLE))]  # all lengths

    def words_per_s(decode: Callable, inputs: list[np.ndarray]) -> Callable[[], float]:
        def one_round() -> float:
            start = time.perf_counter()
            for source in inputs:
                np.asarray(decode(source))
            return sum(len(source) for source in inputs) / (time.perf_counter() - start)

        return one_round

    greedy = functools.partial(greedy_decode, model, max_length=max_length)
    loop = functools.partial(decode_step_by_step, model, max_length=max_length)
    runs = {
        "compiled": words_per_s(greedy, batches),
        "batched_loop": words_per_s(loop, batches),
        "per_word_loop": words_per_s(loop, sample),
        "beam": words_per_s(
            functools.partial(beam_decode, model, max_length=max_length, beam_width=5), batches
        ),
    }
    same = all(
        np.array_equal(np.asarray(greedy(b)), loop(b)) for b in batches
    )  # also traces the compiled loops
    runs["beam"]()
    speeds = timed_rounds(runs, min(rounds, 3))
    return _decode_figures(family.key, speeds, same, len(words), len(sample))


def _decode_figures(
    key: str, speeds: dict[str, list[float]], same: bool, words: int, sample: int
) -> list[Figure]:
    """The compiled loop's speed-ups over both Python loops, and each way's words/s; `same`
    says whether the compiled and the Python greedy loops gave the same ids."""
    command = f"{BENCH} --only generation"
    identical = "identical ids" if same else "**different ids**"

    def ratio(baseline: str) -> tuple[float, list[float]]:
        pairs = zip(speeds["compiled"], speeds[baseline], strict=True)
        return summarise([ours / theirs for ours, theirs in pairs])

    figures = []
    for name, baseline, target, what in (
        ("decode_speedup", "per_word_loop", ">= 20", "a Python loop per word (the documents')"),
        ("decode_speedup_vs_batched_loop", "batched_loop", None, "the same batched Python loop"),
    ):
        value, spread = ratio(baseline)
        figures.append(
            Figure(
                f"{key}.{name}",
                value,
                "x",
                "generation",
                target=target,
                command=command,
                spread=spread,
                note=f"greedy decoding of {words:,} test words, the compiled loop over "
                f"batches of 256 against {what} calling the model once per step; {identical}",
                family=key,
            )
        )
    for variant, what in (
        ("compiled", "compiled greedy loop, batches of 256"),
        ("batched_loop", "Python loop, one model call per step, batches of 256"),
        (
            "per_word_loop",
            f"Python loop, one model call per step, one word at a time ({sample} words "
            "spread over the split)",
        ),
        ("beam", "compiled beam search, width 5, batches of 256"),
    ):
        value, spread = summarise(speeds[variant])
        figures.append(
            Figure(
                f"{key}.decode_{variant}_words_per_s",
                value,
                "words/s",
                "generation",
                command=command,
                spread=spread,
                note=what,
                family=key,
            )
        )
    return figures


ENTRIES = (
    Family(
        # Published G2P figures are on phonemes without stress digits: the model predicts
        # them, and the figures strip them from its outputs and the references alike.
        "seq2seq",
        tuple(
            Quality(name, metric, "%", 100, target)
            for name, metric, target in (
                ("per", "beam_per_no_stress", "<= 6.0"),
                ("wer", "beam_wer_no_stress", "<= 25"),
                ("greedy_per", "greedy_per_no_stress", None),
                ("greedy_wer", "greedy_wer_no_stress", None),
                ("per_with_stress", "beam_per", None),
                ("wer_with_stress", "beam_wer", None),
            )
        ),
        quick_overrides={
            "model.embedding_dim": 8,
            "model.units": 16,
            "model.encoder_layers": 1,
            "model.attention_units": 16,
            "model.beam_width": 2,
            **QUICK,
        },
        export_unit="%",
        export_scale=100,
        generation=decode_speed,
        forward_flops=forward_flops,
    ),
)
