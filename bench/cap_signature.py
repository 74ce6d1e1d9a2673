"""What checking CAP signatures costs per alert, next to reading an unsigned alert.

Prints the calibration line, then a baseline (reading one unsigned CAP alert, no
certificate pinned) and then each case as microseconds per alert and as a ratio to that
baseline, measured in the same run. Not a test: numbers only.

    python bench/cap_signature.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calibration import print_calibration  # noqa: E402
from cad_adapters.cap_document import read_cap  # noqa: E402
from cad_adapters.cap_signature import load_certificate  # noqa: E402
from tests.cad_adapters.signing import new_signer, rsa_signer, sign  # noqa: E402
from tests.cad_adapters.test_cap_signature import alert, envelope  # noqa: E402


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    fn()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    print_calibration()
    now = datetime.now(UTC)
    ec, rsa, relay = new_signer(), rsa_signer(), new_signer(name="relay.example.org")
    pinned = {s: load_certificate(s.pem) for s in (ec, rsa)}
    unsigned = alert()
    sign_ec, sign_rsa = sign(unsigned, ec), sign(unsigned, rsa)
    relayed = sign(sign_ec, relay)
    seven = envelope(*(sign(alert(f"E-{i}"), ec) for i in range(7)))
    cases: list[tuple[str, int, Callable[[], object]]] = [
        ("ECDSA P-256 signed, pinned", 1, lambda: read_cap(
            sign_ec, default_tz=UTC, pinned=pinned[ec], now=now)),
        ("RSA-2048 signed, pinned", 1, lambda: read_cap(
            sign_rsa, default_tz=UTC, pinned=pinned[rsa], now=now)),
        ("relayed (2 signatures), originator pinned", 1, lambda: read_cap(
            relayed, default_tz=UTC, pinned=pinned[ec], now=now)),
        ("EDXL-DE of 7 signed alerts, pinned", 7, lambda: read_cap(
            seven, default_tz=UTC, pinned=pinned[ec], now=now)),
        ("EDXL-DE of 7 signed alerts, not pinned", 7, lambda: read_cap(seven, default_tz=UTC)),
    ]  # fmt: skip

    base = _per_call_us(lambda: read_cap(unsigned, default_tz=UTC), rounds)
    print(f"baseline: unsigned CAP alert, not pinned: {base:.1f} us/alert")
    for name, alerts, fn in cases:
        per_alert = _per_call_us(fn, max(rounds // alerts, 10)) / alerts
        print(f"{name}: {per_alert:.1f} us/alert ({per_alert / base:.1f}x baseline)")


if __name__ == "__main__":
    main()
