"""The dispatch loop of one ``Parallel`` call on a worker backend.

One call, from the caller to the workers and back::

    Parallel.__call__(iterable)                              _parallel.py
      | settings merged over parallel_config, backend chosen (_choice.py)
      | and, if foreign, adapted to ExecutorBackend (_adapter.py)
      |-- n_jobs resolves to 1: run_inline, a plain loop    _inline.py
      v
    DispatchLoop.chunks()                                    this module
      | take_tasks: the next batch of (f, args, kwargs)     _batching.py
      | encode_batch: pickled for process workers           _wire.py
      v   (large arrays as memory-mapped files)             _memmap.py
    backend.submit_batch(batch) -> Future                    backends/*.py
      |   worker: decode_batch, run_tasks -> (results, failures, seconds)
      v
    future done -> SimpleQueue -> results in order, errors re-raised
                   with the remote traceback                _errors.py

Batches are submitted up to ``max_in_flight``; every future's done-callback
puts it on a queue the caller's thread blocks on, so results are handled the
moment they arrive (no polling sleeps). The loop also owns the rare paths:
per-task deadlines, workers that die, and cleanup however the call ends. It
speaks one protocol, :class:`~.backends.base.ExecutorBackend`, and reads how
tasks travel from its flags (``ships_payloads``, ``clock_starts_at_run``,
``process_pool``, ``stops_running_tasks``).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from typing import Any

from ..exceptions import TaskTimeoutError, WorkerCrashedError
from ._batching import Batch, BatchOutput, BatchSizer, take_tasks
from ._memmap import ArraySharer
from ._options import CallOptions
from ._progress import Progress
from .backends.base import ExecutorBackend

__all__ = ["DispatchLoop"]

logger = logging.getLogger("joblite.parallel")


def _nothing() -> None:
    pass


def _task_name(batch: Batch, position: int = 0) -> str:
    index = batch.start + position
    try:
        function = batch.tasks[position][0]
        name = getattr(function, "__qualname__", None) or repr(function)
    except Exception:  # an item that is not a triple; the index still names it
        name = "?"
    return f"task {index} ({name})"


def _is_worker_death(exc: BaseException) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool)


class Deadlines:
    """When each future in flight runs out of time: ``timeout`` per task of its batch.

    With ``clock_starts_at_run`` a deadline that passes is checked against when
    the batch really started (``Batch.started``) and moved if it started late.
    """

    def __init__(self, timeout: float | None, clock_starts_at_run: bool) -> None:
        self.timeout = timeout
        self.clock_starts_at_run = clock_starts_at_run
        self.at: dict[Future[Any], float] = {}

    def start(self, future: Future[Any], batch: Batch) -> None:
        if self.timeout is not None:
            self.at[future] = time.monotonic() + self.timeout * len(batch)

    def drop(self, future: Future[Any]) -> None:
        self.at.pop(future, None)

    def seconds_left(self) -> float | None:
        """Until the next deadline; None without one."""
        return max(0.0, min(self.at.values()) - time.monotonic()) if self.at else None

    def expired(self, pending: dict[Future[Any], Batch]) -> list[Future[Any]]:
        """The futures past their deadline, forgotten here."""
        now = time.monotonic()
        expired = []
        for future, deadline in list(self.at.items()):
            if deadline <= now and self.clock_starts_at_run:
                deadline = self.at[future] = self._from_start(pending[future], now)
            if deadline <= now:
                expired.append(future)
                del self.at[future]
        return expired

    def _from_start(self, batch: Batch, now: float) -> float:
        assert self.timeout is not None
        limit = self.timeout * len(batch)
        if batch.started is None:  # still queued (say, behind an initializer): look again later
            return now + limit
        return batch.started + limit


class Collector:
    """Results of finished batches, released in submission order or as they come."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self.ready: dict[int, list[Any]] = {}  # ordered: batch start -> its results
        self.next_start = 0
        self.done = 0

    def add(self, batch: Batch, results: list[Any]) -> list[list[Any]]:
        """The chunks of results now ready for the caller (none while a gap remains)."""
        if len(results) != len(batch):
            raise RuntimeError(
                f"joblite internal error: {len(results)} results for the {len(batch)} "
                f"tasks from task {batch.start}; please report this"
            )
        self.done += len(results)
        if not self.ordered:
            return [results]
        self.ready[batch.start] = results
        chunks = []
        while self.next_start in self.ready:
            chunk = self.ready.pop(self.next_start)
            self.next_start += len(chunk)
            chunks.append(chunk)
        return chunks

    def check_complete(self, consumed: int) -> None:
        """Every task gave one result or error: a lost batch must not shorten the output."""
        delivered = self.next_start if self.ordered else self.done
        if delivered != consumed or self.ready:
            raise RuntimeError(
                f"joblite internal error: {delivered} results delivered for "
                f"{consumed} tasks; please report this"
            )


