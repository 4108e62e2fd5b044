"""Figure 8 (storage_scale): many client processes on one study, per storage backend.

Each client runs the cycle a worker runs around a trial, on trivial trials (no training: the
value is a function of one suggested float): ``fail_stale_trials`` + ``ask`` (timed together as
"ask", as ``study.optimize`` does them with heartbeats on), a heartbeat thread for the trial,
``report`` x5, ``tell`` (timed). Backends: the project's SQLite (a WAL file opened by
``storage.connect.open_storage``), PostgreSQL, MariaDB (both with heartbeats, through the same
``open_storage``) and ``hpsearch storage-proxy`` (Optuna's gRPC proxy, heartbeats relayed into
the database) in front of PostgreSQL. The servers are started here (``benchmarks.db_servers``),
one fresh database a cell.

The clients are forked from this process (which has imported Optuna already), open their
storage, wait until all are ready, and start together; each starts new trials until a shared
deadline (or a cap on trials), so a cell's total is what finished. After the run the study is
loaded from the database itself: its numbers must be exactly 0..n-1, each trial id once, and
every tell a client saw succeed must be a COMPLETE trial. What limits each backend comes from a
cheap profile: the CPU seconds of the clients and of the server processes against the cores'
capacity, and where one client spent its time (cProfile of client 0 in the smallest cell).
"""

from __future__ import annotations

import contextlib
import cProfile
import math
import multiprocessing
import os
import pstats
import queue
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.db_servers import DatabaseServer, ServerUnavailableError
from benchmarks.harness import Figure, Settings, busy_processes, fmt, load_average

BACKENDS = ("sqlite", "postgresql", "mariadb", "grpc proxy -> postgresql")
REPORTS_PER_TRIAL = 5
STUDY = "scale"
# Heartbeats as a busy fleet would set them: often enough that the heartbeat writes are part of
# the load, with a grace long enough that a loaded machine does not reap live trials.
HEARTBEAT_INTERVAL_S = 2
HEARTBEAT_GRACE_S = 20
# How long a cell may run past its deadline (slow last cycles) before its clients are killed.
OVERRUN_S = 120
READY_TIMEOUT_S = 180
ERROR_KINDS = ("lock", "deadlock", "other")
PROFILE_PARTS = ("optuna", "sqlalchemy", "driver and waits", "other")


@dataclass(frozen=True)
class Size:
    clients: tuple[int, ...]
    backends: tuple[str, ...]
    seconds: float  # clients start new trials until this many seconds after the common start
    max_trials_per_client: int


def sizes(settings: Settings) -> Size:
    if settings.mode == "smoke":
        return Size(clients=(2,), backends=("sqlite",), seconds=2.0, max_trials_per_client=5)
    if settings.quick:
        return Size((8, 32), ("sqlite", "postgresql"), seconds=6.0, max_trials_per_client=10_000)
    return Size((8, 32, 128), BACKENDS, seconds=15.0, max_trials_per_client=10_000)


@dataclass(frozen=True)
class Target:
    """One cell's storage: the database URL (checked after the run) and how clients open it."""

    url: str
    open_client: Callable[[], Any]  # called in each client process, after the fork
    # The server's root processes by name (none for SQLite, whose "server" is in the clients).
    server_pids: Callable[[], dict[str, int]]


@dataclass
class ClientResult:
    """What one client measured, sent back to the parent through a queue."""

    index: int
    ask_ms: list[float] = field(default_factory=list)
    tell_ms: list[float] = field(default_factory=list)
    # CPU of the calling thread during each call: wall minus this is waiting (for a core, a lock
    # or the server).
    ask_cpu_ms: list[float] = field(default_factory=list)
    tell_cpu_ms: list[float] = field(default_factory=list)
    asked: list[tuple[int, int]] = field(default_factory=list)  # (trial id, trial number)
    told: list[int] = field(default_factory=list)  # trial ids whose tell returned
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (phase, kind, message)
    cpu_s: float = 0.0  # this process's CPU (all threads) between the start and its last tell
    ended: float = 0.0  # time.monotonic() at its last tell (one clock for all processes)
    profile: dict[str, float] | None = None  # share of wall time by part (client 0, if asked)


