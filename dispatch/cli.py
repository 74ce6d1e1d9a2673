"""The ``dispatch`` command: ``serve``, ``migrate`` and admin verbs over the same service layer."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
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
from dispatch.domain.aed_import import AedImportError
from dispatch.domain.aed_import import parse_csv as parse_aed_csv
from dispatch.domain.aed_import import parse_geojson as parse_aed_geojson
from dispatch.domain.agency_settings import SettingsError, validate_settings
from dispatch.domain.policy import PolicyError, policy_from_json
from dispatch.domain.volunteer_settings import validate_identity, validate_volunteer_settings
from dispatch.logging_setup import configure_logging
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import audit
from dispatch.store import volunteers as volunteer_store

log = structlog.get_logger("dispatch.cli")


async def _audit(
    conn: Any,
    agency_id: UUID,
    action: str,
    target_type: str,
    target_id: object,
    after: dict[str, Any] | None = None,
    *,
    before: dict[str, Any] | None = None,
) -> None:
    """An operator's action at the command line, in the audit log as ``cli``."""
    await audit.record(
        conn,
        agency_id=agency_id,
        actor=audit.CLI,
        action=action,
        target_type=target_type,
        target_id=target_id,
        at=datetime.now(UTC),
        before=before,
        after=after,
    )


async def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings):
        _out("schema up to date")


