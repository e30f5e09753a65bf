"""A single-node KRaft Kafka broker (combined broker + controller) on 127.0.0.1.

Everything lives under ``<state_dir>/kafka/``: ``server.properties`` and ``log4j2.properties``
(rewritten at every start from the settings), ``data/`` (the log dirs), ``server.log`` (the
broker's log, rolled by log4j), ``kafka.out`` (the JVM's own stdout/stderr: crashes land here),
``format.log`` (storage formatting) and ``kafka.pid``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import struct
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ratifier.config import Settings
from ratifier.errors import PrerequisiteMissing, StackError
from ratifier.stack import maven
from ratifier.stack.process import (
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
STARTED_LINE = "Kafka Server started"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    # log4j's own shutdown hook would stop logging before Kafka's shutdown finishes.
    "-Dlog4j2.shutdownHookEnabled=false",
)
_JAVA_HINT = "Run scripts/install-prereqs as root (or: apt-get install openjdk-17-jre-headless)."


@dataclass(frozen=True, slots=True)
class KafkaPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> KafkaPaths:
        return cls(settings.state_dir / "kafka")

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def console_log(self) -> Path:
        return self.root / "kafka.out"

    @property
    def format_log(self) -> Path:
        return self.root / "format.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"


def server_properties(settings: Settings, data_dir: Path) -> str:
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    return f"""\
# Written by `ratifier stack up` at every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{ctl}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctl}
advertised.listeners=PLAINTEXT://{HOST}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions={settings.partitions}
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A single-node dev broker: no rebalance delay, small cleaner buffer, few threads.
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=1048577
# Tests delete their topics; drop the files soon rather than after a minute, so a restart
# does not load hundreds of deleted partitions.
log.segment.delete.delay.ms=1000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# Topics are created on purpose (ensure_topics, faust's internal topics), as on real clusters:
# a misspelt or deleted topic fails loudly instead of reappearing on the next metadata request.
auto.create.topics.enable=false
"""


def log4j_properties(paths: KafkaPaths) -> str:
    # A .properties config: log4j-core reads it without the YAML module Kafka's own config needs.
    return f"""\
status = warn
name = ratifier-kafka
appender.server.type = RollingFile
appender.server.name = SERVER
appender.server.fileName = {paths.server_log}
appender.server.filePattern = {paths.server_log}.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = SERVER
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def status(settings: Settings) -> ServiceStatus:
    paths = KafkaPaths.of(settings)
    pid = read_pid(paths.pid_file)
    alive = is_alive(pid, str(paths.config))
    address = f"{HOST}:{settings.kafka_port}"
    answering = api_versions_ok(HOST, settings.kafka_port) if alive else False
    if alive and answering:
        version = running_version(pid) or settings.kafka_version
        detail = f"Kafka {version}, KRaft, logs in {paths.root}"
    elif alive:
        detail = f"process runs but the broker does not answer yet; see {paths.server_log}"
    else:
        detail = "not running"
    return ServiceStatus("kafka", alive and answering, pid if alive else None, address, detail)


def preflight(settings: Settings) -> None:
    """Raise what would stop a start (Java, jars, ports) before anything is started."""
    paths = KafkaPaths.of(settings)
    if not is_alive(read_pid(paths.pid_file), str(paths.config)):
        _prerequisites(settings)


def _prerequisites(settings: Settings) -> tuple[str, Path]:
    java = _java()
    libs = maven.resolve(settings)
    ensure_port_free(settings.kafka_port, service="the Kafka broker", env_var="RATIFIER_KAFKA_PORT")
    ensure_port_free(
        settings.kafka_controller_port,
        service="the KRaft controller",
        env_var="RATIFIER_KAFKA_CONTROLLER_PORT",
    )
    return java, libs


