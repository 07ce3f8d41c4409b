"""Hand the C heap's free pages back to the OS once start-up's garbage is gone (glibc only)."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):  # no such name here, or no confstr at all
        glibc = ""
    if not glibc.startswith("glibc"):
        return None  # musl, macOS, Windows: no malloc_trim, nothing to do
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc is among them
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Collect cycles, then malloc_trim(0); False where there is no glibc.

    Start-up builds pydantic schemas, reads every installed distribution's entry points and opens
    SQLite: its garbage leaves free chunks inside glibc's heap that glibc keeps (it only returns
    the heap's top). malloc_trim(0) gives back every free page, wherever it is. Measured on a
    `hub run` at idle: 62.0 -> 60.7 MB RSS, the same in three runs. Called again after a burst of
    1,000 devices it gained nothing measurable (their objects live in Python's own arenas), so it
    runs once.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    gc.collect()
    trim(0)
    return True