class DispatchLoop:
    """State of one call; iterate :meth:`chunks` to drive it."""

    def __init__(
        self,
        backend: ExecutorBackend,
        tasks: Iterator[Any],
        total: int | None,
        options: CallOptions,
        *,
        sharer: ArraySharer | None,
        progress: Progress | None,
        on_close: Callable[[], None],
        hold_counts: bool = False,
    ) -> None:
        """``hold_counts``: a finished batch whose results wait for an earlier one counts
        as in flight (a generator's window; see :meth:`_limit`)."""
        self.backend = backend
        self.tasks = tasks
        self.total = total
        self.exhausted = False
        self.consumed = 0
        self.sizer = BatchSizer(options.batch_size, options.task_seconds)
        self.max_in_flight = max(1, options.max_in_flight)
        self.timeout = options.timeout
        self.collect = options.collect
        self.retries = options.retries
        self.results = Collector(options.ordered)
        self.sharer = sharer
        self.progress = progress
        self.on_close = on_close
        self.completed: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self.pending: dict[Future[Any], Batch] = {}
        self.deadlines = Deadlines(self.timeout, backend.clock_starts_at_run)
        self.resubmit: deque[Batch] = deque()  # innocent batches of a killed pool
        self.quarantine: deque[Batch] = deque()  # single tasks re-run alone after a crash
        self.quarantined: set[int] = set()  # starts of those singles now in flight
        self.hold_counts = hold_counts
        self.closed = False

    # ------------------------------------------------------------ dispatch

    def _limit(self) -> int:
        # Suspects of a crash run alone; once they are through, full speed again.
        if self.quarantine or self.quarantined:
            return 1
        if self.hold_counts:
            # A generator reads the input at most pre_dispatch batches past the
            # oldest unfinished one: a slow first task cannot let growing batches
            # swallow the input, nor pile up results the consumer cannot have yet.
            # At least 1: the batch they wait for may be queued to run again.
            return max(1, self.max_in_flight - len(self.results.ready))
        return self.max_in_flight

    def fill(self) -> None:
        """Submit batches until ``max_in_flight`` or the input runs out."""
        while len(self.pending) < self._limit():
            if self.quarantine:
                batch = self.quarantine.popleft()
                self.quarantined.add(batch.start)
            elif self.resubmit:
                batch = self.resubmit.popleft()
            elif self.exhausted:
                return
            else:
                size = self.sizer.next_size()
                items = take_tasks(self.tasks, size, pack=self.backend.ships_payloads)
                if len(items) < size:
                    self.exhausted = True
                    self.total = self.consumed + len(items)
                    if not items:
                        return
                batch = Batch(self.consumed, items, self.retries, not self.collect)
                self.consumed += len(items)
            self._submit(batch)

    def _submit(self, batch: Batch) -> None:
        if self.backend.ships_payloads and batch.payload is None:
            batch.payload = batch.encode(None if self.sharer is None else self.sharer.reduce)
        batch.started = None
        future = self._submit_to_backend(batch)
        self.pending[future] = batch
        self.deadlines.start(future, batch)
        future.add_done_callback(self.completed.put)

    def _submit_to_backend(self, batch: Batch) -> Future[Any]:
        try:
            return self.backend.submit_batch(batch)
        except Exception as exc:
            if not (self.backend.process_pool and _is_worker_death(exc)):
                raise
            # A worker died after the backend last saw its pool whole, so
            # submit raised instead of returning a future: fail the batch
            # as that future would have, and the crash handling takes over.
            broken: Future[Any] = Future()
            broken.set_exception(exc)
            return broken

    # ------------------------------------------------------------ results

    def chunks(self) -> Iterator[list[Any]]:
        """Yield lists of results: in submission order, or as batches complete."""
        try:
            self.fill()
            while self.pending or self.resubmit or self.quarantine:
                future = self._next_completed()
                if future is None:
                    yield from self._expire_deadlines()
                else:
                    batch = self.pending.pop(future, None)
                    if batch is None:
                        continue  # a future of a pool we killed; its batch went elsewhere
                    self.deadlines.drop(future)
                    results = self._results_of(future, batch)
                    if results is not None:
                        yield from self._deliver(batch, results)
                self.fill()
            self.results.check_complete(self.consumed)
        finally:
            self.close()

    def _next_completed(self) -> Future[Any] | None:
        try:
            return self.completed.get(timeout=self.deadlines.seconds_left())
        except queue.Empty:
            return None

    def _results_of(self, future: Future[Any], batch: Batch) -> list[Any] | None:
        try:
            output: BatchOutput = future.result()
        except CancelledError:
            # Cancelled under us (a pool shut down): the batch has not run, run it again.
            self._run_again([batch])
            return None
        except BaseException as exc:
            if self.backend.process_pool and _is_worker_death(exc):
                return self._on_worker_death(batch, exc)
            if not self.collect:
                raise
            return [exc] * len(batch)
        results, failures, elapsed = output
        self.sizer.batch_completed(len(results), elapsed)
        self.backend.batch_completed(len(results), elapsed)
        if failures:
            if not self.collect:
                failure = failures[0]
                raise failure.exception_for_caller()
            for failure in failures:
                results[failure.position] = failure.exception_for_caller()
        return results

    def _deliver(self, batch: Batch, results: list[Any]) -> Iterator[list[Any]]:
        chunks = self.results.add(batch, results)
        self.quarantined.discard(batch.start)  # it is out of flight
        if self.progress is not None:
            self.progress.update(self.results.done, self.total)
        yield from chunks

    # ------------------------------------------------------------ rare paths

    def _expire_deadlines(self) -> Iterator[list[Any]]:
        expired = self.deadlines.expired(self.pending)
        if not expired:
            return
        for future in expired:
            # Not wanted any more: a backend that cannot kill the task (dask)
            # releases it when its future is cancelled; a running one ignores this.
            future.cancel()
        batches = [self.pending.pop(future) for future in expired]
        error = TaskTimeoutError(
            f"{_task_name(batches[0])} did not finish within timeout={self.timeout}s"
        )
        self._replace_workers()  # the stuck worker dies with the pool (processes)
        if not self.collect:
            raise error
        for batch in batches:
            yield from self._deliver(batch, [error] * len(batch))

    def _replace_workers(self) -> None:
        """Kill every worker (a stuck one among them); innocent batches run again."""
        if self.backend.process_pool:
            self._run_again(list(self.pending.values()))  # they die with their workers
        self.backend.replace_workers()
        # Threads cannot be killed: the running batches still report, but the
        # pool's shutdown cancelled the queued ones.
        self._run_again([batch for future, batch in self.pending.items() if future.cancelled()])

    def _run_again(self, batches: list[Batch]) -> None:
        """Take ``batches`` out of flight and queue them to be submitted again."""
        again = {id(batch) for batch in batches}
        for future in [f for f, batch in self.pending.items() if id(batch) in again]:
            del self.pending[future]
            self.deadlines.drop(future)
        for batch in sorted(batches, key=lambda b: b.start, reverse=True):
            if batch.start in self.quarantined:  # a suspect of a crash still runs alone
                self.quarantined.discard(batch.start)
                self.quarantine.appendleft(batch)
            else:
                self.resubmit.appendleft(batch)

    def _on_worker_death(self, batch: Batch, exc: BaseException) -> list[Any] | None:
        suspects = [batch, *self.pending.values()]
        alone = len(suspects) == 1 and len(batch) == 1
        if batch.start in self.quarantined or alone:
            self.quarantined.discard(batch.start)
            error = WorkerCrashedError(
                f"a worker process died while running {_task_name(batch)}: {exc}"
            )
            if not self.collect:
                raise error from exc
            self._replace_workers()
            return [error]
        # All futures of the pool fail together: re-run the suspects one at a
        # time on a fresh pool to find (and name) the task that kills workers.
        logger.warning(
            "a worker process died; re-running %d batches one task at a time", len(suspects)
        )
        self.pending.clear()
        self.deadlines.at.clear()
        self.backend.replace_workers()
        for suspect in sorted(suspects, key=lambda b: b.start):
            for position, task in enumerate(suspect.tasks):
                single = Batch(
                    suspect.start + position, [task], suspect.retries, suspect.stop_on_error
                )
                self.quarantine.append(single)
        return None

    def close(self) -> None:
        """Cancel what has not run, kill what runs, remove shared files. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            running = [future for future in self.pending if not future.cancel()]
            running = [future for future in running if not future.done()]
            if running and self.backend.stops_running_tasks:
                self.backend.replace_workers()
            self.pending.clear()
            self.deadlines.at.clear()
        finally:
            if self.sharer is not None:
                self.sharer.close()
            if self.progress is not None:
                self.progress.close()
            # The callback usually refers to this loop: dropping it ends that
            # cycle, so the call's objects are freed now, not by the collector.
            on_close, self.on_close = self.on_close, _nothing
            on_close()
