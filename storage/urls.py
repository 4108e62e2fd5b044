"""Storage URLs (SQLite, PostgreSQL, MySQL/MariaDB): checking, masking passwords, SQLite file
locations, artifact folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "mysql", "mysql+pymysql")
# A bare scheme means the driver we ship (SQLAlchemy's own default, psycopg2 or mysqlclient, is
# not installed).
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
EXAMPLES = (
    "sqlite:///studies/hpsearch.db, postgresql+psycopg://user:pass@host:5432/db or "
    "mysql+pymysql://user:pass@host:3306/db (MySQL or MariaDB)"
)


@dataclass(frozen=True)
class StorageUrl:
    """A checked storage URL."""

    url: str
    scheme: str
    sqlite_path: Path | None  # the database file for sqlite URLs, else None

    @property
    def masked(self) -> str:
        return mask_password(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None

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
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"storage URL scheme {scheme!r} in {mask_password(url)!r} is not supported; "
            f"use {EXAMPLES}"
        )
    scheme = DEFAULT_DRIVERS.get(scheme, scheme)
    url = scheme + "://" + url.split("://", 1)[1]
    return StorageUrl(url=url, scheme=scheme, sqlite_path=None)


def default_artifact_dir(storage: StorageUrl) -> Path:
    """Where artifacts go when the config names no folder: beside the SQLite file."""
    if storage.sqlite_path is not None:
        return storage.sqlite_path.with_name(storage.sqlite_path.stem + "-artifacts")
    return Path("studies") / "artifacts"
