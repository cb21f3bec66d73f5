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
import logging
import os
import stat
from collections.abc import Sequence
from typing import Any, BinaryIO

from joblite._core import _remote, fileformat
from joblite._core._byteorder import check_native_byte_order_argument
from joblite._core.codecs import Compression, get_codec, normalize_compress
from joblite._core.codecs import register_compressor as register_compressor
from joblite._core.fsutil import atomic_write, atomic_write_bytes
from joblite._core.pickling import dump_parts, native_byte_order
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
    format: str = "joblite",
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

    ``format="joblib"`` writes joblib's own format instead, for people who
    only have joblib (``joblib.load`` reads it): ``compress=True`` then means
    zlib level 3 as in joblib, codecs are limited to joblib's (no zstd),
    ``protocol`` defaults to 4 and lambdas cannot be pickled.

    Returns ``[str(filename)]`` for a path and ``[]`` for a file object.
    Raises ``ValueError`` for a bad ``filename``, ``compress`` or ``format``,
    ``MissingDependencyError`` for a codec whose extra is missing, and the
    pickling error for an unpicklable ``value`` (no file is left behind).

    >>> import io
    >>> dump([1, 2], io.BytesIO())
    []
    """
    write = _writer(format)
    if format == "joblib" and compress is True:
        compress = 3  # joblib's meaning: zlib (or the extension's codec) at level 3
    options = _remote.check_storage_options(storage_options, filename)
    if _remote.is_url(filename):
        url: str = filename  # type: ignore[assignment]
        compression = normalize_compress(compress, url)
        with _remote.open_for_writing(url, options) as fileobj:
            write(value, fileobj, compression=compression, protocol=protocol)
        return [url]
    if _is_path(filename):
        path = os.fspath(filename)  # type: ignore[arg-type]
        if not isinstance(path, str):
            raise ValueError(f"`filename` must be a str path, got bytes {path!r}")
        compression = normalize_compress(compress, path)
        if format == "joblite":
            _dump_to_path(value, path, compression, protocol)
            return [path]
        _drop_cached_pages(path)
        with atomic_write(path) as fileobj:
            write(value, fileobj, compression=compression, protocol=protocol)
        return [path]
    if not callable(getattr(filename, "write", None)):
        raise ValueError(
            "`filename` must be a path or a binary file object opened for writing, "
            f"got {type(filename).__name__}: {filename!r}"
        )
    compression = normalize_compress(compress, None)
    write(value, filename, compression=compression, protocol=protocol)
    return []


def _dump_to_path(value: object, path: str, compression: Compression, protocol: int | None) -> None:
    """Pickle first, then write: a small file goes down whole in six syscalls.

    lstat, getrandom, open, write, close, rename (an fchmod more over an
    existing file): about the least an atomic write can do; the general
    path's buffered temp file took 14 (docs/performance.md). A value that
    cannot be pickled fails before any file is created.
    """
    codec = None if compression.codec is None else get_codec(compression.codec)
    pickled = dump_parts(value, protocol=protocol)
    whole = fileformat.small_file(value, pickled, compression)
    if whole is not None:
        atomic_write_bytes(path, whole)
        return
    _drop_cached_pages(path)
    with atomic_write(path) as fileobj:
        fileformat.write_pickled(value, pickled, fileobj, compression, codec)


def _writer(format: str) -> Any:
    if format == "joblite":
        return fileformat.write_object
    if format == "joblib":
        from joblite._core._joblib_write import write_joblib  # pickletools: only when used

        return write_joblib
    raise ValueError(f"`format` must be 'joblite' or 'joblib', got {format!r}")


def load(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None = None,
    ensure_native_byte_order: bool | str = "auto",
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
    For a compressed file it is ignored with a ``UserWarning`` (as joblib),
    for a file object it is ignored (logged at INFO). A file behind a URL
    cannot be mapped (``ValueError``); ``storage_options`` are its fsspec
    filesystem's options.

    ``ensure_native_byte_order`` ("auto", True, False), as in joblib 1.5+:
    True gives arrays in the host's byte order; "auto" means True for joblib
    files loaded without ``mmap_mode``, and keeps joblite files' arrays in the
    byte order they were dumped with. True with ``mmap_mode`` is a ValueError.

    Files written by joblib 1.x (any codec, or compressed afterwards by hand)
    and plain pickles load natively, joblib need not be installed, and
    ``allowed`` restricts them the same way. A file object positioned at its
    end (where ``dump`` left it) is read from the start, as joblib does.

    Raises ``InvalidFileError`` (not a joblite or joblib file, or a damaged joblib file),
    ``ForeignFileError`` (a joblib format joblite does not read: joblib < 0.10),
    ``CorruptFileError`` (truncated or altered), ``UnsupportedVersionError``,
    ``MissingDependencyError`` (codec extra missing), ``UnsafeLoadError`` and
    ``ValueError`` for bad arguments; all but the last two are ``ValueError``s.
    """
    options = _remote.check_storage_options(storage_options, filename)
    if _remote.is_url(filename):
        url: str = filename  # type: ignore[assignment]
        return _load_url(url, mmap_mode, ensure_native_byte_order, allowed, options)
    if not _is_path(filename) and not callable(getattr(filename, "read", None)):
        raise ValueError(
            "`filename` must be a path or a binary file object opened for reading, "
            f"got {type(filename).__name__}: {filename!r}"
        )
    native = check_native_byte_order_argument(ensure_native_byte_order, mmap_mode)
    if not _is_path(filename):
        _rewind_if_at_end(filename)  # type: ignore[arg-type]
    start = None if _is_path(filename) else _tell(filename)  # type: ignore[arg-type]
    try:
        if ensure_native_byte_order is True:  # else joblite files keep the order they record
            with native_byte_order():
                return fileformat.read_object(filename, mmap_mode=mmap_mode, allowed=allowed)
        return fileformat.read_object(filename, mmap_mode=mmap_mode, allowed=allowed)
    except ForeignFileError as error:
        return _load_joblib_file(filename, mmap_mode, allowed, native, start, error)


