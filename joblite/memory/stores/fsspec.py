"""``FsspecStore``: cache entries on any fsspec file system (backend ``"fsspec"``).

``Memory("s3://bucket/cache")``, ``Memory("gs://...")``, ``Memory("memory://...")``
(any fsspec URL) use it. Credentials and endpoints come the way the file
system library finds them (for S3: ``AWS_*`` environment variables, profiles),
or from ``backend_options``, passed to the file system as storage options.

How it keeps the local store's promises on an object store:

- An object is written whole by one PUT (or a multipart upload completed at
  the end), so a reader never sees a partial entry; a failed write uploads
  nothing (the bytes are spooled locally until the writer succeeds).
- A hit is one GET: the first :data:`_FIRST_READ` bytes of the result with a
  ranged read, then the rest (if any) with a second one.
- ``append`` cannot extend an object: each process keeps what it appended
  to a key and rewrites the whole object. The journal therefore gives every
  writer its own object (:attr:`journal_writer`), so writers never race.
- :meth:`lock` is a lease: a hidden ``.<key>.lock`` object created with a
  conditional PUT (S3's ``If-None-Match: *``; fsspec's ``mode="create"``),
  renewed by a thread while held, and taken over once expired (on S3 by a PUT
  conditional on the expired lock's ETag, so only one waiter wins).

Example::

    store = FsspecStore("s3://bucket/cache/joblib", endpoint_url="http://127.0.0.1:9000")
    store.write_bytes("f/v/1234.out", b"...")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

from ...exceptions import CacheLockTimeoutError, MissingDependencyError
from .._locks import backoff
from .base import Store, StoreStat

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LEASE", "FsspecStore", "LeaseLock", "is_url"]

# How long a lock holder may go without renewing before others may take over.
DEFAULT_LEASE = 60.0
# A hit's first ranged GET: most results fit, so a hit is one request.
_FIRST_READ = 1 << 20
# Writes spool in memory up to this size, then to an anonymous local temp file.
_SPOOL_IN_MEMORY = 16 << 20
_COPY_CHUNK = 8 << 20
_HIDDEN = "."


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL with a scheme (``s3://``...), not a local path.

    >>> is_url("s3://bucket/cache"), is_url("cache_dir"), is_url("C:/cache")
    (True, False, False)
    """
    if not isinstance(location, str):
        return False
    scheme, sep, _ = location.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError("fsspec", "fsspec", "a Memory on a URL") from None
    return fsspec


