"""A user's own training command as a trial's run: the process side (no Optuna, no torch).

The command is an argv run without a shell. ``"{name}"`` as a whole argv element is that
parameter's value, ``"{args}"`` one ``--name=value`` element per parameter, ``"{seed}"`` the
trial's seed. The child runs in a session of its own (its own process group), stdin closed,
Python unbuffered, and reports one JSON object per step (an epoch, from 1), either as a stdout
line ``HPSEARCH {"step": 3, "val_loss": 0.41}`` or as a line appended to
``$HPSEARCH_METRICS_FILE``. Every other line is its own output, kept in its log and never parsed.
After each step the worker appends its answer (``{"step": 3, "stop": false}``) to
``$HPSEARCH_CONTROL_FILE``; the one-file client ``hpsearch_client`` reads it.

A stop (pruned, early-stopped, timed out, interrupted) gives the command ``kill_grace_s`` to exit
on its own, then its whole process group gets SIGTERM, then SIGKILL ``kill_grace_s`` later.
Whatever is left of the group when the command's main process exits is killed too.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from objectives.specs import Metric, ObjectiveSpec

NAME = "command"
PREFIX = "HPSEARCH "
# A line longer than this is the script's own output (cut in the log), never a report.
MAX_LINE = 64 * 1024
STDERR_TAIL = 20  # lines of stderr kept for a failed trial's reason
# Parameters that are the service's settings, never passed to the command by "{args}".
SERVICE_PARAMS = ("early_stopping_patience",)
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The storage URL and database passwords never reach the command.
HIDDEN_ENV = ("HPSEARCH_STORAGE", "PGPASSWORD", "MYSQL_PWD", "DATABASE_URL")
WATCHDOG = str(Path(__file__).with_name("command_watchdog.py"))
OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError|Cannot allocate memory", re.IGNORECASE)


class CommandData(BaseModel):
    """A command objective has no ``data:`` section: the script reads its own data."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_builder(request: Any) -> Any:
    raise RuntimeError("a command trial runs its command; it has no builder")


def command_spec(metrics: Mapping[str, str]) -> ObjectiveSpec:
    """The spec of a command objective: its metrics as declared (``val_<m>: minimize``)."""
    declared = tuple(
        Metric(name.removeprefix("val_"), direction == "maximize")
        for name, direction in metrics.items()
    )
    return ObjectiveSpec(
        name=NAME,
        params={},
        metrics=declared,
        data_model=CommandData,
        builder=_no_builder,
        description="your own training command, one trial per run",
    )


# --------------------------------------------------------------------------- argv


