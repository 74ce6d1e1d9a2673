"""What the engine's shortcuts rely on, checked against the domain functions themselves.

Monte Carlo runs re-plan roles only when what responders' roles depend on changed: who is
responding (and the AED each holds), how many must go direct (``direct_needed`` of the
live alerts) and whether the nearest live alert is a responder's. The alerts still waiting
are planned after every responder, so they change nothing else for them.
"""

from __future__ import annotations

from uuid import UUID

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dispatch.domain.aeds import Aed, Responder, direct_needed, distance_m, replan_roles
from tests.dispatch.helpers import CENTRE, offset
from tests.dispatch.test_simulate_parity import T0

spot = st.tuples(st.floats(-900, 900), st.floats(-900, 900))
responders = st.lists(st.tuples(spot, st.none() | st.integers(0, 5)), min_size=1, max_size=8)
waiting = st.lists(spot, max_size=10)


def _team(
    ours: list[tuple[tuple[float, float], int | None]], others: list[tuple[float, float]]
) -> list[Responder]:
    team: list[Responder] = []
    for k, (where, aed) in enumerate(ours):
        lat, lon = offset(*CENTRE, *where)
        team.append(Responder(UUID(int=k + 1), lat, lon, distance_m(lat, lon, *CENTRE), True, aed))
    for k, where in enumerate(others):
        lat, lon = offset(*CENTRE, *where)
        ident = UUID(int=100 + k)
        team.append(Responder(ident, lat, lon, distance_m(lat, lon, *CENTRE), False, k % 6))
    return team


def _nearest_responder(team: list[Responder]) -> UUID | None:
    nearest = min(team, key=lambda r: (r.to_patient_m, r.alert_id))
    return nearest.alert_id if nearest.responding else None


@settings(max_examples=400, deadline=None)
@given(responders, waiting, waiting, st.lists(spot, max_size=6), st.floats(0, 800))
def test_waiting_alerts_change_responders_roles_only_through_the_direct_count_and_nearest(
    ours: list[tuple[tuple[float, float], int | None]],
    first: list[tuple[float, float]],
    second: list[tuple[float, float]],
    places: list[tuple[float, float]],
    detour: float,
) -> None:
    aeds = [Aed(i, f"a{i}", *offset(*CENTRE, *p)) for i, p in enumerate(places)]
    one, two = _team(ours, first), _team(ours, second)
    assume(direct_needed(len(one)) == direct_needed(len(two)))
    assume(_nearest_responder(one) == _nearest_responder(two))
    plans = [
        replan_roles(t, aeds, local=T0, patient=CENTRE, max_detour_m=detour) for t in (one, two)
    ]
    n = len(ours)
    assert plans[0].assignments[:n] == plans[1].assignments[:n]
