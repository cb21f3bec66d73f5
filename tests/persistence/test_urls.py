"""dump / load / inspect on URLs: a local path, memory:// and a real S3-protocol server."""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import joblite
from joblite._core import _remote, codecs
from joblite.exceptions import CorruptFileError, MissingDependencyError, UnsafeLoadError

from .helpers import assert_same

fsspec = pytest.importorskip("fsspec")
s3fs = pytest.importorskip("s3fs")

# Dummy credentials: the server accepts any; without them botocore would look
# for real ones (profiles, the instance metadata service).
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A fresh bucket on the server: ("s3://bucket", its s3fs filesystem)."""
    for name, value in _CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    fs = s3fs.S3FileSystem(endpoint_url=s3_server)
    bucket = f"joblite-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    yield f"s3://{bucket}", fs
    fs.rm(bucket, recursive=True)


@pytest.fixture
def memory_dir() -> Iterator[str]:
    base = f"memory://joblite-{uuid.uuid4().hex[:12]}"
    yield base
    fs = fsspec.filesystem("memory")
    if fs.exists(base):
        fs.rm(base, recursive=True)


@pytest.fixture(params=["local", "memory", "s3"])
def location(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> tuple[str, dict[str, Any] | None]:
    """Where the contract runs: (base to append "/name" to, storage_options)."""
    if request.param == "local":
        return str(tmp_path), None
    if request.param == "memory":
        return request.getfixturevalue("memory_dir"), None
    base, fs = request.getfixturevalue("s3_bucket")
    return base, {"endpoint_url": fs.endpoint_url}


def _model() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "coef": rng.standard_normal((300, 40)),
        "fortran": np.asfortranarray(rng.standard_normal((20, 30))),
        "empty": np.zeros(0, dtype=np.int32),
        "labels": ["a", "b"],
        "scale": 0.5,
    }


@pytest.mark.parametrize("compress", [0, True, ("zlib", 1)])
def test_round_trip_contract(location: tuple[str, dict[str, Any] | None], compress: object) -> None:
    base, options = location
    name = f"{base}/model.jl"
    model = _model()
    assert joblite.dump(model, name, compress=compress, storage_options=options) == [name]
    assert_same(joblite.load(name, storage_options=options), model)
    assert_same(joblite.load(name, allowed=[], storage_options=options), model)
    manifest = joblite.inspect(name, storage_options=options)
    assert [array["shape"] for array in manifest["arrays"]] == [[300, 40], [20, 30], [0]]
    assert manifest["file_size"] > model["coef"].nbytes // (2 if compress else 1) - 1
    # Replacing a file leaves the new one under the name, nothing else beside it.
    joblite.dump({"v": 2}, name, storage_options=options)
    assert joblite.load(name, storage_options=options) == {"v": 2}


def test_restricted_loader_refuses_on_urls(location: tuple[str, dict[str, Any] | None]) -> None:
    base, options = location
    name = f"{base}/obj.jl"
    joblite.dump({"p": pathlib.PurePosixPath("/x")}, name, storage_options=options)
    with pytest.raises(UnsafeLoadError, match="pathlib"):
        joblite.load(name, allowed=[], storage_options=options)
    assert joblite.load(name, allowed=["pathlib"], storage_options=options) == {
        "p": pathlib.PurePosixPath("/x")
    }


def test_s3_credentials_and_endpoint_from_the_environment(
    s3_server: str, s3_bucket: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No storage_options: botocore finds the endpoint in AWS_ENDPOINT_URL, as for users.
    base, _ = s3_bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        joblite.dump([1, np.arange(5)], f"{base}/env.jl")
        assert_same(joblite.load(f"{base}/env.jl"), [1, np.arange(5)])
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def _pending_uploads(fs: Any, bucket: str) -> list[Any]:
    return list(fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))


class _FailsHalfway:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


def test_s3_dump_that_fails_leaves_nothing(s3_bucket: tuple[str, Any]) -> None:
    base, fs = s3_bucket
    bucket = base.removeprefix("s3://")
    options = {"endpoint_url": fs.endpoint_url}
    joblite.dump({"old": 1}, f"{base}/kept.jl", storage_options=options)
    value = [np.zeros(1000), _FailsHalfway()]
    with pytest.raises(RuntimeError, match="cannot pickle"):
        joblite.dump(value, f"{base}/new.jl", storage_options=options)
    with pytest.raises(RuntimeError, match="cannot pickle"):
        joblite.dump(value, f"{base}/kept.jl", storage_options=options)
    fs.invalidate_cache()
    assert fs.ls(bucket) == [f"{bucket}/kept.jl"]
    assert joblite.load(f"{base}/kept.jl", storage_options=options) == {"old": 1}
    assert _pending_uploads(fs, bucket) == []


class _FailingCodec:
    """zlib that raises on its fifth chunk: a failure after parts were uploaded."""

    name = "fails_late"
    extensions = ()
    default_level = 1

    def __init__(self) -> None:
        self._zlib = codecs.get_codec("zlib")
        self._calls = 0
        self._lock = threading.Lock()

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        with self._lock:
            self._calls += 1
            if self._calls == 5:
                raise OSError("the codec failed")
        return self._zlib.compress(data, level)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return self._zlib.decompress(data)


def _count_calls(fs: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every S3 operation the filesystem's client sends from now on: (name, params)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        calls.append((model.name, params))

    fs.connect()
    fs.s3.meta.events.register("before-parameter-build.s3", record)
    return calls


def test_s3_dump_failing_mid_upload_aborts_it(
    s3_bucket: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, fs = s3_bucket
    bucket = base.removeprefix("s3://")
    monkeypatch.setitem(codecs._CODECS, "fails_late", _FailingCodec())
    monkeypatch.setattr(joblite._core.fileformat, "CHUNK_SIZE", 2 * 1024 * 1024)
    monkeypatch.setattr(_remote, "PART_BYTES", 5 * 1024 * 1024)  # S3's minimum part
    calls = _count_calls(fs)
    noise = np.random.default_rng(0).integers(0, 255, 16 * 1024 * 1024, dtype=np.uint8)
    with pytest.raises(OSError, match="the codec failed"):
        joblite.dump(
            noise,
            f"{base}/big.jlz",
            compress="fails_late",
            storage_options={"endpoint_url": fs.endpoint_url},
        )
    operations = [name for name, _ in calls]
    assert "UploadPart" in operations  # the failure came after parts were sent
    assert "AbortMultipartUpload" in operations
    assert "CompleteMultipartUpload" not in operations
    fs.invalidate_cache()
    assert fs.ls(bucket) == []
    assert _pending_uploads(fs, bucket) == []


def test_s3_inspect_fetches_the_head_only(s3_bucket: tuple[str, Any]) -> None:
    base, fs = s3_bucket
    options = {"endpoint_url": fs.endpoint_url}
    small = f"{base}/small.jl"
    big = f"{base}/big.jl"
    joblite.dump({"a": np.ones(10)}, small, storage_options=options)
    joblite.dump(
        [np.ones(2_000_000), *[np.arange(i) for i in range(50)]], big, storage_options=options
    )
    for name in (small, big):
        fs.invalidate_cache()
        calls = _count_calls(fs)
        joblite.inspect(name, storage_options=options)
        gets = [params for operation, params in calls if operation == "GetObject"]
        # one HEAD for the size, one ranged GET of the first 64 KiB
        assert len(calls) <= 2, calls
        assert all(params["Range"].startswith("bytes=0-") for params in gets)
        assert all(int(params["Range"].split("-")[1]) < 128 * 1024 for params in gets)


def test_s3_load_fetches_sections_as_ranges(s3_bucket: tuple[str, Any]) -> None:
    base, fs = s3_bucket
    options = {"endpoint_url": fs.endpoint_url}
    value = {"big": np.random.default_rng(1).standard_normal(3_000_000), "n": 1}
    joblite.dump(value, f"{base}/m.jl", storage_options=options)
    fs.invalidate_cache()
    calls = _count_calls(fs)
    assert_same(joblite.load(f"{base}/m.jl", storage_options=options), value)
    ranges = [params["Range"] for operation, params in calls if operation == "GetObject"]
    spans = [
        int(end) - int(start.removeprefix("bytes=")) + 1
        for start, end in (r.split("-") for r in ranges)
    ]
    # 24 MB of array in ranges of at most 8 MiB: never the whole object in one GET
    assert len(ranges) >= 4
    assert max(spans) <= 8 * 1024 * 1024 + 64 * 1024


def test_remote_file_altered_is_corrupt(memory_dir: str) -> None:
    name = f"{memory_dir}/m.jl"
    joblite.dump({"a": np.arange(100_000)}, name)
    fs = fsspec.filesystem("memory")
    data = bytearray(fs.cat(name))
    data[-10] ^= 1
    fs.pipe(name, bytes(data))
    with pytest.raises(CorruptFileError, match="array 0 checksum"):
        joblite.load(name)
    fs.pipe(name, bytes(data[:-1000]))
    with pytest.raises(CorruptFileError, match="truncated"):
        joblite.load(name)


def test_memory_dump_that_fails_leaves_nothing(memory_dir: str) -> None:
    fs = fsspec.filesystem("memory")
    joblite.dump({"old": 1}, f"{memory_dir}/kept.jl")
    with pytest.raises(RuntimeError, match="cannot pickle"):
        joblite.dump([np.zeros(10), _FailsHalfway()], f"{memory_dir}/kept.jl")
    assert [os.path.basename(p) for p in fs.ls(memory_dir, detail=False)] == ["kept.jl"]
    assert joblite.load(f"{memory_dir}/kept.jl") == {"old": 1}


def test_a_url_is_never_a_local_path(
    memory_dir: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    joblite.dump([1], f"{memory_dir}/x.jl")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        joblite.load(f"{memory_dir}/missing.jl")


def test_bad_url_arguments_are_clear_errors(memory_dir: str, tmp_path: pathlib.Path) -> None:
    joblite.dump([1], f"{memory_dir}/x.jl")
    with pytest.raises(ValueError, match="`mmap_mode` cannot map"):
        joblite.load(f"{memory_dir}/x.jl", mmap_mode="r")
    with pytest.raises(ValueError, match="`storage_options` only applies to URLs"):
        joblite.dump([1], tmp_path / "x.jl", storage_options={"anon": True})
    with pytest.raises(ValueError, match="`storage_options` must be a dict"):
        joblite.load(f"{memory_dir}/x.jl", storage_options="anon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="protocol 'nosuchfs'"):
        joblite.inspect("nosuchfs://bucket/x.jl")
    # adlfs is not a dependency of the tests: fsspec knows the protocol, not its package
    with pytest.raises(MissingDependencyError, match="pip install adlfs"):
        joblite.dump([1], "abfs://container/x.jl")


def test_joblib_file_behind_a_url_loads(memory_dir: str) -> None:
    joblib = pytest.importorskip("joblib")
    fs = fsspec.filesystem("memory")
    with fs.open(f"{memory_dir}/old.pkl", "wb") as f:
        joblib.dump({"a": np.arange(3)}, f)
    assert_same(joblite.load(f"{memory_dir}/old.pkl"), {"a": np.arange(3)})


def test_without_fsspec_a_url_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # what an environment without it sees
    with pytest.raises(MissingDependencyError, match=r'pip install "joblite\[fsspec\]"'):
        joblite.load("s3://bucket/model.jl")


def test_s3_big_dump_streams_in_parts(
    s3_bucket: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, fs = s3_bucket
    monkeypatch.setattr(joblite._core.fileformat, "CHUNK_SIZE", 1024 * 1024)
    monkeypatch.setattr(_remote, "PART_BYTES", 5 * 1024 * 1024)  # S3's minimum part
    noise = np.random.default_rng(2).integers(0, 255, 12 * 1024 * 1024, dtype=np.uint8)
    calls = _count_calls(fs)
    options = {"endpoint_url": fs.endpoint_url}
    joblite.dump(noise, f"{base}/big.jlz", compress="zlib", storage_options=options)
    operations = [name for name, _ in calls]
    assert operations.count("UploadPart") >= 2
    assert operations[-1] == "CompleteMultipartUpload"
    assert "PutObject" not in operations
    assert_same(joblite.load(f"{base}/big.jlz", storage_options=options), noise)


def test_joblib_format_round_trips_on_urls(location: tuple[str, dict[str, Any] | None]) -> None:
    base, options = location
    name = f"{base}/model.pkl"
    model = _model()
    joblite.dump(model, name, compress=3, format="joblib", storage_options=options)
    loaded = joblite.load(name, ensure_native_byte_order=True, storage_options=options)
    assert_same(loaded, model)
