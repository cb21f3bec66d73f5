"""``dump``, ``load`` and ``inspect``: joblib's persistence API on joblite's format.

A thin face over :mod:`joblite._core`: arguments are checked and normalized
here, the format lives in :mod:`joblite._core.fileformat`.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.jl")
    >>> dump({"weights": np.ones(3)}, path, compress=True)  # doctest: +ELLIPSIS
    ['.../model.jl']
    >>> load(path, allowed=[])["weights"].tolist()
    [1.0, 1.0, 1.0]
    >>> inspect(path)["arrays"][0]["shape"]
    [3]
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, BinaryIO

from joblite._core import _remote, fileformat
from joblite._core.codecs import normalize_compress
from joblite._core.codecs import register_compressor as register_compressor
from joblite._core.fsutil import atomic_write
from joblite.exceptions import ForeignFileError

logger = logging.getLogger(__name__)

__all__ = ["dump", "format_manifest", "inspect", "load", "register_compressor"]


# Below this size, dropping a replaced file's cache is not worth a syscall.
_DROP_CACHE_MIN_BYTES = 64 * 1024 * 1024


def _drop_cached_pages(path: str) -> None:
    """Evict the page cache of the big regular file ``path`` is about to replace.

    The new file needs as many fresh page-cache pages as it has bytes, while
    the old file's pages stay cached until it is replaced. Dropping them first
    lets the write reuse just-freed memory: on VMs that hand free memory back
    to the host, this made overwriting a 1 GiB file about 3x faster. Only the
    cache is affected (clean pages; dirty ones are merely queued for
    writeback): anyone still reading the old file reads the same bytes.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return  # no file yet (or unreadable): nothing to drop
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size >= _DROP_CACHE_MIN_BYTES:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # only an optimization
    finally:
        os.close(fd)


def _is_path(filename: object) -> bool:
    return isinstance(filename, (str, os.PathLike))


