"""Both language models' report section and TensorBoard texts, as the shared runs' end of
training wrote them."""

import html
import re

import pytest

from bigmodel_tf.families.language_model.report import SAMPLE_LENGTH, TEMPERATURES
from tests.helpers import assert_drawn, read_report, summaries


@pytest.mark.parametrize("run", ["trained_gru_lm", "trained_transformer_lm"])
def test_the_report_shows_samples_at_two_temperatures(run, request):
    run_dir = request.getfixturevalue(run)
    page = read_report(run_dir)
    assert "Generated samples" in page.sections
    assert [f"temperature {t}" for t in TEMPERATURES] == page.headings
    assert_drawn(page.images["learning_curves"], "learning curves")
    samples = [html.unescape(s) for s in re.findall(r"<pre>(.*?)</pre>", page.text, re.DOTALL)]
    assert len(samples) == len(TEMPERATURES) and samples[0] != samples[1]
    assert all(len(sample) >= SAMPLE_LENGTH for sample in samples)  # OOV shows as [UNK]

    texts = summaries(run_dir / "logs" / "report")
    for t, sample in zip(TEMPERATURES, samples, strict=True):
        plugin, markdown = texts[f"Generated_samples/temperature_{t}"]
        # Indented: Markdown shows the lines as they are.
        assert plugin == "text" and markdown.replace("\n    ", "\n")[4:] == sample
