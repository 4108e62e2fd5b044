"""Optuna's gRPC storage proxy, with the heartbeats and dead-trial recovery it lacks.

Hundreds of workers that each hold database connections hurt a server; Optuna's gRPC proxy
(``optuna.storages.run_grpc_proxy_server`` and ``GrpcStorageProxy``) puts one process with one
connection pool in front of it. In Optuna 5 the client implements no heartbeat, so a worker
behind the proxy never heartbeats and a killed worker's trial would stay RUNNING for ever.

Both ends here keep Optuna's own machinery and carry the two heartbeat calls over the proxy's
existing attribute calls, under keys of their own that are never stored:

- :class:`ProxyClient` (the workers' side) is ``GrpcStorageProxy`` plus Optuna's
  ``BaseHeartbeat``, so ``study.optimize`` runs its usual heartbeat thread. A heartbeat is sent
  as the trial system attribute :data:`HEARTBEAT_KEY`; Optuna's stale-trial check before every
  trial (``fail_stale_trials``) is sent as the study system attribute :data:`STALE_CHECK_KEY`,
  carrying the worker's grace period.
- :class:`HeartbeatRelay` (the proxy's backend) is ``RDBStorage`` with heartbeats. It turns the
  first into ``record_heartbeat`` (the backend's heartbeat table) and the second into Optuna's
  ``fail_stale_trials`` on the backend, whose retry callback queues the dead trial again.

A plain Optuna proxy would store both keys as attributes and recover nothing;
:meth:`ProxyClient.relays_heartbeats` tells the two apart so ``hpsearch run`` can say so.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

from storage.errors import StorageError
from storage.rdb import open_rdb
from storage.urls import StorageUrl

HEARTBEAT_KEY = "hpsearch:heartbeat"
STALE_CHECK_KEY = "hpsearch:fail_stale_trials"
CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORT = 13000
# Threads serving calls; each call holds one while it waits for the database.
SERVER_THREADS = 32
# A grace period (seconds) that no heartbeat is ever older than.
NEVER_STALE_S = 10**9


class ProxyClient(optuna.storages.GrpcStorageProxy, BaseHeartbeat):
    """``GrpcStorageProxy`` with heartbeats relayed through :class:`HeartbeatRelay`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        heartbeat_interval: int | None = None,
        heartbeat_grace: int | None = None,
    ) -> None:
        self._heartbeat_interval = heartbeat_interval
        grace = heartbeat_grace or (2 * heartbeat_interval if heartbeat_interval else None)
        self._heartbeat_grace = grace
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, True)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # The proxy fails the stale trials and queues their retries itself (see the module
        # docstring), so nothing is left for the caller to do.
        self.set_study_system_attr(study_id, STALE_CHECK_KEY, self._heartbeat_grace)
        return []

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None

    def relays_heartbeats(self, study_id: int) -> bool:
        """Whether the proxy is :class:`HeartbeatRelay`'s (a plain one stores the key)."""
        # With the worker's own grace it is the check every trial start makes anyway; without
        # one, a grace no heartbeat is ever older than, so it fails nothing.
        grace = self._heartbeat_grace or NEVER_STALE_S
        self.set_study_system_attr(study_id, STALE_CHECK_KEY, grace)
        return STALE_CHECK_KEY not in self.get_study_system_attrs(study_id)


class HeartbeatRelay(optuna.storages.RDBStorage):
    """The proxy's backend: an ``RDBStorage`` that takes heartbeats and stale checks by key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stale_check = threading.Lock()

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if key == HEARTBEAT_KEY:
            self.record_heartbeat(trial_id)
            return
        super().set_trial_system_attr(trial_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if key == STALE_CHECK_KEY:
            if value:  # a client without a grace period has nothing to check
                self._fail_stale_trials(study_id, grace=int(value))
            return
        super().set_study_system_attr(study_id, key, value)

    def _fail_stale_trials(self, study_id: int, grace: int) -> None:
        # Each worker's config sets its own grace; Optuna reads it from the storage object, so
        # checks take turns (a check is one query and, rarely, a retry).
        with self._stale_check:
            self.grace_period = grace
            # The usual answer is "none": one query, without building a study for it.
            if not self._get_stale_trial_ids(study_id):
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study = optuna.load_study(
                    study_name=self.get_study_name_from_id(study_id), storage=self
                )
                optuna.storages.fail_stale_trials(study)


def _quiet_grpc() -> None:
    """gRPC's C core logs to stderr on its own (a refused port: two lines); our errors say it.

    Read once, when grpc first loads; ``GRPC_VERBOSITY`` set by the user wins.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def open_proxy_client(
    storage: StorageUrl,
    *,
    heartbeat_interval: int | None = None,
    heartbeat_grace: int | None = None,
) -> ProxyClient:
    """Connect to ``grpc://HOST:PORT``; a proxy that does not answer is a one-line error."""
    assert storage.proxy is not None
    host, port = storage.proxy
    _quiet_grpc()
    client = ProxyClient(
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval,
        heartbeat_grace=heartbeat_grace,
    )
    try:
        client.wait_server_ready(timeout=CONNECT_TIMEOUT_S)
    except ConnectionError as e:
        client.close()
        raise StorageError(
            f"no storage proxy answers at {storage.url} (waited {CONNECT_TIMEOUT_S:g} s); start "
            "one with `hpsearch storage-proxy --storage DATABASE_URL --host HOST --port PORT`, "
            "or check the address and the network"
        ) from e
    return client


def start_proxy(backend: StorageUrl, host: str, port: int) -> tuple[Any, str]:
    """Open the backend and start serving it on ``host:port`` (0: any free port).

    Returns (the started ``grpc.Server``, the ``grpc://HOST:PORT`` URL workers use). The backend
    must be a database: a proxy in front of another proxy would only add a hop.
    """
    from concurrent.futures import ThreadPoolExecutor

    _quiet_grpc()
    import grpc

    # Optuna's own servicer, as run_grpc_proxy_server builds it. That function blocks and
    # cannot say which port it bound or that binding failed, so the server is assembled here.
    from optuna.storages._grpc.auto_generated.api_pb2_grpc import (
        add_StorageServiceServicer_to_server,
    )
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    if backend.is_proxy:
        raise StorageError(
            f"--storage {backend.url} is itself a proxy; give the database URL the proxy should "
            "serve (sqlite:///..., postgresql+psycopg://..., mysql+pymysql://...)"
        )
    # Bind first: a busy port is refused before the database is opened (or created).
    # No SO_REUSEPORT: a second proxy on a port in use must fail, not share it.
    server = grpc.server(
        ThreadPoolExecutor(max_workers=SERVER_THREADS), options=[("grpc.so_reuseport", 0)]
    )
    shown_host = f"[{host}]" if ":" in host else host
    address = f"{shown_host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise StorageError(
            f"cannot listen on {address} (the port is in use, or the host is not an address of "
            "this machine); pass another --port or --host"
        )
    # A placeholder interval: the relay only records heartbeats and takes each worker's grace.
    relay = open_rdb(backend, create=True, heartbeat_interval=1, storage_class=HeartbeatRelay)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # get_storage puts Optuna's trial cache in front, as run_grpc_proxy_server asks.
        cached = optuna.storages.get_storage(relay)
    add_StorageServiceServicer_to_server(OptunaStorageProxyService(cached), server)
    server.start()
    return server, f"grpc://{shown_host}:{bound}"