class FsspecStore(Store):
    """Entries below ``location``, a URL (or path) any fsspec file system opens.

    ``lease`` is how long (seconds) a crashed lock holder can block others;
    other keyword arguments are fsspec storage options (``key``, ``secret``,
    ``endpoint_url``, ``client_kwargs``...). Raises
    :class:`~joblite.exceptions.MissingDependencyError` (an ``ImportError``)
    naming the package when fsspec or the protocol's library (s3fs, gcsfs,
    adlfs...) is missing, and :class:`ValueError` for a non-positive lease.
    """

    def __init__(self, location: str, *, lease: float = DEFAULT_LEASE, **options: Any) -> None:
        if not isinstance(lease, (int, float)) or isinstance(lease, bool) or lease <= 0:
            raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
        self.location = str(location).rstrip("/")
        self.lease = float(lease)
        # Listings must not be served from fsspec's cache: other machines write too.
        self.options = {"use_listings_cache": False, **options}
        self._connect()

    def _connect(self) -> None:
        fsspec = _import_fsspec()
        try:
            self._fs, root = fsspec.core.url_to_fs(self.location, **self.options)
        except ImportError as exc:
            protocol = self.location.partition("://")[0]
            package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
            raise ImportError(
                f"Memory({self.location!r}) needs the fsspec implementation of {protocol!r}: "
                f"pip install {package.get(protocol, 'the package fsspec names')} ({exc})"
            ) from exc
        self._root: str = root.rstrip("/") + "/"
        self._conditional_put = "s3" in _protocols(self._fs)
        self._pid = os.getpid()
        self._writer: str = f"{self._pid}-{uuid.uuid4().hex[:12]}"
        self._appended: dict[str, bytearray] = {}
        self._etags: dict[str, str | None] = {}
        self._append_mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"FsspecStore({self.location!r})"

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        for name in (
            "_fs",
            "_root",
            "_conditional_put",
            "_pid",
            "_writer",
            "_appended",
            "_etags",
            "_append_mutex",
        ):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._connect()  # a new writer: its journal object is its own

    @property
    def journal_writer(self) -> str:
        """This writer's name: journals go to one object per writer (see :mod:`.._journal`).

        A forked child is another writer: it must not rewrite its parent's object.
        """
        if os.getpid() != self._pid:
            self._connect()
        return self._writer

    @property
    def fs(self) -> Any:
        """The fsspec file system; a forked child connects anew (fsspec's are not fork-safe)."""
        if os.getpid() != self._pid:
            self._connect()
        return self._fs

    def _path(self, key: str) -> str:
        return self._root + key if key else self._root.rstrip("/")

    def open_read(self, key: str) -> BinaryIO:
        import io

        path = self._path(key)
        try:
            try:
                data = self.fs.cat_file(path, start=0, end=_FIRST_READ)
            except FileNotFoundError:
                raise
            except OSError:  # S3 refuses a range of an empty object (InvalidRange)
                data = self.fs.cat_file(path)
            if len(data) == _FIRST_READ:
                data += self.fs.cat_file(path, start=_FIRST_READ)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None
        return io.BytesIO(data)

    def read_from(self, key: str, offset: int) -> bytes:
        with self.open_read(key) as f:
            f.seek(offset)
            return f.read()

    @contextlib.contextmanager
    def open_write(self, key: str, *, lock: object = None) -> Iterator[BinaryIO]:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            yield spool  # type: ignore[misc]
            self._upload(self._path(key), spool)
        self._forget_appended(key)

    def _upload(self, path: str, spool: Any) -> None:
        size = spool.tell()
        spool.seek(0)
        if size <= _SPOOL_IN_MEMORY:
            self.fs.pipe_file(path, spool.read())
            return
        # A multipart upload becomes visible only when completed: discard on failure.
        out = self.fs.open(path, "wb")
        try:
            shutil.copyfileobj(spool, out, _COPY_CHUNK)
        except BaseException:
            discard = getattr(out, "discard", None)
            if discard is not None:
                discard()
            raise
        out.close()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), bytes(data))
        self._forget_appended(key)

    def _forget_appended(self, key: str) -> None:
        with self._append_mutex:
            self._appended.pop(key, None)
            self._etags.pop(key, None)

    def append(self, key: str, data: bytes) -> None:
        """Append by rewriting the object with what this process appended to it.

        Only correct for a key no other process appends to: the journal
        gives each writer its own key (:attr:`journal_writer`). On S3 the
        rewrite is conditional on the object being the one this process
        wrote last: if ``cache gc`` merged it away meanwhile, it starts afresh
        with ``data`` instead of writing back records gc already merged.
        """
        path = self._path(key)
        with self._append_mutex:
            content = self._appended.get(key)
            etag = self._etags.get(key)
            if content is None and key.endswith(self._writer):
                content = bytearray()  # this writer's own journal: nothing there to read
            elif content is None:
                try:
                    content = bytearray(self.read_bytes(key))
                except KeyError:
                    content = bytearray()
            content += data
            if etag is None:
                response = self.fs.pipe_file(path, bytes(content))
            else:
                try:
                    response = self.fs.pipe_file(path, bytes(content), IfMatch=etag)
                except OSError:  # deleted or replaced (PreconditionFailed): gc merged it
                    content = bytearray(data)
                    response = self.fs.pipe_file(path, bytes(content))
            self._appended[key] = content
            if self._conditional_put:
                self._etags[key] = _response_etag(response)

    def stat(self, key: str) -> StoreStat:
        try:
            info = self.fs.info(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None
        if info.get("type") != "file":
            raise KeyError(key)
        mtime = _mtime(info)
        identity = info.get("ETag") or info.get("etag") or (info.get("size"), mtime)
        return StoreStat(int(info.get("size") or 0), mtime, identity)

    def children(self, prefix: str) -> list[str]:
        try:
            names = self.fs.ls(self._path(prefix), detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        below = self._path(prefix).rstrip("/") + "/"
        found = {n.rstrip("/")[len(below) :] for n in names if n.startswith(below)}
        return sorted(n for n in found if n and not n.startswith(_HIDDEN))

    def delete(self, prefix: str) -> bool:
        if not prefix:
            names = self.children("")
            for name in names:
                self.delete(name)
            return bool(names)
        path = self._path(prefix)
        try:
            found = self.fs.find(path, withdirs=False)
        except (FileNotFoundError, NotADirectoryError):
            found = []
        doomed = [p for p in found if p == path or p.startswith(path + "/")]
        if not doomed:
            return False
        self.fs.rm(path, recursive=True)
        with self._append_mutex:
            for key in [k for k in self._appended if k == prefix or k.startswith(prefix + "/")]:
                del self._appended[key]
                self._etags.pop(key, None)
        return True

    def lock(self, key: str, *, timeout: float | None = None) -> LeaseLock:
        """A lease on the hidden ``.<name>.lock`` object next to ``key`` (see module doc)."""
        head, _, name = key.rpartition("/")
        lock_key = f"{head}/.{name}.lock" if head else f".{name}.lock"
        return LeaseLock(self, self._path(lock_key), timeout=timeout)

    def thread_lock(
        self, key: str, timeout: float | None
    ) -> contextlib.AbstractContextManager[object]:
        """The base class's per-process lock (threads of one process wait on it, not on S3)."""
        return super().lock(key, timeout=timeout)

    def remove_stale_locks(self) -> int:
        """Delete the lock objects whose lease expired (crashed holders); live ones stay.

        On S3 a lock is deleted only if unchanged since it was read, so a holder
        renewing (or a waiter taking it over) meanwhile keeps it. Returns how many
        went.

        >>> FsspecStore("memory://cache").remove_stale_locks()
        0
        """
        try:
            found = self.fs.find(self._path(""), withdirs=False)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        removed = 0
        for path in found:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not (name.startswith(_HIDDEN) and name.endswith(".lock")):
                continue
            try:
                info, expires = _lease_expiry(self.fs, path, self.lease)
            except FileNotFoundError:  # released meanwhile
                continue
            if expires > time.time():
                continue
            etag = info.get("ETag") if self._conditional_put else None
            _delete_if_unchanged(self.fs, path, str(etag) if etag else None)
            logger.info("removed the expired cache lock %s", path)
            removed += 1
        return removed

    def lock_object_path(self, key: str) -> str:
        """Where :meth:`lock` keeps the lease for ``key`` (for tests and diagnostics)."""
        return self.lock(key).path


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _mtime(info: dict[str, Any]) -> float:
    for name in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(name)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        with contextlib.suppress(TypeError, ValueError):
            return float(value)
    return 0.0


class LeaseLock:
    """An exclusive lock across machines: a lock object with an expiring lease.

    Held by creating ``path`` conditionally (it must not exist); a thread
    renews the lease every third of it while held. A waiter takes over a
    lock whose lease expired (its holder crashed); clocks are assumed to
    agree within a fraction of the lease. Raises
    :class:`~joblite.exceptions.CacheLockTimeoutError` after ``timeout`` seconds.
    """

    def __init__(self, store: FsspecStore, path: str, *, timeout: float | None = None) -> None:
        self.store, self.path, self.timeout = store, path, timeout
        self._token = uuid.uuid4().hex
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._threads: contextlib.AbstractContextManager[object] | None = None

    def _payload(self) -> bytes:
        expires = time.time() + self.store.lease
        return json.dumps({"owner": self._token, "expires": expires}).encode()

    def _try_create(self) -> bool:
        try:
            response = self.store.fs.pipe_file(self.path, self._payload(), mode="create")
        except FileExistsError:
            return False
        self._etag = _response_etag(response)
        return True

    def _try_take_over(self) -> bool:
        """Take the lock if its lease expired; False if it is alive or someone else won."""
        fs = self.store.fs
        try:
            info, expires = _lease_expiry(fs, self.path, self.store.lease)
        except FileNotFoundError:
            return self._try_create()
        if expires > time.time():
            return False
        logger.warning("taking over the expired cache lock %s", self.path)
        if self.store._conditional_put:
            try:  # only if nobody took it over since we read it
                response = fs.pipe_file(self.path, self._payload(), IfMatch=info.get("ETag"))
            except OSError:  # PreconditionFailed: another waiter won
                return False
            self._etag = _response_etag(response)
            return True
        # No conditional overwrite here: delete and create (two waiters may both see
        # it expired; the create still lets only one of them in unless one deletes
        # the other's fresh lock, which docs/scaling.md states).
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(self.path)
        return self._try_create()

    def acquire(self) -> None:
        start = time.monotonic()
        # Threads of this process queue here first: fsspec's generic "create"
        # (memory://, local) is check-then-write, atomic only across processes on S3.
        threads = self.store.thread_lock(self.path, self.timeout)
        threads.__enter__()
        try:
            self._acquire_object(start)
        except BaseException:
            threads.__exit__(None, None, None)
            raise
        self._threads = threads

    def _acquire_object(self, start: float) -> None:
        delays = backoff(0.02, 0.5)  # each try is a request
        while not (self._try_create() or self._try_take_over()):
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                raise CacheLockTimeoutError(
                    f"waited {self.timeout} s for the lock {self.path!r} held by another "
                    "caller computing the same entry"
                )
            time.sleep(next(delays))
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew, name=f"joblite-lease {self.path}", daemon=True
        )
        self._renewer.start()

    def _renew(self) -> None:
        fs = self.store.fs
        while not self._stop.wait(self.store.lease / 3):
            extra = {"IfMatch": self._etag} if self._etag else {}
            try:
                response = fs.pipe_file(self.path, self._payload(), **extra)
            except OSError as exc:  # taken over (we were too slow) or unreachable
                logger.warning("could not renew the cache lock %s: %s", self.path, exc)
                return
            self._etag = _response_etag(response)

    def release(self) -> None:
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.join()
        try:
            self._delete_if_ours()
        finally:
            threads, self._threads = self._threads, None
            if threads is not None:
                threads.__exit__(None, None, None)

    def _delete_if_ours(self) -> None:
        # Only our lease: after a takeover (we stalled past it) the lock is the new holder's.
        _delete_if_unchanged(self.store.fs, self.path, self._etag)

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lease_expiry(fs: Any, path: str, lease: float) -> tuple[dict[str, Any], float]:
    """The lock object's info and when its lease expires; FileNotFoundError if it is gone."""
    info = fs.info(path)
    try:
        expires = float(json.loads(fs.cat_file(path))["expires"])
    except (ValueError, KeyError, TypeError):
        expires = _mtime(info) + lease  # a torn or foreign lock object
    if not expires <= time.time() + lease:
        # No holder renews beyond one lease from now: a planted far-future (or
        # NaN) expiry must not block every caller forever.
        expires = _mtime(info) + lease
    return info, expires


def _delete_if_unchanged(fs: Any, path: str, etag: str | None) -> None:
    """Delete ``path``; on S3 (``etag`` given) only while its ETag is still ``etag``."""
    if etag is None:  # no conditional requests here (memory://, local...)
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(path)
        return
    bucket, key, _ = fs.split_path(path)
    with contextlib.suppress(OSError):  # FileNotFound, PreconditionFailed
        fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)


def _response_etag(response: object) -> str | None:
    """The ETag of a PUT's response (S3's ``put_object``), None where there is none."""
    value = response.get("ETag") if isinstance(response, dict) else None
    return str(value) if value else None
