"""``dispatch feed …``: add a polled CAD feed (checked against a live sample), list the
feeds with their health, show the ready mappings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from cad_adapters.errors import CadParseError
from cad_adapters.feed import FeedMapping, SampleCheck
from cad_adapters.feed_templates import TEMPLATES, template_mapping
from dispatch.cli_support import CliError, connection, out
from dispatch.config import Settings
from dispatch.domain.time_zones import UnknownTimeZone
from dispatch.domain.time_zones import time_zone as zone_named
from dispatch.service.feed_fetch import FeedFetchError
from dispatch.service.feeds import dry_run_view, health_view, sample_check
from dispatch.store import agencies as agency_store
from dispatch.store import feeds as feed_store


def _feed_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """The mapping to store: ``--mapping``, or ``--template`` with ``--mapping`` as overrides."""
    try:
        given = json.loads(args.mapping) if args.mapping else None
    except json.JSONDecodeError as exc:
        raise CliError(f"--mapping is not JSON: {exc}") from None
    if args.template:
        if given is not None and not isinstance(given, dict):
            raise CliError("--mapping with --template must be an object of changes")
        try:
            mapping = template_mapping(args.template, given)
        except KeyError:
            raise CliError(f"--template: no template {args.template!r}") from None
    elif given is None:
        raise CliError("give --mapping, or --template (see 'dispatch feed templates')")
    else:
        mapping = given
    try:
        FeedMapping.from_config(mapping)
    except CadParseError as exc:
        raise CliError(f"--mapping {exc.pointer}: {exc.detail}") from None
    return mapping


async def _feed_sample(
    args: argparse.Namespace,
    mapping: dict[str, Any],
    headers: dict[str, str],
    time_zone: str,
    max_bytes: int,
) -> SampleCheck:
    try:
        tz = zone_named(time_zone)
    except UnknownTimeZone:
        raise CliError(f"the agency's time zone {time_zone!r} is unknown here") from None
    async with aiohttp.ClientSession() as http:
        try:
            return await sample_check(
                http,
                url=args.url,
                headers=headers,
                timeout_s=args.timeout_s,
                mapping=FeedMapping.from_config(mapping),
                source=f"feed:{args.name}",
                tz=tz,
                now=datetime.now(UTC),
                max_bytes=max_bytes,
            )
        except FeedFetchError as exc:
            raise CliError(
                f"could not fetch a sample of the feed: {exc} (--no-check adds it unchecked)"
            ) from None
        except CadParseError as exc:
            detail = f"{exc.pointer or '/'}: {exc.detail}"
            raise CliError(f"the feed's document is refused: {detail}") from None


async def _feed_add(settings: Settings, args: argparse.Namespace) -> None:
    mapping = _feed_mapping(args)
    if not args.url.startswith(("http://", "https://")):
        raise CliError("--url must be http:// or https://")
    if args.dry_run and args.no_check:
        raise CliError("--dry-run shows what a sample gives: it cannot go with --no-check")
    headers = {}
    for header in args.header or []:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {header!r} must look like 'Name: value'")
        headers[name.strip()] = value.strip()
    async with connection(settings) as conn:
        agency = await agency_store.policy(conn, args.agency)
        if agency is None:
            raise CliError(f"no agency {args.agency}")
        if not args.no_check:
            check = await _feed_sample(
                args, mapping, headers, agency.time_zone, settings.feed_max_bytes
            )
            if args.dry_run:
                out(json.dumps(dry_run_view(check), indent=2, ensure_ascii=False))
            if check.problems:
                reasons = "".join(f"\n  - {p}" for p in check.problems)
                raise CliError(f"the mapping does not fit the feed:{reasons}")
            for note in check.notes:
                sys.stderr.write(f"dispatch: note: {note}\n")
            if args.dry_run:
                return
        try:
            feed_id = await feed_store.create(
                conn,
                agency_id=args.agency,
                name=args.name,
                url=args.url,
                mapping=mapping,
                interval_s=args.interval_s,
                timeout_s=args.timeout_s,
                headers=headers,
            )
        except asyncpg.UniqueViolationError:
            raise CliError(f"the agency already has a feed named {args.name!r}") from None
    out(f"feed_id: {feed_id}")


async def _feed_list(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        feeds = [health_view(r) for r in await feed_store.health(conn, args.agency)]
    if args.json:
        out(json.dumps(feeds, indent=2, ensure_ascii=False))
        return
    for f in feeds:
        out(
            f"{f['name']}\t{f['status'].upper()}\tlast poll {f['last_poll_at'] or '-'}"
            f"\tlast ok {f['last_ok_at'] or '-'}\tfailures {f['consecutive_failures']}"
            f"\titems {f['items_seen'] if f['items_seen'] is not None else '-'}"
            f"\trefused {f['items_refused'] if f['items_refused'] is not None else '-'}"
            f"\t{f['url']}"
        )
        if f["last_error"]:
            out(f"  error: {f['last_error']}")
        for refused in f["refused"]:
            who = refused["incident_id"] or f"item {refused['index']}"
            out(f"  refused {who}: {refused['pointer'] or '/'}: {refused['detail']}")


async def _feed_templates(settings: Settings, args: argparse.Namespace) -> None:
    for name in TEMPLATES:
        out(f"{name}: {json.dumps(TEMPLATES[name])}")


def add_feed_parsers(verbs: Any) -> None:
    feed = verbs.add_parser("feed", help="CAD feeds polled over HTTP").add_subparsers(
        dest="action", required=True
    )
    feed_add = feed.add_parser(
        "add", help="poll a CAD's JSON list of active incidents (checked against a sample)"
    )
    feed_add.add_argument("--agency", type=UUID, required=True)
    feed_add.add_argument("--name", required=True)
    feed_add.add_argument("--url", required=True)
    feed_add.add_argument(
        "--mapping",
        help='JSON: {"items": "incidents", "fields": {"id": "ID", "call_type_code": "Type", '
        '"received_at": "Received", "lat": "Lat", "lon": "Lon"}} (see docs/feeds.md); with '
        "--template: changes to it",
    )
    feed_add.add_argument("--template", help=f"a ready mapping: {', '.join(TEMPLATES)}")
    feed_add.add_argument("--interval-s", type=float, default=30.0)
    feed_add.add_argument("--timeout-s", type=float, default=10.0)
    feed_add.add_argument("--header", action="append", help="'Name: value', repeatable")
    feed_add.add_argument(
        "--dry-run", action="store_true", help="show what the mapping gives now; store nothing"
    )
    feed_add.add_argument(
        "--no-check", action="store_true", help="store without checking a sample of the feed"
    )
    feed_list = feed.add_parser("list", help="the agency's feeds and their health")
    feed_list.add_argument("--agency", type=UUID, required=True)
    feed_list.add_argument("--json", action="store_true", help="as the API shows it")
    feed.add_parser("templates", help="the ready mappings")


FEED_VERBS: dict[
    tuple[str, str | None], Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]
] = {
    ("feed", "add"): _feed_add,
    ("feed", "list"): _feed_list,
    ("feed", "templates"): _feed_templates,
}
