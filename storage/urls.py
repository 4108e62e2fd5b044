"""Storage URLs (SQLite, PostgreSQL, MySQL/MariaDB, a gRPC proxy): checking, masking passwords,
SQLite file locations, artifact folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "mysql", "mysql+pymysql", "grpc")
# A bare scheme means the driver we ship (SQLAlchemy's own default, psycopg2 or mysqlclient, is
# not installed).
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
EXAMPLES = (
    "sqlite:///studies/hpsearch.db, postgresql+psycopg://user:pass@host:5432/db or "
    "mysql+pymysql://user:pass@host:3306/db (MySQL or MariaDB), or grpc://HOST:PORT (a proxy "
    "started with `hpsearch storage-proxy`)"
)
GRPC_SCHEME = "grpc"


@dataclass(frozen=True)
class StorageUrl:
    """A checked storage URL."""

    url: str
    scheme: str
    sqlite_path: Path | None  # the database file for sqlite URLs, else None
    proxy: tuple[str, int] | None = None  # (host, port) of a gRPC storage proxy, else None

    @property
    def masked(self) -> str:
        return mask_password(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None

    @property
    def is_proxy(self) -> bool:
        return self.proxy is not None

    @property
    def is_mysql(self) -> bool:
        """MySQL or MariaDB (one SQLAlchemy dialect serves both)."""
        return self.scheme == "mysql+pymysql"


def mask_password(url: str) -> str:
    """``mysql+pymysql://user:secret@host/db`` -> ``mysql+pymysql://user:***@host/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    if ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def parse_storage_url(url: str) -> StorageUrl:
    """Check a storage URL and normalise it.

    ``postgresql://`` uses the psycopg 3 driver, ``mysql://`` (MySQL or MariaDB) PyMySQL.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"storage URL {mask_password(str(url))!r} is not a URL; use e.g. {EXAMPLES}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        path_text = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path_text or path_text.startswith("?") or ":memory:" in path_text:
            raise StorageError(
                f"storage URL {url!r} names no database file; write sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db (an in-memory database would lose every trial)"
            )
        path = Path(path_text.split("?", 1)[0])
        return StorageUrl(url=url, scheme=scheme, sqlite_path=path)
    if scheme == GRPC_SCHEME:
        return StorageUrl(url=url, scheme=scheme, sqlite_path=None, proxy=_proxy_address(url))
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"storage URL scheme {scheme!r} in {mask_password(url)!r} is not supported; "
            f"use {EXAMPLES}"
        )
    scheme = DEFAULT_DRIVERS.get(scheme, scheme)
    url = scheme + "://" + url.split("://", 1)[1]
    return StorageUrl(url=url, scheme=scheme, sqlite_path=None)


def _proxy_address(url: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` -> (HOST, PORT); an IPv6 host is written in brackets."""
    rest = url.split("://", 1)[1].rstrip("/")
    host, sep, port_text = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or "/" in rest or "@" in rest or not port_text.isdigit():
        raise StorageError(
            f"storage URL {url!r} is not grpc://HOST:PORT; write e.g. grpc://10.0.0.5:13000 "
            "(the address `hpsearch storage-proxy` prints)"
        )
    port = int(port_text)
    if not 0 < port < 65536:
        raise StorageError(f"storage URL {url!r}: port {port} is not between 1 and 65535")
    return host, port


def default_artifact_dir(storage: StorageUrl) -> Path:
    """Where artifacts go when the config names no folder: beside the SQLite file."""
    if storage.sqlite_path is not None:
        return storage.sqlite_path.with_name(storage.sqlite_path.stem + "-artifacts")
    return Path("studies") / "artifacts"
