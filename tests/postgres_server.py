"""PostgreSQL for the tests: the server named by the environment, or one started here.

``HPSEARCH_TEST_POSTGRES_URL`` (``.ci/run`` sets it when a server answers on 127.0.0.1:5432)
names an admin URL such as ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``. Without
it the tests start their own server with ``initdb``/``pg_ctl`` in a temporary folder, with
password (SCRAM) authentication. Each test gets a fresh database with a random name, dropped
afterwards, so tests never see each other's studies. When neither is possible the tests skip,
except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import servers

ENV_URL = "HPSEARCH_TEST_POSTGRES_URL"
ADMIN_PASSWORD = "pw-" + "x7Qk2"  # the self-started server's superuser password


@dataclass(frozen=True)
class Server:
    """An admin URL (``postgresql+psycopg://user[:password]@host:port/db``) and its parts."""

    url: str
    host: str
    port: int
    user: str
    password: str | None
    requires_password: bool  # False for a trust-auth server (passwords accepted and ignored)

    def database_url(self, database: str, password: str | None = None) -> str:
        secret = password if password is not None else self.password
        credentials = f"{self.user}:{secret}" if secret else self.user
        return f"postgresql+psycopg://{credentials}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:  # a psycopg.Connection
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where the PostgreSQL tests must run)."""
    servers.unavailable("PostgreSQL", reason)


def _from_environment(url: str) -> Server:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return Server(
        url=url,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        requires_password=False,
    )


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    return servers.free_port()


@contextlib.contextmanager
def self_started_server(
    listen: Sequence[str] = ("127.0.0.1",), allow_network: str | None = None
) -> Iterator[Server]:
    """initdb + pg_ctl in a temporary folder, SCRAM passwords on TCP; stopped and removed after.

    It listens on ``listen`` (the first is the address in its URL) and, besides loopback,
    accepts clients from ``allow_network`` (e.g. ``10.9.0.0/24``). initdb and postgres refuse
    to run as root, so as root they run as the ``postgres`` user in a folder that user owns.
    """
    binaries = _binaries()
    if binaries is None:
        unavailable(f"no {ENV_URL} and no initdb (install the postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    (folder / "pw").write_text(ADMIN_PASSWORD + "\n")
    if as_user:
        shutil.chown(folder / "pw", "postgres", "postgres")
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, timeout=120, cwd=folder
        )
        if done.returncode != 0:
            unavailable(f"{command[0]} failed: {(done.stderr or done.stdout).strip()[-300:]}")

    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={folder / 'pw'}",
            "-E",
            "UTF8",
        )
        if allow_network:
            with open(data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {allow_network} scram-sha-256\n")
        addresses = ",".join(listen)
        options = f"-p {port} -k {folder} -c listen_addresses={addresses} -c fsync=off"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", "log", "-w", "start")
        yield Server(
            url=f"postgresql+psycopg://postgres:{ADMIN_PASSWORD}@{listen[0]}:{port}/postgres",
            host=listen[0],
            port=port,
            user="postgres",
            password=ADMIN_PASSWORD,
            requires_password=True,
        )
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                cwd=folder,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: Server) -> Iterator[str]:
    """A new, empty database with a random name on ``server``; dropped afterwards."""
    name = "hpsearch_test_" + secrets.token_hex(6)
    with server.connect() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with server.connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_reachable(server: Server) -> None:
    try:
        with server.connect() as connection:
            connection.execute("SELECT 1")
    except Exception as e:  # psycopg.OperationalError and friends: say which server and why
        pytest.fail(f"{ENV_URL}={server.url} does not answer: {e}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """The server from ``HPSEARCH_TEST_POSTGRES_URL``, else one started for this session."""
    url = os.environ.get(ENV_URL)
    if url:
        server = _from_environment(url)
        check_reachable(server)
        yield server
        return
    with self_started_server() as server:
        yield server


@pytest.fixture(scope="session")
def password_postgres_server(postgres_server: Server) -> Iterator[Server]:
    """A server that checks passwords (a trust-auth server accepts any): started if needed."""
    if postgres_server.requires_password:
        yield postgres_server
        return
    with self_started_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    with fresh_database(postgres_server) as name:
        yield postgres_server.database_url(name)
