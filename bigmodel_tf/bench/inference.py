"""The inference suite: every deployable form of a run, measured through its export report
(`export.export` times and scores them), `model.predict` for the classifiers, and the int8 file
against the float32 one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bigmodel_tf.bench.harness import BENCH, Family
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.export import export
from bigmodel_tf.export.report import LATENCY_BATCH, Variant, latency_ratios, latency_rounds
from bigmodel_tf.export.tflite import QUANTIZATIONS
from bigmodel_tf.io import read_json
from bigmodel_tf.registry import serving_for, task_for
from bigmodel_tf.training.runs import load_best, load_run


def inference(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """Every deployable form of the run, from its export report (Keras, SavedModel, the TFLite
    files: all four, or float32 and int8 with `quick`), and `model.predict` for the
    classifiers."""
    with tempfile.TemporaryDirectory() as scratch:
        out = export(
            run_dir,
            Path(scratch) / "export",
            # The figures compare int8 with float32; `quick` converts only those two.
            quantize=("none", "int8") if quick else tuple(QUANTIZATIONS),
            calibration_batches=2 if quick else 100,
            test_batches=1 if quick else None,
            rounds=rounds,
        )
        report = read_json(out / "report.json")
    command, key, metric = f"{BENCH} --only inference", family.key, report["metric"]
    figures = []
    for row in report["rows"]:
        variant = row["variant"].replace(" ", "_")
        # The report's Keras row runs the model eagerly through the export's endpoints:
        # `model(x)` for a classifier, its steps for the others.
        how = "eager, through the endpoints, " if row["variant"] == "keras" else ""
        figures += latency_figures(
            f"inference.{key}.{variant}",
            row["latency_rounds_ms"],
            f"{how}{row['bytes'] / 1e6:.2f} MB, {metric} {row[metric]:.4f}",
            command,
            key,
        )
    figures += keras_predict(family, run_dir, command, rounds)
    return [*figures, *_int8_figures(family, report, command)]


def _int8_figures(family: Family, report: dict[str, Any], command: str) -> list[Figure]:
    """The full-int8 file against the float32 one, from the export report: size, latency and
    the test metric lost."""
    key = family.key
    by_variant = {row["variant"]: row for row in report["rows"]}
    float32, int8 = by_variant["tflite float32"], by_variant["tflite int8"]
    lost = next(check for check in report["targets"] if check["target"].endswith(" by int8"))
    latency_ratio, latency_ratio_spread = summarise(latency_ratios(int8, float32))
    return [
        Figure(
            f"export.{key}.int8_size_ratio",
            int8["bytes"] / float32["bytes"],
            "x",
            "inference",
            target="<= 0.30",
            command=command,
            note="int8 .tflite bytes / float32 .tflite bytes",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_size_bytes",
            int8["bytes"],
            "bytes",
            "inference",
            target="< 1000000" if family.teacher else None,
            command=command,
            note="the full-int8 .tflite file",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_latency_ratio",
            latency_ratio,
            "x",
            "inference",
            target="<= 0.6",
            command=command,
            spread=latency_ratio_spread,
            note="int8 / float32 TFLite latency, 1 example, timed side by side in each round",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_metric_delta",
            lost["value"] * family.export_scale,
            family.export_unit,
            "inference",
            target=f"<= {lost['limit'] * family.export_scale:g}",
            command=command,
            note=f"test {lost['target']} against Keras",
            family=key,
        ),
    ]


def latency_figures(
    name: str, rounds: dict[str, list[float]], note: str, command: str, family: str
) -> list[Figure]:
    """`NAME.latency_ms` (one example) and `NAME.throughput` (a batch of `LATENCY_BATCH`) from
    per-round median latencies, as `export.report.latency_rounds` times them."""
    single, single_spread = summarise(rounds["1"])
    batch = [LATENCY_BATCH * 1e3 / ms for ms in rounds[str(LATENCY_BATCH)]]
    throughput, throughput_spread = summarise(batch)
    return [
        Figure(
            f"{name}.latency_ms",
            single,
            "ms",
            "inference",
            command=command,
            spread=single_spread,
            note=f"median, 1 example, {note}",
            family=family,
        ),
        Figure(
            f"{name}.throughput",
            throughput,
            "examples/s",
            "inference",
            command=command,
            spread=throughput_spread,
            note=f"batch of {LATENCY_BATCH}",
            family=family,
        ),
    ]


def keras_predict(family: Family, run_dir: Path, command: str, rounds: int) -> list[Figure]:
    """`model.predict` on the first 1 and `LATENCY_BATCH` test examples, timed in rounds as the
    export report times the other forms (its `keras` row is `model(x)`); none for the families
    whose deployed form is a loop of stateful steps (`ServingTask.model_inputs` is None)."""
    config = load_run(run_dir)
    task, serving = task_for(config.family), serving_for(config.family)
    spec = task.prepare(config, run_dir)
    inputs, targets = next(
        serving.raw_batches(config, spec, "test", LATENCY_BATCH).as_numpy_iterator()
    )
    batch = serving.model_inputs(inputs)
    if batch is None:  # decided before loading a model that would go unused
        return []
    batch = np.asarray(batch)
    model = load_best(run_dir, task, config)
    # The same outputs as `model(x)`, so the figures time the same computation.
    called = np.asarray(model(batch, training=False))
    difference = np.max(np.abs(model.predict(batch, verbose=0) - called))
    variant = Variant("keras predict", None, 0, lambda x: model.predict(x["x"], verbose=0))
    (times,) = latency_rounds(
        [variant], lambda run, batches: run(batches[0][0]), [({"x": batch}, targets)], rounds
    )
    note = f"`model.predict` (largest difference from `model(x)`: {difference:.1e})"
    return latency_figures(
        f"inference.{family.key}.keras_predict", times, note, command, family.key
    )
