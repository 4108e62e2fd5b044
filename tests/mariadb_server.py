"""MariaDB (or MySQL) for the tests: the server named by the environment, or one started here.

``HPSEARCH_TEST_MARIADB_URL`` (``.ci/run`` sets it when a server answers on 127.0.0.1:3306)
names an admin URL such as ``mysql+pymysql://root@127.0.0.1:3306/test``. Without it the tests
start their own server with ``mariadb-install-db``/``mariadbd`` in a temporary folder, listening
on 127.0.0.1 at a free port, with a root password. Each test gets a fresh database with a random
name, dropped afterwards, so tests never see each other's studies. When neither is possible the
tests skip, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import servers

ENV_URL = "HPSEARCH_TEST_MARIADB_URL"
ADMIN_PASSWORD = "pw-" + "m4Rz9"  # the self-started server's root password
STARTUP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Server:
    """An admin URL (``mysql+pymysql://user[:password]@host:port/db``) and its parts."""

    url: str
    host: str
    port: int
    user: str
    password: str | None

    def database_url(self, database: str, password: str | None = None) -> str:
        secret = password if password is not None else self.password
        credentials = f"{self.user}:{secret}" if secret else self.user
        return f"mysql+pymysql://{credentials}@{self.host}:{self.port}/{database}"

    def connect(self, database: str | None = None, password: str | None = None) -> Any:
        """A PyMySQL connection (autocommit), closed by ``with``."""
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=(password if password is not None else self.password) or "",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where the MariaDB tests must run)."""
    servers.unavailable("MariaDB", reason)


def _from_environment(url: str) -> Server:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return Server(
        url=url,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password,
    )


def _binary(name: str) -> str | None:
    # mariadbd lives in /usr/sbin, which is not on every user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def _wait_until_ready(process: subprocess.Popen[str]) -> list[str]:
    """Read the server's log until it accepts connections (or exits); drain it after that."""
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "ready for connections" in line:
                ready.set()
        ready.set()  # the server exited: its log says why

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(STARTUP_TIMEOUT_S) or process.poll() is not None:
        unavailable("mariadbd did not start: " + "".join(lines).strip()[-400:])
    return lines


@contextlib.contextmanager
def self_started_server() -> Iterator[Server]:
    """mariadb-install-db + mariadbd in a temporary folder, TCP on 127.0.0.1, a root password.

    mariadbd refuses to run as root, so as root both run as the ``mysql`` user in a folder that
    user owns. Stopped (SIGTERM, waited for) and removed afterwards.
    """
    install, daemon = _binary("mariadb-install-db"), _binary("mariadbd")
    if install is None or daemon is None:
        unavailable(f"no {ENV_URL} and no mariadb-install-db/mariadbd (install mariadb-server)")
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-mariadb-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root without runuser: cannot start MariaDB")
        as_user = ["runuser", "-u", "mysql", "--"]
        shutil.chown(folder, "mysql", "mysql")
    data, sock, port = folder / "data", folder / "sock", servers.free_port()
    process: subprocess.Popen[str] | None = None
    try:
        done = subprocess.run(
            [
                *as_user,
                install,
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=folder,
        )
        if done.returncode != 0:
            unavailable(f"mariadb-install-db failed: {(done.stderr or done.stdout).strip()[-300:]}")
        process = subprocess.Popen(
            [
                *as_user,
                daemon,
                "--no-defaults",
                f"--datadir={data}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--socket={sock}",
                f"--pid-file={folder / 'pid'}",
                "--skip-name-resolve",
                # Test data need not survive a power cut: no flush per commit.
                "--innodb-flush-log-at-trx-commit=0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=folder,
        )
        _wait_until_ready(process)
        server = Server(
            url=f"mysql+pymysql://root:{ADMIN_PASSWORD}@127.0.0.1:{port}/mysql",
            host="127.0.0.1",
            port=port,
            user="root",
            password=ADMIN_PASSWORD,
        )
        # The fresh server's root has no password; give it one (over TCP, as the tests connect).
        with server.connect(password="") as connection, connection.cursor() as cursor:
            for host in ("127.0.0.1", "localhost", "::1"):
                cursor.execute(
                    f"ALTER USER IF EXISTS 'root'@'{host}' IDENTIFIED BY %s", (ADMIN_PASSWORD,)
                )
        yield server
    finally:
        if process is not None and process.poll() is None:
            # runuser does not pass signals on: stop mariadbd itself, then wait for both.
            pid_file = folder / "pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            else:
                process.terminate()
            process.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: Server) -> Iterator[str]:
    """A new, empty database with a random name on ``server``; dropped afterwards."""
    name = "hpsearch_test_" + secrets.token_hex(6)
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield name
    finally:
        with server.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def table_count(server: Server, database: str) -> int:
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (database,)
        )
        return int(cursor.fetchone()[0])


def check_reachable(server: Server) -> None:
    try:
        with server.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as e:  # pymysql.OperationalError and friends: say which server and why
        pytest.fail(f"{ENV_URL}={server.url} does not answer: {e}")


def checks_passwords(server: Server) -> bool:
    """False for a server run with --skip-grant-tables, which lets any password in."""
    try:
        with server.connect(password="Wrong-" + secrets.token_hex(4)):
            return False
    except Exception:  # pymysql.OperationalError 1045: access denied, as it should be
        return True


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[Server]:
    """The server from ``HPSEARCH_TEST_MARIADB_URL``, else one started for this session."""
    url = os.environ.get(ENV_URL)
    if url:
        server = _from_environment(url)
        check_reachable(server)
        yield server
        return
    with self_started_server() as server:
        yield server


@pytest.fixture(scope="session")
def password_mariadb_server(mariadb_server: Server) -> Iterator[Server]:
    """A server that checks passwords: the session's, or one started when that one does not."""
    if checks_passwords(mariadb_server):
        yield mariadb_server
        return
    with self_started_server() as server:
        yield server


@pytest.fixture
def mariadb_url(mariadb_server: Server) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    with fresh_database(mariadb_server) as name:
        yield mariadb_server.database_url(name)