def argv_problem(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """Why ``argv`` cannot run with these parameter names (None: it can)."""
    if not argv:
        return "empty; give the command as a list, e.g. [python, train.py, '{args}']"
    known = {"args", "seed", *names}
    for element in argv:
        whole = PLACEHOLDER.fullmatch(element)
        if whole:
            if whole.group(1) not in known:
                return f"unknown placeholder {element!r}; known: " + ", ".join(
                    f"{{{name}}}" for name in sorted(known)
                )
            continue
        inside = PLACEHOLDER.search(element)
        if inside and inside.group(1) in known:
            return (
                f"{element!r}: a placeholder must be a whole argv element "
                f"(write [..., '--{inside.group(1)}', '{{{inside.group(1)}}}'] or use '{{args}}')"
            )
    return None


def format_value(value: Any) -> str:
    """One argv element: booleans as true/false, floats in full precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def command_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters the command gets (``{args}``, ``HPSEARCH_PARAMS``): no service settings."""
    return {k: v for k, v in params.items() if k not in SERVICE_PARAMS}


def expand_argv(argv: Sequence[str], params: Mapping[str, Any], seed: int) -> list[str]:
    """The argv one trial runs: placeholders replaced, each value exactly one element."""
    passed = command_params(params)
    out: list[str] = []
    for element in argv:
        whole = PLACEHOLDER.fullmatch(element)
        if whole is None:
            out.append(element)
        elif whole.group(1) == "args":
            out.extend(f"--{name}={format_value(value)}" for name, value in passed.items())
        elif whole.group(1) == "seed":
            out.append(str(seed))
        else:
            out.append(format_value(params[whole.group(1)]))
    return out


def child_environment(
    base: Mapping[str, str], extra: Mapping[str, str], secrets: Sequence[str] = ()
) -> dict[str, str]:
    """The command's environment: ``base`` without the storage URL or passwords, plus ``extra``.

    Gone are the variables of ``HIDDEN_ENV`` and every variable whose value holds one of
    ``secrets`` or a hidden variable's value (the Slurm and Kubernetes recipes put the storage
    URL in the worker's environment under names of their own).
    """
    secret_values = [value for value in secrets if value]
    secret_values += [base[name] for name in HIDDEN_ENV if base.get(name)]
    env = {
        key: value
        for key, value in base.items()
        if key not in HIDDEN_ENV and not any(secret in value for secret in secret_values)
    }
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def visible_devices(device: str, environ: Mapping[str, str]) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a command training on torch device ``device`` (None: a CPU
    slot, nothing to set). ``cuda:N`` counts within the worker's own visible devices, so a
    worker pinned to one GPU (``cuda:0`` inside) passes that GPU's physical number on."""
    if not device.startswith("cuda"):
        return None
    index = int(device.partition(":")[2] or 0)
    visible = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if "CUDA_VISIBLE_DEVICES" in environ and index < len(visible):
        return visible[index].strip()
    return str(index)


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Report:
    """One step the command reported: its metrics exactly as written (ints stay ints)."""

    step: int
    metrics: dict[str, float | int]


def parse_report(text: str) -> Report | None:
    """A report from one JSON object (``{"step": 3, "val_loss": 0.41}``); None if it is not one.

    Values are kept as JSON gives them: ``1.2e-05`` a float, ``888`` and ``-3`` ints, ``NaN`` and
    ``Infinity`` non-finite floats (the trial then ends as diverged). Non-numbers are dropped.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    step = data.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        return None
    metrics = {
        key: value
        for key, value in data.items()
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)
    }
    return Report(step, metrics)


def report_of_line(line: str) -> Report | None:
    """A stdout line ``HPSEARCH {...}`` as a report; None for the script's own output."""
    if not line.startswith(PREFIX):
        return None
    return parse_report(line[len(PREFIX) :].strip())


def is_finite(value: float | int) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


# --------------------------------------------------------------------------- the process


@dataclass
class CommandRun:
    """One running command: its reports on a queue, its output in a log, its stop and kill."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log_path: Path
    metrics_file: Path
    control_file: Path
    reports: queue.Queue[Report] = field(default_factory=queue.Queue)
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL)
    )
    grace: float = 30.0  # the watchdog's, when this process dies
    out_of_memory: bool = False
    process: subprocess.Popen[bytes] | None = None
    _lifeline: int | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _log: IO[str] | None = None
    _log_lock: threading.Lock = field(default_factory=threading.Lock)
    _metrics_lock: threading.Lock = field(default_factory=threading.Lock)
    _metrics_offset: int = 0
    _metrics_rest: bytes = b""
    _closing: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.metrics_file.touch()
        self.control_file.touch()
        self._log = self.log_path.open("w", encoding="utf-8", errors="replace")
        # The watchdog leads the command's session and takes its group down when this process
        # dies: the pipe's write end stays here only (not inherited by anything).
        watched, self._lifeline = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", WATCHDOG, str(watched), str(self.grace), *self.argv],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(watched,),
            )
        finally:
            os.close(watched)
        assert self.process.stdout is not None and self.process.stderr is not None
        for stream, on_line in (
            (self.process.stdout, self._stdout),
            (self.process.stderr, self._stderr),
        ):
            thread = threading.Thread(target=_drain, args=(stream, on_line), daemon=True)
            thread.start()
            self._threads.append(thread)
        watcher = threading.Thread(target=self._watch_metrics_file, daemon=True)
        watcher.start()
        self._threads.append(watcher)

    # Output --------------------------------------------------------------------------------

    def _write_log(self, text: str) -> None:
        with self._log_lock:
            if self._log is not None and not self._log.closed:
                self._log.write(text + "\n")

    def _stdout(self, line: str) -> None:
        self._write_log(line)
        report = report_of_line(line)
        if report is not None:
            self.reports.put(report)

    def _stderr(self, line: str) -> None:
        self._write_log(line)
        self.stderr_tail.append(line)
        if OUT_OF_MEMORY.search(line):
            self.out_of_memory = True

    def _watch_metrics_file(self) -> None:
        while not self._closing.wait(0.05):
            self._read_metrics_file()

    def _read_metrics_file(self, final: bool = False) -> None:
        """The lines appended since the last read; with ``final`` also an unfinished last one."""
        with self._metrics_lock:  # one reader at a time: the watcher, or the final read
            try:
                if self.metrics_file.stat().st_size == self._metrics_offset and not final:
                    return  # nothing new (most scripts report on stdout)
                with self.metrics_file.open("rb") as stream:
                    stream.seek(self._metrics_offset)
                    chunk = stream.read()
            except OSError:
                return
            self._metrics_offset += len(chunk)
            *lines, self._metrics_rest = (self._metrics_rest + chunk).split(b"\n")
            if final:
                lines.append(self._metrics_rest)
                self._metrics_rest = b""
        for raw in lines:
            report = parse_report(raw.decode("utf-8", errors="replace").strip())
            if report is not None:
                self.reports.put(report)

    # Control ---------------------------------------------------------------------------------

    def answer(self, step: int, stop: bool) -> None:
        """The worker's answer for ``step``, read by ``hpsearch_client.report``."""
        with self.control_file.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps({"step": step, "stop": stop}) + "\n")

    def exit_code(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def wait_exit(self, seconds: float) -> bool:
        assert self.process is not None
        try:
            self.process.wait(timeout=max(seconds, 0.0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float, *, terminate_first: bool = False) -> None:
        """Let the command exit on its own for ``grace`` seconds (it was told through the
        control file), then SIGTERM its group, then SIGKILL ``grace`` seconds later. With
        ``terminate_first`` (the study is stopping: nothing was told) SIGTERM comes at once."""
        if not terminate_first and self.wait_exit(grace):
            return
        why = "the study is stopping" if terminate_first else f"still running after {grace:g} s"
        self._write_log(f"[hpsearch] SIGTERM to the command's process group: {why}")
        self._signal_group(signal.SIGTERM)
        if self.wait_exit(grace):
            return
        self._write_log(f"[hpsearch] SIGKILL to the command's process group after {grace:g} s")
        self._signal_group(signal.SIGKILL)
        self.wait_exit(10)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def finish(self) -> list[Report]:
        """After the main process exited: kill what is left of its group, read all output and
        the metrics file to the end; return the reports not taken yet."""
        self._signal_group(signal.SIGKILL)  # grandchildren that outlived it, holding its pipes
        for thread in self._threads[:2]:
            thread.join(timeout=10)
        self._write_log(f"[hpsearch] the command ended: {describe_exit(self.exit_code() or 0)}")
        self._closing.set()
        self._threads[2].join(timeout=10)
        self._read_metrics_file(final=True)
        with self._log_lock:
            if self._log is not None:
                self._log.close()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        return list(self.pending())

    def pending(self) -> Iterator[Report]:
        while True:
            try:
                yield self.reports.get_nowait()
            except queue.Empty:
                return

    def next_report(self, seconds: float) -> Report | None:
        try:
            return self.reports.get(timeout=seconds)
        except queue.Empty:
            return None


def _drain(stream: IO[bytes], on_line: Callable[[str], None]) -> None:
    """Read a pipe to its end in chunks: lines (``\\n`` or ``\\r``) go to ``on_line``; a line past
    ``MAX_LINE`` without a newline is cut there and never parsed as a report."""
    buffer = b""
    overlong = False
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", errors="replace")
            if overlong:
                overlong = False  # the end of a cut line: output only
                continue
            on_line(text)
        if len(buffer) > MAX_LINE:
            on_line(buffer[:MAX_LINE].decode("utf-8", errors="replace") + " [cut]")
            buffer, overlong = b"", True
    if buffer and not overlong:
        on_line(buffer.decode("utf-8", errors="replace"))
    stream.close()


def describe_exit(code: int) -> str:
    """``exit code N``, or ``signal N`` for a process a signal ended (a negative code)."""
    return f"exit code {code}" if code >= 0 else f"signal {-code}"


def stderr_text(lines: Sequence[str], most: int = 3) -> str:
    """The last non-empty lines of stderr, for a reason (one line)."""
    shown = [line.strip() for line in lines if line.strip()][-most:]
    return " | ".join(shown)[:600]
