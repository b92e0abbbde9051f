"""Start a container as a local process group in a private mount namespace, and stop it.

`unshare --mount --propagation private` gives every container its own mount table, where the pod's volumes and
/etc/hosts are bind-mounted at their real paths; a shell then `exec`s the program so the container's PID is the
one we started and its process group is ours to signal.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shlex
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

from podium_localcluster.node.volumes import Mount


class NotRunnable(Exception):
    """The container cannot be started; `reason` goes into its Waiting state."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_program(argv: list[str], search_path: str) -> str:
    """Absolute path of argv[0]: images are ignored, so a container without a command cannot run."""
    if not argv or not argv[0]:
        raise NotRunnable(
            "ImageNotRunnable",
            "the node runs containers as local processes and ignores images: set `command` on the container",
        )
    prog = argv[0]
    if "/" in prog:
        if os.path.isfile(prog) and os.access(prog, os.X_OK):
            return prog
        raise NotRunnable("ExecutableNotFound", f'"{prog}": no such executable file on the node')
    found = shutil.which(prog, path=search_path)
    if found is None:
        raise NotRunnable("ExecutableNotFound", f'"{prog}": executable file not found in $PATH ({search_path})')
    return found


def _covers(target: str, path: str) -> bool:
    """True when mounting at ``target`` hides ``path``."""
    t = target.rstrip("/") or "/"
    return t == "/" or path == t or path.startswith(t + "/")


def stage_dir(candidates: Sequence[Path], targets: Sequence[str]) -> Path:
    """The first candidate that no mount target hides: sources are bound there before any target is mounted."""
    for c in candidates:
        if not any(_covers(t, str(c)) for t in targets):
            return c
    raise NotRunnable("MountConflict", f"every staging directory is hidden by a volume mount ({', '.join(targets)})")


def mount_script(
    mounts: list[Mount], hosts_file: Path | None, workdir: str, *, stage: Path, keep_visible: Sequence[Path] = ()
) -> str:
    """Shell run inside the new mount namespace before `exec "$@"`.

    Every source is first bound under ``stage``, then mounted at its target: a volume mounted at a parent of
    another's source (an emptyDir at /tmp while the node's state lives under /tmp) would otherwise hide it.
    Host paths in ``keep_visible`` (the program, its Python, the pod's directory) that a target would hide are
    bound back on top of that target, so the container still finds them.

    The slots live on a tmpfs mounted over ``stage`` inside the new namespace: the host's ``stage`` stays an
    empty mount point, so no start ever meets the slots of another (the fallback stage directories are shared
    by every pod, and slot 2 is a file for one container and a directory for the next).
    """
    binds = list(mounts)
    if hosts_file is not None:
        binds.append(Mount(hosts_file, "/etc/hosts", True))
    targets = [m.target for m in binds]
    binds += [Mount(p, str(p), False) for p in dict.fromkeys(keep_visible) if any(_covers(t, str(p)) for t in targets)]
    q_stage = shlex.quote(str(stage))
    lines = ["set -e", f"mkdir -p {q_stage}", f"mount -t tmpfs -o mode=0700,size=64k podium-stage {q_stage}"]
    staged: list[tuple[Mount, str]] = []
    for i, m in enumerate(binds):
        slot = shlex.quote(str(stage / str(i)))
        lines.append(f"mkdir {slot}" if m.source.is_dir() else f": > {slot}")
        lines.append(f"mount --bind {shlex.quote(str(m.source))} {slot}")
        staged.append((m, slot))
    # Parents before children, so a mount inside another mount's path lands on top.
    for m, slot in sorted(staged, key=lambda ms: ms[0].target.rstrip("/").count("/")):
        dst = shlex.quote(m.target)
        if m.source.is_dir():
            lines.append(f"mkdir -p {dst}")
        else:
            lines.append(f"mkdir -p $(dirname {dst}); [ -e {dst} ] || : > {dst}")
        lines.append(f"mount --bind {slot} {dst}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    lines.append(f"mkdir -p {shlex.quote(workdir)}; cd {shlex.quote(workdir)}")
    lines.append('exec "$@"')
    return "\n".join(lines)


def launch_argv(
    program_argv: list[str],
    mounts: list[Mount],
    hosts_file: Path | None,
    workdir: str,
    *,
    stage: Path,
    keep_visible: Sequence[Path] = (),
) -> list[str]:
    script = mount_script(mounts, hosts_file, workdir, stage=stage, keep_visible=keep_visible)
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        script,
        "podium-pod",
        *program_argv,
    ]


_PR_SET_PDEATHSIG = 1


def _die_with_node() -> None:
    # Runs in the child before exec: if the node is killed outright (SIGKILL), the kernel kills the container
    # leader too, so a crashed node leaves no pod running behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def start_process(argv: list[str], env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = await asyncio.to_thread(open, log_path, "ab", 0)
    with log:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: we signal the whole tree, and the node's ^C does not
            preexec_fn=_die_with_node,
        )


def signal_group(pid: int, sig: int) -> bool:
    """Signal a container's process group; False when it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM the group, wait up to `grace` seconds, then SIGKILL; returns the exit code."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(grace, 0.0))
        except TimeoutError:
            pass
    # The leader may be gone while children it left in the group linger: always sweep the group.
    signal_group(proc.pid, signal.SIGKILL)
    return await proc.wait()
