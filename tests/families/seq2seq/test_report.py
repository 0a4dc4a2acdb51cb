"""The Seq2Seq's report section, as the shared run's end of training wrote it."""

from bigmodel_tf.families.seq2seq.transduction import SAMPLE_WORDS
from tests.helpers import assert_drawn, read_report


def test_the_report_shows_decoded_words_and_their_attention(trained_seq2seq):
    page = read_report(trained_seq2seq)
    assert "Examples" in page.sections
    assert_drawn(page.images["attention"], "attention heatmaps")
    for word in SAMPLE_WORDS:
        assert f"<tr><td>{word}</td><td>" in page.text
    # TensorBoard has these words' outputs and attention after every epoch already (samples/).
    assert not (trained_seq2seq / "logs" / "report").exists()
