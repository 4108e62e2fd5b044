"""The watchdog that leads a command trial's session: ``python -m objectives.command_watchdog FD
GRACE ARGV...``.

The worker starts this process in a session of its own; it starts the command in the same
process group, and watches file descriptor FD, the read end of a pipe whose write end only the
worker holds. When the worker dies (even by SIGKILL, which nothing can catch) the pipe reaches
its end: the watchdog sends SIGTERM to the whole group, then SIGKILL after GRACE seconds, so
neither the command nor a child of it outlives the worker. ``PR_SET_PDEATHSIG`` would reach only
a direct child, never a grandchild.

A signal the worker sends to the group (a stop, SIGTERM, SIGKILL) reaches the command directly;
the watchdog ignores SIGTERM and SIGINT so that it can report how the command ended: it exits
with the command's exit code, or kills itself with the signal that ended the command.
Standard library only, so it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    fd, grace, command = int(argv[0]), float(argv[1]), argv[2:]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = subprocess.Popen(
            command,
            pass_fds=(),
            # The command gets the default handlers back, not our ignored ones.
            preexec_fn=_default_signals,
        )
    except OSError as e:
        print(f"hpsearch: cannot start {command[0]!r}: {e}", file=sys.stderr, flush=True)
        return 127
    while child.poll() is None:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready and not os.read(fd, 1):  # the worker is gone
            _take_down(child, grace)
            break
    code = child.wait()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _take_down(child: subprocess.Popen[bytes], grace: float) -> None:
    group = os.getpgrp()
    os.killpg(group, signal.SIGTERM)  # the watchdog ignores it; the command and its children not
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(group, signal.SIGKILL)  # the watchdog goes too, last


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
