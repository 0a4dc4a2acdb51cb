"""What a person sees, checked in a real browser (headless Chromium): TensorBoard serving a
run's scalars, and a run's report with its pictures drawn.

Marked `browser` (left out of the default run for time; `.ci/run` runs it after the default
suite). Chromium is installed with apt when it is missing, which the set-up says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import tensorboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path, installed with apt (Debian's `chromium` package) when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.fail("no chromium, and no apt-get run as root to install it with")
    print("\ninstalling chromium with apt for the browser tests", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    return shutil.which("chromium")


def browse(chromium: str, url: str, *flags: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `url`, scripts run for up to 15 s of page time."""
    command = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",
        *flags,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def drawn(path: Path) -> np.ndarray:
    """The screenshot's RGB pixels, checked to be a picture rather than a blank page."""
    from matplotlib import image

    pixels = image.imread(path)[..., :3]
    assert pixels.std() > 0.05, f"{path} is blank"
    return pixels


def test_tensorboard_shows_the_runs_scalars_in_a_browser(chromium, trained_cnn, tmp_path):
    with tensorboard(trained_cnn) as url:
        page = browse(chromium, url + "#timeseries", "--dump-dom").stdout
        # The time-series dashboard names a card after each scalar tag it draws.
        assert "epoch_loss" in page and "epoch_accuracy" in page, page[-2000:]
        screenshot = tmp_path / "tensorboard.png"
        size = "--window-size=1200,900"
        browse(chromium, url + "#timeseries", size, f"--screenshot={screenshot}")
        drawn(screenshot)


def test_a_browser_draws_the_report_and_its_pictures(chromium, trained_cnn, tmp_path):
    report = trained_cnn / "report.html"
    page = browse(chromium, report.as_uri(), "--dump-dom").stdout
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', page)
    assert len(images) >= 3, "curves, confusion matrix and wrong images"
    screenshot = tmp_path / "report.png"
    browse(chromium, report.as_uri(), "--window-size=1000,1400", f"--screenshot={screenshot}")
    pixels = drawn(screenshot)
    # Matplotlib's blue (C0) curves: the learning curves were drawn, not just the text.
    blue = (np.abs(pixels - np.array([0.12, 0.47, 0.71])).max(-1) < 0.08).sum()
    assert blue > 200, blue
