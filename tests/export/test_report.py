import numpy as np

from bigmodel_tf.export.report import (
    BATCH_REPEATS,
    LATENCY_BATCH,
    LATENCY_ROUNDS,
    SINGLE_REPEATS,
    WARMUP,
    Variant,
    check_targets,
    latency_ratios,
    measure,
    recommend,
    render_markdown,
)


def row(variant, size, quality, latency, metric="accuracy"):
    return {"variant": variant, "bytes": size, metric: quality, "latency_ms": {"1": latency}}


def test_targets_are_judged_against_the_float32_file():
    rows = [
        row("keras", 0, 0.990, 9.0),
        row("tflite float32", 1000, 0.990, 1.0),
        row("tflite float16", 600, 0.990, 1.0),
        row("tflite int8", 250, 0.980, 0.7),
    ]
    checks = {c["target"]: c for c in check_targets(rows, "accuracy", True, 0.005)}
    assert checks["int8 size / float32 size"]["value"] == 0.25
    assert checks["int8 size / float32 size"]["met"]
    assert not checks["float16 size / float32 size"]["met"]  # 0.60 > 0.55
    assert not checks["int8 latency / float32 latency (1 example)"]["met"]  # 0.7 > 0.6
    lost = checks["accuracy lost by int8"]
    assert abs(lost["value"] - 0.01) < 1e-12 and not lost["met"]


def test_a_loss_metric_counts_an_increase_as_lost():
    rows = [row("keras", 0, 1.50, 1.0, "loss"), row("tflite int8", 1, 1.53, 1.0, "loss")]
    (check,) = check_targets(rows, "loss", False, 0.05)
    assert abs(check["value"] - 0.03) < 1e-12 and check["met"]


def test_agreement_and_difference_are_against_the_first_variant():
    targets = np.array([0, 1, 1])
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    flipped = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])

    def variant(name, outputs):
        return Variant(name, None, 0, lambda inputs: outputs)

    rows = measure(
        [variant("keras", reference), variant("int8", flipped)],
        predict=lambda run, batches: (run({}), targets),
        batches=[],
        quality=lambda outputs, t: {"accuracy": float(np.mean(outputs.argmax(-1) == t))},
        rounds=0,
    )
    assert rows[0]["top1_agreement"] == 1.0 and rows[0]["max_abs_diff"] == 0.0
    assert rows[1]["top1_agreement"] == 2 / 3
    assert abs(rows[1]["max_abs_diff"] - 0.3) < 1e-12
    assert rows[1]["accuracy"] == 2 / 3


