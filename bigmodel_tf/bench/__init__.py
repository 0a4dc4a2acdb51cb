"""Benchmarks: speed, utilisation, a PyTorch peer, inference, generation and quality, measured
side by side.

>>> from bigmodel_tf import bench
>>> figures = bench.run(["train"], quick=True)       # toy sizes, a few seconds
>>> bench.write_results(Path("benchmarks/results.json"), figures, quick=False)

`scripts/bench.py` is the command line over `run`, `write_results` and the tables of
`docs/results.md`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bigmodel_tf.bench.results import (
    RESULTS_PAGE,
    SUITES,
    Figure,
    render_tables,
    update_results_page,
    write_results,
)
from bigmodel_tf.errors import UserError


def _choose(text: str, option: str, known: Sequence[str]) -> list[str]:
    """The names of `known` that comma-separated `text` lists, in `known`'s order; an unknown
    name (or none) is a `UserError` naming `option`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - set(known):
        raise UserError(f"{option} {text!r}: choose from {', '.join(known)}")
    return [name for name in known if name in names]


def parse_suites(text: str) -> list[str]:
    """`"train,quality"` → the suites in run order; an unknown name is a `UserError`."""
    return _choose(text, "--only", SUITES)


def parse_families(text: str) -> list[str]:
    """`"cnn,seq2seq"` → those families (`transformer-pretrained`: a variant's own label); an
    unknown name is a `UserError`."""
    from bigmodel_tf.bench.suites import FAMILIES  # imports TensorFlow

    return _choose(text, "--family", [family.label for family in FAMILIES])


def run(
    suites: Sequence[str] = SUITES,
    *,
    families: Sequence[str] | None = None,
    quick: bool = False,
    rounds: int | None = None,
    log: Callable[[str], None] = print,
    on_suite: Callable[[list[Figure]], None] = lambda figures: None,
) -> list[Figure]:
    """Runs `suites` (all by default) for `families` (all by default) and returns their figures.

    `generation`, `inference` and `quality` measure each family's default training run
    (`runs/<family>/<dataset>-default-<hash>/`), training it first if it has not finished: the
    GRU LM's takes ~30 minutes. `quick` trains toy models for a few steps in a temporary
    folder instead and times fewer rounds, to check the harness, not to be quoted. `peers`
    needs PyTorch (the `peers` extra): without it, one logged line says so and it measures
    nothing.

    Args:
        suites: sequence of str. From `SUITES`.
        families: sequence of str. Model families (`cnn`, `gru-lm`, ...). Defaults to all.
        quick: bool. Toy sizes. Defaults to `False`.
        rounds: int. Timed rounds per speed figure. Defaults to 5 (2 with `quick`).
        log: callable. Receives progress lines. Defaults to `print`.
        on_suite: callable. Receives the figures so far after each suite, e.g. to save them
            before a long suite starts. Defaults to nothing.
    """
    from bigmodel_tf.bench import suites as benchmarks  # imports TensorFlow
    from bigmodel_tf.bench import throughput
    from bigmodel_tf.bench.inference import inference
    from bigmodel_tf.bench.time_to_accuracy import time_to_accuracy

    rounds = rounds or (2 if quick else 5)
    chosen = [f for f in benchmarks.FAMILIES if families is None or f.label in families]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) if quick else None
        needs_runs = {"generation", "inference", "quality"} & set(suites)
        runs = {}
        for family in chosen if needs_runs else ():
            log(f"[runs] {family.label}: its run (trained unless it has finished)")
            runs[family.label] = benchmarks.quality_run(family, quick, root)
        if {"peak", "train"} & set(suites):
            log("[peak] fp32 and bf16 matmul")
            peaks, peak_figures = benchmarks.matmul_peak(quick, rounds)
            figures += peak_figures if "peak" in suites else []
        for suite in suites:
            for family in _peered(chosen, log) if suite == "peers" else chosen:
                if suite == "settings" and family.settings_suite:
                    log(f"[settings] {family.label}: float32/bf16 x XLA off/on, {rounds} rounds")
                    figures += throughput.settings_speedups(family, quick, rounds)
                elif suite == "time_to_accuracy" and family.time_to_accuracy:
                    log(f"[time_to_accuracy] {family.label}: auto and float32 runs to the target")
                    config = benchmarks.bench_config(family, quick)
                    figures += time_to_accuracy(family, config, quick)
                elif suite == "train" and family.train_suite:
                    log(f"[train] {family.label}: ours against NumPy-into-fit, {rounds} rounds")
                    figures += throughput.training_throughput(family, quick, rounds, peaks)
                elif suite == "peers":
                    log(f"[peers] {family.label}: ours against PyTorch, {rounds} rounds")
                    figures += throughput.peer_throughput(family, quick, rounds)
                elif suite == "generation":
                    log(f"[generation] {family.label}: decoding speed, if it generates")
                    figures += benchmarks.generation(family, runs[family.label], quick, rounds)
                elif suite == "inference":
                    log(f"[inference] {family.label}: export and measure every variant")
                    figures += inference(family, runs[family.label], quick, rounds)
                elif suite == "quality":
                    figures += benchmarks.quality(family, runs[family.label])
            on_suite(figures)
    return figures


def _peered(families: Sequence, log: Callable[[str], None]) -> list:
    """The families with a PyTorch peer, or none (said in one line) without PyTorch."""
    from bigmodel_tf.bench import peers

    if peers.torch_version() is None:
        log(f"[peers] PyTorch is not installed ({peers.INSTALL}); no figures recorded")
        return []
    chosen = [family for family in families if family.peer]
    if not chosen:
        log("[peers] none of the chosen families has a PyTorch peer; no figures recorded")
    return chosen


__all__ = [
    "RESULTS_PAGE",
    "SUITES",
    "Figure",
    "parse_families",
    "parse_suites",
    "render_tables",
    "run",
    "update_results_page",
    "write_results",
]
