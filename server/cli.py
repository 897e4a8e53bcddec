"""The `tapzone` command: builds a Config, then calls into the app or a library."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.config import Config
from server.errors import CliError, ServiceError
from server.schema import MAX_PID

if TYPE_CHECKING:
    from server.store.base import Store


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _pid(text: str) -> int:
    """A project id as the wire format allows it (server.schema.Pid)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PID:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_PID}, got {text!r}")
    return value


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", help="SQLite database path (default ./data/tapzone.db, env TAPZONE_DB)"
    )
    parser.add_argument(
        "--database-url",
        help="postgresql://… URL to use PostgreSQL instead of SQLite (env TAPZONE_DATABASE_URL)",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tapzone", description="Self-hosted backend for a mobile analytics SDK.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=_positive_int, help="listen port (default 8080)")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        help="server processes sharing the port (default: one per CPU core, env TAPZONE_WORKERS)",
    )
    _store_options(serve)

    project = commands.add_parser("project", help="manage projects")
    project_commands = project.add_subparsers(dest="project_command", required=True)
    add = project_commands.add_parser("add", help="create a project and print its keys")
    add.add_argument("name")
    add.add_argument("--pid", type=_pid, help="project id (default: the next free one)")
    add.add_argument("--batch-size", type=_positive_int, default=50, help="SDK batch size")
    _store_options(add)
    listing = project_commands.add_parser("list", help="list projects with their keys")
    _store_options(listing)

    classify = commands.add_parser("classify", help="classify raw touch strokes offline")
    classify.add_argument("input", help="touch log: .csv or .jsonl, optionally .gz")
    classify.add_argument("--output", help="output CSV path (default stdout)")
    classify.add_argument("--density", type=float, help="px per dp when the input has none")
    classify.add_argument("--format", choices=("csv", "jsonl"), help="input format")

    zoning = commands.add_parser("zoning", help="per-element metrics of one screen (SPEC §7)")
    zoning.add_argument("--pid", type=_pid, required=True, help="project id")
    zoning.add_argument("--screen", required=True, help="screen name")
    zoning.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="first UTC day")
    zoning.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="last UTC day")
    zoning.add_argument("--av", help="only this app version")
    zoning.add_argument("--dt", metavar="N", help="only this device type (4 phone, 5 tablet)")
    zoning.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    _store_options(zoning)
    return parser


def _config(args: argparse.Namespace) -> Config:
    try:
        config = Config.from_env(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            db=getattr(args, "db", None),
            database_url=getattr(args, "database_url", None),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return config


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "classify":
        from server.offline import run_classify

        return run_classify(args.input, args.output, args.density, args.format)
    config = _config(args)
    if args.command == "serve":
        from server.serve import serve

        logging.basicConfig(
            level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return serve(config)
    if args.command == "project":
        return asyncio.run(_project(args, config))
    if args.command == "zoning":
        return asyncio.run(_zoning(args, config))
    raise CliError(f"unknown command {args.command!r}")


async def _open_store(config: Config) -> Store:
    from server.store import make_store

    try:
        store = make_store(config)
        await store.open()
    except (ValueError, OSError) as exc:
        raise CliError(f"cannot open the store: {exc}") from None
    return store


async def _project(args: argparse.Namespace, config: Config) -> int:
    from server.store.base import ProjectExists

    store = await _open_store(config)
    try:
        if args.project_command == "add":
            if not args.name.strip():
                raise CliError("the project name must not be empty")
            try:
                project = await store.create_project(
                    args.name, pid=args.pid, batch_size=args.batch_size
                )
            except ProjectExists as exc:
                raise CliError(str(exc)) from None
            except sqlite3.Error as exc:  # a read-only file
                raise CliError(f"cannot write to the database: {exc}") from None
            except ServiceError as exc:  # a full disk (StoreFull), on either backend
                raise CliError(f"cannot write to the database: {exc.message}") from None
            print(json.dumps(project.as_json()))
        else:
            for project in await store.list_projects():
                print(json.dumps(project.as_json()))
    finally:
        await store.close()
    return 0


async def _zoning(args: argparse.Namespace, config: Config) -> int:
    import os

    from server.errors import BadRequest
    from server.zoning import CLI_NAMING, parse_query, render

    values = {
        "screen": args.screen, "from": args.from_day, "to": args.to_day, "av": args.av,
        "dt": args.dt,
    }  # fmt: skip
    try:
        query = parse_query(args.pid, values, CLI_NAMING)
    except BadRequest as exc:
        raise CliError(exc.message) from None
    if not config.database_url and not os.path.exists(config.db):
        # A read-only command: do not leave an empty database behind.
        raise CliError(f"no database at {config.db}")
    store = await _open_store(config)
    try:
        if not any(p.pid == args.pid for p in await store.list_projects()):
            raise CliError(f"no project with pid {args.pid}")
        report = await store.zoning(query)
    finally:
        await store.close()
    sys.stdout.write(render(report, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
