"""The `coursepulse` command: migrate, serve, users, tokens, webhooks, demo data, schema,
export, import and backup."""

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy.engine import make_url

from coursepulse.logging_setup import configure_logging
from coursepulse.models import Role
from coursepulse.models.db import Database, is_unavailable
from coursepulse.models.migrate import migrate
from coursepulse.resolvers import badges, users, webhooks
from coursepulse.resolvers.errors import DomainError
from coursepulse.serve import serve_forever, serve_workers, supports_reuse_port
from coursepulse.settings import Settings
from coursepulse.transfer.records import TransferError

if TYPE_CHECKING:
    from coursepulse.transfer.export import TransferSummary

log = logging.getLogger("coursepulse")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("database_url", "host", "port", "public_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _shown(database_url: str) -> str:
    """The URL as printed: without its password."""
    return make_url(database_url).render_as_string(hide_password=True)


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """Migrate the database, then run `work` on it (disposed of afterwards)."""
    db = Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        plan_cache_mode=settings.db_plan_cache_mode,
    )
    try:
        await migrate(db.url)
        return await work(db)
    finally:
        await db.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    asyncio.run(migrate(settings.database_url))
    print(f"database is up to date: {_shown(settings.database_url)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    workers = args.workers
    if workers < 1:
        print("error (invalid_input): --workers must be 1 or more", file=sys.stderr)
        return 2
    migrate_first = False
    try:
        asyncio.run(_with_database(settings, lambda _db: asyncio.sleep(0)))
    except Exception as error:
        if not is_unavailable(error):
            raise
        # Start anyway: /readyz says 503 and the schema is migrated once the database answers.
        log.warning(
            "the database does not answer (%s: %s); serving, not ready until it does",
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
        )
        migrate_first = True
    log.info(
        "serving on http://%s:%s/graphql with %d worker(s)", settings.host, settings.port, workers
    )
    # A server's access log is written in batches (the workers set theirs up alike).
    configure_logging(
        args.log_level or settings.log_level, settings.log_format, settings.log_flush_seconds
    )
    if workers == 1:
        serve_forever(settings, migrate_first=migrate_first)
        return 0
    if not supports_reuse_port():
        print("error: --workers needs SO_REUSEPORT (Linux, BSD, macOS)", file=sys.stderr)
        return 2
    if not settings.database_url.startswith("postgresql") and settings.event_poll_seconds <= 0:
        # Without NOTIFY, a worker hears only its own writes: look at the log regularly too.
        settings = settings.model_copy(update={"event_poll_seconds": 0.5})
    return serve_workers(settings, workers, migrate_first=migrate_first)


def _read_password(given: str | None) -> str:
    """The password from the flag, else asked for on a terminal, else the first line of stdin."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\n")


def cmd_user_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    password = _read_password(args.password)

    async def work(db: Database) -> str:
        # The password is hashed before the transaction's first statement (create_user).
        async with db.write() as tx:
            user = await users.create_user(
                tx,
                username=args.username,
                password=password,
                display_name=args.display_name,
                email=args.email,
                role=Role(args.role),
            )
            return f"created {user.role} {user.username} (id {user.id})"

    print(asyncio.run(_with_database(settings, work)))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> str:
        async with db.write() as tx:
            return await users.create_token(tx, args.username, args.name)

    token = asyncio.run(_with_database(settings, work))
    print(token)
    print("Keep it safe: it is shown only this once.", file=sys.stderr)
    return 0


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


def cmd_token_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> list[str]:
        async with db.read() as tx:
            tokens = await users.tokens_of_username(tx, args.username)
        return [
            f"{token.id}\t{token.name}\tcreated {_when(token.created_at)}"
            f"\tlast used {_when(token.last_used_at)}"
            f"\t{'revoked ' + _when(token.revoked_at) if token.revoked_at else 'active'}"
            for token in tokens
        ]

    lines = asyncio.run(_with_database(settings, work))
    for line in lines:
        print(line)
    if not lines:
        print(f"{args.username} has no API tokens", file=sys.stderr)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> str:
        async with db.write() as tx:
            token = await users.revoke_token(tx, args.id)
        return f"revoked token {token.id} ({token.name}) at {_when(token.revoked_at)}"

    print(asyncio.run(_with_database(settings, work)))
    return 0


def cmd_user_role(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> str:
        async with db.write() as tx:
            user = await users.set_role(tx, args.username, Role(args.role))
        return f"{user.username} is now {user.role}"

    print(asyncio.run(_with_database(settings, work)))
    return 0


def cmd_signing_key_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> str:
        async with db.write() as tx:
            key = await badges.rotate_key(tx)
        return (
            f"new signing key {key.kid}: it signs Open Badges credentials from now on; the"
            " earlier keys stay published, so what they signed still verifies"
        )

    print(asyncio.run(_with_database(settings, work)))
    return 0


def cmd_webhooks_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> list[str]:
        async with db.read() as tx:
            rows = await webhooks.every_webhook(tx)
        return [
            f"{row.id}\t{row.url}\tcourse {row.course_id if row.course_id else 'all'}"
            f"\tevents {row.events.replace(',', ' ') if row.events else 'all'}"
            f"\tdelivered to event {row.last_event_id}"
            f"\t{'disabled ' + _when(row.disabled_at) if row.disabled_at else 'active'}"
            + (f"\t{row.failed_attempts} failed attempts" if row.failed_attempts else "")
            for row in rows
        ]

    lines = asyncio.run(_with_database(settings, work))
    for line in lines:
        print(line)
    if not lines:
        print("no webhooks", file=sys.stderr)
    return 0


def cmd_webhooks_deliveries(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(db: Database) -> list[str]:
        async with db.read() as tx:
            rows = await webhooks.deliveries_of(
                tx, args.id, webhooks.deliveries_page_size(args.limit)
            )
        return [
            f"{row.id}\tevent {row.event_id}\tattempt {row.attempt}"
            f"\t{_when(row.attempted_at)}"
            f"\t{'ok' if row.succeeded else 'failed'}"
            f"\t{row.response_status if row.response_status is not None else '-'}"
            + (f"\tnext {_when(row.next_attempt_at)}" if row.next_attempt_at else "")
            + (f"\t{row.error}" if row.error else "")
            for row in rows
        ]

    lines = asyncio.run(_with_database(settings, work))
    for line in lines:
        print(line)
    if not lines:
        print(f"webhook {args.id} has no deliveries yet", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from coursepulse.demo import load_demo

    settings = _settings(args)
    logins = asyncio.run(_with_database(settings, load_demo))
    print(f"demo data ready in {_shown(settings.database_url)}. Logins:")
    for login in logins:
        print(f"  {login.role.value:<10} {login.username:<12} password: {login.password}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from coursepulse.schema import schema_sdl

    sdl = schema_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}")
    return 0


def cmd_trusted_documents_build(args: argparse.Namespace) -> int:
    import json

    from coursepulse.schema.persisted import build_manifest

    operations = Path(args.operations)
    manifest = build_manifest(operations)
    if not manifest:
        print(f"error (invalid_input): no *.graphql documents in {operations}", file=sys.stderr)
        return 2
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(manifest)} trusted documents to {args.output}")
    return 0


def _transfer_summary(summary: "TransferSummary") -> str:
    tables = ", ".join(f"{name} {count}" for name, count in summary.counts.items() if count)
    return f"{summary.rows} rows ({tables or 'none'})"


def cmd_export(args: argparse.Namespace) -> int:
    from coursepulse.transfer.export import export_school

    settings = _settings(args)
    summary = asyncio.run(export_school(settings.database_url, args.file))
    where = "standard output" if args.file == "-" else args.file
    print(f"exported {_transfer_summary(summary)} to {where}", file=_report_stream(args.file))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from coursepulse.transfer.load import import_school

    settings = _settings(args)
    asyncio.run(migrate(settings.database_url))
    summary = asyncio.run(import_school(settings.database_url, args.file, replace=args.replace))
    print(f"imported {_transfer_summary(summary)} into {_shown(settings.database_url)}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from coursepulse.transfer.backup import backup_sqlite

    settings = _settings(args)
    summary = backup_sqlite(settings.database_url, args.file, overwrite=args.overwrite)
    print(f"backed up {_shown(settings.database_url)} to {summary.path} ({summary.bytes} bytes)")
    return 0


def _report_stream(target: str) -> TextIO:
    """Where a command reports: stderr when its data goes to stdout."""
    return sys.stderr if target == "-" else sys.stdout


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (env COURSEPULSE_DATABASE_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coursepulse", description="Course-progress GraphQL service."
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (env COURSEPULSE_LOG_LEVEL)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    migrate_cmd = commands.add_parser("migrate", help="bring the database schema up to date")
    _database_options(migrate_cmd)
    migrate_cmd.set_defaults(func=cmd_migrate)

    serve = commands.add_parser("serve", help="migrate, then serve /graphql, /healthz, /readyz")
    _database_options(serve)
    serve.add_argument("--host", help="interface to bind (env COURSEPULSE_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (env COURSEPULSE_PORT)")
    serve.add_argument("--public-url", help="base URL clients use (env COURSEPULSE_PUBLIC_URL)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (SO_REUSEPORT); use PostgreSQL for several",
    )
    serve.set_defaults(func=cmd_serve)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True
    )
    user_create = user.add_parser("create", help="create a user")
    _database_options(user_create)
    user_create.add_argument("username")
    user_create.add_argument(
        "--password",
        help="the password (prefer leaving it out: it is then asked for, or read from stdin)",
    )
    user_create.add_argument("--role", choices=[role.value for role in Role], default="student")
    user_create.add_argument("--display-name")
    user_create.add_argument("--email")
    user_create.set_defaults(func=cmd_user_create)
    user_role = user.add_parser(
        "role", help="give a user another role (their open sessions are signed in again)"
    )
    _database_options(user_role)
    user_role.add_argument("username")
    user_role.add_argument("role", choices=[role.value for role in Role])
    user_role.set_defaults(func=cmd_user_role)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True
    )
    token_create = token.add_parser("create", help="create an API token and print it once")
    _database_options(token_create)
    token_create.add_argument("username")
    token_create.add_argument("--name", default="cli", help="what the token is for")
    token_create.set_defaults(func=cmd_token_create)
    token_list = token.add_parser(
        "list", help="list a user's API tokens (id, name, created, last used, revoked)"
    )
    _database_options(token_list)
    token_list.add_argument("username")
    token_list.set_defaults(func=cmd_token_list)
    token_revoke = token.add_parser(
        "revoke", help="revoke an API token by id: it stops working at once, everywhere"
    )
    _database_options(token_revoke)
    token_revoke.add_argument("id", type=int)
    token_revoke.set_defaults(func=cmd_token_revoke)

    signing_key = commands.add_parser(
        "signing-key", help="the key that signs Open Badges credentials"
    ).add_subparsers(dest="signing_key_command", required=True)
    rotate = signing_key.add_parser(
        "rotate", help="sign with a new key from now on (earlier keys stay published)"
    )
    _database_options(rotate)
    rotate.set_defaults(func=cmd_signing_key_rotate)

    hooks = commands.add_parser(
        "webhooks", help="the webhooks and their deliveries"
    ).add_subparsers(dest="webhooks_command", required=True)
    hooks_list = hooks.add_parser(
        "list", help="every webhook (id, url, course, events, how far delivered, state)"
    )
    _database_options(hooks_list)
    hooks_list.set_defaults(func=cmd_webhooks_list)
    hooks_deliveries = hooks.add_parser(
        "deliveries", help="a webhook's newest delivery attempts (status, error, next retry)"
    )
    _database_options(hooks_deliveries)
    hooks_deliveries.add_argument("id", type=int)
    hooks_deliveries.add_argument("--limit", type=int, default=20, help="how many (at most 100)")
    hooks_deliveries.set_defaults(func=cmd_webhooks_deliveries)

    demo = commands.add_parser("demo", help="load the demo catalogue and users (idempotent)")
    _database_options(demo)
    demo.set_defaults(func=cmd_demo)

    export_cmd = commands.add_parser(
        "export",
        help="write the whole school (one consistent snapshot) to a JSON Lines file",
        description="Write every user, course, enrolment, completion, event, certificate and"
        " webhook, with their ids, to FILE (JSON Lines; gzip when FILE ends in .gz; - for"
        " stdout). The service may keep running.",
    )
    _database_options(export_cmd)
    export_cmd.add_argument("file", help="the file to write (.gz: compressed; -: stdout)")
    export_cmd.set_defaults(func=cmd_export)

    import_cmd = commands.add_parser(
        "import",
        help="load a school written by `coursepulse export` into an empty database",
        description="Load FILE into the database (SQLite or PostgreSQL), keeping every id,"
        " all or nothing. The database is migrated first and must be empty.",
    )
    _database_options(import_cmd)
    import_cmd.add_argument("file", help="the export to load (.gz: compressed; -: stdin)")
    import_cmd.add_argument(
        "--replace",
        action="store_true",
        help="delete what the database holds first (in the same transaction)",
    )
    import_cmd.set_defaults(func=cmd_import)

    backup_cmd = commands.add_parser(
        "backup",
        help="copy the SQLite database to FILE while the service runs (consistent, checked)",
    )
    _database_options(backup_cmd)
    backup_cmd.add_argument("file", help="the copy to write")
    backup_cmd.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    backup_cmd.set_defaults(func=cmd_backup)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default="graphql/schema.graphql", help="file, or - for stdout")
    export.set_defaults(func=cmd_export_schema)

    trusted = commands.add_parser(
        "trusted-documents", help="the manifest of documents allowed in trusted mode"
    ).add_subparsers(dest="trusted_command", required=True)
    trusted_build = trusted.add_parser(
        "build", help="write {sha256: document} for graphql/operations/*.graphql"
    )
    trusted_build.add_argument(
        "--operations", default="graphql/operations", help="folder of *.graphql documents"
    )
    trusted_build.add_argument(
        "--output", default="-", help="file for COURSEPULSE_TRUSTED_DOCUMENTS, or - for stdout"
    )
    trusted_build.set_defaults(func=cmd_trusted_documents_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level or Settings().log_level, Settings().log_format)
    try:
        return int(args.func(args))
    except DomainError as error:
        print(f"error ({error.code}): {error.message}", file=sys.stderr)
        return 2
    except TransferError as error:
        print(f"error (invalid_input): {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
