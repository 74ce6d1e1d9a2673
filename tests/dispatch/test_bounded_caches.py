"""Caches that live as long as the process hold a bounded number of entries."""

from __future__ import annotations

import asyncpg

from dispatch.domain.policy import AlertPolicy
from dispatch.service import progress
from dispatch.store import agencies as agency_store
from tests.dispatch.conftest import AgencyFixture


async def test_earlier_policy_versions_are_cached_within_a_bound(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """Incidents on many old policy versions: each gets its own, and the cache stays bounded."""
    versions = progress._POLICY_VERSIONS_MAX + 40
    for n in range(versions):
        await agency_store.store_alert_policy(
            db, agency.agency_id, AlertPolicy(target_accepted=1 + n % 5)
        )
    current = await agency_store.policy(db, agency.agency_id)
    assert current is not None
    # Version 1 is the agency's first policy, written when it was created.
    assert current.alert_policy.version == versions + 1
    progress._policy_versions.clear()
    for version in range(2, versions + 1):
        got = await progress._policy_for(db, current, version)
        assert got.version == version
        assert got.target_accepted == 1 + (version - 2) % 5
        assert len(progress._policy_versions) <= progress._POLICY_VERSIONS_MAX
    # The newest stay cached; the oldest were dropped and are read again when needed.
    assert (agency.agency_id, versions) in progress._policy_versions
    assert (agency.agency_id, 2) not in progress._policy_versions
    again = await progress._policy_for(db, current, 2)
    assert again.version == 2
