#!/usr/bin/env python
"""Draws the learning curves of the two language models' default runs against wall time:
docs/lm_curves.png, linked from the README.

    python scripts/lm_curves.py            # the default runs of gru-lm and transformer-lm
    python scripts/lm_curves.py --out curves.png

Train the runs first (`bigmodel-tf train gru-lm`, `bigmodel-tf train transformer-lm`, or
`python scripts/bench.py --only quality --family gru-lm,transformer-lm`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
LABELS = {"gru-lm": "GRU", "transformer-lm": "Transformer"}
# The held-out plays' loss the Transformer's default recipe aims at, in nats per character.
TARGET = 1.50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lm_curves.png")
    args = parser.parse_args(argv)

    from bigmodel_tf.bench.curves import plot_learning_curves, read_curve
    from bigmodel_tf.errors import UserError
    from bigmodel_tf.training import make_config
    from bigmodel_tf.training.runs import default_run_dir

    os.chdir(ROOT)  # default runs live in the repository's runs/
    try:
        curves = {}
        for family, label in LABELS.items():
            run_dir = default_run_dir(make_config(family))
            if not (run_dir / "metrics.json").is_file():
                raise UserError(f"{family}'s default run {run_dir} has not finished: train it")
            curves[label] = read_curve(run_dir)
        path = plot_learning_curves(
            curves,
            args.out,
            ylabel="loss (nats/char)",
            title="Character-level Shakespeare on 2 CPU cores: default runs",
            target=TARGET,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
