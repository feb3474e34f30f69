"""The ``chatcore`` command: serve, consume, migrate, token."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from uuid import UUID

from entrypoints.logs import configure_logging, get_logger
from entrypoints.settings import DEFAULTS_LOGGED_ENV, ConfigError, Settings, load_settings

__all__ = ["main"]


def _settings() -> Settings:
    try:
        return load_settings(os.environ)
    except ConfigError as exc:
        print(f"chatcore: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _embedded_database(settings: Settings) -> str:
    from adapters.postgres import migrate, start_embedded  # noqa: PLC0415

    url = start_embedded(settings.data_dir)
    asyncio.run(migrate(url, settings.db_schema))
    return url


SCHEMA_CHECK_TIMEOUT = 10.0
"""Seconds the start-up check of an external database's schema waits for an answer."""


def _check_schema(settings: Settings) -> None:
    """Refuse to start on an external database that lacks this release's migrations
    (every request would fail); start anyway when it cannot be reached now: the service
    recovers by itself once it can, and ``/health/ready`` answers 503 until then."""
    from adapters.postgres import missing_migrations  # noqa: PLC0415

    url, schema = settings.database_url, settings.db_schema
    assert url is not None
    try:
        current, missing = asyncio.run(
            asyncio.wait_for(missing_migrations(url, schema), SCHEMA_CHECK_TIMEOUT)
        )
    except Exception as exc:  # out of reach now; readiness tells when it is back
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        get_logger("chatcore.cli").warning(
            "database schema not checked: the database did not answer", error=first
        )
        return
    if missing:
        state = "was never migrated" if current is None else f"is at revision {current}"
        print(
            f"chatcore: configuration error: DATABASE_URL names a database whose schema "
            f"{schema!r} {state}; this release needs revision {missing[-1]}: run "
            "`chatcore migrate` first",
            file=sys.stderr,
        )
        raise SystemExit(2)


def _stop_embedded_before_dying(settings: Settings) -> None:
    """Stop the embedded PostgreSQL when a SIGTERM ends the process.

    After a graceful shutdown the server re-raises the SIGTERM it caught, to end as
    killed by it (what process supervisors expect); the default action skips ``atexit``,
    where the embedded PostgreSQL would be stopped, and would leave it running with this
    process still counted as its user, so no later exit would stop it either. This
    handler, which the server restores before re-raising, stops it first.
    """
    from adapters.postgres import stop_embedded  # noqa: PLC0415 - only with the embedded one

    def stop_then_die(signum: int, _: FrameType | None) -> None:
        stop_embedded(settings.data_dir)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, stop_then_die)


def _serve(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("chatcore.cli")
    for name, using in settings.explain_defaults().items():
        log.info("default in use", variable=name, using=using)
    if settings.database_url is None:
        # Started here, once, so that every server worker shares the same database.
        os.environ["DATABASE_URL"] = _embedded_database(settings)
        _stop_embedded_before_dying(settings)
    else:
        _check_schema(settings)
    os.environ[DEFAULTS_LOGGED_ENV] = "1"  # the workers need not repeat the lines above
    from entrypoints.auth import resolve_jwt_secret  # noqa: PLC0415

    resolve_jwt_secret(settings.jwt_secret, settings.data_dir)  # generate before workers race
    from entrypoints.server import run_server  # noqa: PLC0415

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    log.info("serving", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/schema/swagger")
    run_server(host=host, port=port, workers=args.workers, log_level=settings.log_level)
    return 0


def _consume(_: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    from entrypoints.consumer import consumer_config, run_consumer  # noqa: PLC0415

    try:
        config = consumer_config(settings)
    except ConfigError as exc:
        print(f"chatcore: {exc}", file=sys.stderr)
        return 2
    if settings.database_url is not None:
        _check_schema(settings)
    get_logger("chatcore.cli").info(
        "consuming",
        exchange=config.exchange,
        queue=config.queue,
        routing_keys=",".join(config.routing_keys),
        dead_letter_queue=f"{config.queue}.dlq",
    )
    try:
        asyncio.run(run_consumer(settings, config=config))
    except ConfigError as exc:
        print(f"chatcore: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(_: argparse.Namespace) -> int:
    settings = _settings()
    # The demo prints the journey; the log would only interleave with it.
    configure_logging("warning", settings.log_format)
    from entrypoints.demo import run_demo  # noqa: PLC0415

    if settings.database_url is None:
        os.environ["DATABASE_URL"] = _embedded_database(settings)
        settings = _settings()
    return asyncio.run(run_demo(settings))


def _migrate(_: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    from adapters.postgres import migrate  # noqa: PLC0415

    if settings.database_url is None:
        _embedded_database(settings)
        where = f"embedded database in {settings.data_dir / 'pgdata'}"
    else:
        asyncio.run(migrate(settings.database_url, settings.db_schema))
        where = "DATABASE_URL"
    print(f"migrated schema {settings.db_schema!r} of the {where} to the latest version")
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = _settings()
    from entrypoints.auth import issue_token, resolve_jwt_secret  # noqa: PLC0415

    try:
        user_id = UUID(args.user_id)
    except ValueError:
        print("chatcore: --user-id must be a UUID", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("chatcore: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    secret, _ = resolve_jwt_secret(settings.jwt_secret, settings.data_dir)
    print(
        issue_token(
            secret=secret,
            user_id=user_id,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=args.ttl,
            admin=args.admin,
            email=args.email,
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatcore",
        description="chatcore: the AI career-advisor chat service. "
        "Configuration comes from environment variables (see the README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server worker processes")
    serve.set_defaults(run=_serve)

    consume = sub.add_parser("consume", help="run the RabbitMQ consumer of analysis events")
    consume.set_defaults(run=_consume)

    demo = sub.add_parser(
        "demo", help="the whole assessment journey in one process, printed to the terminal"
    )
    demo.set_defaults(run=_demo)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    token = sub.add_parser("token", help="print a JWT signed with the configured secret")
    token.add_argument("--user-id", required=True, help="the user's UUID")
    token.add_argument("--admin", action="store_true", help="an admin token")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--email", help="optional email claim")
    token.set_defaults(run=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
