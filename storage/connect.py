"""Open any storage URL: a database through Optuna's RDB storage, or a gRPC storage proxy."""

from __future__ import annotations

import optuna

from storage.proxy import open_proxy_client
from storage.rdb import open_rdb
from storage.urls import StorageUrl


def open_storage(
    storage: StorageUrl,
    *,
    create: bool,
    heartbeat_interval: int | None = None,
    heartbeat_grace: int | None = None,
) -> optuna.storages.BaseStorage:
    """The Optuna storage behind a checked URL, with heartbeats when an interval is given.

    With ``create=False`` nothing is created: a missing SQLite file is an error. A proxy
    creates nothing by itself; its database was opened when the proxy started.
    """
    if storage.is_proxy:
        return open_proxy_client(
            storage, heartbeat_interval=heartbeat_interval, heartbeat_grace=heartbeat_grace
        )
    return open_rdb(
        storage,
        create=create,
        heartbeat_interval=heartbeat_interval,
        heartbeat_grace=heartbeat_grace,
    )