@dataclass(frozen=True)
class Cell:
    """The clients' view of one cell: what they open, when they start, how long they run."""

    target: Target
    seconds: float
    max_trials: int
    ready: Any  # multiprocessing queue: ("ready" | "failed", index)
    results: Any  # multiprocessing queue: ClientResult
    go: Any  # multiprocessing event: all clients are ready
    start: Any  # multiprocessing Value("d"): time.monotonic() at the common start


def _open_rdb(url: str, *, create: bool, heartbeat: bool) -> Any:
    """The project's RDB storage for ``url`` (heartbeats as the benchmark sets them)."""
    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    checked = parse_storage_url(url)
    if not heartbeat:
        return open_storage(checked, create=create)
    return open_storage(
        checked,
        create=create,
        heartbeat_interval=HEARTBEAT_INTERVAL_S,
        heartbeat_grace=HEARTBEAT_GRACE_S,
    )


def _close_rdb(storage: Any) -> None:
    storage.remove_session()
    storage.engine.dispose()


def _create_study(url: str) -> None:
    """Create the cell's empty study, then close every connection (the clients fork after)."""
    import optuna

    storage = _open_rdb(url, create=True, heartbeat=False)
    try:
        optuna.create_study(storage=storage, study_name=STUDY)
    finally:
        _close_rdb(storage)


@contextlib.contextmanager
def _target(
    backend: str, server: DatabaseServer | None, folder: Path, name: str
) -> Iterator[Target]:
    from benchmarks.db_servers import grpc_proxy, open_grpc_storage

    if backend == "sqlite":
        url = f"sqlite:///{folder / (name + '.db')}"
        _create_study(url)
        yield Target(url, lambda: _open_rdb(url, create=False, heartbeat=True), dict)
        return
    assert server is not None
    url = server.new_database(name)
    _create_study(url)
    if backend in ("postgresql", "mariadb"):
        yield Target(
            url,
            lambda: _open_rdb(url, create=False, heartbeat=True),
            lambda: {backend: server.pids()[0]},
        )
        return
    with grpc_proxy(url) as address:
        yield Target(
            url,
            lambda: open_grpc_storage(address, HEARTBEAT_INTERVAL_S, HEARTBEAT_GRACE_S),
            lambda: {"postgresql": server.pids()[0], "grpc proxy": address.pid},
        )


@contextlib.contextmanager
def _server(backend: str) -> Iterator[DatabaseServer | None]:
    from benchmarks import db_servers

    if backend == "sqlite":
        yield None
    elif backend == "mariadb":
        with db_servers.mariadb() as server:
            yield server
    else:
        with db_servers.postgres() as server:
            yield server


def error_kind(error: BaseException) -> str:
    """``lock``, ``deadlock`` or ``other``, from the error's type and message."""
    text = f"{type(error).__name__} {error}".lower()
    if "deadlock" in text:
        return "deadlock"
    if "lock" in text:  # database is locked, lock wait timeout, could not obtain lock
        return "lock"
    return "other"


def _describe(phase: str, error: BaseException) -> tuple[str, str, str]:
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return phase, error_kind(error), f"{phase}: {type(error).__name__}: {first}"


