"""The ``dispatch`` command: ``serve``, ``migrate`` and admin verbs over the same service layer."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog
from aiohttp import web

from dispatch.allocator import fix_mmap_threshold
from dispatch.cli_feeds import FEED_VERBS, add_feed_parsers
from dispatch.cli_support import CliError
from dispatch.cli_support import connection as _connection
from dispatch.cli_support import out as _out
from dispatch.config import ConfigError, Settings, load_settings
from dispatch.db.types import Conn
from dispatch.domain.aed_import import parse_csv as parse_aed_csv
from dispatch.domain.aed_import import parse_geojson as parse_aed_geojson
from dispatch.domain.field_error import FieldError
from dispatch.logging_setup import configure_logging
from dispatch.service import admin
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import audit
from dispatch.web.body import contract_error

log = structlog.get_logger("dispatch.cli")


def _json(option: str, raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not JSON: {exc}") from None


def _document(option: str, raw: str | None, schema: str, *, given: Any = None) -> Any:
    """A JSON option, held to the same contract as the API's body (same refusals)."""
    document = _json(option, raw) if given is None else given
    error = contract_error(schema, document)
    if error is not None:
        raise CliError(f"{option} {error.pointer or '/'}: {error.detail}")
    return document


@asynccontextmanager
async def _admin(settings: Settings, option: str) -> AsyncIterator[tuple[Conn, datetime]]:
    """A connection and the time for one admin use case; its refusals as CLI errors."""
    async with _connection(settings) as conn:
        try:
            yield conn, datetime.now(UTC)
        except FieldError as exc:
            raise CliError(f"{option} {exc.pointer or '/'}: {exc.detail}") from None
        except admin.NotFound as exc:
            raise CliError(str(exc)) from None


async def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings):
        _out("schema up to date")


async def _agency_create(settings: Settings, args: argparse.Namespace) -> None:
    async with _admin(settings, "--radius-m/--limit") as (conn, _):
        agency_id, key = await admin.create_agency(
            conn, name=args.name, radius_m=args.radius_m, limit=args.limit
        )
    _out(f"agency_id: {agency_id}")
    _out(f"integration_key: {key}")
    _out("The key is shown once; only its hash is stored.")


async def _agency_key_add(settings: Settings, args: argparse.Namespace) -> None:
    async with _admin(settings, "--agency") as (conn, now):
        key_id, key = await admin.add_key(
            conn, args.agency, label=args.label, actor=audit.CLI, now=now
        )
    _out(f"key_id: {key_id}")
    _out(f"integration_key: {key}")
    _out("Both live keys work until one is revoked; the key is shown once.")


