#!/usr/bin/env python
"""Measures speed, utilisation, a PyTorch peer, inference, generation and quality; writes
benchmarks/results.json and regenerates the tables of docs/results.md from it.

    python scripts/bench.py                      # everything (trains the default runs if missing)
    python scripts/bench.py --only train,peak    # some suites; the others' figures are kept
    python scripts/bench.py --only peers         # ours against PyTorch (pip install -e '.[peers]')
    python scripts/bench.py --family seq2seq     # one model family's figures
    python scripts/bench.py --quick              # toy sizes in a few minutes: checks the harness

Run it from the repository's .venv (`source scripts/setup.sh` first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default="peak,train,generation,inference,quality",
        help="comma-separated suites: peak, settings (float32/bf16 x XLA off/on: what auto "
        "chooses from), train, peers (ours against the same networks in PyTorch; needs "
        "pip install -e '.[peers]'), time_to_accuracy (default runs to a test target under auto "
        "and float32), generation, inference, quality (default: all but settings, peers and "
        "time_to_accuracy)",
    )
    parser.add_argument(
        "--family",
        help="comma-separated model families: cnn, gru-lm, transformer, transformer-pretrained "
        "(fine-tuned all-MiniLM-L6-v2), transformer-student (distilled from it), transformer-lm, "
        "seq2seq (default: all); the other families' figures are kept",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toy models and few rounds; writes benchmarks/quick-results.json, not docs/results.md",
    )
    parser.add_argument("--rounds", type=int, help="timed rounds per figure (default 5, quick 2)")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results.json)")
    args = parser.parse_args(argv)

    from bigmodel_tf import bench
    from bigmodel_tf.errors import UserError
    from bigmodel_tf.io import import_tensorflow_quietly, read_json

    update_page = args.out is None and not args.quick
    default = "benchmarks/quick-results.json" if args.quick else "benchmarks/results.json"
    out = args.out.resolve() if args.out else ROOT / default
    os.chdir(ROOT)  # runs/ and benchmarks/ are the repository's

    def save(figures: list) -> None:
        # After every suite, so that an interrupted run keeps what it measured.
        results = bench.write_results(out, figures, quick=args.quick)
        if update_page:
            bench.update_results_page(ROOT / bench.RESULTS_PAGE, bench.render_tables(results))

    try:
        suites = bench.parse_suites(args.only)
        if args.rounds is not None and args.rounds < 1:
            raise UserError(f"--rounds must be >= 1, got {args.rounds}")
        import_tensorflow_quietly()
        families = bench.parse_families(args.family) if args.family else None
        bench.run(suites, families=families, quick=args.quick, rounds=args.rounds, on_suite=save)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(bench.render_tables(read_json(out)))
    page = f" and the tables of {bench.RESULTS_PAGE}" if update_page else ""
    print(f"\nwrote {out}{page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
