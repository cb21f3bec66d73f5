from __future__ import annotations

import pytest

from joblite._core import fileformat


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Compressed files cut into 64 KiB chunks, so small test data spans many."""
    monkeypatch.setattr(fileformat, "CHUNK_SIZE", 64 * 1024)
    return 64 * 1024
