"""The Transformer classifier's report section and TensorBoard picture, as the shared run's end
of training wrote them."""

import html
import re

from bigmodel_tf.report.classification import WRONG_EXAMPLES
from tests.helpers import assert_drawn, read_report, summaries

# A row of the most-confidently-wrong table: text, true label, predicted label, probability.
WRONG_ROW = re.compile(
    r'<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td class="number">([0-9.]+)</td></tr>'
)


def test_the_report_shows_the_confusion_matrix_and_the_most_confidently_wrong_texts(
    trained_transformer,
):
    page = read_report(trained_transformer)
    assert "Test predictions" in page.sections
    assert_drawn(page.images["confusion_matrix"], "confusion matrix")
    rows = WRONG_ROW.findall(page.text)
    assert len(rows) == WRONG_EXAMPLES  # a one-epoch model gets more than that wrong
    probabilities = [float(p) for *_, p in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    for text, true, predicted, _ in rows:
        assert len(html.unescape(text)) > 5 and true != predicted


def test_tensorboard_gets_the_confusion_matrix_and_the_wrong_texts(trained_transformer):
    found = summaries(trained_transformer / "logs" / "report")
    assert found["Test_predictions/confusion_matrix"][0] == "images"
    plugin, table = found["Test_predictions/most_confidently_wrong"]
    assert plugin == "text" and table.startswith("| text | true | predicted | probability |")
