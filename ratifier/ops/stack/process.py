"""What both services share: detached processes, pid files, liveness, free ports, polling."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ratifier.core.errors import PortInUse, PrerequisiteMissing, StackError
from ratifier.core.polling import wait_until_sync

log = logging.getLogger(__name__)

# Children this interpreter started, kept so they can be reaped (a dead child stays a zombie, and
# os.kill(pid, 0) would call it alive) and so that dropping the handle does not warn.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One service of the local stack as seen now."""

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str

    def __str__(self) -> str:
        state = "up" if self.running else "down"
        pid = f" pid {self.pid}" if self.pid is not None else ""
        return f"{self.name:<6} {state:<5}{self.address}{pid}  {self.detail}"


def require_program(name: str, hint: str) -> str:
    """The path of an executable on PATH, or PrerequisiteMissing that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise PrerequisiteMissing(f"{name} is not installed or not on PATH. {hint}")
    return path


def spawn(argv: Sequence[str], *, log_path: Path, cwd: Path) -> int:
    """Start ``argv`` detached from this terminal and session; stdout and stderr go to ``log_path``.

    The process outlives the caller (``ratifier stack up`` returns while the servers run on).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("ignoring unreadable pid file %s", path)
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def is_alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and its command line contains ``marker``.

    The marker guards against pid reuse: after a reboot the number in a stale pid file may belong
    to an unrelated process, which must be neither reported as ours nor signalled.
    """
    if pid is None or pid <= 0:
        return False
    child = _children.get(pid)
    if child is not None:
        # Our own child is known exactly; its command line may even read empty for a moment
        # right after exec, before the kernel has set it up.
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists but belongs to another user; the command line below decides
    try:
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and marker in cmdline


def terminate(pid: int, marker: str, *, timeout_s: float, name: str) -> None:
    """SIGTERM, wait up to ``timeout_s`` for a clean exit, then SIGKILL."""
    if not is_alive(pid, marker):
        return
    log.info("stopping %s (pid %s)", name, pid)
    _signal(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not is_alive(pid, marker), timeout_s=timeout_s, what=f"{name} to stop")
        return
    except StackError:
        pass
    log.warning("%s (pid %s) ignored SIGTERM for %.0f s; sending SIGKILL", name, pid, timeout_s)
    _signal(pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(pid, marker), timeout_s=10, what=f"{name} to die")


def request_stop(pid: int, marker: str, *, name: str) -> None:
    """SIGTERM without waiting, for callers that stop several processes at once."""
    if is_alive(pid, marker):
        log.info("stopping %s (pid %s)", name, pid)
        _signal(pid, signal.SIGTERM)


def kill_process(pid: int, marker: str, *, name: str) -> None:
    """SIGKILL at once (a crash, for fault injection), then wait until the process is gone."""
    if not is_alive(pid, marker):
        return
    log.info("killing %s (pid %s)", name, pid)
    _signal(pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(pid, marker), timeout_s=10, what=f"{name} to die")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def ensure_port_free(port: int, *, service: str, env_var: str, host: str = "127.0.0.1") -> None:
    """PortInUse, naming the holder where /proc tells it, if ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT from our own last run is free; a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise StackError(f"cannot bind {host}:{port} for {service}: {exc}") from exc
    holder = _listener_of(port)
    by = f" by {holder}" if holder else " by another process"
    raise PortInUse(
        f"port {port} on {host}, needed by {service}, is already taken{by}. Stop that process "
        f"or choose another port with {env_var}=<port>."
    )


def _listener_of(port: int) -> str | None:
    """Best effort: 'pid N (name)' of the process listening on ``port``, from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                # local address is HEXIP:HEXPORT; state 0A is LISTEN
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                    inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    name = (proc / "comm").read_text().strip()
                    return f"pid {proc.name} ({name})"
    return None


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    failed: Callable[[], str | None] = lambda: None,
) -> float:
    """The one poller (ratifier.core.polling), blocking, raising StackError."""
    return wait_until_sync(ready, timeout_s=timeout_s, what=what, failed=failed, error=StackError)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two concurrent ``stack up`` runs do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])