async def _agency_key_list(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn:
        for key in await agency_store.list_keys(conn, args.agency):
            state = f"revoked {key['revoked_at']:%Y-%m-%d}" if key["revoked_at"] else "live"
            _out(f"{key['id']}\t{state}\t{key['created_at']:%Y-%m-%d %H:%M}\t{key['label'] or ''}")


async def _agency_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    # A server in another process stops accepting the key when its cache entry expires
    # (AgencyAuthCache.ttl_s, 2 s): see dispatch.service.admin.
    async with _admin(settings, "--key-id") as (conn, now):
        await admin.revoke_key(
            conn, args.agency, args.key_id, actor=audit.CLI, now=now, followers=admin.NO_FOLLOWERS
        )
    _out(f"revoked: {args.key_id}")


async def _agency_configure(settings: Settings, args: argparse.Namespace) -> None:
    data = _json("--settings", args.settings)
    if args.cap_signing_cert is not None and isinstance(data, dict):
        try:
            data["cap_signing_cert"] = await asyncio.to_thread(
                Path(args.cap_signing_cert).read_text, encoding="ascii"
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--cap-signing-cert cannot be read: {exc}") from None
    # Checked with the certificate in: --cap-signing-cert alone is a whole change.
    data = _document("--settings", None, "AgencySettingsChange", given=data)
    async with _admin(settings, "--settings") as (conn, now):
        current = await admin.change_settings(
            conn, args.agency, data, actor=audit.CLI, now=now, followers=admin.NO_FOLLOWERS
        )
    _out(json.dumps(current, indent=2, default=str))


async def _agency_delivery(settings: Settings, args: argparse.Namespace) -> None:
    data = _document("--settings", args.settings, "DeliverySettingsChange")
    async with _admin(settings, "--settings") as (conn, now):
        current = await admin.change_delivery_settings(
            conn, args.agency, data, actor=audit.CLI, now=now
        )
    _out(json.dumps(current, indent=2))


async def _aed_import(settings: Settings, args: argparse.Namespace) -> None:
    text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8-sig")
    try:
        if args.file.endswith((".geojson", ".json")):
            records = parse_aed_geojson(json.loads(text))
        else:
            records = parse_aed_csv(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{args.file} is not JSON: {exc}") from None
    except FieldError as exc:
        raise CliError(f"{args.file} {exc.pointer}: {exc.detail}") from None
    async with _connection(settings) as conn:
        count = await aed_store.import_records(conn, args.agency, records, datetime.now(UTC))
    _out(f"imported: {count}")


async def _agency_policy(settings: Settings, args: argparse.Namespace) -> None:
    async with _admin(settings, "--set") as (conn, now):
        if args.set:
            document = _document("--set", args.set, "PolicyDocument")
            current = await admin.store_policy(
                conn, args.agency, document, actor=audit.CLI, now=now, followers=admin.NO_FOLLOWERS
            )
            _out(f"policy_version: {current.version}")
        else:
            current = await admin.current_policy(conn, args.agency)
    _out(json.dumps(admin.policy_view(current), indent=2))


async def _supervisor_create(settings: Settings, args: argparse.Namespace) -> None:
    async with _admin(settings, "--agency") as (conn, now):
        supervisor_id, token = await admin.create_supervisor(
            conn, args.agency, name=args.name, actor=audit.CLI, now=now
        )
    _out(f"supervisor_id: {supervisor_id}")
    _out(f"token: {token}")


async def _volunteer_create(settings: Settings, args: argparse.Namespace) -> None:
    identity = {"display_name": args.name, "language": args.language}
    if args.phone is not None:
        identity["phone_e164"] = args.phone
    extra = _json("--settings", args.settings)
    if not isinstance(extra, dict):
        raise CliError("--settings /: must be an object")
    document = _document("--settings", None, "NewVolunteer", given={**identity, **extra})
    async with _admin(settings, "--settings") as (conn, now):
        volunteer_id, token = await admin.create_volunteer(
            conn, args.agency, document, actor=audit.CLI, now=now
        )
    _out(f"volunteer_id: {volunteer_id}")
    _out(f"token: {token}")


async def _volunteer_set(settings: Settings, args: argparse.Namespace) -> None:
    document = _document("--settings", args.settings, "VolunteerSettingsChange")
    async with _admin(settings, "--settings") as (conn, now):
        current = await admin.change_volunteer(
            conn,
            args.agency,
            args.id,
            document,
            actor=audit.CLI,
            now=now,
            followers=admin.NO_FOLLOWERS,
        )
    _out(json.dumps(current, indent=2, default=str))


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from dispatch.web.app import create_app, freeze_startup_heap

    settings = settings.with_overrides(
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
    )
    # A long-running server: keep glibc's heap from holding on to freed memory.
    fix_mmap_threshold()
    app = create_app(settings)
    if args.demo:
        from dispatch.demo import demo_ctx

        app.cleanup_ctx.insert(len(app.cleanup_ctx) - 1, demo_ctx)
    app.on_startup.append(freeze_startup_heap)  # after every resource has started
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_grace_s,
        access_log=None,
        print=lambda message: log.info("http_listening", detail=message.strip()),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatch", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    serve = verbs.add_parser("serve", help="run the HTTP API and workers")
    serve.add_argument("--host", help="listen address (env DISPATCH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env DISPATCH_PORT, default 8080)")
    serve.add_argument(
        "--demo", action="store_true", help="create demo data and print a curl to try"
    )

    verbs.add_parser("migrate", help="apply database migrations and exit")

    agency = verbs.add_parser("agency", help="manage agencies").add_subparsers(
        dest="action", required=True
    )
    create = agency.add_parser("create", help="create an agency and print its integration key")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--radius-m", type=float, help="first wave's radius in metres, in policy version 1 (500)"
    )
    create.add_argument(
        "--limit", type=int, help="first wave's volunteers, in policy version 1 (default 7)"
    )
    configure = agency.add_parser(
        "configure",
        help="change settings: limits, time zone, call-type and place rules,"
        " the pinned CAP signing certificate",
    )
    configure.add_argument("--agency", type=UUID, required=True)
    configure.add_argument(
        "--settings",
        help='JSON, e.g. \'{"time_zone": "Europe/Amsterdam", "alert_ttl_s": 900}\'',
    )
    configure.add_argument(
        "--cap-signing-cert",
        metavar="PEM_FILE",
        help="pin the certificate CAP alerts must be signed with"
        " (unpin with --settings '{\"cap_signing_cert\": null}')",
    )
    delivery = agency.add_parser(
        "delivery", help="change the delivery chain's windows (push receipt, next channel)"
    )
    delivery.add_argument("--agency", type=UUID, required=True)
    delivery.add_argument(
        "--settings",
        required=True,
        help='JSON, e.g. \'{"push_ack_timeout_s": 15, "next_channel_after_s": 45}\'',
    )
    key_add = agency.add_parser("key-add", help="add a second live key (for rotation)")
    key_add.add_argument("--agency", type=UUID, required=True)
    key_add.add_argument("--label")
    key_list = agency.add_parser("key-list", help="list the agency's keys (never the secrets)")
    key_list.add_argument("--agency", type=UUID, required=True)
    key_revoke = agency.add_parser("key-revoke", help="revoke a key by its id")
    key_revoke.add_argument("--agency", type=UUID, required=True)
    key_revoke.add_argument("--key-id", type=int, required=True)

    supervisor = verbs.add_parser("supervisor", help="manage supervisors").add_subparsers(
        dest="action", required=True
    )
    create = supervisor.add_parser("create", help="create a supervisor and print the token")
    create.add_argument("--agency", type=UUID, required=True)
    create.add_argument("--name", required=True)

    add_feed_parsers(verbs)

    aed = verbs.add_parser("aed", help="the AED registry").add_subparsers(
        dest="action", required=True
    )
    aed_import = aed.add_parser("import", help="add or update AEDs from a CSV or GeoJSON file")
    aed_import.add_argument("--agency", type=UUID, required=True)
    aed_import.add_argument("file", help="*.csv, or *.geojson / *.json (FeatureCollection)")

    policy = agency.add_parser("policy", help="show, or store a new version of, the alert policy")
    policy.add_argument("--agency", type=UUID, required=True)
    policy.add_argument("--set", help='JSON, e.g. \'{"target_accepted": 2, "waves": [...]}\'')

    volunteer = verbs.add_parser("volunteer", help="manage volunteers").add_subparsers(
        dest="action", required=True
    )
    create = volunteer.add_parser("create", help="create a volunteer and print the token")
    create.add_argument("--agency", type=UUID, required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--phone", help="E.164, e.g. +31612345678")
    create.add_argument("--language", default="en")
    settings_help = (
        'JSON, e.g. \'{"tier": "professional", "certified_until": "2027-06-30T00:00:00Z",'
        ' "quiet_from": "23:00", "quiet_until": "07:00", "daily_budget": 3}\''
    )
    create.add_argument("--settings", help=settings_help)
    change = volunteer.add_parser("set", help="change a volunteer's eligibility settings")
    change.add_argument("--agency", type=UUID, required=True)
    change.add_argument("--id", type=int, required=True)
    change.add_argument("--settings", required=True, help=settings_help)

    from dispatch.simulate.cli import add_arguments as simulate_arguments

    simulate_arguments(
        verbs.add_parser(
            "simulate", help="replay calls against a volunteer population (no server needed)"
        )
    )
    return parser


_ASYNC_VERBS: dict[
    tuple[str, str | None], Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]
] = {
    ("migrate", None): _migrate,
    ("agency", "create"): _agency_create,
    ("agency", "configure"): _agency_configure,
    ("agency", "delivery"): _agency_delivery,
    ("agency", "key-add"): _agency_key_add,
    ("agency", "key-list"): _agency_key_list,
    ("agency", "key-revoke"): _agency_key_revoke,
    ("supervisor", "create"): _supervisor_create,
    **FEED_VERBS,
    ("aed", "import"): _aed_import,
    ("agency", "policy"): _agency_policy,
    ("volunteer", "create"): _volunteer_create,
    ("volunteer", "set"): _volunteer_set,
}


async def run_admin_verb(settings: Settings, argv: Sequence[str]) -> None:
    """One admin verb in the running event loop; a refusal is a ``CliError``."""
    args = _parser().parse_args(argv)
    await _ASYNC_VERBS[(args.verb, getattr(args, "action", None))](settings, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "simulate":
        from dispatch.simulate.cli import main as simulate

        return simulate(args)
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"dispatch: {exc}\n")
        return 2
    if args.verb == "serve":
        _serve(settings, args)
        return 0
    configure_logging(log_format=settings.log_format, level="warning", stream=sys.stderr)
    command = _ASYNC_VERBS[(args.verb, getattr(args, "action", None))]
    try:
        asyncio.run(command(settings, args))
    except (CliError, agency_store.TooManyKeys, LookupError) as exc:
        sys.stderr.write(f"dispatch: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
