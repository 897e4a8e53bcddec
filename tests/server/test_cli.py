"""`tapzone project add/list` and argument errors: exact stdout, stderr and exit codes."""

from __future__ import annotations

import json
import re

import pytest

from server.cli import main

KEY = re.compile(r"^tz[ir]_[A-Za-z0-9_-]{32}$")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_project_add_prints_the_project_with_fresh_keys(tmp_path, capsys) -> None:
    db = str(tmp_path / "t.db")
    code, out, err = run(capsys, "project", "add", "shop", "--db", db)
    assert (code, err) == (0, "")
    project = json.loads(out)
    assert list(project) == ["pid", "name", "ingest_key", "read_key", "batch_size"]
    assert (project["pid"], project["name"], project["batch_size"]) == (1, "shop", 50)
    assert KEY.match(project["ingest_key"]) and KEY.match(project["read_key"])
    assert project["ingest_key"] != project["read_key"]

    code, out, _ = run(capsys, "project", "add", "games", "--pid", "8", "--batch-size", "20",
                       "--db", db)  # fmt: skip
    assert code == 0 and json.loads(out)["pid"] == 8 and json.loads(out)["batch_size"] == 20
    code, out, _ = run(capsys, "project", "list", "--db", db)
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["shop", "games"]


def test_project_add_refuses_a_taken_pid_or_name(tmp_path, capsys) -> None:
    db = str(tmp_path / "t.db")
    run(capsys, "project", "add", "shop", "--pid", "3", "--db", db)
    assert run(capsys, "project", "add", "other", "--pid", "3", "--db", db) == (
        2, "", "error: Project 3 already exists.\n"
    )  # fmt: skip
    assert run(capsys, "project", "add", "shop", "--db", db) == (
        2, "", "error: A project named 'shop' already exists.\n"
    )  # fmt: skip


def test_db_from_environment(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TAPZONE_DB", str(tmp_path / "env.db"))
    assert run(capsys, "project", "add", "shop")[0] == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "error: tapzone: the following arguments are required: command\n"),
        (["project", "add", "x", "--pid", "0"],
         "error: tapzone project add: argument --pid: expected a positive integer, got '0'\n"),
        (["serve", "--port", "http"],
         "error: tapzone serve: argument --port: expected a positive integer, got 'http'\n"),
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--workers", "2"],
         "error: --workers above 1 (TAPZONE_WORKERS) is not supported yet\n"),
        (["project", "list", "--database-url", "postgresql://localhost/tapzone"],
         "error: PostgreSQL (--database-url, TAPZONE_DATABASE_URL) is not supported yet\n"),
    ],
)  # fmt: skip
def test_not_yet_supported_options_are_refused(tmp_path, capsys, argv, message) -> None:
    assert run(capsys, *argv, *(["--db", str(tmp_path / "t.db")])) == (2, "", message)
