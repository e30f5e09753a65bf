"""A KRaft Kafka node (combined broker + controller) on 127.0.0.1, started from Maven jars.

The default stack runs one such node. Everything it keeps lives under ``<state_dir>/kafka/``:
``server.properties`` and ``log4j2.properties`` (rewritten at every start from the settings),
``data/`` (the log dirs), ``server.log`` (the broker's log, rolled by log4j), ``kafka.out`` (the
JVM's own stdout/stderr: crashes land here), ``format.log`` (storage formatting) and
``kafka.pid``. The 3-node cluster (``ratifier.ops.stack.cluster``) runs three nodes described the
same way, each in its own folder.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import socket
import ssl
import struct
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ratifier.core.config import Settings
from ratifier.core.errors import PrerequisiteMissing, StackError
from ratifier.ops.stack import maven, secure
from ratifier.ops.stack.process import (
    ServiceStatus,
    ensure_port_free,
    is_alive,
    kill_process,
    log_tail,
    read_pid,
    request_stop,
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


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One KRaft node as the stack runs it: its id, ports, folder and the quorum it belongs to."""

    name: str  # in status lines
    node_id: int
    port: int
    controller_port: int
    paths: KafkaPaths
    voters: tuple[tuple[int, int], ...]  # (node id, controller port) of every quorum voter
    # Replication factor of the internal topics and the default for new topics, and the
    # min.insync.replicas that goes with it.
    replication: int = 1
    min_insync: int = 1
    # Named in "port taken" errors: the variable that moves this node's ports.
    port_env_var: str = "RATIFIER_KAFKA_PORT"
    controller_port_env_var: str = "RATIFIER_KAFKA_CONTROLLER_PORT"
    # Appended to "Kafka", "the Kafka broker" in messages; empty for the single node.
    label: str = ""
    # The CA of a secure node: SASL_SSL only, SCRAM users, deny-by-default ACLs
    # (ratifier.ops.stack.secure); None for the PLAINTEXT node.
    tls_ca: Path | None = None

    @property
    def secure(self) -> bool:
        return self.tls_ca is not None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def marker(self) -> str:
        """What this node's command line contains and no other node's does."""
        return str(self.paths.config)


def single_node(settings: Settings) -> KafkaNode:
    """The default stack's one node: node id 1, the only voter of its quorum."""
    return KafkaNode(
        name="kafka",
        node_id=1,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        paths=KafkaPaths.of(settings),
        voters=((1, settings.kafka_controller_port),),
        tls_ca=secure.SecurePaths.of(settings).ca_cert if secure.enabled(settings) else None,
    )


