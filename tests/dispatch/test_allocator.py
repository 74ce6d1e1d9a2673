"""The pinned mmap threshold: a freed big block no longer moves later big blocks onto the heap."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

_PROBE = """
import ctypes, sys
from dispatch.allocator import fix_mmap_threshold

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
big = bytearray(8 << 20)  # served by mmap; freeing it raises glibc's own threshold to 8 MiB
del big
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
print("mmap" if libc.mallinfo2().hblkhd - before >= 1 << 20 else "heap")
"""


def _probe(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_big_block_stays_off_the_heap_after_a_bigger_one_was_freed() -> None:
    if not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc 2.33+ (mallinfo2)")
    assert _probe("default") == "heap", "glibc's threshold drifts up on its own"
    assert _probe("fixed") == "mmap"


def test_an_operators_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.allocator import fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
