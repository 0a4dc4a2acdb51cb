"""Measure every exported variant on the test split, in one run: quality, agreement, size, latency.

Every variant is run through the same `Runner` interface (numpy inputs by signature name →
numpy outputs by name) on the same batches, so the numbers in one report compare like with like.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
# `(inputs by name, targets)`, as `ServingTask.raw_batches` makes them.
Batch = tuple[dict[str, np.ndarray], np.ndarray]

# Latency is timed in rounds that alternate the variants, so that a busy shared machine slows
# them alike: each round times every variant's median of a few calls (after warm-up calls that
# build kernels and caches), and a latency is the median over the rounds.
LATENCY_ROUNDS, SINGLE_REPEATS, BATCH_REPEATS, WARMUP = 5, 20, 4, 5
LATENCY_BATCH = 32

# The targets for the quantised files, against the float32 TFLite file.
INT8_SIZE_RATIO, FLOAT16_SIZE_RATIO, INT8_LATENCY_RATIO = 0.30, 0.55, 0.6
# The report's rows for the TFLite files with int8 weights, which `recommend` chooses from.
INTEGER_VARIANTS = ("tflite int8", "tflite dynamic")
# A distilled student must be at least 4x smaller than its teacher.
STUDENT_SIZE_RATIO = 0.25


@dataclass
class Variant:
    """One artefact to measure: a name, its file (if any) and size, and how to run it; for a
    TFLite file, `{signature: {op: count}}` of its ops on reference kernels (not delegated)."""

    name: str
    file: str | None
    bytes: int
    run: Runner
    reference_ops: dict[str, dict[str, int]] | None = None


def median_latency_ms(run: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `repeats` calls of `run()` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(
    variants: list[Variant],
    predict: Callable[[Runner, list[Batch]], tuple[np.ndarray, np.ndarray]],
    batches: list[Batch],
    quality: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    *,
    rounds: int = LATENCY_ROUNDS,
) -> list[dict[str, Any]]:
    """One report row per variant; agreement is measured against the first variant.

    Args:
        variants: list. The first one is the reference (the Keras model at export time).
        predict: callable. Runs a variant over batches → `(outputs, targets)`
            (`ServingTask.predict`).
        batches: list. The test split's `(inputs, targets)` batches.
        quality: callable. `(outputs, targets)` → the family's metrics.
        rounds: int. Alternating rounds that time `predict` on the first example and on the
            first `LATENCY_BATCH` examples (all of a prediction: every decoding step for
            seq2seq): `latency_ms` is the median over the rounds, `latency_rounds_ms` each
            round's. 0 measures no latency. Defaults to `LATENCY_ROUNDS`.
    """
    rows, reference = [], None
    for variant in variants:
        outputs, targets = predict(variant.run, batches)
        if reference is None:
            reference = outputs
        row = {
            "variant": variant.name,
            "file": variant.file,
            "bytes": variant.bytes,
            **quality(outputs, targets),
            # The same top-1 decision (class, next token) as the reference, and the worst
            # elementwise difference of the compared output (probabilities or logits).
            "top1_agreement": float(np.mean(outputs.argmax(-1) == reference.argmax(-1))),
            "max_abs_diff": float(np.max(np.abs(outputs.astype(np.float64) - reference))),
        }
        if variant.reference_ops is not None:
            row["reference_ops"] = variant.reference_ops
        rows.append(row)
    if rounds:
        timed = latency_rounds(variants, predict, batches, rounds)
        for row, times_by_size in zip(rows, timed, strict=True):
            row["latency_rounds_ms"] = times_by_size
            row["latency_ms"] = {
                size: statistics.median(times) for size, times in times_by_size.items()
            }
    return rows


def latency_rounds(
    variants: list[Variant],
    predict: Callable[[Runner, list[Batch]], Any],
    batches: list[Batch],
    rounds: int = LATENCY_ROUNDS,
) -> list[dict[str, list[float]]]:
    """Per variant, `{"1": [...], "32": [...]}`: the median latency (ms) of `predict` on the
    first example and on the first `LATENCY_BATCH` examples in each of `rounds` rounds, every
    round timing each variant in turn."""
    sizes = {"1": SINGLE_REPEATS, str(LATENCY_BATCH): BATCH_REPEATS}
    calls = {
        (index, size): partial(predict, variant.run, [_first_examples(batches, int(size))])
        for index, variant in enumerate(variants)
        for size in sizes
    }
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    times = [{size: [] for size in sizes} for _ in variants]
    for _ in range(rounds):
        for (index, size), call in calls.items():
            times[index][size].append(median_latency_ms(call, sizes[size]))
    return times


def _first_examples(batches: list[Batch], count: int) -> Batch:
    """The first `count` examples of `batches` as one batch, joined from only as many batches as
    that needs. A scalar input is shared by the whole batch (a language model's `position`) and
    is kept as it is."""
    taken, rows = [], 0
    for batch_inputs, targets in batches:
        taken.append((batch_inputs, targets))
        rows += len(targets)
        if rows >= count:
            break
    inputs = {
        name: value if np.ndim(value) == 0 else np.concatenate([b[name] for b, _ in taken])[:count]
        for name, value in taken[0][0].items()
    }
    inputs = {name: _read_only(value) for name, value in inputs.items()}
    return inputs, np.concatenate([targets for _, targets in taken])[:count]


def _read_only(value: Any) -> Any:
    """An array input, locked: every timed call gets the same inputs, and a runner may keep what it
    made of a read-only array (a TFLite model its quantised integers) for the next call, as a
    deployed model keeps its int8 state rather than converting it from float each step."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    return value


def check_targets(
    rows: list[dict[str, Any]], metric: str, higher_is_better: bool, int8_budget: float
) -> list[dict[str, Any]]:
    """The issue's size, quality and latency targets, each with its measured value and verdict."""
    by_name = {row["variant"]: row for row in rows}
    reference, base = rows[0], by_name.get("tflite float32")
    checks = []

    def add(name: str, value: float, limit: float) -> None:
        checks.append({"target": name, "value": value, "limit": limit, "met": value <= limit})

    def size_ratio(name: str) -> float:
        return by_name[name]["bytes"] / base["bytes"]

    if base and "tflite float16" in by_name:
        add("float16 size / float32 size", size_ratio("tflite float16"), FLOAT16_SIZE_RATIO)
    if base and "tflite int8" in by_name:
        add("int8 size / float32 size", size_ratio("tflite int8"), INT8_SIZE_RATIO)
        if "latency_ms" in base:
            latency = latency_ratios(by_name["tflite int8"], base)
            add(
                "int8 latency / float32 latency (1 example)",
                statistics.median(latency),
                INT8_LATENCY_RATIO,
            )
    if base and "teacher tflite float32" in by_name:  # distillation: at least 4x smaller
        student = 1 / size_ratio("teacher tflite float32")
        add("student size / teacher size (float32 TFLite)", student, STUDENT_SIZE_RATIO)
    if "tflite int8" in by_name:
        label = f"{metric} {'lost' if higher_is_better else 'added'} by int8"
        lost = _worsening(by_name["tflite int8"], reference, metric, higher_is_better)
        add(label, lost, int8_budget)
    return checks


def _worsening(row: dict[str, Any], reference: dict[str, Any], metric: str, higher: bool) -> float:
    change = row[metric] - reference[metric]
    # `+ 0.0` turns a -0.0 (no loss) into 0.0 for the report.
    return (-change if higher else change) + 0.0


def latency_ratios(row: dict[str, Any], float32: dict[str, Any]) -> list[float]:
    """A variant's / float32's latency of one example, per round when both rows have their
    rounds (the two timed side by side), else the ratio of their medians."""
    if "latency_rounds_ms" in row and "latency_rounds_ms" in float32:
        pairs = zip(row["latency_rounds_ms"]["1"], float32["latency_rounds_ms"]["1"], strict=True)
        return [a / b for a, b in pairs]
    return [row["latency_ms"]["1"] / float32["latency_ms"]["1"]]


def recommend(
    rows: list[dict[str, Any]], metric: str, higher_is_better: bool, budget: float
) -> dict[str, Any] | None:
    """The TFLite variant to ship: the fastest integer file (full int8 or dynamic range, both
    ~4x smaller than float32) whose quality is within `budget` (the family's int8 budget) of the
    first row's and whose latency of one example is at most the float32 file's (median of the
    per-round ratios); else the float32 file. None without a float32 row."""
    by_name = {row["variant"]: row for row in rows}
    float32 = by_name.get("tflite float32")
    if float32 is None:
        return None

    def ratio(row: dict[str, Any]) -> float | None:
        if "latency_ms" not in row or "latency_ms" not in float32:
            return None
        return statistics.median(latency_ratios(row, float32))

    def qualifies(row: dict[str, Any]) -> bool:
        cost = _worsening(row, rows[0], metric, higher_is_better)
        return cost <= budget and (ratio(row) is None or ratio(row) <= 1.0)

    candidates = [by_name[name] for name in INTEGER_VARIANTS if name in by_name]
    best = min(
        (row for row in candidates if qualifies(row)),
        key=lambda row: (ratio(row) or 0.0, row["bytes"]),
        default=float32,
    )
    return {
        "variant": best["variant"],
        "file": best["file"],
        "bytes": best["bytes"],
        "latency_ratio": ratio(best),
        "quality_cost": _worsening(best, rows[0], metric, higher_is_better),
        "budget": budget,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """report.json as a human-readable table with the targets below it."""
    metric = report["metric"]
    lines = [
        f"# Export report: {report['family']} ({report['run_dir']})",
        "",
        f"Test split: {report['test_examples']:,} examples. Latency: median wall time in one "
        f"process, {report['threads']} threads, {report['machine']}.",
        "",
        f"| variant | file | size | {metric} | top-1 agreement | max abs diff "
        f"| latency 1 (ms) | latency {LATENCY_BATCH} (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        latency = row.get("latency_ms", {})
        lines.append(
            f"| {row['variant']} | {row['file'] or ''} | {row['bytes'] / 1e6:.2f} MB "
            f"| {row[metric]:.4f} | {row['top1_agreement']:.4f} | {row['max_abs_diff']:.2e} "
            f"| {latency.get('1', float('nan')):.3f} "
            f"| {latency.get(str(LATENCY_BATCH), float('nan')):.3f} |"
        )
    lines += ["", "Agreement and differences are against the first row.", "", "## Targets", ""]
    for check in report["targets"]:
        verdict = "met" if check["met"] else "**missed**"
        lines.append(
            f"- {check['target']}: {check['value']:.4f} (limit {check['limit']}) — {verdict}"
        )
    lines += _recommendation_lines(report.get("recommendation"), metric)
    lines += _reference_ops_lines(report["rows"])
    return "\n".join(lines) + "\n"


def _recommendation_lines(choice: dict[str, Any] | None, metric: str) -> list[str]:
    if choice is None:
        return []
    latency = "" if choice["latency_ratio"] is None else f", {choice['latency_ratio']:.2f}x"
    return [
        "",
        "## Variant to ship",
        "",
        f"**{choice['variant']}** (`{choice['file']}`, {choice['bytes'] / 1e6:.2f} MB"
        f"{latency} the float32 file's latency, {metric} cost {choice['quality_cost']:.4f}): "
        f"the fastest integer TFLite file (int8 or dynamic) within the {metric} budget "
        f"({choice['budget']}) of the first row and no slower than float32, else float32.",
    ]


def _reference_ops_lines(rows: list[dict[str, Any]]) -> list[str]:
    listed = [row for row in rows if "reference_ops" in row]
    if not listed:
        return []
    lines = [
        "",
        "## Ops on reference kernels",
        "",
        "Ops that LiteRT's delegate (XNNPACK) did not take, so TFLite's slower reference kernels "
        "run them:",
        "",
    ]
    for row in listed:
        for signature, ops in row["reference_ops"].items():
            named = ", ".join(f"{op} ×{count}" for op, count in ops.items()) or "none"
            lines.append(f"- {row['variant']} (`{signature}`): {named}")
    return lines
