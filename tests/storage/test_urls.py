"""Storage URL checks and password masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import StorageError
from storage.urls import default_artifact_dir, mask_password, parse_storage_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://bob:hunter2@db:5432/hp", "postgresql+psycopg://bob:***@db:5432/hp"),
        ("postgresql://bob:p@ss:w@rd@db/hp", "postgresql://bob:***@db/hp"),
        ("postgresql://bob@db/hp", "postgresql://bob@db/hp"),
        (
            "mysql+pymysql://root:s3cret@127.0.0.1:3306/t",
            "mysql+pymysql://root:***@127.0.0.1:3306/t",
        ),
        ("sqlite:///studies/hp.db", "sqlite:///studies/hp.db"),
    ],
)
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_sqlite_urls_relative_and_absolute() -> None:
    relative = parse_storage_url("sqlite:///studies/hp.db")
    assert relative.is_sqlite and relative.sqlite_path == Path("studies/hp.db")
    absolute = parse_storage_url("sqlite:////tmp/x/hp.db")
    assert absolute.sqlite_path == Path("/tmp/x/hp.db")
    assert default_artifact_dir(relative) == Path("studies/hp-artifacts")


def test_bare_postgresql_uses_the_psycopg3_driver() -> None:
    parsed = parse_storage_url("postgresql://u:p@h/db")
    assert parsed.url == "postgresql+psycopg://u:p@h/db" and not parsed.is_sqlite
    assert not parsed.is_mysql


@pytest.mark.parametrize("url", ["mysql://u:p@h:3306/db", "MySQL+PyMySQL://u:p@h:3306/db"])
def test_mysql_uses_the_pymysql_driver(url: str) -> None:
    parsed = parse_storage_url(url)
    assert parsed.url == "mysql+pymysql://u:p@h:3306/db" and parsed.scheme == "mysql+pymysql"
    assert parsed.is_mysql and not parsed.is_sqlite


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("studies/hp.db", "is not a URL"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
        ("mysql+mysqldb://u:secret@h/db", "scheme 'mysql\\+mysqldb'.*mysql\\+pymysql://"),
        ("redis://localhost", "scheme 'redis'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as info:
        parse_storage_url(url)
    assert "secret" not in str(info.value)
