"""The `bigmodel-tf` command: parses arguments (the parser is `cli_parser`), calls the
documented Python API, prints.

Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from bigmodel_tf.cli_parser import FAMILIES, TRAIN_EPILOG, build_parser
from bigmodel_tf.errors import Interrupted, UserError
from bigmodel_tf.io import import_tensorflow_quietly

# Before TensorFlow is imported: keep its C++ start-up chatter off stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