def start(settings: Settings) -> ServiceStatus:
    """Start the broker unless it already runs; returns once it answers requests."""
    paths = KafkaPaths.of(settings)
    current = status(settings)
    if current.running:
        running = running_version(current.pid)
        if running not in (None, settings.kafka_version):
            log.warning(
                "Kafka %s runs, not %s; `ratifier stack down` then `up` switches versions",
                running,
                settings.kafka_version,
            )
        return current
    pid = read_pid(paths.pid_file)
    log_offset: int | None = None  # where this start's log lines begin, when we start it
    if not is_alive(pid, str(paths.config)):
        java, libs = _prerequisites(settings)
        paths.data.mkdir(parents=True, exist_ok=True)
        paths.config.write_text(server_properties(settings, paths.data))
        paths.log4j.write_text(log4j_properties(paths))
        _format_storage(java, libs, paths)
        log_offset = _size(paths.server_log)
        pid = spawn(
            [
                java,
                *JVM_OPTS,
                f"-Dlog4j2.configurationFile={paths.log4j}",
                f"-Dkafka.logs.dir={paths.root}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(paths.config),
            ],
            log_path=paths.console_log,
            cwd=paths.root,
        )
        write_pid(paths.pid_file, pid)
        log.info("started Kafka %s (pid %s); waiting for it to answer", settings.kafka_version, pid)
    if pid is None:  # is_alive() was true, so the pid file named a process
        raise StackError(f"lost track of the Kafka process; see {paths.pid_file}")
    _wait_ready(settings, paths, pid, log_offset)
    return status(settings)


def stop(settings: Settings) -> None:
    paths = KafkaPaths.of(settings)
    pid = read_pid(paths.pid_file)
    if pid is not None:
        terminate(pid, str(paths.config), timeout_s=STOP_TIMEOUT_S, name="Kafka")
    paths.pid_file.unlink(missing_ok=True)


def _wait_ready(settings: Settings, paths: KafkaPaths, pid: int, log_offset: int | None) -> None:
    """Ready when the log says so and the broker answers ApiVersions.

    A broker some earlier run left starting has no known log offset; the request alone decides.
    """

    def ready() -> bool:
        logged = log_offset is None or _started_logged(paths.server_log, log_offset)
        return logged and api_versions_ok(HOST, settings.kafka_port)

    def failed() -> str | None:
        if is_alive(pid, str(paths.config)):
            return None
        return (
            f"the broker exited during startup.\n--- {paths.console_log} ---\n"
            f"{log_tail(paths.console_log)}\n--- {paths.server_log} ---\n"
            f"{log_tail(paths.server_log)}"
        )

    took = wait_until(ready, timeout_s=START_TIMEOUT_S, what="Kafka to start", failed=failed)
    log.info("Kafka answers on %s:%s after %.1f s", HOST, settings.kafka_port, took)


def running_version(pid: int | None) -> str | None:
    """The Kafka version a running broker was started with, read from its classpath."""
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    match = re.search(r"/kafka-([^/\x00]+)/libs/\*", cmdline)
    return match.group(1) if match else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _started_logged(server_log: Path, offset: int) -> bool:
    try:
        with open(server_log, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            # log4j rolled the file since: the new file is all this run's.
            fh.seek(offset if size >= offset else 0)
            return STARTED_LINE.encode() in fh.read()
    except FileNotFoundError:
        return False


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = (
        str(Path(java_home) / "bin" / "java") if java_home else require_program("java", _JAVA_HINT)
    )
    if not Path(java).is_file():
        raise PrerequisiteMissing(f"JAVA_HOME points to {java_home}, which has no bin/java.")
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr)
    major = 0 if match is None else int(match.group(1))
    if major == 1 and match is not None:  # "1.8.0" style
        major = int(match.group(2) or 0)
    if major < 17:
        raise PrerequisiteMissing(
            f"Kafka 4 needs Java 17 or newer; {java} reports {done.stderr.strip()!r}. {_JAVA_HINT}"
        )
    return java


def _format_storage(java: str, libs: Path, paths: KafkaPaths) -> None:
    """Format the KRaft log dir once; a formatted dir keeps its cluster id across restarts."""
    if (paths.data / "meta.properties").is_file():
        return
    done = subprocess.run(
        [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={paths.log4j}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(paths.config),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    paths.format_log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise StackError(
            f"formatting the Kafka storage in {paths.data} failed (exit {done.returncode}):\n"
            f"{log_tail(paths.format_log)}\nIf the folder holds data from another Kafka version, "
            f"`ratifier stack down` and remove {paths.root}."
        )


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage.sh random-uuid`` makes it, without starting a JVM."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka's Uuid rejects ids that read like a CLI option
            return cid


def api_versions_ok(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether the broker answers an ApiVersions request without error.

    A raw request keeps this check synchronous and free of client libraries; every Kafka
    version answers ApiVersions v0.
    """
    client_id = b"ratifier-stack"
    correlation_id = 0x5A7A
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4 + 4 + 2)
    except OSError:
        return False
    if header is None:
        return False
    got_id: int
    error_code: int
    _size, got_id, error_code = struct.unpack(">iih", header)
    return got_id == correlation_id and error_code == 0


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
