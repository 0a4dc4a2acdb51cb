"""The CNN's report section and TensorBoard picture, as the shared run's end of training wrote
them."""

from tests.helpers import assert_drawn, read_report, summaries


def test_the_report_shows_the_confusion_matrix_and_the_most_confidently_wrong_images(trained_cnn):
    page = read_report(trained_cnn)
    assert page.sections[:3] == ["Metrics", "Learning curves", "Test predictions"]
    for name in ("learning_curves", "confusion_matrix", "most_confidently_wrong"):
        assert_drawn(page.images[name], name)


def test_tensorboard_gets_the_confusion_matrix(trained_cnn):
    found = summaries(trained_cnn / "logs" / "report")
    plugin, pixels = found["Test_predictions/confusion_matrix"]
    assert plugin == "images"
    assert_drawn(pixels, "confusion matrix in TensorBoard")
