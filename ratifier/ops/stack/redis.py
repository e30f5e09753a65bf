"""A redis-server (Debian's package) on 127.0.0.1 at ``settings.redis_port``.

Under ``<state_dir>/redis/``: ``redis.conf`` (rewritten at every start), ``dump.rdb`` (data),
``redis.log`` and ``redis.pid``.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from ratifier.core.config import Settings
from ratifier.ops.stack import secure
from ratifier.ops.stack.process import (
    ServiceStatus,
    ensure_port_free,
    is_alive,
    log_tail,
    read_pid,
    require_program,
    spawn,
    terminate,
    wait_until,
    write_pid,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MARKER = "redis-server"  # redis rewrites its process title, but keeps the program name
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_HINT = "Run scripts/install-prereqs as root (or: apt-get install redis-server)."


@dataclass(frozen=True, slots=True)
class RedisPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> RedisPaths:
        return cls(settings.state_dir / "redis")

    @property
    def config(self) -> Path:
        return self.root / "redis.conf"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"


def redis_conf(settings: Settings, paths: RedisPaths) -> str:
    return f"""\
# Written by `ratifier stack up` at every start; edits are overwritten.
bind {HOST}
port {settings.redis_port}
protected-mode yes
daemonize no
dir {paths.root}
dbfilename dump.rdb
logfile {paths.log}
loglevel notice
# A dev redis: an occasional snapshot is enough durability.
save 300 1
appendonly no
{secure.redis_properties(settings) if secure.enabled(settings) else ""}"""


def status(settings: Settings) -> ServiceStatus:
    paths = RedisPaths.of(settings)
    pid = read_pid(paths.pid_file)
    alive = is_alive(pid, MARKER)
    address = f"{HOST}:{settings.redis_port}"
    answering = _answers(settings) if alive else False
    if alive and answering:
        detail = f"redis, data and log in {paths.root}"
    elif alive:
        detail = f"process runs but does not answer PING; see {paths.log}"
    else:
        detail = "not running"
    return ServiceStatus("redis", alive and answering, pid if alive else None, address, detail)


def preflight(settings: Settings) -> None:
    """Raise what would stop a start (no redis-server, port taken) before anything is started."""
    if not is_alive(read_pid(RedisPaths.of(settings).pid_file), MARKER):
        _prerequisites(settings)


def _prerequisites(settings: Settings) -> str:
    server = require_program("redis-server", _HINT)
    ensure_port_free(settings.redis_port, service="redis-server", env_var="RATIFIER_REDIS_PORT")
    return server


def start(settings: Settings) -> ServiceStatus:
    paths = RedisPaths.of(settings)
    current = status(settings)
    if current.running:
        return current
    pid = read_pid(paths.pid_file)
    if not is_alive(pid, MARKER):
        server = _prerequisites(settings)
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.config.write_text(redis_conf(settings, paths))
        pid = spawn([server, str(paths.config)], log_path=paths.root / "redis.out", cwd=paths.root)
        write_pid(paths.pid_file, pid)
    assert pid is not None

    def failed() -> str | None:
        if is_alive(pid, MARKER):
            return None
        return f"redis-server exited during startup.\n--- {paths.log} ---\n{log_tail(paths.log)}"

    took = wait_until(
        lambda: _answers(settings),
        timeout_s=START_TIMEOUT_S,
        what="redis-server to answer PING",
        failed=failed,
    )
    log.info("redis answers on %s:%s after %.1f s", HOST, settings.redis_port, took)
    return status(settings)


def stop(settings: Settings) -> None:
    paths = RedisPaths.of(settings)
    pid = read_pid(paths.pid_file)
    if pid is not None:
        terminate(pid, MARKER, timeout_s=STOP_TIMEOUT_S, name="redis-server")
    paths.pid_file.unlink(missing_ok=True)


def _answers(settings: Settings) -> bool:
    return ping(HOST, settings.redis_port, auth=secure.redis_credentials(settings))


def ping(
    host: str, port: int, timeout_s: float = 1.0, *, auth: tuple[str, str] | None = None
) -> bool:
    """Whether a redis server answers PING (RESP, no client library needed); ``auth``: the
    user and password to AUTH with first (the secure stack's)."""
    commands = [[b"PING"]]
    if auth is not None:
        commands.insert(0, [b"AUTH", auth[0].encode(), auth[1].encode()])
    wire = b"".join(_resp(command) for command in commands)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(wire)
            answer = b""
            while answer.count(b"\r\n") < len(commands):
                chunk = sock.recv(256)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\r\n")[len(commands) - 1].startswith(b"+PONG")
    except OSError:
        return False


def _resp(command: list[bytes]) -> bytes:
    """A command as a RESP array (a password may hold anything; inline commands split it)."""
    parts = [b"*%d\r\n" % len(command)]
    parts += [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in command]
    return b"".join(parts)
