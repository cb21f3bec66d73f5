"""``python -m joblite cache ...``: look into a Memory cache and trim it.

DIR is the directory given to ``Memory`` (its ``joblib`` subfolder is found
automatically). A directory that is neither that nor a cache root holding
joblite's function directories is refused: the commands only ever read or
delete what joblite wrote, never the other files of a mistyped DIR.
Subcommands::

    cache ls DIR                      functions: entries, size, last access, hits
    cache show DIR FUNC               one function's entries and their metadata
    cache rm DIR [FUNC]               delete one function's entries, or all
    cache gc DIR --max-size 10G --max-age 30d [--max-items N]
    cache stats DIR                   totals for the whole cache
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .._core.fsutil import TEMP_PREFIX, safe_remove
from ._entries import FUNCTION_INFO, EntryInfo, cached_functions, scan_entries
from ._eviction import CacheLimits, evict
from ._journal import compact
from .stores.base import Store
from .stores.fsspec import FsspecStore, is_url
from .stores.local import PART_SUFFIX, FileStore

__all__ = ["add_parser"]

# Temp files older than this belong to writers that died; gc removes them.
_ORPHAN_AGE = 3600.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``cache ls|show|rm|gc|stats`` on ``subparsers`` (each sets ``handler``)."""
    cache = subparsers.add_parser("cache", help="inspect and trim a Memory cache directory")
    commands = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)

    ls = commands.add_parser("ls", help="list cached functions: entries, size, last access, hits")
    ls.add_argument("directory", metavar="DIR")
    ls.set_defaults(handler=_one_line_errors(_ls))

    show = commands.add_parser("show", help="show one function's entries and metadata")
    show.add_argument("directory", metavar="DIR")
    show.add_argument("function", metavar="FUNC", help="module.qualname, or a unique suffix")
    show.set_defaults(handler=_one_line_errors(_show))

    rm = commands.add_parser("rm", help="delete one function's entries, or every function's")
    rm.add_argument("directory", metavar="DIR")
    rm.add_argument("function", metavar="FUNC", nargs="?", default=None)
    rm.set_defaults(handler=_one_line_errors(_rm))

    gc = commands.add_parser("gc", help="evict least recently used entries to fit limits")
    gc.add_argument("directory", metavar="DIR")
    gc.add_argument("--max-size", default=None, help="e.g. 500M, 10G")
    gc.add_argument("--max-age", default=None, help="last access older than this: e.g. 12h, 30d")
    gc.add_argument("--max-items", type=int, default=None)
    gc.set_defaults(handler=_one_line_errors(_gc))

    stats = commands.add_parser("stats", help="totals for the whole cache")
    stats.add_argument("directory", metavar="DIR")
    stats.set_defaults(handler=_one_line_errors(_stats))