def server_properties(node: KafkaNode, settings: Settings) -> str:
    port, ctl = node.port, node.controller_port
    voters = ",".join(f"{node_id}@{HOST}:{voter_port}" for node_id, voter_port in node.voters)
    rf, isr = node.replication, node.min_insync
    listeners = (
        secure.listener_properties(settings, port, ctl, HOST)
        if node.secure
        else f"""\
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctl}
advertised.listeners=PLAINTEXT://{HOST}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
    )
    return f"""\
# Written by `ratifier stack up` at every start; edits are overwritten.
process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={voters}
{listeners}log.dirs={node.paths.data}
num.partitions={settings.partitions}
default.replication.factor={rf}
min.insync.replicas={isr}
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
# A dev broker: no rebalance delay, small cleaner buffer, few threads.
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
    return node_status(single_node(settings), settings)


def preflight(settings: Settings) -> None:
    """Raise what would stop a start (Java, jars, ports) before anything is started."""
    node_preflight(single_node(settings), settings)


def start(settings: Settings) -> ServiceStatus:
    """Start the broker unless it already runs; returns once it answers requests."""
    node = single_node(settings)
    launch = launch_node(node, settings, cluster_id=new_cluster_id())
    wait_node_ready(node, launch)
    return node_status(node, settings)


def stop(settings: Settings) -> None:
    stop_node(single_node(settings))


def node_status(node: KafkaNode, settings: Settings) -> ServiceStatus:
    paths = node.paths
    pid = read_pid(paths.pid_file)
    alive = is_alive(pid, node.marker)
    answering = _answers(node) if alive else False
    if alive and answering:
        version = running_version(pid) or settings.kafka_version
        how = "SASL_SSL + ACLs" if node.secure else "PLAINTEXT"
        detail = f"Kafka {version}, KRaft, {how}, logs in {paths.root}"
    elif alive:
        detail = f"process runs but the broker does not answer yet; see {paths.server_log}"
    else:
        detail = "not running"
    return ServiceStatus(
        node.name, alive and answering, pid if alive else None, node.address, detail
    )


def node_running(node: KafkaNode) -> bool:
    """Whether the node's JVM runs (answering or not)."""
    return is_alive(read_pid(node.paths.pid_file), node.marker)


def node_preflight(node: KafkaNode, settings: Settings) -> None:
    """Raise what would stop this node's start (Java, jars, ports), unless it already runs."""
    if not node_running(node):
        _prerequisites(node, settings)


def _prerequisites(node: KafkaNode, settings: Settings) -> tuple[str, Path]:
    java = _java()
    libs = maven.resolve(settings)
    ensure_port_free(node.port, service=f"the Kafka broker{node.label}", env_var=node.port_env_var)
    ensure_port_free(
        node.controller_port,
        service=f"the KRaft controller{node.label}",
        env_var=node.controller_port_env_var,
    )
    return java, libs


@dataclass(frozen=True, slots=True)
class Launch:
    """A node's JVM and where its log lines for this start begin (None: started earlier)."""

    pid: int
    log_offset: int | None


def launch_node(node: KafkaNode, settings: Settings, *, cluster_id: str) -> Launch:
    """Start the node's JVM unless it already runs; does not wait for it to answer.

    ``cluster_id`` is used only when the node's storage is not formatted yet.
    """
    paths = node.paths
    pid = read_pid(paths.pid_file)
    if is_alive(pid, node.marker):
        running = running_version(pid)
        if running not in (None, settings.kafka_version):
            log.warning(
                "Kafka %s runs, not %s; `ratifier stack down` then `up` switches versions",
                running,
                settings.kafka_version,
            )
        assert pid is not None  # is_alive() was true, so the pid file named a process
        return Launch(pid, None)
    java, libs = _prerequisites(node, settings)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(server_properties(node, settings))
    if node.secure:  # it holds the keystore and admin passwords
        paths.config.chmod(0o600)
    paths.log4j.write_text(log4j_properties(paths))
    scram = secure.scram_format_args(settings) if node.secure else []
    _format_storage(java, libs, paths, cluster_id, scram)
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
    log.info(
        "started Kafka %s%s (pid %s); waiting for it to answer",
        settings.kafka_version,
        node.label,
        pid,
    )
    return Launch(pid, log_offset)


def stop_node(node: KafkaNode, *, kill: bool = False) -> None:
    """SIGTERM (a clean, controlled shutdown; SIGKILL after a timeout), or SIGKILL at once."""
    pid = read_pid(node.paths.pid_file)
    if pid is not None:
        if kill:
            kill_process(pid, node.marker, name=f"Kafka{node.label}")
        else:
            terminate(pid, node.marker, timeout_s=STOP_TIMEOUT_S, name=f"Kafka{node.label}")
    node.paths.pid_file.unlink(missing_ok=True)


def request_node_stop(node: KafkaNode) -> None:
    """SIGTERM without waiting; ``stop_node`` afterwards waits (or kills) and cleans up."""
    pid = read_pid(node.paths.pid_file)
    if pid is not None:
        request_stop(pid, node.marker, name=f"Kafka{node.label}")


def wait_node_ready(
    node: KafkaNode, launch: Launch, *, timeout_s: float = START_TIMEOUT_S
) -> float:
    """Ready when the log says so and the broker answers ApiVersions; returns the seconds it took.

    A broker some earlier run left starting has no known log offset; the request alone decides.
    """
    paths = node.paths

    def ready() -> bool:
        logged = launch.log_offset is None or _started_logged(paths.server_log, launch.log_offset)
        return logged and _answers(node)

    def failed() -> str | None:
        if is_alive(launch.pid, node.marker):
            return None
        return (
            f"the broker exited during startup.\n--- {paths.console_log} ---\n"
            f"{log_tail(paths.console_log)}\n--- {paths.server_log} ---\n"
            f"{log_tail(paths.server_log)}"
        )

    took = wait_until(ready, timeout_s=timeout_s, what=f"Kafka{node.label} to start", failed=failed)
    log.info("Kafka%s answers on %s after %.1f s", node.label, node.address, took)
    return took


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


def _format_storage(
    java: str, libs: Path, paths: KafkaPaths, cluster_id: str, scram: list[str]
) -> None:
    """Format the KRaft log dir once; a formatted dir keeps its cluster id across restarts.

    ``scram``: ``--add-scram`` arguments, the secure stack's users (only a format makes them).
    """
    if (paths.data / "meta.properties").is_file():
        if scram and not (paths.root / "scram-users").is_file():
            raise StackError(
                f"{paths.data} holds a plaintext broker's data, without the secure stack's "
                "users: use another RATIFIER_STATE_DIR for `ratifier stack up --secure`"
            )
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
            cluster_id,
            "-c",
            str(paths.config),
            "--ignore-formatted",
            *scram,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    paths.format_log.write_text(done.stdout + done.stderr)
    if scram and done.returncode == 0:
        (paths.root / "scram-users").write_text("made at format time\n")
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


def _answers(node: KafkaNode) -> bool:
    context = None if node.tls_ca is None else ssl.create_default_context(cafile=str(node.tls_ca))
    return api_versions_ok(HOST, node.port, tls=context)


def api_versions_ok(
    host: str, port: int, timeout_s: float = 2.0, *, tls: ssl.SSLContext | None = None
) -> bool:
    """Whether the broker answers an ApiVersions request without error.

    A raw request keeps this check synchronous and free of client libraries; every Kafka
    version answers ApiVersions v0, before authentication too (``tls``: over TLS, the
    secure stack's listener).
    """
    client_id = b"ratifier-stack"
    correlation_id = 0x5A7A
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with contextlib.ExitStack() as opened:
            sock = opened.enter_context(socket.create_connection((host, port), timeout=timeout_s))
            if tls is not None:
                sock = opened.enter_context(tls.wrap_socket(sock, server_hostname=host))
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
