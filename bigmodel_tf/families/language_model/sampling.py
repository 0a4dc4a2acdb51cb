"""Text from a trained language-model run (`gru-lm`, `transformer-lm`): `generate_text`, the
Python side of `bigmodel-tf generate`.

>>> from bigmodel_tf.training import generate_text
>>> print("ROMEO:" + generate_text("runs/gru-lm/demo", "ROMEO:", 300, temperature=0.8, seed=1))
"""

from __future__ import annotations

import sys
from pathlib import Path

from bigmodel_tf.errors import UserError
from bigmodel_tf.families.language_model.components import EMPTY_PROMPT
from bigmodel_tf.families.language_model.data import (
    OOV_TOKEN,
    char_lookup,
    ids_to_text,
    text_to_ids,
)
from bigmodel_tf.families.language_model.generation import generate
from bigmodel_tf.families.language_model.task import LanguageModelTask
from bigmodel_tf.registry import task_for, tasks
from bigmodel_tf.training.runs import load_run, load_trained


def generate_text(
    run_dir: Path | str,
    prompt: str = "",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> str:
    """Samples `length` characters that continue `prompt`, from a run's best checkpoint.

    Characters of `prompt` that are not in the run's vocabulary are read as its OOV token, with
    a warning on stderr. The same arguments give the same text.

    Args:
        run_dir: path. A trained language-model run.
        prompt: str. Text to continue; empty starts from the beginning of a line. Defaults to
            `""`.
        length: int. Characters to generate, 1 to 100,000. Defaults to 500.
        temperature: float. Divides the logits: below 1 is more conservative, above 1 more
            varied. Defaults to 0.8, a little safer than the model's own distribution.
        top_k: int. Sample among the `top_k` most likely characters (1 is greedy). Defaults to
            None (all).
        top_p: float in (0, 1]. Sample among the most likely characters whose probabilities
            sum to `top_p`; not together with `top_k`. Defaults to None (all).
        seed: int. Sampling seed, 0 to 2**31 - 1. Defaults to 0.

    Returns:
        The generated characters, without the prompt. A sampled OOV id (which training never
        targets) shows as the OOV token.
    """
    family = load_run(run_dir).family
    if not isinstance(task_for(family), LanguageModelTask):
        models = ", ".join(f for f, task in tasks().items() if isinstance(task, LanguageModelTask))
        raise UserError(
            f"{run_dir} is a {family!r} run; text comes from a language model ({models})"
        )
    _, _, spec, model = load_trained(run_dir)
    ids, unknown = text_to_ids(prompt or EMPTY_PROMPT, char_lookup(spec.vocabulary))
    if unknown:
        print(
            f"warning: the prompt's {''.join(unknown)!r} are not in the vocabulary; "
            f"read as {OOV_TOKEN}",
            file=sys.stderr,
        )
    new_ids = generate(
        model, ids, length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
    )
    return ids_to_text(new_ids, char_lookup(spec.vocabulary, invert=True))
