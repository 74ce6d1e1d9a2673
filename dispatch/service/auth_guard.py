"""Failed authentication is throttled per client network and per agency; known keys pass.

Why: each guessed key used to cost a pool connection and a query, so a client
sending thousands of wrong keys queued every agency's CAD intake behind its own
look-ups. Now a client (or an agency under attack) that keeps failing is answered
429 without any database work, and at most ``lookup_slots`` look-ups of keys this
process has not seen succeed run at once, leaving the rest of the pool to others.

A throttled client's 429 comes after a short delay (a tarpit), so a flood from a
few connections slows to a trickle. A key or token that succeeded here recently is
never throttled, so an attack on an agency does not lock its own CAD out. Secrets are
remembered by their SHA-256, never as they are.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from dispatch.domain.rate_limit import FailureThrottle
from dispatch.secrets import hash_token

T = TypeVar("T")


def client_network(address: str | None) -> str:
    """The unit a client is throttled by: its IPv4 address, or its IPv6 /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class AuthGuard:
    def __init__(
        self,
        *,
        per_client: tuple[int, float] = (20, 20.0),
        per_agency: tuple[int, float] = (60, 60.0),
        lookup_slots: int = 2,
        known_ttl_s: float = 24 * 3600.0,
        max_known: int = 10_000,
        tarpit_s: float = 1.0,
        max_held: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = FailureThrottle(*per_client)
        self._agencies = FailureThrottle(*per_agency)
        self._known: dict[bytes, float] = {}
        self._known_ttl_s = known_ttl_s
        self._max_known = max_known
        self._clock = clock
        self._tarpit_s = tarpit_s
        self._max_held = max_held
        self._held = 0
        self._in_flight: dict[object, asyncio.Future[Any]] = {}
        self.lookup_slots = asyncio.Semaphore(lookup_slots)
        """Held while looking up a secret not known good (see :meth:`is_known`)."""

    def is_known(self, secret: str) -> bool:
        expiry = self._known.get(hash_token(secret))
        return expiry is not None and expiry > self._clock()

    def wait_s(self, address: str | None, agency_id: UUID | None, secret: str | None) -> float:
        """0 when this attempt may be checked, else the seconds the client should wait."""
        if secret is not None and self.is_known(secret):
            return 0.0
        now = self._clock()
        wait = self._clients.blocked_for(client_network(address), now)
        if agency_id is not None:
            wait = max(wait, self._agencies.blocked_for(agency_id, now))
        return wait

    def failed(self, address: str | None, agency_id: UUID | None) -> None:
        now = self._clock()
        self._clients.record(client_network(address), now)
        if agency_id is not None:
            self._agencies.record(agency_id, now)

    def refund(self, address: str | None, agency_id: UUID | None) -> None:
        """Undo :meth:`failed` for an attempt counted before its look-up, which then succeeded."""
        now = self._clock()
        self._clients.refund(client_network(address), now)
        if agency_id is not None:
            self._agencies.refund(agency_id, now)

    def succeeded(self, secret: str) -> None:
        digest = hash_token(secret)
        self._known.pop(digest, None)
        while len(self._known) >= self._max_known:
            del self._known[next(iter(self._known))]
        self._known[digest] = self._clock() + self._known_ttl_s

    async def hold(self, wait_s: float) -> None:
        """Delay a throttled client's answer (up to ``tarpit_s``), for a bounded number at once.

        A client that keeps guessing with N connections then gets N answers per
        ``tarpit_s`` instead of as many as the loop can serve, so its guesses stop
        taking the loop's time from everyone else. Waiting costs a timer, not work.
        """
        if self._held >= self._max_held or self._tarpit_s <= 0:
            return
        self._held += 1
        try:
            await asyncio.sleep(min(wait_s, self._tarpit_s))
        finally:
            self._held -= 1

    async def once(self, key: object, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result, shared by every caller that asks for ``key`` while it runs.

        A CAD's burst of requests with a key this process has not checked yet is one
        look-up and one pending failure, not one each: otherwise the burst itself
        would trip the throttle for a key that is correct.
        """
        pending = self._in_flight.get(key)
        if pending is not None:
            result: T = await asyncio.shield(pending)
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: no "never retrieved" warning without waiters
            raise
        finally:
            del self._in_flight[key]
        future.set_result(result)
        return result