def _client(index: int, cell: Cell, profile: bool) -> None:
    """One client process: open the storage, wait for the start, run cycles until the deadline."""
    import optuna
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    result = ClientResult(index)

    def heartbeat_failed(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            result.errors.append(_describe("heartbeat", args.exc_value))

    threading.excepthook = heartbeat_failed
    try:
        storage = cell.target.open_client()
        study = optuna.load_study(
            study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler(seed=index)
        )
    except Exception as e:  # reported as this client's error; the others run on
        result.errors.append(_describe("open", e))
        cell.ready.put(("failed", index))
        cell.results.put(result)
        return
    heartbeat = is_heartbeat_enabled(storage)
    cell.ready.put(("ready", index))
    if not cell.go.wait(READY_TIMEOUT_S):
        result.errors.append(("open", "other", "open: never started (the parent gave up)"))
        cell.results.put(result)
        return
    deadline = cell.start.value + cell.seconds
    profiler = cProfile.Profile() if profile else None
    cpu_before = _own_cpu_seconds()
    if profiler is not None:
        profiler.enable()
    done = 0
    while time.monotonic() < deadline and done < cell.max_trials:
        done += 1
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            if heartbeat:
                optuna.storages.fail_stale_trials(study)
            trial = study.ask()
        except Exception as e:
            result.errors.append(_describe("ask", e))
            continue
        result.ask_ms.append((time.perf_counter() - started) * 1000)
        result.ask_cpu_ms.append((time.thread_time() - cpu_started) * 1000)
        result.asked.append((trial._trial_id, trial.number))
        value = 0.0
        with get_heartbeat_thread(trial._trial_id, storage):
            try:
                x = trial.suggest_float("x", 0.0, 1.0)
                for step in range(1, REPORTS_PER_TRIAL + 1):
                    value = (x - 0.5) ** 2 / step
                    trial.report(value, step)
            except Exception as e:
                result.errors.append(_describe("report", e))
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            study.tell(trial, value)
        except Exception as e:
            result.errors.append(_describe("tell", e))
            continue
        result.tell_ms.append((time.perf_counter() - started) * 1000)
        result.tell_cpu_ms.append((time.thread_time() - cpu_started) * 1000)
        result.told.append(trial._trial_id)
    if profiler is not None:
        profiler.disable()
        result.profile = profile_shares(profiler)
    result.ended = time.monotonic()
    result.cpu_s = _own_cpu_seconds() - cpu_before
    cell.results.put(result)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def profile_shares(profiler: cProfile.Profile) -> dict[str, float]:
    """Share of the profiled thread's wall time in Optuna, SQLAlchemy, the driver (with its
    waits on the server and on locks) and the rest, by where each function's own time falls."""
    stats = pstats.Stats(profiler)
    seconds = dict.fromkeys(PROFILE_PARTS, 0.0)
    marks = ("sqlite3", "psycopg", "pymysql", "grpc", "socket", "select", "poll", "ssl")
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        where = f"{filename} {name}".lower()
        if "/sqlalchemy/" in filename:
            seconds["sqlalchemy"] += own
        elif "/optuna/" in filename:
            seconds["optuna"] += own
        elif any(mark in where for mark in marks):
            seconds["driver and waits"] += own
        else:
            seconds["other"] += own
    total = sum(seconds.values()) or 1.0
    return {part: value / total for part, value in seconds.items()}


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of processes and all their descendants, the exited (reaped) ones included.

    Read from /proc (Linux): each process's own user + system time plus that of its children
    it has reaped, so a server's backends that have exited still count.
    """
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
                stats[int(entry.name)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [pid for pid in pids if pid in stats]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo += children.get(pid, [])
    return total


def machine_cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat (Linux)."""
    with contextlib.suppress(OSError):
        with open("/proc/stat", encoding="ascii") as handle:
            values = [float(v) for v in handle.readline().split()[1:9]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)
    return math.nan, math.nan


def _machine_busy(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Fraction of all cores busy between two :func:`machine_cpu_times` readings."""
    spent = after[1] - before[1]
    return (after[0] - before[0]) / spent if spent > 0 else math.nan


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def run_cell(target: Target, clients: int, size: Size, *, profile: bool) -> dict[str, Any]:
    """Run ``clients`` forked clients on ``target``; return the cell's measured numbers."""
    context = multiprocessing.get_context("fork")
    cell = Cell(
        target=target,
        seconds=size.seconds,
        max_trials=size.max_trials_per_client,
        ready=context.Queue(),
        results=context.Queue(),
        go=context.Event(),
        start=context.Value("d", 0.0),
    )
    processes = [
        context.Process(target=_client, args=(i, cell, profile and i == 0), daemon=True)
        for i in range(clients)
    ]
    results: list[ClientResult] = []
    try:
        for process in processes:
            process.start()
        ready_by = time.monotonic() + READY_TIMEOUT_S
        states = Counter(
            cell.ready.get(timeout=max(1.0, ready_by - time.monotonic()))[0] for _ in processes
        )
        server_pids = target.server_pids()
        server_before = {name: tree_cpu_seconds([pid]) for name, pid in server_pids.items()}
        machine_before = machine_cpu_times()
        cell.start.value = started = time.monotonic()
        cell.go.set()
        give_up = started + size.seconds + OVERRUN_S
        with contextlib.suppress(queue.Empty):
            while len(results) < clients:
                results.append(cell.results.get(timeout=max(0.1, give_up - time.monotonic())))
        finished = time.monotonic()
        server_cpu = {
            name: tree_cpu_seconds([pid]) - server_before[name] for name, pid in server_pids.items()
        }
        busy = _machine_busy(machine_before, machine_cpu_times())
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    ran = [r for r in results if r.ended > 0]
    wall = max((r.ended for r in ran), default=finished) - started
    numbers = _summarise(results, wall)
    numbers.update(
        clients=clients,
        clients_failed_to_open=states["failed"],
        clients_without_result=clients - len(results),
        wall_s=wall,
        client_cpu_s=sum(r.cpu_s for r in results),
        server_cpu_s=sum(server_cpu.values()),
        server_cpu_s_by_process=server_cpu,
        machine_busy=busy,
        profile_client_0=next((r.profile for r in results if r.profile is not None), None),
    )
    numbers.update(check_storage(target.url, results))
    numbers["trials_per_s"] = numbers["complete"] / wall if wall > 0 else math.nan
    return numbers


def _summarise(results: list[ClientResult], wall: float) -> dict[str, Any]:
    ask = [v for r in results for v in r.ask_ms]
    tell = [v for r in results for v in r.tell_ms]
    errors: dict[str, dict[str, Any]] = {k: {"count": 0, "first": None} for k in ERROR_KINDS}
    for result in results:
        for _, kind, message in result.errors:
            errors[kind]["count"] += 1
            errors[kind]["first"] = errors[kind]["first"] or message
    return {
        "asks": len(ask),
        "tells": len(tell),
        "ask_ms_p50": percentile(ask, 50),
        "ask_ms_p99": percentile(ask, 99),
        "tell_ms_p50": percentile(tell, 50),
        "tell_ms_p99": percentile(tell, 99),
        "ask_cpu_ms_p50": percentile([v for r in results for v in r.ask_cpu_ms], 50),
        "tell_cpu_ms_p50": percentile([v for r in results for v in r.tell_cpu_ms], 50),
        "errors": errors,
    }


def check_storage(url: str, results: list[ClientResult]) -> dict[str, Any]:
    """Load every trial from the database and count lost and duplicated trials.

    Lost: a number missing from 0..n-1, or a tell a client saw succeed whose trial is not
    COMPLETE. Duplicated: a number stored twice, a trial id stored twice, or a trial id that
    two asks handed out.
    """
    import optuna

    storage = _open_rdb(url, create=False, heartbeat=False)
    try:
        trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
    finally:
        _close_rdb(storage)
    numbers = [t.number for t in trials]
    ids = [t._trial_id for t in trials]
    complete = {t._trial_id for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    told = [trial_id for r in results for trial_id in r.told]
    asked_ids = [trial_id for r in results for trial_id, _ in r.asked]
    missing_numbers = len(set(range(len(trials))) - set(numbers))
    duplicated_numbers = len(numbers) - len(set(numbers))
    duplicated_ids = len(ids) - len(set(ids))
    asked_twice = len(asked_ids) - len(set(asked_ids))
    told_not_complete = len(set(told) - complete)
    return {
        "trials_stored": len(trials),
        "complete": len(complete),
        "states": dict(Counter(t.state.name for t in trials)),
        "missing_numbers": missing_numbers,
        "told_not_complete": told_not_complete,
        "duplicated_numbers": duplicated_numbers,
        "duplicated_ids": duplicated_ids,
        "ids_asked_twice": asked_twice,
        "lost": missing_numbers + told_not_complete,
        "duplicated": duplicated_numbers + duplicated_ids + asked_twice,
    }


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = sizes(settings)
    folder = Path(settings.workdir) / f"storage-scale-{settings.mode}"
    folder.mkdir(parents=True, exist_ok=True)
    figure = Figure(
        key="storage_scale",
        title="Storage under many clients: trials/s, latency, errors, lost/duplicated trials",
        command="python -m benchmarks --only storage_scale",
        settings={
            "clients": list(size.clients),
            "backends": list(size.backends),
            "seconds_per_cell": size.seconds,
            "max_trials_per_client": size.max_trials_per_client,
            "reports_per_trial": REPORTS_PER_TRIAL,
            "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "heartbeat_grace_s": HEARTBEAT_GRACE_S,
            "cores": os.cpu_count(),
        },
        target="0 lost and 0 duplicated trials on every backend and client count",
    )
    load_at_start = load_average()
    cells: dict[str, list[dict[str, Any]]] = {}
    for backend in size.backends:
        cells[backend] = _run_backend(backend, size, folder, figure, log)
    # The cores are shared: say how busy the machine was besides this figure's own processes.
    figure.notes.append(
        f"load average (1/5/15 min) {load_at_start} before this figure and {load_average()} "
        "after it (its own clients count there: up to 128 runnable processes); processes of "
        "others using the CPU as it ended: "
        + ("; ".join(f"`{row}`" for row in busy_processes(limit=4)) or "none above 5 %")
    )
    figure.numbers = {"cells": cells}
    checked = [c for rows in cells.values() for c in rows if "skipped" not in c]
    if checked:
        figure.met = all(c["lost"] == 0 and c["duplicated"] == 0 for c in checked)
    for backend, rows in cells.items():
        note = ceiling_note(backend, rows)
        if note:
            figure.notes.append(note)
    figure.notes += _error_notes(cells)
    figure.notes.append(
        "ask = fail_stale_trials + study.ask (what study.optimize does with heartbeats on); "
        "tell = study.tell; each cycle also suggests one float and reports 5 values; p50/p99 "
        "over every call of every client; trials/s = COMPLETE trials in the database / wall "
        "time from the common start to the last client's last tell"
    )
    figure.notes.append(
        "why asks queue: Optuna's RDBStorage creates a trial under SELECT ... FOR UPDATE on the "
        "study's row (the trial number is counted inside that transaction), so the asks of one "
        "study run one at a time on PostgreSQL and MariaDB (on SQLite the whole file has one "
        "writer); that lock is also why no number is handed out twice. On 2 busy cores a lock "
        "holder that loses its core keeps everyone waiting, so ask latency grows with the "
        "number of clients while tell latency does not"
    )
    figure.notes.append(
        f"heartbeats: every running trial writes one each {HEARTBEAT_INTERVAL_S} s, so N clients "
        f"add about N/{HEARTBEAT_INTERVAL_S} writes/s however few trials finish (64/s at 128 "
        "clients), and every ask first looks for stale trials among the N running ones; "
        "'other processes' in the notes is what kept the cores busy besides the clients and the "
        "server: other jobs on the machine, this run's parent, kernel work charged to no process; "
        "client 0 of each backend's smallest cell runs under cProfile (a little slower)"
    )
    figure.notes.append(
        "the gRPC rows: `hpsearch storage-proxy` (Optuna's proxy servicer, 32 threads, "
        "heartbeats and stale-trial checks relayed into PostgreSQL) in one process, clients "
        "opened as workers open grpc:// URLs, heartbeats on; the proxy's CPU counts as server "
        "CPU"
    )
    return figure


def _run_backend(
    backend: str, size: Size, folder: Path, figure: Figure, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with _server(backend) as server:
            for index, clients in enumerate(size.clients):
                name = f"{backend.split()[0]}_{clients}"
                with _target(backend, server, folder, name) as target:
                    numbers = run_cell(target, clients, size, profile=index == 0)
                numbers["backend"] = backend
                rows.append(numbers)
                figure.table.append(table_row(numbers))
                log(f"  storage_scale {backend}, {clients} clients: {_summary_line(numbers)}")
    except ServerUnavailableError as e:
        log(f"  storage_scale {backend}: skipped: {e}")
        rows.append({"backend": backend, "skipped": str(e)})
        figure.table.append({"backend": backend, "clients": "-", "trials/s": f"skipped: {e}"})
    except Exception as e:  # one backend failing must not lose the others' rows
        traceback.print_exc()
        rows.append({"backend": backend, "skipped": f"failed: {type(e).__name__}: {e}"})
        figure.table.append(
            {"backend": backend, "clients": "-", "trials/s": f"failed: {type(e).__name__}: {e}"}
        )
    return rows


def table_row(numbers: dict[str, Any]) -> dict[str, Any]:
    errors = numbers["errors"]
    return {
        "backend": numbers["backend"],
        "clients": numbers["clients"],
        "trials/s": numbers["trials_per_s"],
        "complete / tells": f"{numbers['complete']} / {numbers['tells']}",
        "ask p50 ms": numbers["ask_ms_p50"],
        "ask p99 ms": numbers["ask_ms_p99"],
        "tell p50 ms": numbers["tell_ms_p50"],
        "tell p99 ms": numbers["tell_ms_p99"],
        "ask / tell CPU p50 ms": f"{fmt(numbers['ask_cpu_ms_p50'])} / "
        f"{fmt(numbers['tell_cpu_ms_p50'])}",
        "errors lock/deadlock/other": "/".join(str(errors[k]["count"]) for k in ERROR_KINDS),
        "lost": numbers["lost"],
        "duplicated": numbers["duplicated"],
        "client CPU ms/trial": _per_trial_ms(numbers["client_cpu_s"], numbers["complete"]),
        "server CPU ms/trial": _per_trial_ms(numbers["server_cpu_s"], numbers["complete"]),
        "cores busy": f"{numbers['machine_busy']:.0%}",
        "wall s": numbers["wall_s"],
    }


def _per_trial_ms(seconds: float, trials: int) -> float:
    return seconds * 1000 / trials if trials else math.nan


def _summary_line(numbers: dict[str, Any]) -> str:
    errors = sum(numbers["errors"][k]["count"] for k in ERROR_KINDS)
    return (
        f"{numbers['trials_per_s']:.1f} trials/s ({numbers['complete']} complete, "
        f"{numbers['tells']} tells), ask p50/p99 {numbers['ask_ms_p50']}/{numbers['ask_ms_p99']} "
        f"ms, tell p50/p99 {numbers['tell_ms_p50']}/{numbers['tell_ms_p99']} ms, {errors} errors, "
        f"lost {numbers['lost']}, duplicated {numbers['duplicated']}, CPU clients "
        f"{numbers['client_cpu_s']:.1f} s / server {numbers['server_cpu_s']:.1f} s, "
        f"cores busy {numbers['machine_busy']:.0%}"
    )


def ceiling_note(backend: str, rows: list[dict[str, Any]]) -> str | None:
    """The backend's best trials/s and what the profile says limits it there."""
    ran = [r for r in rows if "skipped" not in r]
    if not ran:
        return None
    best = max(ran, key=lambda r: r["trials_per_s"])
    cores = os.cpu_count() or 1
    capacity = cores * best["wall_s"]
    clients_share = best["client_cpu_s"] / capacity
    server_share = best["server_cpu_s"] / capacity
    busy = best["machine_busy"]
    others = max(0.0, busy - clients_share - server_share)
    proxy_core = best["server_cpu_s_by_process"].get("grpc proxy", 0.0) / best["wall_s"]
    if proxy_core >= 0.85:
        limit = (
            f"the gRPC proxy, one Python process busy {proxy_core:.0%} of one core (its "
            "threads share one interpreter lock, so it cannot use more)"
        )
    elif busy >= 0.85:
        heavier = "the clients' Python" if clients_share >= server_share else "the server"
        limit = f"the {cores} cores are full, most of them used by {heavier}"
    else:
        limit = (
            f"the {cores} cores are not full, so the clients wait: on the database's locks "
            "(one writer at a time) or on round trips"
        )
    by_process = ", ".join(
        f"{name} {seconds / best['wall_s']:.0%} of one core"
        for name, seconds in best["server_cpu_s_by_process"].items()
    )
    cpu_ms = _per_trial_ms(best["client_cpu_s"] + best["server_cpu_s"], best["complete"])
    bound = cores * 1000 / cpu_ms if cpu_ms > 0 else math.nan
    proxy_ms = _per_trial_ms(
        best["server_cpu_s_by_process"].get("grpc proxy", 0.0), best["complete"]
    )
    proxy_cap = (
        f"; the proxy alone spends {proxy_ms:.0f} CPU ms per trial in one process, which caps "
        f"it near {1000 / proxy_ms:.0f} trials/s however many cores there are"
        if proxy_ms > 0
        else ""
    )
    largest = ran[-1]
    queue_note = (
        f"; asks wait in line for the study's lock: at {largest['clients']} clients an ask "
        f"takes {fmt(largest['ask_ms_p50'])} ms (p50) of which {fmt(largest['ask_cpu_ms_p50'])} "
        f"ms is the client's own CPU, while a tell takes {fmt(largest['tell_ms_p50'])} ms"
        if not best["server_cpu_s_by_process"].get("grpc proxy")
        and largest["ask_ms_p50"] is not None
        and largest["ask_cpu_ms_p50"]
        else ""
    )
    profile = next((r["profile_client_0"] for r in ran if r.get("profile_client_0")), None)
    split = ""
    if profile:
        split = (
            f"; client 0 of the {ran[0]['clients']}-client cell (under cProfile) spent its wall "
            + ", ".join(f"{profile[p]:.0%} in {p}" for p in PROFILE_PARTS)
        )
    return (
        f"{backend}: ceiling {best['trials_per_s']:.0f} trials/s (at {best['clients']} clients); "
        f"there the clients used {clients_share:.0%} of the {cores} cores, the server "
        f"{server_share:.0%}{' (' + by_process + ')' if by_process else ''}, other processes "
        f"{others:.0%} (cores busy {busy:.0%}); {cpu_ms:.0f} CPU ms per trial (clients + "
        f"server), so {cores} free cores would cap it near {bound:.0f} trials/s{proxy_cap}"
        f"{split}. "
        f"Limit: {limit}{queue_note}"
    )


def _error_notes(cells: dict[str, list[dict[str, Any]]]) -> list[str]:
    notes = []
    for backend, rows in cells.items():
        for row in rows:
            if "skipped" in row:
                continue
            for kind in ERROR_KINDS:
                entry = row["errors"][kind]
                if entry["count"]:
                    notes.append(
                        f"{backend}, {row['clients']} clients: {entry['count']} {kind} error(s), "
                        f"first: {entry['first']}"
                    )
            if row["clients_failed_to_open"] or row["clients_without_result"]:
                notes.append(
                    f"{backend}, {row['clients']} clients: {row['clients_failed_to_open']} "
                    f"failed to open the storage, {row['clients_without_result']} sent no result"
                )
    return notes
