"""Hand freed heap memory back to the operating system between the phases of a large step.

NumPy frees its arrays with ``free``; glibc keeps freed blocks below its (adaptive, up to 32 MB)
mmap threshold in the heap of the thread that used them, so a step whose phases each allocate
and drop a few hundred MB of medium arrays, some in worker threads, keeps every phase's
leftovers resident. ``malloc_trim(0)`` returns the free pages of every arena; it costs
milliseconds. Elsewhere than glibc it does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_memory() -> bool:
    """Return free heap pages to the OS; whether the C library could."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