def _one_line_errors(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """``command``, exiting with a one-line error instead of a traceback on a file-system error.

    E.g. ``gc`` on a read-only cache, or a directory of another user.
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OSError as exc:
            raise SystemExit(
                f"error: cannot {command.__name__[1:]} {args.directory!r}: {exc}"
            ) from None

    return run


def _open_store(directory: str) -> Store:
    """The cache below ``directory``; exits with an error if it does not look like one."""
    if is_url(directory):
        return _open_url_store(directory)
    if not os.path.isdir(directory):
        raise SystemExit(f"error: DIR {directory!r} is not a directory")
    nested = os.path.join(directory, "joblib")
    if os.path.isdir(nested):
        return FileStore(nested)
    store = FileStore(directory)
    # An empty directory holds nothing to lose (e.g. a cache root just cleared).
    if os.listdir(directory) and not cached_functions(store):
        raise SystemExit(
            f"error: DIR {directory!r} does not look like a joblite cache: it has no joblib/ "
            "folder and no cached functions (<func>/<version>/journal); nothing was changed"
        )
    return store


def _open_url_store(url: str) -> Store:
    """The cache at an fsspec URL (``s3://bucket/cache``), found as for a directory."""
    url = url.rstrip("/")
    for candidate in (f"{url}/joblib", url):
        store = FsspecStore(candidate)
        if cached_functions(store):
            return store
    raise SystemExit(
        f"error: DIR {url!r} does not look like a joblite cache: no cached functions "
        "(<func>/<version>/function.json) below it or its joblib/ prefix; nothing was changed"
    )


def _human_size(size: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _function_names(store: Store) -> dict[str, str]:
    """func_id -> module.qualname of the functions cached on ``store``."""
    names = {}
    for func_id, versions in cached_functions(store).items():
        names[func_id] = func_id
        for version in versions:
            try:
                info = json.loads(store.read_bytes(f"{func_id}/{version}/{FUNCTION_INFO}"))
                names[func_id] = str(info["name"])
            except (KeyError, ValueError, TypeError):
                continue
    return names


def _by_function(entries: list[EntryInfo]) -> dict[str, list[EntryInfo]]:
    grouped: dict[str, list[EntryInfo]] = defaultdict(list)
    for entry in entries:
        grouped[entry.func_id].append(entry)
    return grouped


def _ls(args: argparse.Namespace) -> int:
    store = _open_store(args.directory)
    names = _function_names(store)
    grouped = _by_function(scan_entries(store))
    print(f"{'FUNCTION':<48} {'ENTRIES':>7} {'SIZE':>8} {'HITS':>6}  LAST ACCESS")
    for func_id in sorted(names):
        entries = grouped.get(func_id, [])
        size = sum(e.size for e in entries)
        hits = sum(e.hits for e in entries)
        last = _when(max(e.last_access for e in entries)) if entries else "-"
        print(f"{names[func_id]:<48} {len(entries):>7} {_human_size(size):>8} {hits:>6}  {last}")
    return 0


def _match_function(store: Store, wanted: str) -> str:
    names = _function_names(store)
    exact = [f for f, n in names.items() if wanted in (n, f)]
    if exact:
        return exact[0]
    matches = [f for f, n in names.items() if n.endswith("." + wanted) or n.endswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SystemExit(f"error: no cached function matches {wanted!r}")
    choices = ", ".join(sorted(names[m] for m in matches))
    raise SystemExit(f"error: {wanted!r} matches several functions: {choices}")


def _show(args: argparse.Namespace) -> int:
    store = _open_store(args.directory)
    func_id = _match_function(store, args.function)
    entries = sorted(scan_entries(store, [func_id]), key=lambda e: e.last_access, reverse=True)
    name = _function_names(store)[func_id]
    total = sum(e.size for e in entries)
    print(f"{name}: {len(entries)} entries, {_human_size(total)}")
    for entry in entries:
        meta: dict[str, Any] = entry.metadata()
        duration = meta.get("duration")
        took = f"{duration:.3f}s" if isinstance(duration, (int, float)) else "?"
        print(
            f"  {entry.args_hash}  {_human_size(entry.size):>8}  hits {entry.hits:<5} "
            f"computed {_when(entry.created)} in {took}  last access {_when(entry.last_access)}"
        )
        arguments = meta.get("input_args")
        for arg, text in (arguments if isinstance(arguments, dict) else {}).items():
            print(f"      {arg} = {text}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    store = _open_store(args.directory)
    if args.function is None:
        # Only joblite's function directories: other files in DIR are not ours to delete.
        functions = list(cached_functions(store))
        entries = scan_entries(store, functions)
        for func_id in functions:
            store.delete(func_id)
        print(f"removed {len(entries)} entries ({_human_size(sum(e.size for e in entries))})")
        return 0
    func_id = _match_function(store, args.function)
    name = _function_names(store)[func_id]
    entries = scan_entries(store, [func_id])
    store.delete(func_id)
    print(f"removed {name}: {len(entries)} entries ({_human_size(sum(e.size for e in entries))})")
    return 0


def _remove_orphans(store: FileStore) -> int:
    """Delete temp and lock-and-write files of writers that died over an hour ago.

    Looks at the root's own temp names and inside joblite's function directories only.
    """
    cutoff = time.time() - _ORPHAN_AGE
    root = store.location
    removed = sum(
        _remove_if_old(os.path.join(root, name), cutoff)
        for name in os.listdir(root)
        if name.startswith(TEMP_PREFIX)
    )
    for func_id in cached_functions(store):  # never links (see FileStore.children)
        # os.walk does not descend into links; lstat below does not follow them.
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, func_id)):
            for name in filenames + dirnames:
                if name.startswith(TEMP_PREFIX) or (
                    name.startswith(".") and name.endswith(PART_SUFFIX)
                ):
                    removed += _remove_if_old(os.path.join(dirpath, name), cutoff)
    return removed


def _remove_if_old(path: str, cutoff: float) -> int:
    try:
        return int(os.lstat(path).st_mtime < cutoff and safe_remove(path))
    except FileNotFoundError:
        return 0


def _gc(args: argparse.Namespace) -> int:
    try:
        limits = CacheLimits.parse(args.max_size, args.max_items, args.max_age)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not limits:
        raise SystemExit("error: give at least one of --max-size, --max-age, --max-items")
    store = _open_store(args.directory)
    removed, kept = evict(store, limits)
    leftovers = "orphaned temp files"
    if isinstance(store, FileStore):
        orphans = _remove_orphans(store)
    else:  # an object store: no temp objects; merge each version's per-writer journals
        orphans = 0
        if isinstance(store, FsspecStore):
            orphans, leftovers = store.remove_stale_locks(), "stale lock objects"
        live: dict[str, set[str]] = defaultdict(set)
        for e in kept:
            live[f"{e.func_id}/{e.version}"].add(e.args_hash)
        for version_dir in live:
            compact(store, version_dir, live[version_dir], merge=True)
    freed = sum(e.size for e in removed)
    print(
        f"removed {len(removed)} entries ({_human_size(freed)}); kept {len(kept)} entries "
        f"({_human_size(sum(e.size for e in kept))}); removed {orphans} {leftovers}"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    store = _open_store(args.directory)
    entries = scan_entries(store)
    functions = len(cached_functions(store))
    print(f"location:      {store.location}")
    print(f"functions:     {functions}")
    print(f"entries:       {len(entries)}")
    print(f"size:          {_human_size(sum(e.size for e in entries))}")
    print(f"hits:          {sum(e.hits for e in entries)}")
    if entries:
        print(f"oldest access: {_when(min(e.last_access for e in entries))}")
        print(f"newest access: {_when(max(e.last_access for e in entries))}")
    return 0