def test_latency_is_timed_in_rounds_and_int8_is_compared_round_by_round():
    calls = {"keras": [], "int8": []}

    def variant(name):
        def run(inputs):
            calls[name].append(len(inputs["x"]))
            return np.zeros((len(inputs["x"]), 2))

        return Variant(name, None, 0, run)

    batches = [({"x": np.zeros(40)}, np.zeros(40, "int64"))]
    rows = measure(
        [variant("keras"), variant("int8")],
        predict=lambda run, batches: (run(batches[0][0]), batches[0][1]),
        batches=batches,
        quality=lambda outputs, targets: {},
    )
    for name, row in zip(calls, rows, strict=True):
        # One pass for quality, then warm-up and timed calls on 1 and on LATENCY_BATCH examples.
        assert calls[name].count(40) == 1
        assert calls[name].count(1) == WARMUP + LATENCY_ROUNDS * SINGLE_REPEATS
        assert calls[name].count(LATENCY_BATCH) == WARMUP + LATENCY_ROUNDS * BATCH_REPEATS
        assert [len(times) for times in row["latency_rounds_ms"].values()] == [LATENCY_ROUNDS] * 2
        assert row["latency_ms"]["1"] == sorted(row["latency_rounds_ms"]["1"])[LATENCY_ROUNDS // 2]

    int8 = {"latency_ms": {"1": 2.0}, "latency_rounds_ms": {"1": [1.0, 2.0, 6.0]}}
    float32 = {"latency_ms": {"1": 4.0}, "latency_rounds_ms": {"1": [2.0, 8.0, 4.0]}}
    assert latency_ratios(int8, float32) == [0.5, 0.25, 1.5]
    # A report written before the rounds were recorded: the ratio of the medians.
    medians = [{"latency_ms": row["latency_ms"]} for row in (int8, float32)]
    assert latency_ratios(*medians) == [0.5]


def timed(variant, size, quality, ratios, metric="accuracy"):
    """A row timed in rounds beside a float32 row whose every round took 1 ms."""
    return {
        "variant": variant,
        "file": variant.replace(" ", "_"),
        "bytes": size,
        metric: quality,
        "latency_ms": {"1": sorted(ratios)[len(ratios) // 2]},
        "latency_rounds_ms": {"1": ratios},
    }


def test_the_variant_to_ship_is_the_fastest_integer_file_within_budget_and_no_slower():
    rows = [
        timed("keras", 0, 0.800, [9.0, 9.0, 9.0]),
        timed("tflite float32", 1000, 0.800, [1.0, 1.0, 1.0]),
        timed("tflite dynamic", 300, 0.799, [0.9, 0.8, 1.2]),  # median ratio 0.9
        timed("tflite float16", 500, 0.800, [0.5, 0.5, 0.5]),  # fast, but float weights
        timed("tflite int8", 250, 0.799, [1.3, 0.9, 1.1]),  # slower than float32: 1.1x
    ]
    choice = recommend(rows, "accuracy", True, 0.005)
    assert choice["variant"] == "tflite dynamic" and choice["latency_ratio"] == 0.9
    assert abs(choice["quality_cost"] - 0.001) < 1e-12

    rows[-1]["latency_rounds_ms"]["1"] = [0.7, 0.8, 1.1]  # now the fastest: 0.8x
    assert recommend(rows, "accuracy", True, 0.005)["variant"] == "tflite int8"
    rows[-1]["accuracy"] = 0.790  # but over the budget
    assert recommend(rows, "accuracy", True, 0.005)["variant"] == "tflite dynamic"


def test_float32_is_shipped_when_nothing_smaller_qualifies_and_loss_counts_an_increase():
    rows = [
        timed("keras", 0, 1.50, [9.0], "loss"),
        timed("tflite float32", 1000, 1.50, [1.0], "loss"),
        timed("tflite int8", 250, 1.60, [0.5], "loss"),  # 0.1 nats worse
        timed("tflite dynamic", 300, 1.50, [1.2], "loss"),  # slower
    ]
    assert recommend(rows, "loss", False, 0.05)["variant"] == "tflite float32"
    assert recommend(rows[:1], "loss", False, 0.05) is None


def test_markdown_names_the_variant_to_ship_and_the_ops_on_reference_kernels():
    rows = [timed("keras", 0, 0.8, [9.0]), timed("tflite int8", 250, 0.8, [0.9])]
    rows[1]["reference_ops"] = {"tokens": {"GATHER": 2, "SHAPE": 1}}
    for row in rows:
        row.update(top1_agreement=1.0, max_abs_diff=0.0, file=row["file"])
    report = {
        "family": "transformer",
        "run_dir": "runs/x",
        "metric": "accuracy",
        "test_examples": 10,
        "threads": 2,
        "machine": "2 CPUs",
        "rows": rows,
        "targets": [],
        "recommendation": {
            "variant": "tflite int8",
            "file": "model_int8.tflite",
            "bytes": 250,
            "latency_ratio": 0.9,
            "quality_cost": 0.0,
            "budget": 0.005,
        },
    }
    text = render_markdown(report)
    assert "**tflite int8** (`model_int8.tflite`, 0.00 MB, 0.90x" in text
    assert "- tflite int8 (`tokens`): GATHER ×2, SHAPE ×1" in text
