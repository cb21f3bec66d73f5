"""What the memoized functions of one ``Memory`` share, and the checks of its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._core.arguments import MMAP_MODES, check_verbose
from ._access import AccessTracker, HotValues
from ._eviction import AutoEvictor
from .stores.base import Store

__all__ = ["MMAP_MODES", "CacheSettings", "check_verbose"]


@dataclass
class CacheSettings:
    """What the functions of one ``Memory`` share: the store and how to use it."""

    store: Store
    compression: Any
    lock: bool = True
    lock_timeout: float | None = None
    evictor: AutoEvictor | None = None
    # func_id -> version already checked against the store in this process.
    checked: dict[str, str] = field(default_factory=dict)
    info_written: set[str] = field(default_factory=set)
    hot: HotValues = field(default_factory=HotValues)
    access: AccessTracker = field(init=False)

    def __post_init__(self) -> None:
        self.access = AccessTracker(self.store)

    def forget_checks(self) -> None:
        """Forget what this process knows of the store (after it was cleared)."""
        self.checked.clear()
        self.info_written.clear()
        self.access.forget()
        self.hot.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["checked"] = {}
        state["info_written"] = set()
        del state["hot"], state["access"]
        evictor = state.pop("evictor")
        state["limits"] = None if evictor is None else evictor.limits
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        limits = state.pop("limits")
        self.__dict__.update(state)
        self.evictor = None if limits is None else AutoEvictor(self.store, limits)
        self.hot = HotValues()
        self.access = AccessTracker(self.store)
