"""The language models' generation benchmark: carried state (a GRU's states, a Transformer's
key/value cache) against re-running the prefix for every new character."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

from bigmodel_tf.bench.harness import BENCH, Family, timed_rounds
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.families.language_model.data import char_lookup, text_to_ids
from bigmodel_tf.families.language_model.generation import generate, generate_by_rerunning_prefix
from bigmodel_tf.training.runs import load_trained

LOSS = {"unit": "nats/char"}


def generation_speed(
    name: str, target: str, lengths: tuple[int, ...], speed_target: str | None = None
) -> Callable:
    """A bench entry's `generation` hook: the figure `name` with the `target`, measured at
    `lengths` characters (the first carries the targets); `speed_target` bounds the carried
    state's characters per second."""
    return functools.partial(_generation_speed, name, target, lengths, speed_target)


def _generation_speed(
    name: str,
    target: str,
    lengths: tuple[int, ...],
    speed_target: str | None,
    family: Family,
    run_dir: Path,
    quick: bool,
    rounds: int,
) -> list[Figure]:
    """The stateful compiled loop (carried GRU states, or a Transformer's key/value cache)
    against re-running the whole prefix (a Transformer: its last `max_length` characters) for
    every new character, in alternating rounds."""
    _, _, spec, model = load_trained(run_dir)
    prompt, _ = text_to_ids("ROMEO:", char_lookup(spec.vocabulary))
    lengths = (50,) if quick else lengths
    command, key = f"{BENCH} --only generation", family.key

    def timed(sample: Callable, length: int) -> Callable[[], float]:
        def one_round() -> float:
            start = time.perf_counter()
            sample(model, prompt, length, seed=1).numpy()
            return length / (time.perf_counter() - start)

        return one_round

    for sample in (generate, generate_by_rerunning_prefix):
        sample(model, prompt, 2, seed=1).numpy()  # traces the loop, which any length reuses
    figures = []
    for length in lengths:
        runs = {
            "stateful": timed(generate, length),
            "rerun": timed(generate_by_rerunning_prefix, length),
        }
        # The GRU's baseline takes ~100 s a round at 1,000 characters (O(length^2) steps).
        speeds = timed_rounds(runs, min(rounds, 3))
        ratio, spread = summarise(
            [s / r for s, r in zip(speeds["stateful"], speeds["rerun"], strict=True)]
        )
        first = length == lengths[0]
        figures.append(
            Figure(
                f"{key}.{name}" if first else f"{key}.{name}_{length}",
                ratio,
                "x",
                "generation",
                target=target if first else None,
                command=command,
                spread=spread,
                note=f"{length:,} characters: carried state over re-running the prefix",
                family=key,
            )
        )
        if first:
            note = f"{length:,} characters ({run_dir})"
            figures += _speed_figures(key, command, speeds, speed_target, note)
    return figures


def _speed_figures(
    key: str, command: str, speeds: dict[str, list[float]], target: str | None, note: str
) -> list[Figure]:
    """Characters per second of both ways; `target` bounds the carried state's."""
    figures = []
    for variant, what in (
        ("stateful", "`generate`, carried state, one tf.function loop, XLA-compiled step"),
        ("rerun", "`generate_by_rerunning_prefix`, the loop re-running the prefix, no XLA"),
    ):
        speed, spread = summarise(speeds[variant])
        figures.append(
            Figure(
                f"{key}.generate_{variant}_chars_per_s",
                speed,
                "chars/s",
                "generation",
                target=target if variant == "stateful" else None,
                command=command,
                spread=spread,
                note=f"{what}, {note}",
                family=key,
            )
        )
    return figures
