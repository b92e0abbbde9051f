"""Start long-lived component processes detached from the caller, and stop them with their children.

Each component gets its own session (process group), so `down` can signal the whole group: a component that
forked helpers (the node agent runs pods as processes) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

MAX_LOG_BYTES = 20 * 1024 * 1024


def spawn(args: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``args`` in a new session with stdout+stderr appended to ``log_file``; return its pid.

    The child outlives this Python process on purpose: `podium-cluster up` returns while the cluster runs.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # Logs are appended across restarts (the previous run's end explains a restart); one old copy bounds them.
    if log_file.exists() and log_file.stat().st_size > MAX_LOG_BYTES:
        log_file.replace(log_file.with_name(log_file.name + ".1"))
    with log_file.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie holds no ports and does no work)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 after the parenthesised command name is the state letter.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces, or "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for others (started by an earlier `up`) init reaps them.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Every live process as (pid, the fields of /proc/<pid>/stat after the command name: state first)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        yield int(entry.name), fields


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid`` (read from /proc: works after the leader has exited)."""
    return [pid for pid, fields in process_stats() if fields[0] != "Z" and int(fields[2]) == pgid]


def stop_group(pgid: int, grace: float = 10.0) -> bool:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL what is left.

    Returns True if the group had to be killed. The pid is a session leader we started, so its pgid is its pid.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pgid)
        if not group_members(pgid):
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and group_members(pgid):
        _reap(pgid)
        time.sleep(0.05)
    return True
