"""A short-lived cache of successful agency-key checks, for the CAD intake hot path.

Keyed by the SHA-256 of the presented key, never the key. Only successes are
cached, so a guessed key still costs a database look-up. A revoked key or a
settings change made through this process's API takes effect at once
(:meth:`forget`); one made by another process, or the command line, as soon as its
notification arrives (:mod:`dispatch.service.invalidation`), and within ``ttl_s`` even
when the notification is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from dispatch.secrets import hash_token
from dispatch.store.agencies import AgencyAuth


class AgencyAuthCache:
    def __init__(
        self,
        ttl_s: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._entries: dict[tuple[UUID, bytes], tuple[float, AgencyAuth]] = {}

    def get(self, agency_id: UUID, key: str) -> AgencyAuth | None:
        entry = self._entries.get((agency_id, hash_token(key)))
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, agency_id: UUID, key: str, auth: AgencyAuth) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[(agency_id, hash_token(key))] = (self._clock() + self._ttl_s, auth)

    def forget(self, agency_id: UUID | None) -> None:
        """Drop the agency's entries (None: every agency's)."""
        if agency_id is None:
            self._entries.clear()
            return
        for cached in [k for k in self._entries if k[0] == agency_id]:
            del self._entries[cached]
