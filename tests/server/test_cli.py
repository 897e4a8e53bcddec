"""`tapzone project add/list` and argument errors: exact stdout, stderr and exit codes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main

ROOT = Path(__file__).resolve().parents[2]

KEY = re.compile(r"^tz[ir]_[A-Za-z0-9_-]{32}$")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_project_add_prints_the_project_with_fresh_keys(new_database, capsys) -> None:
    db = new_database().cli_options
    code, out, err = run(capsys, "project", "add", "shop", *db)
    assert (code, err) == (0, "")
    project = json.loads(out)
    assert list(project) == ["pid", "name", "ingest_key", "read_key", "batch_size"]
    assert (project["pid"], project["name"], project["batch_size"]) == (1, "shop", 50)
    assert KEY.match(project["ingest_key"]) and KEY.match(project["read_key"])
    assert project["ingest_key"] != project["read_key"]

    code, out, _ = run(capsys, "project", "add", "games", "--pid", "8", "--batch-size", "20",
                       *db)  # fmt: skip
    assert code == 0 and json.loads(out)["pid"] == 8 and json.loads(out)["batch_size"] == 20
    code, out, _ = run(capsys, "project", "add", "news", *db)
    assert code == 0 and json.loads(out)["pid"] == 9  # the next after the largest
    code, out, _ = run(capsys, "project", "list", *db)
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["shop", "games", "news"]


def test_project_add_refuses_a_taken_pid_or_name(new_database, capsys) -> None:
    db = new_database().cli_options
    run(capsys, "project", "add", "shop", "--pid", "3", *db)
    assert run(capsys, "project", "add", "other", "--pid", "3", *db) == (
        2, "", "error: Project 3 already exists.\n"
    )  # fmt: skip
    assert run(capsys, "project", "add", "shop", *db) == (
        2, "", "error: A project named 'shop' already exists.\n"
    )  # fmt: skip


def test_project_add_after_the_highest_pid_asks_for_a_free_one(new_database, capsys) -> None:
    db = new_database().cli_options
    run(capsys, "project", "add", "last", "--pid", "2147483647", *db)
    assert run(capsys, "project", "add", "next", *db) == (
        2, "", "error: No project id is free after 2147483647, the highest in use; "
        "choose a free one.\n"
    )  # fmt: skip
    code, out, _ = run(capsys, "project", "add", "next", "--pid", "2", *db)
    assert code == 0 and json.loads(out)["pid"] == 2
    code, out, _ = run(capsys, "project", "list", *db)
    assert [json.loads(line)["pid"] for line in out.splitlines()] == [2, 2147483647]


def test_db_from_environment(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TAPZONE_DB", str(tmp_path / "env.db"))
    assert run(capsys, "project", "add", "shop")[0] == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "error: tapzone: the following arguments are required: command\n"),
        (["project", "add", "x", "--pid", "0"],
         "error: tapzone project add: argument --pid: expected an integer from 1 to 2147483647, "
         "got '0'\n"),
        (["project", "add", "x", "--pid", "2147483648"],  # no batch could name it
         "error: tapzone project add: argument --pid: expected an integer from 1 to 2147483647, "
         "got '2147483648'\n"),
        (["zoning", "--pid", "x", "--screen", "S"],
         "error: tapzone zoning: argument --pid: expected an integer from 1 to 2147483647, "
         "got 'x'\n"),
        (["serve", "--port", "http"],
         "error: tapzone serve: argument --port: expected a positive integer, got 'http'\n"),
        (["serve", "--workers", "0"],
         "error: tapzone serve: argument --workers: expected a positive integer, got '0'\n"),
        (["project", "add", " "], "error: the project name must not be empty\n"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (2, "", message)


def test_bad_environment_value_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TAPZONE_PORT", "eighty")
    code, _, err = run(capsys, "project", "list", "--db", str(tmp_path / "t.db"))
    assert (code, err) == (2, "error: TAPZONE_PORT must be an integer, got 'eighty'.\n")


def test_unknown_command_names_it(capsys) -> None:
    code, out, err = run(capsys, "nope")
    assert (code, out) == (2, "")
    assert err.startswith("error: tapzone: argument command: invalid choice: 'nope' (choose from ")
    assert err.count("\n") == 1


def test_a_database_url_of_another_kind_is_one_line(capsys) -> None:
    assert run(capsys, "project", "list", "--database-url", "mysql://localhost/tapzone") == (
        2, "", "error: cannot open the store: The database URL must start with postgresql:// "
        "or postgres://, got 'mysql'.\n",
    )  # fmt: skip


def test_an_unreachable_postgresql_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("TAPZONE_DATABASE_URL", "postgresql://tapzone:secret@127.0.0.1:1/tapzone")
    code, out, err = run(capsys, "project", "list")
    assert (code, out) == (2, "")
    assert err.startswith(
        "error: cannot open the store: cannot connect to PostgreSQL at 127.0.0.1:1/tapzone: "
    )
    assert err.count("\n") == 1 and "secret" not in err


def serve(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`tapzone serve` in a process of its own, expected to stop at once (one worker unless
    `argv` says otherwise)."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "1", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_file_that_is_not_a_database_is_one_line(tmp_path, capsys) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"not a database, " * 1000)
    for argv in (["project", "list"], ["zoning", "--pid", "1", "--screen", "S"]):
        assert run(capsys, *argv, "--db", str(garbage)) == (
            2, "", f"error: cannot open the store: SQLite database {garbage}: file is not a "
            "database\n",
        )  # fmt: skip
    # serve stops before it starts anything, as one line, with one worker or several (in a
    # process of its own: serve tunes the GC of the process it runs in)
    for workers in ("1", "2"):
        done = serve(tmp_path, "--db", str(garbage), "--workers", workers)
        assert (done.returncode, done.stdout, done.stderr) == (
            2, "", f"error: the server could not start: SQLite database {garbage}: file is not "
            "a database\n",
        )  # fmt: skip
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    assert run(capsys, "project", "list", "--db", str(directory)) == (
        2, "", f"error: cannot open the store: SQLite database {directory}: unable to open "
        "database file\n",
    )  # fmt: skip


def test_a_write_the_database_refuses_is_one_line(new_database, tmp_path, capsys) -> None:
    db = new_database()
    assert run(capsys, "project", "list", *db.cli_options)[0] == 0  # migrated, no project
    if db.backend == "sqlite":  # as a read-only file would
        db.query(
            "CREATE TRIGGER refuse BEFORE INSERT ON projects "
            "BEGIN SELECT RAISE(ABORT, 'no new projects here'); END"
        )
        reason = "no new projects here"
    else:  # as a full disk would
        db.full_on_insert("projects")
        reason = (
            "The database has no space left; nothing of this request was stored. Retry later."
        )
    assert run(capsys, "project", "add", "shop", *db.cli_options) == (
        2, "", f"error: cannot write to the database: {reason}\n"
    )  # fmt: skip
    # serve on this empty database cannot create its default project: one line too
    done = serve(tmp_path, *db.cli_options)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"error: the server could not start: {reason}"
    assert "Traceback" not in done.stderr


def test_serve_on_a_taken_port_is_one_line(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one = serve(tmp_path, "--db", str(tmp_path / "t.db"), "--port", str(port))
        two = serve(tmp_path, "--db", str(tmp_path / "t.db"), "--port", str(port), "--workers", "2")
    reason = (
        "[Errno 98] error while attempting to bind on address ('127.0.0.1', "
        f"{port}): address already in use"
    )
    assert one.returncode == 2
    assert one.stderr.splitlines()[-1] == f"error: the server could not start: {reason}"
    # Several workers: each logs its reason in one line, and the supervisor stops.
    assert two.returncode == 1
    assert re.search(
        rf"ERROR \[worker \d+\] server.workers: the worker could not start: {re.escape(reason)}\n",
        two.stderr,
    )
    assert "exited with status 3: it could not start; stopping the others" in two.stderr
    assert "Traceback" not in one.stderr + two.stderr
