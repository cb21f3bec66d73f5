"""joblite's loky context: loky's own, except that it adopts early workers (POSIX).

loky's POSIX ``Popen`` pickles the preparation data and the process object
(collecting the descriptors they reference), starts
``python -m loky.backend.popen_loky_posix`` with ``fork_exec``, those descriptors kept open,
and writes the pickles to the child's pipe. When :mod:`._early_workers` has
an interpreter waiting, :class:`AdoptingPopen` does the same with it instead:
the descriptors and environment variables go over its socket rather than
through ``exec``. Otherwise loky's ``Popen`` spawns as usual. Everything after
(pipe, sentinel, ``pid``, crash detection, termination) is loky's. Example::

    >>> get_reusable_executor(max_workers=2, context=LOKY_CONTEXT)
"""

from __future__ import annotations

import os
from io import BytesIO
from multiprocessing import util
from multiprocessing.context import set_spawning_popen
from typing import Any

from loky.backend import reduction, resource_tracker, spawn
from loky.backend.context import LokyContext
from loky.backend.popen_loky_posix import Popen as LokyPopen
from loky.backend.process import LokyProcess

from ._early_workers import EarlyWorker, claim_early_worker

__all__ = ["LOKY_CONTEXT", "AdoptingContext"]


class AdoptingPopen(LokyPopen):  # type: ignore[misc]
    """loky's POSIX ``Popen`` with an early worker for the child; ``adopted`` says if it was."""

    def __init__(self, process_obj: Any, early: EarlyWorker) -> None:
        self.early = early
        self.adopted = False
        super().__init__(process_obj)

    def _launch(self, process_obj: Any) -> None:
        self.adopted = self._adopt(self.early, process_obj)

    def _adopt(self, early: EarlyWorker, process_obj: Any) -> bool:
        """loky's ``_launch`` with ``early`` for the child; False if it died meanwhile."""
        self._fds: list[int] = []
        tracker_fd = resource_tracker._resource_tracker.getfd()
        data = BytesIO()
        set_spawning_popen(self)  # pickled connections register their fds in self._fds
        try:
            prep_data = spawn.get_preparation_data(
                process_obj._name, getattr(process_obj, "init_main_module", True)
            )
            reduction.dump(prep_data, data)
            reduction.dump(process_obj, data)
        finally:
            set_spawning_popen(None)
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        try:
            fds = sorted({child_r, child_w, tracker_fd, prep_data["mp_tracker_fd"], *self._fds})
            try:
                early.hand_over(fds, pipe=child_r, env=dict(process_obj.env))
            except OSError:  # it died while booting: the next early worker, or a new one
                early.discard()
                os.close(parent_r)
                os.close(parent_w)
                return False
            self.pid = early.pid
            self.sentinel = parent_r
            util.Finalize(self, os.close, (parent_r,))
            with os.fdopen(parent_w, "wb") as to_child:
                to_child.write(data.getbuffer())
            return True
        finally:
            os.close(child_r)
            os.close(child_w)


class AdoptingProcess(LokyProcess):  # type: ignore[misc]
    """A loky worker process started through :class:`AdoptingPopen`."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        while (early := claim_early_worker()) is not None:
            popen = AdoptingPopen(process_obj, early)
            if popen.adopted:
                return popen
        # loky's own class: its command line runs the module it is defined in.
        return LokyPopen(process_obj)


class AdoptingContext(LokyContext):  # type: ignore[misc]
    """loky's context with :class:`AdoptingProcess` for its workers."""

    Process = AdoptingProcess


# One instance, always passed: loky reuses a pool only for the same arguments.
LOKY_CONTEXT = AdoptingContext()
