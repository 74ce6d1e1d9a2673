"""Moving an incident forward: waves, replacements, time-outs, stand-down, incident state.

Every path that can change what an incident needs calls :func:`advance` inside its
own transaction — intake (new or updated snapshot), a volunteer's answer, the
ticker when ``next_check_at`` comes due, a feed closing an incident. It locks the
incident, asks the pure planner (:mod:`dispatch.domain.waves`) what to do, does it,
and stores the next deadline, so nothing depends on an in-memory timer.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID, uuid4

from dispatch.db.types import Conn
from dispatch.domain.aeds import Responder, Role, replan_roles
from dispatch.domain.alert_states import AlertEvent, AlertState, apply
from dispatch.domain.delivery_chain import START
from dispatch.domain.eligibility import IncidentFacts, pick_eligible
from dispatch.domain.incident_states import IncidentEvent, IncidentState, is_open
from dispatch.domain.incident_states import advance as advance_state
from dispatch.domain.intake import NotAlertable, location_imprecise, start_block
from dispatch.domain.models import AgencyPolicy
from dispatch.domain.policy import AlertPolicy, answer_window_s
from dispatch.domain.waves import RESPONDING, plan
from dispatch.service import aftercare
from dispatch.service.agency_zone import zone_or_skip
from dispatch.service.events import EventBuffer
from dispatch.service.positions import PositionCache
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import alerts as alert_store
from dispatch.store import incidents as incident_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.alerts import NewAlert
from dispatch.store.incidents import IncidentProgress

# Candidates are fetched in batches larger than the free slots, since eligibility rules
# (tier, duty, quiet hours…) may exclude many; at most this many batches per call.
_MATCH_ROUNDS: Final = 6

# Earlier policy versions that running incidents still follow; bounded (oldest dropped
# first, read again from the database when needed) so edits over months do not pile up.
_policy_versions: dict[tuple[UUID, int], AlertPolicy] = {}
_POLICY_VERSIONS_MAX: Final = 256


async def _policy_for(conn: Conn, agency: AgencyPolicy, version: int) -> AlertPolicy:
    """The policy version an incident started under; later edits do not change it."""
    current = agency.alert_policy
    if version == current.version:
        return current
    cached = _policy_versions.get((agency.agency_id, version))
    if cached is None:
        cached = await agency_store.alert_policy_version(conn, agency.agency_id, version)
        if cached is None:
            return current
        if len(_policy_versions) >= _POLICY_VERSIONS_MAX:
            del _policy_versions[next(iter(_policy_versions))]
        _policy_versions[(agency.agency_id, version)] = cached
    return cached


async def advance(
    conn: Conn,
    positions: PositionCache,
    agency: AgencyPolicy,
    incident_id: UUID,
    events: EventBuffer,
    *,
    created: IncidentProgress | None = None,
) -> int:
    """Bring the incident up to date as of ``events.now``; returns the outbox rows it queued.

    ``created`` is the row intake has just inserted (and so already locks): passing it
    saves two round trips on the path a new cardiac arrest takes to its first alerts.
    """
    now = events.now
    incident = created or await incident_store.lock_progress(conn, incident_id)
    if incident is None:
        return 0
    started = incident.alerting_started_at
    version = incident.policy_version
    imprecise = location_imprecise(
        incident.location_uncertainty_m, agency.max_location_uncertainty_m
    )
    if started is None:
        blocked = _start_block(agency, incident, now, imprecise)
        if blocked is not None:
            events.add("not_alertable", reason=blocked.value)
            if blocked is not NotAlertable.LOCATION_IMPRECISE:
                await incident_store.block_alerting(conn, incident_id, blocked.value)
        if blocked is not None or not incident.alertable:
            await _save_state(conn, incident, incident.state, None, None, None, events)
            return 0
        started, version = now, agency.alert_policy.version
        events.add("alerting_started", policy_version=version)
    assert version is not None
    policy = await _policy_for(conn, agency, version)
    alerts = [] if created else await alert_store.views_for_incident(conn, incident_id)
    decision = plan(
        policy,
        alerts,
        started_at=started,
        now=now,
        open_=incident.alertable,
        ems_on_scene=incident.first_ems_on_scene_at is not None,
        answer_window_s=answer_window_s(
            policy,
            push_ack_timeout_s=agency.push_ack_timeout_s,
            next_channel_after_s=agency.next_channel_after_s,
        ),
    )

    by_id = {a.alert_id: a for a in alerts}
    notices: list[UUID] = []
    for ids, event in (
        (decision.time_out, AlertEvent.TIME_OUT),
        (decision.stand_down, AlertEvent.STAND_DOWN),
        (decision.release, AlertEvent.RELEASE),
    ):
        for alert_id in ids:
            alert = by_id[alert_id]
            target = apply(alert.state, event)
            await alert_store.set_state(conn, alert_id, target, now)
            if event is not AlertEvent.TIME_OUT and alert.state is not AlertState.QUEUED:
                # They heard about it, so they hear that it is over (never sent: no news).
                notices.append(alert_id)
            events.add(
                f"alert_{target.value}",
                alert_id=alert_id,
                volunteer_id=alert.volunteer_id,
                reason=decision.reason if event is not AlertEvent.TIME_OUT else "no_answer",
            )

    if notices:
        await alert_store.queue_notices(conn, agency.agency_id, notices, now=now)
    matched = 0
    # A vague location from a later snapshot sends nobody new to the wrong street; those
    # already alerted keep going (they were sent to the earlier, precise one).
    if decision.new_alerts and not imprecise:
        if decision.wave > max((a.wave for a in alerts), default=-1) and alerts:
            events.add("wave_started", wave=decision.wave, radius_m=decision.radius_m)
        matched = await _match(
            conn,
            positions,
            agency,
            incident,
            policy,
            wanted=decision.new_alerts,
            radius_m=decision.radius_m,
            wave=decision.wave,
            alerted={a.volunteer_id for a in alerts},
            events=events,
            first_try=not any(a.wave == decision.wave for a in alerts),
        )

    if incident.alertable and agency.has_aeds:
        await _plan_roles(conn, positions, agency, incident, policy, events)

    state = incident.state
    if matched:
        state = advance_state(state, IncidentEvent.ALERTS_QUEUED)
    if any(a.state in RESPONDING for a in alerts):
        state = advance_state(state, IncidentEvent.RESPONDER_ACCEPTED)
    if incident.first_ems_on_scene_at is not None:
        state = advance_state(state, IncidentEvent.EMS_ARRIVED)
    if incident.status.value == "closed":
        state = advance_state(state, IncidentEvent.CLOSE)
    elif incident.status.value == "cancelled":
        state = advance_state(state, IncidentEvent.CANCEL)
    if not is_open(state) and is_open(incident.state):
        # Over: everyone who said they would go is asked how they are.
        await aftercare.follow_up(conn, agency.agency_id, incident_id, events)
    await _save_state(conn, incident, state, started, version, decision.next_check_at, events)
    # Both new alerts and stand-down notices are outbox rows the worker should wake for.
    return matched + len(notices)


def _start_block(
    agency: AgencyPolicy, incident: IncidentProgress, now: datetime, imprecise: bool
) -> NotAlertable | None:
    """Why an incident that could otherwise start alerting now must not."""
    if not incident.alertable:
        return None
    return start_block(
        incident.received_at,
        now,
        imprecise=imprecise,
        max_age_s=agency.max_incident_age_s,
        max_skew_s=agency.max_clock_skew_s,
    )


async def _save_state(
    conn: Conn,
    incident: IncidentProgress,
    state: IncidentState,
    started: datetime | None,
    version: int | None,
    next_check_at: datetime | None,
    events: EventBuffer,
) -> None:
    if state is not incident.state:
        events.add("incident_state", state=state.value, previous=incident.state.value)
    await incident_store.save_progress(
        conn,
        incident.incident_id,
        state=state,
        alerting_started_at=started,
        policy_version=version,
        next_check_at=next_check_at,
        events=events.take(),
    )


async def _match(
    conn: Conn,
    positions: PositionCache,
    agency: AgencyPolicy,
    incident: IncidentProgress,
    policy: AlertPolicy,
    *,
    wanted: int,
    radius_m: float,
    wave: int,
    alerted: set[int],
    events: EventBuffer,
    first_try: bool,
) -> int:
    """Alert up to ``wanted`` eligible volunteers, nearest first, never one alerted before."""
    assert incident.lat is not None
    assert incident.lon is not None
    now = events.now
    facts = IncidentFacts(
        place_type=incident.place_type,
        is_test=incident.is_test,
        at=now,
        lay_unknown_place=policy.lay_unknown_place,
    )
    considered: set[int] = set()
    excluded: Counter[str] = Counter()
    chosen: list[NewAlert] = []
    for round_ in range(_MATCH_ROUNDS):
        missing = wanted - len(chosen)
        hits = positions.nearest(
            agency.agency_id,
            incident.lat,
            incident.lon,
            radius_m=radius_m,
            limit=max(missing * 4, missing + 20) * (round_ + 1),
            max_age_s=agency.position_max_age_s,
            now=now,
            exclude=alerted | considered,
        )
        if not hits:
            break
        considered.update(h.volunteer_id for h in hits)
        profiles = await volunteer_store.profiles(
            conn,
            agency.agency_id,
            [h.volunteer_id for h in hits],
            incident_id=incident.incident_id,
            now=now,
        )
        candidates = [
            NewAlert(uuid4(), hit.volunteer_id, hit.distance_m, "cpr", START)
            for hit in pick_eligible(hits, profiles.get, facts, missing, excluded)
        ]
        inserted = await alert_store.insert_with_outbox(
            conn,
            agency_id=agency.agency_id,
            incident_id=incident.incident_id,
            alerts=candidates,
            expires_at=now + timedelta(seconds=agency.alert_ttl_s),
            now=now,
            wave=wave,
        )
        chosen.extend(a for a in candidates if a.volunteer_id in inserted)
        excluded["unavailable"] += len(candidates) - len(inserted)
        if len(chosen) >= wanted:
            break
    if not chosen and not first_try:
        # Topping up an unfilled wave found nobody new: not worth a timeline row each time.
        return 0
    events.add(
        "matched",
        wave=wave,
        radius_m=radius_m,
        wanted=wanted,
        alerted=len(chosen),
        max_age_s=agency.position_max_age_s,
        excluded={reason: n for reason, n in sorted(excluded.items()) if n},
    )
    for alert in chosen:
        events.add(
            "alert_queued",
            alert_id=alert.alert_id,
            volunteer_id=alert.volunteer_id,
            distance_m=round(alert.distance_m),
            role=alert.role,
            wave=wave,
        )
    return len(chosen)


async def _plan_roles(
    conn: Conn,
    positions: PositionCache,
    agency: AgencyPolicy,
    incident: IncidentProgress,
    policy: AlertPolicy,
    events: EventBuffer,
) -> None:
    """Split live alerts between CPR and AED fetching; store changes, log the counts."""
    assert incident.lat is not None
    assert incident.lon is not None
    live = await alert_store.live_for_roles(conn, incident.incident_id)
    if not live:
        return
    # AED opening hours are local times: with the zone unknown nobody is newly sent for an
    # AED, and the alerts, answers and deadlines of the incident go on regardless.
    tz = zone_or_skip(agency.agency_id, agency.time_zone, skipped="roles_not_planned")
    if tz is None:
        return
    local = events.now.astimezone(tz)
    nearby = await aed_store.near(
        conn, agency.agency_id, incident.lat, incident.lon, policy.aed_radius_m
    )
    responders = []
    for alert in live:
        where = positions.position(alert.volunteer_id)
        if where is None:
            continue
        responders.append(
            Responder(
                alert_id=alert.alert_id,
                lat=where[0],
                lon=where[1],
                to_patient_m=alert.distance_m,
                responding=alert.state in RESPONDING,
                current_aed=alert.aed_id if alert.role == Role.AED else None,
            )
        )
    assigned = replan_roles(
        responders,
        nearby,
        local=local,
        patient=(incident.lat, incident.lon),
        max_detour_m=policy.aed_max_detour_m,
    )
    changed = [(alert_id, a.role.value, a.aed_id) for alert_id, a in assigned.changed]
    if not changed:
        return
    await alert_store.set_roles(conn, changed)
    counts = Counter(a.role.value for a in assigned.assignments)
    events.add(
        "roles_planned",
        cpr=counts.get(Role.CPR.value, 0),
        aed=counts.get(Role.AED.value, 0),
        open_aeds=assigned.open_aeds,
    )
