"""The `cnn` family's task through the shared harness; its training is in tests/training and
its export in tests/export, which use it as the core's example family."""

from tests.helpers import run_task_test


def test_task_builds_fits_saves_and_exports(trained_cnn, tmp_path):
    run_task_test(trained_cnn, tmp_path)
