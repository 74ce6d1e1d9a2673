"""A fixed mmap threshold for glibc's malloc, so a long-running server's heap does not creep.

glibc serves allocations of 128 KiB and more with ``mmap`` and returns them to the
system when freed, but each such free raises the threshold to that size (up to 32 MiB):
from then on blocks of that size come from the heap, and under the server's mixed load
the heap keeps freed space it cannot give back. Measured with ``bench/soak.py``: the
heap's in-use bytes stayed flat while its free space grew by ~2 MiB/min; with the
threshold fixed, the heap stayed flat. Setting the threshold explicitly (``mallopt``)
turns that adjustment off. An operator's own ``MALLOC_MMAP_THRESHOLD_`` is left alone,
and other C libraries (musl) or systems are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

MMAP_THRESHOLD_BYTES: Final = 128 * 1024
"""glibc's own starting value: only the upward drift is switched off."""
_M_MMAP_THRESHOLD: Final = -3


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold; True when it was set here."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        # The process's own symbols: the C library it runs on, whichever that is.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