def _load_url(
    url: str,
    mmap_mode: str | None,
    ensure_native_byte_order: bool | str,
    allowed: Sequence[str] | None,
    options: dict[str, Any],
) -> object:
    if mmap_mode is not None:
        raise ValueError(
            f"`mmap_mode` cannot map {url!r}: a file behind a URL is not on a local disk; "
            "load it without mmap_mode, or copy it to a local path first"
        )
    native = check_native_byte_order_argument(ensure_native_byte_order, None)
    with _remote.open_for_reading(url, options) as remote:
        try:
            with (
                native_byte_order()
                if ensure_native_byte_order is True
                else contextlib.nullcontext()
            ):
                return fileformat.read_object(
                    remote.fileobj, allowed=allowed, fetch_ranges=remote.fetch_ranges
                )
        except ForeignFileError as error:
            return _load_joblib_file(remote.fileobj, None, allowed, native, 0, error)


def _tell(fileobj: BinaryIO) -> int | None:
    try:
        return fileobj.tell()
    except (OSError, AttributeError):
        return None


def _rewind_if_at_end(fileobj: BinaryIO) -> None:
    """Start over from 0 when ``fileobj`` sits at its end, where ``dump`` left it.

    joblib always reads a file object without ``peek`` (``BytesIO``) from 0,
    so ``dump(x, buffer); load(buffer)`` works there: it works here too,
    while a file object positioned inside its data is still read from there.
    """
    position = _tell(fileobj)
    if not position:
        return
    try:
        at_end = not fileobj.read(1)
        fileobj.seek(0 if at_end else position)
    except (OSError, AttributeError):
        return


def _load_joblib_file(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    native: bool,
    start: int | None,
    error: ForeignFileError,
) -> object:
    if not _is_path(filename):
        if start is None:
            raise ForeignFileError(f"{error}; the file object cannot seek back")
        filename.seek(start)  # type: ignore[union-attr]
    from joblite._core._joblib_read import read_joblib

    logger.debug("%s is not a joblite file: reading it as a joblib file", filename)
    return read_joblib(
        filename, mmap_mode=mmap_mode, allowed=allowed, ensure_native_byte_order=native
    )


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
    with contextlib.ExitStack() as stack:
        source = filename
        if _remote.is_url(filename):
            remote = stack.enter_context(_remote.open_for_reading(filename, options))  # type: ignore[arg-type]
            source = remote.fileobj
        try:
            manifest = fileformat.read_manifest(source)
        except ForeignFileError as error:
            raise ForeignFileError(
                f"{error}; inspect reads joblite's manifest only (joblite.load reads joblib files)"
            ) from None
        if _remote.is_url(filename):
            manifest["file_size"] = remote.size
        elif _is_path(filename):
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
        filter_name = array.get("filter")
        lines.append(
            f"    [{index}] {dtype!s:<12} {shape:<20} order {array.get('order')}  "
            f"{_format_size(int(array.get('nbytes', 0)))}"
            + (f"  filter {filter_name}" if filter_name else "")
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
