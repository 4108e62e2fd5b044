"""Database servers for the storage scaling figure, started in temporary folders for one run.

Each starter is a context manager that yields a :class:`DatabaseServer` on a free loopback port
and stops the server and removes its folder on the way out (errors and Ctrl-C included). They
start servers with the limits the benchmark needs (400 connections: 128 clients with a
heartbeat thread each exceed PostgreSQL's default 100 and MariaDB's 151) and without per-commit
fsync (the figure measures the storage layer, not the disk). A missing binary or a failed start
raises :class:`ServerUnavailableError`, whose message says why; the figure reports that backend as
skipped.

The gRPC storage proxy is started and opened by :func:`grpc_proxy` and :func:`open_grpc_storage`
alone, so that switching to ``hpsearch storage-proxy`` and ``grpc://`` URLs changes only them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
MAX_CONNECTIONS = 400
START_TIMEOUT_S = 60
MARIADB_USER = "bench"
MARIADB_PASSWORD = "bench-pw"


class ServerUnavailableError(Exception):
    """A server cannot be started here; the message says why (e.g. a missing binary)."""


@dataclass(frozen=True)
class DatabaseServer:
    """A running server: how to make a fresh database on it, and which processes are it."""

    name: str
    new_database: Callable[[str], str]  # database name -> SQLAlchemy URL of the new database
    pids: Callable[[], list[int]]  # the server's root process(es); their children are the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(user: str) -> list[str]:
    """PostgreSQL and MariaDB refuse to run as root: as root, run them as their own user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise ServerUnavailableError(f"running as root without runuser: cannot run as {user}")
    return ["runuser", "-u", user, "--"]


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=START_TIMEOUT_S * 2, cwd=cwd, check=False
    )
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-300:]
        raise ServerUnavailableError(f"{Path(command[0]).name} failed: {output}")


def _postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres() -> Iterator[DatabaseServer]:
    """PostgreSQL via initdb + pg_ctl: trust auth on 127.0.0.1 only, 400 connections, no fsync."""
    binaries = _postgres_binaries()
    if binaries is None:
        raise ServerUnavailableError("no initdb (install the postgresql package)")
    as_user = _as_user("postgres")
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-bench-pg-"))
    data, port = folder / "data", free_port()
    try:
        if as_user:
            shutil.chown(folder, "postgres", "postgres")
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        _run([*as_user, *initdb, "-E", "UTF8"], folder)
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={MAX_CONNECTIONS} -c fsync=off -c synchronous_commit=off"
        )
        pg_ctl = [
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
        ]
        _run([*as_user, *pg_ctl, "-w", "-t", str(START_TIMEOUT_S), "start"], folder)

        def new_database(name: str) -> str:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
            ) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

        def pids() -> list[int]:
            return [int((data / "postmaster.pid").read_text().split()[0])]

        yield DatabaseServer("postgresql", new_database, pids)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                cwd=folder,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mariadb() -> Iterator[DatabaseServer]:
    """MariaDB via mariadb-install-db + mariadbd on 127.0.0.1, 400 connections, lazy log flush."""
    install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if server is None:
        server = shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    if install is None or server is None:
        raise ServerUnavailableError("no mariadb-install-db / mariadbd (install mariadb-server)")
    try:
        import pymysql
    except ModuleNotFoundError as e:
        raise ServerUnavailableError("the Python package PyMySQL is not installed") from e
    as_user = _as_user("mysql")
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-bench-mariadb-"))
    data, sock, port = folder / "data", folder / "mysqld.sock", free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        user_flag = ["--user=mysql"] if as_user else []
        if as_user:
            shutil.chown(folder, "mysql", "mysql")
        _run(
            [
                install,
                "--no-defaults",
                *user_flag,
                f"--datadir={data}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            folder,
        )
        with open(folder / "server.log", "wb") as log:
            # Its own session: a Ctrl-C reaches the benchmark, which then stops the server.
            process = subprocess.Popen(
                [
                    server,
                    "--no-defaults",
                    *user_flag,
                    f"--datadir={data}",
                    f"--socket={sock}",
                    f"--port={port}",
                    "--bind-address=127.0.0.1",
                    "--skip-networking=0",
                    f"--max-connections={MAX_CONNECTIONS}",
                    f"--pid-file={folder / 'mysqld.pid'}",
                    # No fsync per commit, like PostgreSQL's fsync=off here.
                    "--innodb-flush-log-at-trx-commit=2",
                    "--innodb-buffer-pool-size=256M",
                    "--skip-log-bin",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                start_new_session=True,
            )
        admin = _wait_for_mariadb(pymysql, sock, process, folder)
        with admin.cursor() as cursor:
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(
                    f"CREATE USER '{MARIADB_USER}'@'{host}' IDENTIFIED BY '{MARIADB_PASSWORD}'"
                )
                cursor.execute(f"GRANT ALL ON *.* TO '{MARIADB_USER}'@'{host}'")
        admin.close()

        def new_database(name: str) -> str:
            connection = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"CREATE DATABASE `{name}`")
            finally:
                connection.close()
            return f"mysql+pymysql://{MARIADB_USER}:{MARIADB_PASSWORD}@127.0.0.1:{port}/{name}"

        pid = process.pid
        yield DatabaseServer("mariadb", new_database, lambda: [pid])
    finally:
        if process is not None:
            _stop(process, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_mariadb(
    pymysql: Any, sock: Path, process: subprocess.Popen[bytes], folder: Path
) -> Any:
    """A root connection over the socket, once the server answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            log = (folder / "server.log").read_text(errors="replace").strip()[-300:]
            raise ServerUnavailableError(f"mariadbd exited with {process.returncode}: {log}")
        try:
            return pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
        except pymysql.err.OperationalError as e:
            if time.monotonic() > deadline:
                raise ServerUnavailableError(
                    f"mariadbd did not answer in {START_TIMEOUT_S} s: {e}"
                ) from e
            time.sleep(0.2)


# --- gRPC storage proxy ---------------------------------------------------------------------
# These two functions are all the figure knows of the proxy. When `hpsearch storage-proxy` and
# `grpc://HOST:PORT` storage URLs land, start the command here and open the URL below.


@dataclass(frozen=True)
class ProxyAddress:
    host: str
    port: int
    pid: int


@contextlib.contextmanager
def grpc_proxy(storage_url: str) -> Iterator[ProxyAddress]:
    """``hpsearch storage-proxy`` in front of ``storage_url``, in a process of its own."""
    host, port = "127.0.0.1", free_port()
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    command = ["storage-proxy", "--storage", storage_url, "--host", host, "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "search", *command],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )
    try:
        _wait_for_port(host, port, process, errors)
        yield ProxyAddress(host, port, process.pid)
    finally:
        _stop(process, timeout=30)
        errors.close()


def open_grpc_storage(
    address: ProxyAddress, heartbeat_interval: int | None, heartbeat_grace: int | None
) -> Any:
    """A client's storage through the proxy, as a worker opens it (heartbeats relayed)."""
    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    return open_storage(
        parse_storage_url(f"grpc://{address.host}:{address.port}"),
        create=False,
        heartbeat_interval=heartbeat_interval,
        heartbeat_grace=heartbeat_grace,
    )


def _stop(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], errors: IO[bytes]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            errors.seek(0)
            error = errors.read().decode(errors="replace").strip()[-300:]
            raise ServerUnavailableError(
                f"the gRPC proxy exited with {process.returncode}: {error}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise ServerUnavailableError(f"the gRPC proxy did not listen in {START_TIMEOUT_S} s")
        time.sleep(0.2)
