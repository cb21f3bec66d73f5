"""Files behind URLs (``s3://``, ``gs://``, ``memory://``, ...) through fsspec.

:mod:`joblite.persistence` hands a URL here and gets back file objects the
format code reads and writes as it does local files:

- writing publishes nothing until the whole file is there. On S3 the bytes
  stream into a multipart upload that is completed at the end and aborted on
  error (S3 shows an object only once its upload completes); elsewhere they go
  to a temporary name next to the target, moved over it at the end.
- reading gives a buffered file for the header and manifest (a few small
  ranged reads) and :class:`RemoteFile.fetch_ranges`, which fetches byte
  ranges several at once (``cat_ranges``), for the sections of uncompressed
  files.

Credentials and endpoints come from ``storage_options`` or, without it, the
way the filesystem library finds them (for S3: ``AWS_*`` variables, profiles).

Example::

    >>> is_url("s3://bucket/model.jl"), is_url("model.jl"), is_url("C:/model.jl")
    (True, False, False)
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from joblite.exceptions import MissingDependencyError

__all__ = ["RemoteFile", "check_storage_options", "is_url", "open_for_reading", "open_for_writing"]

logger = logging.getLogger(__name__)

# "scheme://..." or a chained fsspec URL ("simplecache::s3://..."). Schemes have
# two letters or more, so a Windows drive ("C://data") stays a path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+(://|::)")
# The head of a file is read in blocks this size: one ranged GET holds the
# header and the manifest of a file of up to ~600 arrays (~110 bytes each).
HEAD_BLOCK = 64 * 1024
# S3 parts (fsspec's block size when writing): S3's minimum part is 5 MiB.
PART_BYTES = 16 * 1024 * 1024


def is_url(filename: object) -> bool:
    """True for a ``str`` that names a URL; a URL is never taken for a local path."""
    return isinstance(filename, str) and _URL.match(filename) is not None


def check_storage_options(storage_options: object, filename: object) -> dict[str, Any]:
    """``storage_options`` as a dict; ValueError if it is not a mapping or not for a URL."""
    if storage_options is None:
        return {}
    if not isinstance(storage_options, Mapping):
        raise ValueError(
            "`storage_options` must be a dict of fsspec filesystem options, "
            f"got {type(storage_options).__name__}: {storage_options!r}"
        )
    if not is_url(filename):
        raise ValueError(
            f"`storage_options` only applies to URLs (s3://..., memory://...), got {filename!r}"
        )
    return dict(storage_options)


def _filesystem(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as error:
        raise MissingDependencyError("fsspec", "fsspec", f"opening the URL {url!r}") from error
    protocol = re.split("://|::", url, maxsplit=1)[0]
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as error:
        from fsspec.registry import known_implementations

        known = known_implementations.get(protocol, {})
        package = str(known.get("class", protocol)).partition(".")[0]
        raise MissingDependencyError(package, None, f"opening {protocol}:// URLs") from error
    except ValueError as error:
        if "Protocol not known" not in str(error):
            raise
        raise ValueError(
            f"`filename` {url!r} uses the protocol {protocol!r}, which fsspec does not know"
        ) from None
    return fs, path


def _is_s3(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "s3" in protocols


@contextlib.contextmanager
def open_for_writing(url: str, storage_options: dict[str, Any]) -> Iterator[BinaryIO]:
    """A binary file whose bytes appear under ``url`` only if the block completes.

    On S3 a multipart upload, completed on success and aborted on error. Other
    filesystems get a temporary name in the same directory, moved over ``url``
    at the end (atomic where the filesystem's move is: local, memory) and
    removed on error.
    """
    fs, path = _filesystem(url, storage_options)
    if _is_s3(fs):
        with _multipart_upload(fs, path) as fileobj:
            yield fileobj
        return
    parent, slash, name = path.rpartition("/")
    temporary = f"{parent}{slash}.{name}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(temporary, "wb") as fileobj:
            yield fileobj
        fs.mv(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(temporary)
        raise


@contextlib.contextmanager
def _multipart_upload(fs: Any, path: str) -> Iterator[BinaryIO]:
    # autocommit=False: closing uploads the last part but publishes nothing;
    # commit() completes the upload, discard() aborts it (no parts left billed).
    fileobj = fs.open(path, "wb", block_size=PART_BYTES, autocommit=False)
    try:
        try:
            yield fileobj
        finally:
            fileobj.close()
        fileobj.commit()
    except BaseException:
        fileobj.discard()
        logger.debug("aborted the upload of %s", path)
        raise
    finally:
        # fsspec lists every autocommit=False file in fs.transaction for a later
        # commit; this one is committed or discarded already, and the list would grow.
        with contextlib.suppress(ValueError):
            fs.transaction.files.remove(fileobj)


@dataclass
class RemoteFile:
    """A remote file open for reading: ``fileobj`` reads in order, ``fetch_ranges`` at once."""

    fs: Any
    path: str
    fileobj: BinaryIO
    size: int

    def fetch_ranges(self, starts: list[int], ends: list[int]) -> list[bytes]:
        """The bytes ``[start, end)`` of each range (shorter past the end of the file)."""
        data: list[bytes] = self.fs.cat_ranges(
            [self.path] * len(starts), starts, ends, on_error="raise"
        )
        return data


@contextlib.contextmanager
def open_for_reading(url: str, storage_options: dict[str, Any]) -> Iterator[RemoteFile]:
    """Open ``url`` for reading; FileNotFoundError if there is nothing under it."""
    fs, path = _filesystem(url, storage_options)
    # readahead: a small first read fetches one HEAD_BLOCK, a big read what it asks for.
    with fs.open(path, "rb", block_size=HEAD_BLOCK, cache_type="readahead") as fileobj:
        yield RemoteFile(fs, path, fileobj, int(fileobj.size))
