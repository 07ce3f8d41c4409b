"""hub.heap: free pages inside glibc's heap go back to the OS; elsewhere it does nothing."""

from __future__ import annotations

import os
import sys

import pytest

from hub import heap


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._malloc_trim() is None, reason="glibc only")
def test_free_chunks_below_a_live_one_are_given_back() -> None:
    blocks = [bytes(8192) for _ in range(8000)]  # 64 MB in glibc's heap (each block too small for mmap)
    keep = bytes(8192)  # allocated last: the heap's top stays in use, so glibc keeps what lies below it
    del blocks
    before = rss_mb()
    assert heap.release_free_memory() is True
    assert before - rss_mb() > 32  # most of the 64 MB went back
    del keep


def test_nothing_happens_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(os, "confstr", no_such_name)
    assert heap.release_free_memory() is False
