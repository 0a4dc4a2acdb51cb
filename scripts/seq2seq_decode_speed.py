#!/usr/bin/env python
"""Greedy decoding of a seq2seq run's test split: the compiled in-graph loop against a Python
loop that calls the model once per step, on the same batches, in alternating rounds.

    python scripts/seq2seq_decode_speed.py runs/seq2seq/RUN [--rounds 3]

Prints each round's seconds, the speed-up (median over rounds) and whether both give the same
ids; beam search (width 5) is timed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from bigmodel_tf.data.transduction import PAD_ID, reference_batches
    from bigmodel_tf.models.seq2seq_decoding import beam_decode, decode_step_by_step, greedy_decode
    from bigmodel_tf.training.trainer import load_trained

    config, _, spec, model = load_trained(args.run_dir)
    max_length = spec.max_target_length + 1
    batches = [
        source[:, : int((source != PAD_ID).sum(1).max())]  # each batch to its longest word
        for source, _ in reference_batches(config.dataset, "test", spec, 256).as_numpy_iterator()
    ]
    runs = {
        "compiled": lambda: [np.asarray(greedy_decode(model, b, max_length)) for b in batches],
        "python": lambda: [decode_step_by_step(model, b, max_length) for b in batches],
        "beam5": lambda: [np.asarray(beam_decode(model, b, max_length, 5)) for b in batches],
    }
    same = all(
        np.array_equal(a, b) for a, b in zip(runs["compiled"](), runs["python"](), strict=True)
    )
    runs["beam5"]()  # trace
    seconds = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
            print(f"round {round_ + 1} {name}: {seconds[name][-1]:.2f} s", flush=True)
    ratios = [p / c for p, c in zip(seconds["python"], seconds["compiled"], strict=True)]
    words = sum(len(b) for b in batches)
    print(f"{words:,} test words in {len(batches)} batches; identical ids: {same}")
    print(
        f"speed-up of the compiled greedy loop: {statistics.median(ratios):.1f}x "
        f"(rounds: {', '.join(f'{r:.1f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