async def _agency_create(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn:
        agency_id, key = await agency_store.create_agency(
            conn, name=args.name, radius_m=args.radius_m, limit=args.limit
        )
    _out(f"agency_id: {agency_id}")
    _out(f"integration_key: {key}")
    _out("The key is shown once; only its hash is stored.")


async def _agency_key_add(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn, conn.transaction():
        key_id, key = await agency_store.add_key(
            conn, args.agency, label=args.label, now=datetime.now(UTC)
        )
        await _audit(conn, args.agency, "key_issued", "agency_key", key_id, {"label": args.label})
    _out(f"key_id: {key_id}")
    _out(f"integration_key: {key}")
    _out("Both live keys work until one is revoked; the key is shown once.")


async def _agency_key_list(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn:
        for key in await agency_store.list_keys(conn, args.agency):
            state = f"revoked {key['revoked_at']:%Y-%m-%d}" if key["revoked_at"] else "live"
            _out(f"{key['id']}\t{state}\t{key['created_at']:%Y-%m-%d %H:%M}\t{key['label'] or ''}")


async def _agency_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn, conn.transaction():
        revoked = await agency_store.revoke_key(
            conn, args.agency, args.key_id, now=datetime.now(UTC)
        )
        if revoked:
            await _audit(conn, args.agency, "key_revoked", "agency_key", args.key_id)
    if not revoked:
        raise CliError(f"no live key {args.key_id} for agency {args.agency}")
    _out(f"revoked: {args.key_id}")


async def _agency_configure(settings: Settings, args: argparse.Namespace) -> None:
    try:
        data = json.loads(args.settings) if args.settings is not None else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--settings is not JSON: {exc}") from None
    if args.cap_signing_cert is not None and isinstance(data, dict):
        try:
            data["cap_signing_cert"] = await asyncio.to_thread(
                Path(args.cap_signing_cert).read_text, encoding="ascii"
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--cap-signing-cert cannot be read: {exc}") from None
    try:
        changes = validate_settings(data)
    except SettingsError as exc:
        raise CliError(f"--settings {exc.pointer or '/'}: {exc.detail}") from None
    async with _connection(settings) as conn:
        await agency_store.update_settings(conn, args.agency, changes)
        current = await agency_store.settings(conn, args.agency)
    _out(json.dumps(current, indent=2, default=str))


async def _aed_import(settings: Settings, args: argparse.Namespace) -> None:
    text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8-sig")
    try:
        if args.file.endswith((".geojson", ".json")):
            records = parse_aed_geojson(json.loads(text))
        else:
            records = parse_aed_csv(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{args.file} is not JSON: {exc}") from None
    except AedImportError as exc:
        raise CliError(f"{args.file} {exc.pointer}: {exc.detail}") from None
    async with _connection(settings) as conn:
        count = await aed_store.import_records(conn, args.agency, records, datetime.now(UTC))
    _out(f"imported: {count}")


async def _agency_policy(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn:
        if args.set:
            try:
                policy = policy_from_json(json.loads(args.set))
            except json.JSONDecodeError as exc:
                raise CliError(f"--set is not JSON: {exc}") from None
            except PolicyError as exc:
                raise CliError(f"--set {exc.pointer or '/'}: {exc.detail}") from None
            version = await agency_store.store_alert_policy(conn, args.agency, policy)
            _out(f"policy_version: {version}")
        agency = await agency_store.policy(conn, args.agency)
    if agency is None:
        raise CliError(f"no agency {args.agency}")
    current = agency.alert_policy
    _out(json.dumps({"version": current.version, **current.to_json()}, indent=2))


async def _supervisor_create(settings: Settings, args: argparse.Namespace) -> None:
    async with _connection(settings) as conn, conn.transaction():
        supervisor_id, token = await agency_store.create_supervisor(
            conn, agency_id=args.agency, name=args.name
        )
        await _audit(conn, args.agency, "supervisor_token_issued", "supervisor", supervisor_id)
    _out(f"supervisor_id: {supervisor_id}")
    _out(f"token: {token}")


def _volunteer_settings(raw: str | None) -> dict[str, object]:
    if not raw:
        return {}
    try:
        return validate_volunteer_settings(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise CliError(f"--settings is not JSON: {exc}") from None
    except SettingsError as exc:
        raise CliError(f"--settings {exc.pointer or '/'}: {exc.detail}") from None


async def _volunteer_create(settings: Settings, args: argparse.Namespace) -> None:
    values = _volunteer_settings(args.settings)
    try:
        identity = validate_identity(
            {"display_name": args.name, "phone_e164": args.phone, "language": args.language}
        )
    except SettingsError as exc:
        raise CliError(f"{exc.pointer.lstrip('/')}: {exc.detail}") from None
    async with _connection(settings) as conn, conn.transaction():
        volunteer_id, token = await volunteer_store.create_volunteer(
            conn,
            agency_id=args.agency,
            display_name=identity.display_name,
            phone_e164=identity.phone_e164,
            language=identity.language,
            settings=values,
        )
        await _audit(conn, args.agency, "volunteer_created", "volunteer", volunteer_id, values)
        await _audit(conn, args.agency, "volunteer_token_issued", "volunteer", volunteer_id)
    _out(f"volunteer_id: {volunteer_id}")
    _out(f"token: {token}")


async def _volunteer_set(settings: Settings, args: argparse.Namespace) -> None:
    values = _volunteer_settings(args.settings)
    if not values:
        raise CliError("--settings names nothing to change")
    async with _connection(settings) as conn, conn.transaction():
        before = await volunteer_store.settings_of(conn, args.agency, args.id)
        if before is None or not await volunteer_store.update_settings(
            conn, args.agency, args.id, values
        ):
            raise CliError(f"no volunteer {args.id} in agency {args.agency}")
        current = await volunteer_store.settings_of(conn, args.agency, args.id)
        assert current is not None
        if not current["on_duty"]:
            await volunteer_store.delete_position(conn, args.id)
        await _audit(
            conn,
            args.agency,
            "volunteer_changed",
            "volunteer",
            args.id,
            {k: current[k] for k in values},
            before={k: before[k] for k in values},
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
    create.add_argument("--radius-m", type=float, help="alert radius in metres (default 500)")
    create.add_argument("--limit", type=int, help="volunteers alerted per incident (default 7)")
    configure = agency.add_parser(
        "configure",
        help="change settings: radius, limits, time zone, call-type and place rules,"
        " the pinned CAP signing certificate",
    )
    configure.add_argument("--agency", type=UUID, required=True)
    configure.add_argument(
        "--settings",
        help='JSON, e.g. \'{"time_zone": "Europe/Amsterdam", "alert_radius_m": 800}\'',
    )
    configure.add_argument(
        "--cap-signing-cert",
        metavar="PEM_FILE",
        help="pin the certificate CAP alerts must be signed with"
        " (unpin with --settings '{\"cap_signing_cert\": null}')",
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
