"""No input gives a 5xx: hostile values in every field of every JSON route of the OpenAPI document.

Bodies are generated from each operation's request schema: the schema's own field names
and nesting, each value either shaped like the schema says or hostile — any Unicode
(NUL and unpaired surrogates included), date-times at and past the edges of the calendar,
naive or with offsets up to ±14 h, huge and tiny numbers, wrong types. Schemathesis (the
contract test) covers valid data; this covers what no schema would ever generate.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.web.openapi import openapi_document
from tests.dispatch.conftest import AgencyFixture

# Any code point, surrogates included, with the ones PostgreSQL refuses drawn often.
_ANY_CHAR = st.sampled_from("\x00\ud800\udfff\x1f\u2028\ufeff") | st.characters(
    codec=None, exclude_categories=()
)
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_STAMPS = st.one_of(
    st.datetimes(timezones=st.none() | _OFFSETS).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00",
            "1900-01-01T00:00:00+01:00",
            "2200-12-31T23:59:59-01:00",
            "2024-02-30T10:00:00Z",
            "2026-11-30T24:00:00Z",
        ]
    ),
)
HOSTILE = st.one_of(
    st.text(_ANY_CHAR, max_size=40),
    _STAMPS,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(_ANY_CHAR, max_size=8), max_size=3),
    st.dictionaries(st.text(_ANY_CHAR, max_size=8), st.text(_ANY_CHAR, max_size=8), max_size=2),
)


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def shaped(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> Any:
    """A strategy for values with the schema's structure whose leaves may be hostile."""
    schema = _resolve(schema, document)
    kinds = schema.get("type")
    if depth < 4 and (kinds == "object" or "properties" in schema):
        properties = schema.get("properties", {})
        fields = {
            name: shaped(sub, document, depth + 1) for name, sub in sorted(properties.items())
        }
        # Any subset of the known fields, now and then one the schema does not know.
        extra = st.dictionaries(st.text(_ANY_CHAR, max_size=6), HOSTILE, max_size=1)
        return st.fixed_dictionaries({}, optional=fields) | extra
    if depth < 4 and kinds == "array" and isinstance(schema.get("items"), dict):
        return st.lists(shaped(schema["items"], document, depth + 1), max_size=3) | HOSTILE
    return HOSTILE


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document where a value can be swapped for another."""
    found = [here] if here else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


def _replaced(document: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    copy = json.loads(json.dumps(document))
    for path, value in changes:
        target = copy
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what held this place
    return copy


def mutated(example: Any) -> Any:
    """A valid example with one to three of its values (at any depth) made hostile."""
    places = _paths(example)
    return st.lists(st.tuples(st.sampled_from(places), HOSTILE), min_size=1, max_size=3).map(
        lambda changes: _replaced(example, changes)
    )


EIDO_FIXTURE = Path(__file__).parents[1] / "cad_adapters" / "fixtures" / "eido_cardiac_arrest.json"


def _json_operations() -> list[tuple[str, str, str, str]]:
    """(method, path, media type, security scheme) of every operation with a JSON body."""
    found = []
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            media = next((m for m in content if m.endswith("json")), None)
            if media is None:
                continue
            # Sign-up and sign-in are public: no scheme, no token.
            schemes = operation.get("security") or [{"none": []}]
            found.append((method, path, media, next(iter(schemes[0]))))
    return found


OPERATIONS = _json_operations()


def test_every_json_route_is_covered() -> None:
    """A JSON route added to the document is generated for without touching this file."""
    assert len(OPERATIONS) >= 11
    document = openapi_document()
    without = [
        f"{method} {path}"
        for method, path, media, _ in OPERATIONS
        if not path.endswith("/eido")
        and not _resolve(
            document["paths"][path][method]["requestBody"]["content"][media]["schema"], document
        ).get("examples")
    ]
    assert not without, "every JSON request schema carries an example to mutate"
    assert {scheme for *_, scheme in OPERATIONS} == {
        "agencyKey",
        "volunteerToken",
        "supervisorToken",
        "none",
    }


@pytest.mark.parametrize(
    ("method", "path", "media", "scheme"), OPERATIONS, ids=[f"{m} {p}" for m, p, *_ in OPERATIONS]
)
async def test_hostile_bodies_never_give_a_server_error(
    client: Any,
    agency: AgencyFixture,
    method: str,
    path: str,
    media: str,
    scheme: str,
) -> None:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Prop"},
        headers=agency.supervisor_auth,
    )
    created = await resp.json()
    await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"intake_rate_per_min": 100_000},
        headers=agency.supervisor_auth,
    )
    token = {
        "agencyKey": agency.key,
        "volunteerToken": created["token"],
        "supervisorToken": agency.supervisor_token,
        "none": None,
    }[scheme]
    # Ids in paths name nothing that exists (404 after the body is read) unless known here.
    url = path.format_map(
        {
            "agency_id": agency.agency_id,
            "volunteer_id": created["volunteer_id"],
            "alert_id": uuid4(),
            "credential_id": 1,
            "request_id": 1,
        }
    )
    document = openapi_document()
    body_schema = document["paths"][path][method]["requestBody"]["content"][media]["schema"]
    headers = {"Content-Type": media}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    loop = asyncio.get_running_loop()

    async def send(data: bytes) -> tuple[int, str]:
        answer = await getattr(client, method)(url, data=data, headers=headers)
        return answer.status, await answer.text()

    examples = _resolve(body_schema, document).get("examples") or (
        [json.loads(EIDO_FIXTURE.read_text())] if path.endswith("/eido") else []
    )
    bodies = shaped(body_schema, document)
    if examples:
        bodies = mutated(examples[0]) | bodies

    # Hypothesis drives a plain function in a worker thread; the requests run on this loop.
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=bodies)
    def probe(body: Any) -> None:
        data = json.dumps(body, ensure_ascii=True).encode()
        status, text = asyncio.run_coroutine_threadsafe(send(data), loop).result(30)
        assert status < 500, f"{status} for {data[:300]!r}: {text[:300]}"

    await asyncio.to_thread(probe)
