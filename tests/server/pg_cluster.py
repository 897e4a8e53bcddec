"""A throw-away PostgreSQL server on 127.0.0.1 for the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

SUPERUSER = "tapzone"
_BINARIES = ("initdb", "pg_ctl", "postgres")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # 63: PostgreSQL's identifier limit
_START_ATTEMPTS = 3
_PG_CTL_WAIT_S = 60
_SUN_PATH_MAX = 107  # a Unix socket path is at most 108 bytes, NUL included
_SOCKET_NAME = ".s.PGSQL.65535"
_LOG_TAIL_LINES = 20


class PgUnavailable(Exception):
    """Why no PostgreSQL server can be started here (message = the reason)."""


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when there is none."""
    configured = os.environ.get("TAPZONE_PG_BINDIR")
    if configured:
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _is_executable(Path(out) / "initdb"):
            return Path(out)
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if _is_executable(p)]
    if debian:
        return max(debian, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PgCluster:
    """One postgres server with trust auth on loopback; data, socket and log live under `root`.

    As root, the server runs as `nobody`; when `nobody` cannot reach `root` (pytest's
    /tmp/pytest-of-root is 0700) or the socket path would be too long, everything lives in a
    private `tapzone-pg-*` temp dir instead, removed by stop().
    """

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = Path(root)
        self.durable = durable  # False: fsync, synchronous_commit and full_page_writes off
        self._port: int | None = None
        self._home: Path | None = None  # root, or the private dir
        self._private: Path | None = None
        self._bindir: Path | None = None
        self._user: pwd.struct_passwd | None = None  # who runs the server when we are root

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the PostgreSQL cluster is not running")
        return self._port

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        if self._port is not None:
            raise RuntimeError("the PostgreSQL cluster is already running")
        bindir = find_bindir()
        if bindir is None:
            raise PgUnavailable(
                "no initdb found (TAPZONE_PG_BINDIR, pg_config, /usr/lib/postgresql, PATH)"
            )
        missing = [name for name in _BINARIES if not _is_executable(bindir / name)]
        if missing:
            raise PgUnavailable(f"{', '.join(missing)} missing in {bindir}")
        self._bindir = bindir
        self._user = _unprivileged_user() if os.geteuid() == 0 else None
        try:
            self._home = self._make_home()
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        home, self._home, self._port = self._home, None, None
        if home is not None and (home / "data" / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                try:
                    result = self._pg_ctl(home, "-m", mode, "stop")
                except subprocess.TimeoutExpired:
                    continue
                if result.returncode == 0 or not (home / "data" / "postmaster.pid").exists():
                    break
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE name [TEMPLATE template]; the template must have no open connection."""
        sql = f'CREATE DATABASE "{_checked(name)}"'
        if template is not None:
            sql += f' TEMPLATE "{_checked(template)}"'
        self._execute(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _execute(self, sql: str) -> None:
        url = self.url()

        async def execute() -> None:
            connection = await asyncpg.connect(url)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        run_sync(execute())

    def _make_home(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        home = self.root.resolve()
        if not self._usable(home):
            self._private = home = Path(tempfile.mkdtemp(prefix="tapzone-pg-")).resolve()
            home.chmod(0o755)
            if not self._usable(home):
                raise PgUnavailable(f"neither {self.root} nor {home} is usable by the server")
        (home / "sock").mkdir()
        if self._user is not None:
            for directory, _, files in os.walk(home):
                for path in [directory, *(os.path.join(directory, f) for f in files)]:
                    os.chown(path, self._user.pw_uid, self._user.pw_gid)
        return home

    def _usable(self, home: Path) -> bool:
        socket_path = home / "sock" / _SOCKET_NAME
        if len(os.fsencode(socket_path)) > _SUN_PATH_MAX:
            return False
        return self._user is None or all(_searchable(p, self._user) for p in home.parents)

    def _initdb(self) -> None:
        assert self._home is not None and self._bindir is not None
        initdb = self._bindir / "initdb"
        args = ["-D", self._home / "data", "--auth=trust", "-E", "UTF8", "--locale=C"]
        # --no-sync: a throw-away cluster need not survive a crash of the machine.
        command = [initdb, *args, "-U", SUPERUSER, "--no-sync"]
        result = self._run(command, home=self._home, timeout=120)
        if result.returncode != 0:
            output = _tail(result.stdout + result.stderr)
            raise PgUnavailable(f"initdb failed (exit {result.returncode}):\n{output}")

    def _start_server(self) -> None:
        assert self._home is not None
        log = self._home / "postgres.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            log_offset = log.stat().st_size if log.exists() else 0
            try:
                result = self._pg_ctl(self._home, "-o", self._options(port), "start")
            except subprocess.TimeoutExpired:
                raise PgUnavailable(f"pg_ctl start hung:\n{_read_tail(log, log_offset)}") from None
            if result.returncode == 0:
                self._port = port
                return
            server_log = _read_tail(log, log_offset)
            if "could not bind" not in server_log or attempt == _START_ATTEMPTS:
                output = _tail(f"{result.stdout}{result.stderr}{server_log}")
                raise PgUnavailable(f"postgres did not start on port {port}:\n{output}")

    def _options(self, port: int) -> str:
        assert self._home is not None
        settings: dict[str, object] = {
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": self._home / "sock",
            "max_connections": 200,
            "shared_buffers": "128MB",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        # pg_ctl hands the options to /bin/sh.
        return " ".join(f"-c {shlex.quote(f'{key}={value}')}" for key, value in settings.items())

    def _pg_ctl(self, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
        assert self._bindir is not None
        wait = ["-w", "-t", str(_PG_CTL_WAIT_S)]
        command = [self._bindir / "pg_ctl", "-D", home / "data", "-l", home / "postgres.log"]
        return self._run([*command, *wait, *args], home=home, timeout=_PG_CTL_WAIT_S + 30)

    def _run(
        self, command: list[Any], *, home: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        drop_root: dict[str, Any] = {}
        if self._user is not None:
            # extra_groups=[]: without it the server would keep root's supplementary groups.
            drop_root = {
                "user": self._user.pw_uid,
                "group": self._user.pw_gid,
                "extra_groups": [],
            }
            env["HOME"] = str(home)
        return subprocess.run(
            [str(part) for part in command],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **drop_root,
        )


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own, in a worker thread: callable from sync
    code and from inside a running loop (a pytest-asyncio test)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid database name {name!r}: expected 1-63 characters matching [a-z_][a-z0-9_]*"
        )
    return name


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise PgUnavailable(
            "running as root and there is no user 'nobody' to run postgres"
        ) from None


def _searchable(directory: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` (primary group only, as the server runs) may traverse `directory`."""
    st = directory.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.pw_gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_tail(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as file:
            file.seek(offset)
            return _tail(file.read().decode(errors="replace"))
    except OSError as exc:
        return f"(no server log: {exc})"


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_LOG_TAIL_LINES:])
