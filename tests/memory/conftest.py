from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblite.memory import FileStore, InMemoryStore, Memory, Store

# "fsspec-memory" is fsspec's in-process file system; "s3" is a real S3-protocol
# server (moto) reached through s3fs, as a user's code reaches AWS.
STORE_KINDS = ["local", "memory", "fsspec-memory", "s3"]


@pytest.fixture(scope="session")
def s3_server(s3_server: str) -> Iterator[str]:
    """The session's moto S3 server (tests/conftest.py) with a bucket; yields ``s3://bucket``.

    The AWS_* environment points every client of the session at it (fake
    credentials, ``AWS_ENDPOINT_URL``): no request leaves the machine.
    """
    pytest.importorskip("s3fs", reason="the S3 tests need the test extra (s3fs)")
    import fsspec

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one line per request otherwise
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": s3_server,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(name, raising=False)
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("joblite-test")
        try:
            yield "s3://joblite-test"
        finally:
            fsspec.filesystem("s3").clear_instance_cache()
            werkzeug.setLevel(level)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest | None = None) -> Store:
    from joblite.memory import FsspecStore

    if kind == "local":
        return FileStore(tmp_path / "cache" / "joblib")
    if kind == "memory":
        return InMemoryStore()
    assert request is not None, "the fsspec stores clean up through the test's request"
    if kind == "s3":
        bucket = request.getfixturevalue("s3_server")
        store = FsspecStore(f"{bucket}/{uuid.uuid4().hex}/joblib")
    else:
        pytest.importorskip("fsspec", reason="the fsspec store needs the fsspec extra")
        store = FsspecStore(f"memory://joblite-test-{uuid.uuid4().hex}/joblib")
    request.addfinalizer(lambda: store.delete(""))
    return store


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(request.param, tmp_path, request)


@pytest.fixture
def memory(store: Store) -> Memory:
    """A Memory over each store implementation."""
    return Memory(store, verbose=0)


@pytest.fixture
def local_memory(tmp_path: Path) -> Memory:
    return Memory(tmp_path / "cache", verbose=0)
