"""The `bigmodel-tf` command line's parser: each command, its options and their help.

Names only: building it imports no TensorFlow, so that `--help` and `launch` start at once.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from bigmodel_tf import registry

# Names only: --help and `launch` must not import TensorFlow.
FAMILIES = registry.family_names()
HELP_WIDTH = 88
TRAIN_EPILOG = "`bigmodel-tf train FAMILY --help` lists FAMILY's config keys and their defaults."
# Kept in step with training.config.STRATEGIES by a test; spelt out here because importing the
# training package imports TensorFlow.
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")

LAUNCH_DESCRIPTION = """\
Run a `train` command as N worker processes on this host, one MultiWorkerMirroredStrategy
cluster on 127.0.0.1: each worker gets a TF_CONFIG naming every worker and its own index, and
worker 0 is the chief, the only one that writes the run directory (the others write to temporary
folders that are removed). train.batch_size stays the global batch, split across the workers.

Output is streamed with a [worker i] prefix. If a worker fails or is killed, the others are
stopped and launch exits with the chief's status; running the same command again resumes every
worker from its last backup (every train.backup_steps steps and every epoch end) at that step.

On a real cluster, run the same `bigmodel-tf train` command on every machine with TF_CONFIG set
by the platform (Kubeflow's TFJob), or inside a Slurm job step of several tasks; see
docs/distributed.md.
Environment: BIGMODEL_TF_CLUSTER_TIMEOUT (seconds a worker waits for the others to join, default
300).
"""

LAUNCH_EPILOG = """\
examples:
  bigmodel-tf launch --workers 2 -- train cnn --epochs 5
  bigmodel-tf launch --workers 2 --port-base 23456 -- train cnn --run-dir runs/cnn/dist --quiet
"""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (usage stays available through --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(train_epilog: str = TRAIN_EPILOG) -> argparse.ArgumentParser:
    """The command line's parser; `train_epilog` ends `train --help` (a family's config keys)."""
    parser = Parser(
        prog="bigmodel-tf",
        description="Train, evaluate and export classic deep-learning models on real data.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_train(commands, train_epilog)
    _add_launch(commands)
    evaluate = commands.add_parser("evaluate", help="evaluate a run's best model on a split")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--split", default="test", help="split expression (default: test)")
    _add_export(commands)
    _add_verify(commands)
    _add_generate(commands)
    _add_classify(commands)
    _add_transduce(commands)
    _add_report(commands)
    board = commands.add_parser("tensorboard", help="serve a run's TensorBoard logs on 127.0.0.1")
    board.add_argument("run_dir", type=Path)
    board.add_argument("--port", type=int, default=6006, help="port (0 picks a free one)")
    commands.add_parser(
        "datasets", help="list the embedded datasets with their splits, and the kinds of own data"
    )
    return parser


def _add_train(commands, epilog: str) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (resumes an interrupted run of the same config)",
        description=textwrap.fill(
            "Train a model family on a dataset. Re-running the same command resumes an "
            "interrupted run at its last backup (every train.backup_steps steps and every epoch "
            "end); a finished run is not trained again. The same command runs on several GPUs, "
            "and as one worker of a cluster when TF_CONFIG or a Slurm job step names several "
            "(see `bigmodel-tf launch --help`).",
            HELP_WIDTH,
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("model", choices=FAMILIES, help="model family")
    train.add_argument(
        "--dataset",
        help="embedded dataset, your own data as images:DIR, text:PATH, csv:PATH or pairs:PATH, "
        "or tfds:NAME (see `datasets`)",
    )
    train.add_argument(
        "--preset",
        default="default",
        help="named model config (cnn: default, seed, small; gru-lm: default, seed; "
        "transformer: default, minilm (fine-tunes the pretrained all-MiniLM-L6-v2, ~10 min), "
        "student (the default, to distil with --set train.distill_from=RUN); transformer-mlm, "
        "transformer-lm: default; seq2seq: default, luong)",
    )
    train.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=N")
    train.add_argument("--batch-size", type=int, help="global batch size (train.batch_size)")
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy (train.strategy); auto picks multiworker for a cluster "
        "(TF_CONFIG or Slurm), tpu when TPU_NAME is set, mirrored for several GPUs",
    )
    train.add_argument("--config", type=Path, help="JSON or YAML file of config keys")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. train.learning_rate=1e-3 (repeatable)",
    )
    train.add_argument(
        "--run-dir", type=Path, help="default: runs/<model>/<dataset>-<preset>-<hash>"
    )
    train.add_argument("--overwrite", action="store_true", help="delete --run-dir's contents first")
    train.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")


def _add_launch(commands) -> None:
    launch = commands.add_parser(
        "launch",
        help="run a train command as N local worker processes (MultiWorkerMirroredStrategy)",
        description=LAUNCH_DESCRIPTION,
        epilog=LAUNCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --workers N [--port-base P] -- train MODEL [train options]",
    )
    launch.add_argument(
        "--workers", type=int, required=True, metavar="N", help="number of worker processes"
    )
    launch.add_argument(
        "--port-base",
        type=int,
        metavar="P",
        help="worker i listens on 127.0.0.1:P+i (default: free ports)",
    )
    launch.add_argument(
        "worker_command",
        nargs=argparse.REMAINDER,
        metavar="-- train ...",
        help="the bigmodel-tf command every worker runs",
    )


def _add_export(commands) -> None:
    export = commands.add_parser(
        "export",
        help="export a run: SavedModel, TFLite (float32/dynamic/float16/int8), verified report",
        description="Write a SavedModel (serving signatures on raw inputs), TFLite files with "
        "post-training quantisation, metadata.json, and report.md/report.json measuring every "
        "variant on the test split (quality, agreement with Keras, size, latency). The version "
        "folder appears only when everything is written; an existing one is replaced only with "
        "--force.",
    )
    export.add_argument("run_dir", type=Path)
    export.add_argument(
        "--out", type=Path, help="version folder (default: savedmodels/<model>/<next>)"
    )
    export.add_argument(
        "--quantize",
        default="none,dynamic,float16,int8",
        metavar="MODES",
        help="comma-separated TFLite files to write: none (float32), dynamic (int8 weights), "
        "float16, int8 (full integer); '' for none at all (default: all four)",
    )
    export.add_argument(
        "--calibration-batches",
        type=int,
        default=100,
        metavar="N",
        help="training batches that calibrate int8 activation ranges (default: 100)",
    )
    export.add_argument("--force", action="store_true", help="replace --out if it exists")


def _add_verify(commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="re-measure an export from its files and compare with its report",
        description="Load every artefact of an export, check the TFLite files' sha256, run each "
        "on the test split and compare its quality with report.json and the training run's test "
        "metric. Exit status 1 if anything differs.",
    )
    verify.add_argument("export_dir", type=Path)
    verify.add_argument("--timing", action="store_true", help="re-measure latency too")


def _add_generate(commands) -> None:
    generate = commands.add_parser(
        "generate",
        help="sample text from a trained language-model run (gru-lm, transformer-lm)",
        description="Continue --prompt with --length characters sampled from a gru-lm or "
        "transformer-lm run's best checkpoint (a transformer carries a key/value cache and "
        "sees at most its sequence_length characters). Prompt characters outside the "
        "vocabulary are read as its OOV token (with a warning); the same seed gives the same "
        "text.",
    )
    generate.add_argument("run_dir", type=Path)
    generate.add_argument(
        "--prompt", default="", help="text to continue (default: the start of a line)"
    )
    generate.add_argument(
        "--length", type=int, default=500, help="characters to generate (default: 500)"
    )
    generate.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="below 1 is more conservative, above 1 more varied (default: 0.8)",
    )
    sampling = generate.add_mutually_exclusive_group()
    sampling.add_argument("--top-k", type=int, help="sample among the K most likely characters")
    sampling.add_argument(
        "--top-p", type=float, help="sample among the most likely characters of mass P"
    )
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")


def _add_classify(commands) -> None:
    classify = commands.add_parser(
        "classify",
        help="label texts with a trained transformer run",
        description="Print the label and its probability for each TEXT, one line each "
        "(label, probability, text; tab-separated), from a transformer run's best checkpoint. "
        "A text longer than the model's sequence_length subwords is truncated to it (with a "
        "warning); an empty text or one that is not UTF-8 is an error.",
    )
    classify.add_argument("run_dir", type=Path)
    classify.add_argument("texts", nargs="+", metavar="TEXT", help="a text to label")


def _add_transduce(commands) -> None:
    transduce = commands.add_parser(
        "transduce",
        help="pronounce words with a trained seq2seq run",
        description="Print the phonemes of each WORD from a seq2seq run's best checkpoint, one "
        "line per word (`word<TAB>phonemes`). Words are lowercased when the training words "
        "were; an empty word, one longer than the model's model.max_source_length or one with "
        "characters the model never saw is refused (nothing is truncated).",
    )
    transduce.add_argument("run_dir", type=Path)
    transduce.add_argument("words", nargs="+", metavar="WORD")
    transduce.add_argument(
        "--beam",
        type=int,
        metavar="K",
        help="beam width; 1 decodes greedily (default: the run's model.beam_width)",
    )
    transduce.add_argument(
        "--plot-attention",
        type=Path,
        metavar="PNG",
        help="also draw each word's attention weights as a heatmap into this PNG file",
    )


def _add_report(commands) -> None:
    report = commands.add_parser(
        "report",
        help="write a run's report.html: metrics, curves, the model's pictures, exports, config",
        description="Write RUN_DIR/report.html, one self-contained page: the test metrics, the "
        "learning curves, the family's pictures (confusion matrix and most confidently wrong "
        "examples, generated samples, attention heatmaps), the run's exports (those under "
        "savedmodels/ made from it, and any --export) and its config. train and export write "
        "it too when they finish (BIGMODEL_TF_REPORT=0 turns that off).",
    )
    report.add_argument("run_dir", type=Path)
    report.add_argument(
        "--export",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="an export folder of this run to include (repeatable)",
    )
