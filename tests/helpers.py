"""Test helpers shared across the suite."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# A small CNN that learns MNIST to ~0.9 in one epoch of a few seconds (batch norm needs more
# steps than that before its moving averages are usable).
TINY_CNN = {
    "model.filters": (16, 32),
    "model.dense_units": 32,
    "model.augment": False,
    "model.batch_norm": False,
    "train.batch_size": 128,
    "train.warmup_epochs": 0.0,
}

# A one-layer, 64-unit GRU that reaches 1.90 nats/char on Shakespeare's validation split in one
# epoch (measured; a bigram model reaches 2.50, unigram frequencies 3.34, uniform guessing
# ln 85 = 4.44). XLA trains this small a model in 28 s instead of 42 s.
TINY_GRU_LM = {
    "model.embedding_dim": 16,
    "model.rnn_units": 64,
    "model.num_layers": 1,
    "model.dropout": 0.0,
    "train.learning_rate": 0.01,
    "train.jit_compile": "true",
}

# A one-block, 32-wide Transformer classifier over a 2,000-subword vocabulary: one epoch on
# Rotten Tomatoes (161 steps, 52 s on a busy 2-core machine) reaches 0.728 validation and 0.718
# test accuracy (majority class: 0.578; at learning rate 1e-3, 0.665).
TINY_TRANSFORMER = {
    "model.vocabulary_size": 2000,
    "model.sequence_length": 64,
    "model.num_layers": 1,
    "model.num_heads": 2,
    "model.hidden_dim": 32,
    "model.intermediate_dim": 64,
    "train.learning_rate": 0.005,
    "train.warmup_epochs": 0.0,
    # Compiling with XLA costs more than a tiny model's few steps would save.
    "train.jit_compile": "false",
}

# A two-block, 64-wide decoder over 64-character windows, compiled with XLA: 400 steps reach
# 2.14 nats/char on the validation split (600 steps: 1.96; one block 32 wide: 2.44 after 400;
# a bigram model: 2.50).
TINY_TRANSFORMER_LM = {
    "model.num_layers": 2,
    "model.num_heads": 4,
    "model.hidden_dim": 64,
    "model.intermediate_dim": 128,
    "model.sequence_length": 64,
    "train.learning_rate": 0.005,
    "train.batch_size": 64,
    "train.max_steps_per_epoch": 400,
    "train.jit_compile": "true",
}

# A one-layer bi-GRU of 32 units a direction, 300 steps on CMUdict (with the default label
# smoothing): token accuracy 0.79 and greedy PER 0.29 in 23–44 s of training, measured (see
# tests/families/seq2seq/test_task.py).
TINY_SEQ2SEQ = {
    "model.embedding_dim": 16,
    "model.units": 32,
    "model.encoder_layers": 1,
    "model.attention_units": 32,
    "model.dropout": 0.0,
    "model.beam_width": 3,
    "train.epochs": 1,
    "train.max_steps_per_epoch": 300,
    "train.learning_rate": 0.01,
    "train.warmup_epochs": 0.0,
    "train.jit_compile": "false",  # as for TINY_TRANSFORMER
}


@contextlib.contextmanager
def tensorboard(run_dir: Path) -> Iterator[str]:
    """`bigmodel-tf tensorboard RUN_DIR --port 0` in a subprocess; yields its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bigmodel_tf", "tensorboard", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline()).group(0)
    finally:
        server.kill()
        server.wait()


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Runs `bigmodel-tf ARGS` in a subprocess; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "bigmodel_tf", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def cli_args(overrides: dict) -> list[str]:
    """`--set k=v` arguments for an overrides dict."""
    args = []
    for key, value in overrides.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def run_task_test(run_dir: Path, directory: Path) -> None:
    """A family's task end to end at the tiny size of a trained test run, as KerasHub's
    `run_task_test`: a fresh model built from the run's config and data spec fits one step;
    its `.keras` file reloads in safe mode with the same outputs; and its SavedModel's
    endpoints, driven over test batches as the export report drives them
    (`ServingTask.predict`), give the Keras model's outputs."""
    from bigmodel_tf.export import write_saved_model
    from bigmodel_tf.export.variants import by_position, dispatch, tensor_runner
    from bigmodel_tf.registry import serving_for, task_for
    from bigmodel_tf.training.runs import load_run

    config = load_run(run_dir)
    task, serving = task_for(config.family), serving_for(config.family)
    spec = task.prepare(config, run_dir)  # the run's vocabulary, not built again
    keras.utils.set_random_seed(config.train.seed)
    model = task.build_model(config, spec)
    model.compile(optimizer="adam", **task.compile_args(config))
    batches = task.batcher(config, spec, 8)(task.examples(config, "train", spec).take(8))
    history = model.fit(batches.repeat(), steps_per_epoch=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history

    inputs = next(iter(batches))[0]
    model.save(Path(directory) / "model.keras")
    loaded = keras.saving.load_model(Path(directory) / "model.keras", safe_mode=True)
    assert type(loaded) is type(model), type(loaded)
    for ours, theirs in zip(
        tf.nest.flatten(model(inputs)), tf.nest.flatten(loaded(inputs)), strict=True
    ):
        np.testing.assert_array_equal(theirs, ours)

    endpoints = serving.serving_endpoints(model, spec)
    write_saved_model(model, endpoints, Path(directory) / "saved_model")
    signatures = tf.saved_model.load(str(Path(directory) / "saved_model")).signatures
    keras_calls, saved_calls = {}, {}
    for name in serving.tflite_endpoints:
        function, signature = endpoints[name]
        names = frozenset(tensor.name for tensor in signature)
        keras_calls[names] = tensor_runner(by_position(function, signature))
        saved_calls[names] = tensor_runner(signatures[name])
    test = list(serving.raw_batches(config, spec, "test", 4).take(3).as_numpy_iterator())
    expected, targets = serving.predict(dispatch(keras_calls), test)
    served, served_targets = serving.predict(dispatch(saved_calls), test)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_array_equal(served_targets, targets)


def assert_keras_file_round_trip(layer_or_model, inputs: np.ndarray, directory: Path) -> None:
    """Saves to a `.keras` file, reloads it with `safe_mode=True` and checks the outputs on
    `inputs` are identical. A layer is saved inside a functional model of its own."""
    model = layer_or_model
    if not isinstance(model, keras.Model):
        tensor = keras.Input(inputs.shape[1:], dtype=inputs.dtype)
        model = keras.Model(tensor, layer_or_model(tensor))
    path = Path(directory) / "round_trip.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(inputs), model(inputs))


# Every export report's rows, in order: the Keras model, the SavedModel and the four TFLite files.
REPORT_VARIANTS = [
    "keras",
    "saved_model",
    "tflite float32",
    "tflite dynamic",
    "tflite float16",
    "tflite int8",
]


# --- Small generated own-data sources (`images:`, `text:`, `csv:`, `pairs:`) -------------------


def assert_tflite_matches_keras(
    outputs: dict[str, np.ndarray],
    expected: np.ndarray,
    tolerances: dict[str, float],
    agreement_floor: float,
) -> None:
    """Each variant's outputs (by quantization mode) against the Keras model's `expected`: those
    named in `tolerances` within that largest absolute difference, the integer files (`dynamic`
    and `int8`) picking the same argmax at least `agreement_floor` of the time."""
    differences = {mode: float(np.abs(out - expected).max()) for mode, out in outputs.items()}
    agreement = {
        mode: float(np.mean(out.argmax(-1) == expected.argmax(-1))) for mode, out in outputs.items()
    }
    for mode, tolerance in tolerances.items():
        assert differences[mode] < tolerance, differences
    for mode in ("dynamic", "int8"):
        assert agreement[mode] >= agreement_floor, agreement


def write_images(root: Path, per_class: int = 10) -> Path:
    """Three classes of small PNG/JPEG/BMP/GIF images, of two sizes and grey and RGB, each class
    a different bright stripe (so a model can tell them apart): `root/<class>/<n>.<suffix>`."""
    from PIL import Image

    rng = np.random.default_rng(0)
    suffixes = (".png", ".jpg", ".bmp", ".gif")
    for label, name in enumerate(("across", "down", "corner")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            height, width = (16, 16) if n % 3 else (12, 20)
            pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
            if label == 0:
                pixels[height // 2 - 2 : height // 2 + 2] = 255
            elif label == 1:
                pixels[:, width // 2 - 2 : width // 2 + 2] = 255
            else:
                pixels[: height // 3, : width // 3] = 255
            image = Image.fromarray(pixels)
            if n % 2:
                image = image.convert("L")
            image.save(root / name / f"{n}{suffixes[n % len(suffixes)]}")
    return root


def write_texts(root: Path, files: int = 4, lines: int = 60) -> Path:
    """`files` UTF-8 text files of simple repetitive English (with a non-ASCII letter)."""
    rng = np.random.default_rng(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "saw", "dog", "run", "café", "mill"]
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(lines))
        (root / f"part{f}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def write_table(path: Path, rows_per_class: int = 20) -> Path:
    """A CSV of `text,label` rows in three classes whose words give the class away."""
    rng = np.random.default_rng(2)
    vocab = {
        "sport": "match goal team score player win league",
        "food": "bread cheese soup bake taste salt spoon",
        "music": "song band guitar drum melody sing album",
    }
    rows = []
    for label, words in vocab.items():
        for _ in range(rows_per_class):
            rows.append((" ".join(rng.choice(words.split(), 6)), label))
    order = rng.permutation(len(rows))
    lines = ["text,label", *(f'"{rows[i][0]}",{rows[i][1]}' for i in order)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_pairs(path: Path, count: int = 300) -> Path:
    """`source<TAB>target` lines: a word and its letters spelt out in capitals."""
    rng = np.random.default_rng(3)
    letters = list("abcdefgh")
    lines = []
    for _ in range(count):
        word = "".join(rng.choice(letters, int(rng.integers(2, 6))))
        lines.append(f"{word}\t{' '.join(word.upper())}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- Run reports (`bigmodel_tf.report`) ----------------------------------------------------------

# Elements without a closing tag.
VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}


@dataclass
class ReportPage:
    """A parsed `report.html`: its section headings, block headings, images by alt text (decoded
    RGB pixels in [0, 1]) and every external resource it would load (none, to be self-contained)."""

    text: str
    sections: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    external: list[str] = field(default_factory=list)


class _ReportParser(HTMLParser):
    """Collects a `ReportPage` and checks that every element is closed, in order."""

    def __init__(self, page: ReportPage):
        super().__init__(convert_charrefs=True)
        self.page, self.open, self.heading = page, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            url = attrs.get(name) or ""
            if url and not url.startswith(("data:", "#")):
                self.page.external.append(url)
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix), attrs["src"][:40]
            png = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
            from matplotlib import image

            self.page.images[attrs["alt"]] = image.imread(io.BytesIO(png), format="png")[..., :3]
        if tag in ("h2", "h3"):
            self.heading = [tag, ""]
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag in ("h2", "h3") and self.heading:
            (self.page.sections if tag == "h2" else self.page.headings).append(self.heading[1])
            self.heading = None

    def handle_data(self, data):
        if self.heading:
            self.heading[1] += data


def read_report(run_dir: Path) -> ReportPage:
    """`run_dir/report.html` parsed, checked to be one well-formed, self-contained HTML page."""
    text = (Path(run_dir) / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>"), text[:80]
    page = ReportPage(text)
    parser = _ReportParser(page)
    parser.feed(text)
    parser.close()
    assert parser.open == [], f"unclosed elements: {parser.open}"
    assert page.external == [], page.external
    return page


def assert_drawn(pixels: np.ndarray, name: str = "") -> None:
    """A picture with something in it: not one flat colour."""
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50, (name, pixels.shape)
    assert pixels.std() > 0.03, f"{name} looks blank (pixel std {pixels.std():.4f})"


def summaries(log_dir: Path) -> dict[str, tuple[str, Any]]:
    """The summaries of a folder's event files: `{tag: (plugin, value)}`, the last one of each
    tag: a string for text, a float for a scalar, the pixels (RGB in [0, 1]) for an image, the
    plugin's serialised data for hparams."""
    found = {}
    for events in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                if plugin == "text":
                    tensor = tensor.item().decode()
                elif plugin == "scalars":
                    tensor = float(tensor)
                elif plugin == "images":  # width, height, then the PNG of each image
                    tensor = tf.io.decode_png(tensor[2], channels=3).numpy() / 255.0
                elif plugin == "hparams":
                    tensor = value.metadata.plugin_data.content
                found[value.tag] = (plugin, tensor)
    return found