def dump(
    value: object,
    filename: str | os.PathLike[str] | BinaryIO,
    compress: object = 0,
    protocol: int | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Persist ``value`` to ``filename`` (a path, a URL or a writable binary file object).

    ``compress``: ``0``/``False`` (default, uncompressed: loads can memory-map),
    ``True`` (zstd level 3, or zlib level 3 without the ``zstd`` extra), an int
    1-9 (zlib at that level), a codec name (``"zlib" "gzip" "bz2" "lzma" "xz"
    "lz4" "zstd"``) or ``(name, level)``. A path ending in ``.z .gz .bz2 .xz
    .lzma .lz4 .zst`` picks that codec unless ``compress`` is a name or tuple.
    ``protocol`` is the pickle protocol (default 5).

    Writing to a path is atomic: readers see the old file or the new one,
    also if the process is killed mid-write. Like joblib, ``dump`` does not
    fsync (no protection against power loss). A URL (``"s3://bucket/key"``,
    ``"memory://..."``) is written through fsspec, as atomically (see
    docs/persistence.md); ``storage_options`` are its filesystem's options.

    Returns ``[str(filename)]`` for a path and ``[]`` for a file object.
    Raises ``ValueError`` for a bad ``filename`` or ``compress``,
    ``MissingDependencyError`` for a codec whose extra is missing, and the
    pickling error for an unpicklable ``value`` (no file is left behind).

    >>> import io
    >>> dump([1, 2], io.BytesIO())
    []
    """
    options = _remote.check_storage_options(storage_options, filename)
    if _remote.is_url(filename):
        url: str = filename  # type: ignore[assignment]
        compression = normalize_compress(compress, url)
        with _remote.open_for_writing(url, options) as fileobj:
            fileformat.write_object(value, fileobj, compression=compression, protocol=protocol)
        return [url]
    if _is_path(filename):
        path = os.fspath(filename)  # type: ignore[arg-type]
        if not isinstance(path, str):
            raise ValueError(f"`filename` must be a str path, got bytes {path!r}")
        compression = normalize_compress(compress, path)
        _drop_cached_pages(path)
        with atomic_write(path) as fileobj:
            fileformat.write_object(value, fileobj, compression=compression, protocol=protocol)
        return [path]
    if not callable(getattr(filename, "write", None)):
        raise ValueError(
            "`filename` must be a path or a binary file object opened for writing, "
            f"got {type(filename).__name__}: {filename!r}"
        )
    compression = normalize_compress(compress, None)
    fileformat.write_object(value, filename, compression=compression, protocol=protocol)  # type: ignore[arg-type]
    return []


def load(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None = None,
    *,
    allowed: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> object:
    """Load an object written by :func:`dump` (from a path, a URL or a file object).

    **Without** ``allowed``, loading runs pickle code chosen by whoever wrote
    the file: only load files you trust. With ``allowed`` (``["mypkg.Model"]``:
    modules or ``module.qualname``; ``[]`` for data only), joblite's restricted
    unpickler resolves builtin data types, ``collections``' and ``datetime``'s,
    ``Decimal``, ``Fraction``, numpy arrays/dtypes/scalars/generators and the
    listed names, never those that run code or touch files, and checks every
    call and state; anything else raises ``UnsafeLoadError``. See
    docs/persistence.md, "Loading untrusted files".

    ``mmap_mode`` ("r", "r+", "c", or "w+" meaning "r+") maps the arrays of an
    uncompressed file given by path straight from disk as ``numpy.memmap``
    ("r" read-only, "r+" writes through to the file, "c" copy-on-write).
    For a compressed file or a file object it is ignored and the arrays are
    loaded in memory (logged at INFO, no warning). A file behind a URL cannot
    be mapped (``ValueError``); ``storage_options`` are its fsspec filesystem's options.

    A file written by joblib (or plain pickle) is loaded with ``joblib.load``
    when joblib is installed and ``allowed`` is not given (logged at INFO), so
    existing ``model.pkl`` files keep working; otherwise ``ForeignFileError``
    says how to load it.

    Raises ``InvalidFileError`` (not a joblite file),
    ``CorruptFileError`` (truncated or altered), ``UnsupportedVersionError``,
    ``MissingDependencyError`` (codec extra missing), ``UnsafeLoadError`` and
    ``ValueError`` for bad arguments; all but the last two are ``ValueError``s.
    """
    options = _remote.check_storage_options(storage_options, filename)
    if _remote.is_url(filename):
        return _load_url(filename, mmap_mode, allowed, options)  # type: ignore[arg-type]
    if not _is_path(filename) and not callable(getattr(filename, "read", None)):
        raise ValueError(
            "`filename` must be a path or a binary file object opened for reading, "
            f"got {type(filename).__name__}: {filename!r}"
        )
    start = None if _is_path(filename) else _tell(filename)  # type: ignore[arg-type]
    try:
        return fileformat.read_object(filename, mmap_mode=mmap_mode, allowed=allowed)
    except ForeignFileError as error:
        return _load_foreign(filename, mmap_mode, allowed, start, error)


def _load_url(
    url: str, mmap_mode: str | None, allowed: Sequence[str] | None, options: dict[str, Any]
) -> object:
    if mmap_mode is not None:
        raise ValueError(
            f"`mmap_mode` cannot map {url!r}: a file behind a URL is not on a local disk; "
            "load it without mmap_mode, or copy it to a local path first"
        )
    with _remote.open_for_reading(url, options) as remote:
        try:
            return fileformat.read_object(
                remote.fileobj, allowed=allowed, fetch_ranges=remote.fetch_ranges
            )
        except ForeignFileError as error:
            return _load_foreign(remote.fileobj, None, allowed, 0, error)


def _load_foreign(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    start: int | None,
    error: ForeignFileError,
) -> object:
    if allowed is not None:
        raise ForeignFileError(
            f"{error}; `allowed` restricts joblite's own unpickler, which cannot read it"
        ) from None
    return _load_with_joblib(filename, mmap_mode, start, error)


def _tell(fileobj: BinaryIO) -> int | None:
    try:
        return fileobj.tell()
    except (OSError, AttributeError):
        return None


def _load_with_joblib(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None,
    start: int | None,
    error: ForeignFileError,
) -> object:
    with _real_joblib() as joblib:
        if joblib is None:
            raise ForeignFileError(f"{error}; install joblib to read it with joblite.load")
        if not _is_path(filename):
            if start is None:
                raise ForeignFileError(f"{error}; the file object cannot seek back")
            filename.seek(start)  # type: ignore[union-attr]
        logger.info("%s is a joblib file: loading it with joblib.load", filename)
        try:
            return joblib.load(filename, mmap_mode=mmap_mode)
        except Exception as joblib_error:  # garbage that only looked like joblib's formats
            raise ForeignFileError(
                f"{error}; joblib.load could not read it either "
                f"({type(joblib_error).__name__}: {joblib_error})"
            ) from joblib_error


def _is_joblib_entry(name: str) -> bool:
    return name == "joblib" or name.startswith("joblib.")


# The real joblib's sys.modules entries, kept between loads made while
# sys.modules["joblib"] is an alias, so joblib is imported only once.
_real_joblib_modules: dict[str, ModuleType] = {}
_swap_lock = threading.Lock()


@contextlib.contextmanager
def _real_joblib() -> Iterator[ModuleType | None]:
    """The real joblib module for the block (``None`` if it is not installed).

    Users make joblite stand in for joblib with ``sys.modules["joblib"] =
    joblite``; a plain ``import joblib`` would then give joblite back and
    delegating to its ``load`` would loop. In that case the real joblib's
    entries are put in sys.modules for the block, since unpickling a joblib
    file imports ``joblib.numpy_pickle`` by name, and every ``joblib`` and
    ``joblib.*`` entry is put back as it was afterwards.
    """
    current = sys.modules.get("joblib")
    if current is None and "joblib" in sys.modules:  # None there blocks the import
        yield None
        return
    if current is None or getattr(current, "__name__", None) == "joblib":
        try:
            import joblib
        except ImportError:
            yield None
            return
        yield joblib
        return
    # Other threads importing joblib while this block runs see the real joblib
    # too; serializing the swaps at least keeps them from undoing each other.
    with _swap_lock:
        saved = {
            name: module for name, module in list(sys.modules.items()) if _is_joblib_entry(name)
        }
        for name in saved:
            del sys.modules[name]
        sys.modules.update(_real_joblib_modules)
        real: ModuleType | None = None
        try:
            with contextlib.suppress(ImportError):
                real = importlib.import_module("joblib")
            yield real
        finally:
            entries = {
                name: module for name, module in list(sys.modules.items()) if _is_joblib_entry(name)
            }
            if real is not None:
                _real_joblib_modules.update(entries)
            for name in entries:
                del sys.modules[name]
            sys.modules.update(saved)


def inspect(
    filename: str | os.PathLike[str] | BinaryIO,
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, object]:
    """The manifest of a joblite file, read without unpickling: safe on untrusted files.

    Keys: ``format_version``, ``codec``, ``level``, ``object_type``,
    ``protocol``, ``pickle`` (its size), ``arrays`` (each one's ``dtype``,
    ``shape``, ``order``, ``nbytes``), ``arrays_nbytes``, ``total_nbytes``
    (uncompressed payload), plus ``file_size`` when ``filename`` is a path
    or a URL (of which only the header and manifest are fetched).
    Raises like :func:`load` for files that are not valid joblite files.
    """
    options = _remote.check_storage_options(storage_options, filename)
    if _remote.is_url(filename):
        with _remote.open_for_reading(filename, options) as remote:  # type: ignore[arg-type]
            remote_manifest = fileformat.read_manifest(remote.fileobj)
            remote_manifest["file_size"] = remote.size
            return remote_manifest
    manifest = fileformat.read_manifest(filename)
    if _is_path(filename):
        manifest["file_size"] = os.path.getsize(filename)  # type: ignore[arg-type]
    return manifest


def _format_size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_manifest(manifest: dict[str, Any], *, max_arrays: int = 20) -> str:
    """A human-readable rendering of :func:`inspect`'s manifest (for the CLI).

    >>> print(format_manifest({"format_version": 1, "object_type": "builtins.dict",
    ...     "codec": None, "level": 0, "pickle": {"nbytes": 10}, "arrays": [],
    ...     "arrays_nbytes": 0, "total_nbytes": 10}))  # doctest: +NORMALIZE_WHITESPACE
    joblite file, format version 1
      object type   builtins.dict
      compression   none
      pickle stream 10 B
      arrays        0 (0 B)
      total         10 B
    """
    codec = manifest.get("codec")
    compression = "none" if codec is None else f"{codec} (level {manifest.get('level')})"
    arrays = list(manifest.get("arrays", []))
    lines = [
        f"joblite file, format version {manifest.get('format_version')}",
        f"  object type   {manifest.get('object_type')}",
        f"  compression   {compression}",
        f"  pickle stream {_format_size(int(manifest.get('pickle', {}).get('nbytes', 0)))}",
        f"  arrays        {len(arrays)} ({_format_size(int(manifest.get('arrays_nbytes', 0)))})",
    ]
    for index, array in enumerate(arrays[:max_arrays]):
        shape = "x".join(str(n) for n in array.get("shape", [])) or "scalar"
        dtype = array.get("dtype")
        if isinstance(dtype, list):  # a structured dtype's fields: [name, format, (shape)]
            dtype = "{" + ", ".join(f"{field[0]}: {field[1]}" for field in dtype) + "}"
        lines.append(
            f"    [{index}] {dtype!s:<12} {shape:<20} order {array.get('order')}  "
            f"{_format_size(int(array.get('nbytes', 0)))}"
        )
    if len(arrays) > max_arrays:
        lines.append(f"    ... and {len(arrays) - max_arrays} more")
    total = int(manifest.get("total_nbytes", 0))
    lines.append(f"  total         {_format_size(total)}")
    if "file_size" in manifest:
        file_size = int(manifest["file_size"])
        ratio = f" (ratio {total / file_size:.2f}x)" if codec is not None and file_size else ""
        lines.append(f"  file size     {_format_size(file_size)}{ratio}")
    return "\n".join(lines)
