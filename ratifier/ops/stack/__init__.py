"""The local stack: KRaft Kafka built from Maven Central jars, and a redis-server, both on
127.0.0.1, with their data and logs under ``settings.state_dir``.

Kafka runs as one node (the default) or as a 3-node cluster (``brokers=3``, see
``ratifier.ops.stack.cluster``); the two can run side by side. Redis is shared by both.

    status = up(settings)     # idempotent; resolves jars on first use, waits until both answer
    print(status(settings))   # StackStatus: one line per service
    down(settings)            # SIGTERM, then SIGKILL after a timeout

See docs/local-stack.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.ops.stack import kafka, redis, secure
from ratifier.ops.stack.cluster import Cluster
from ratifier.ops.stack.process import ServiceStatus, file_lock

__all__ = ["BROKER_CHOICES", "Cluster", "ServiceStatus", "StackStatus", "down", "status", "up"]

log = logging.getLogger(__name__)

BROKER_CHOICES = (1, 3)  # the single node, or the 3-node cluster


@dataclass(frozen=True, slots=True)
class StackStatus:
    kafka: ServiceStatus
    redis: ServiceStatus
    # The 3-node cluster's nodes: listed when asked for or when any of them runs.
    cluster: tuple[ServiceStatus, ...] = ()
    # Which Kafka layout `running` judges: 1, the single node, or 3, the cluster.
    brokers: int = 1

    @property
    def running(self) -> bool:
        if self.brokers == 1:
            kafka_up = self.kafka.running
        else:
            kafka_up = bool(self.cluster) and all(node.running for node in self.cluster)
        return kafka_up and self.redis.running

    def __str__(self) -> str:
        # A stopped single node is noise when the cluster is the layout in use.
        show_single = self.brokers == 1 or self.kafka.running
        lines = [self.kafka] if show_single else []
        return "\n".join(str(line) for line in [*lines, *self.cluster, self.redis])


def up(settings: Settings, brokers: int = 1, *, secure_stack: bool = False) -> StackStatus:
    """Start whatever is not running and wait until every service answers.

    ``brokers=3`` starts the 3-node cluster instead of the single node (redis either way).
    ``secure_stack``: the single node with SASL_SSL, SCRAM users and ACLs, redis with a
    password (``ratifier.ops.stack.secure``); a state dir once secure stays so.
    """
    _check_brokers(brokers)
    if secure_stack:
        if brokers != 1:
            raise ConfigError("the secure stack runs the single Kafka node (--brokers 1)")
        if not secure.enabled(settings) and (
            kafka.node_running(kafka.single_node(settings))
            or redis.status(settings).pid is not None
        ):
            raise ConfigError(
                f"a plaintext stack runs from {settings.state_dir}: `ratifier stack down` it, "
                "or give the secure stack its own RATIFIER_STATE_DIR and ports"
            )
        secure.ensure_material(settings)
    started = time.monotonic()
    # One starter at a time: concurrent `stack up` runs would race for the ports and pid files.
    with file_lock(settings.state_dir / "stack.lock"):
        # Everything that can be checked is checked first, so a missing tool or a taken port
        # does not leave a half-started stack behind (the cluster checks its own ports).
        redis.preflight(settings)
        if brokers == 1:
            kafka.preflight(settings)
        redis_status = redis.start(settings)
        if brokers == 1:
            kafka_status = kafka.start(settings)
            cluster: tuple[ServiceStatus, ...] = _running_cluster(settings)
        else:
            cluster = Cluster.of(settings).up()
            kafka_status = kafka.status(settings)
    log.info("stack up in %.1f s", time.monotonic() - started)
    return StackStatus(kafka_status, redis_status, cluster, brokers)


def down(settings: Settings, brokers: int | None = None) -> None:
    """Stop services; stopping what is not running is not an error.

    ``brokers=None`` stops everything: the single node, the cluster, redis. ``brokers=1`` stops
    the single node and redis (the cluster keeps running), ``brokers=3`` only the cluster.
    """
    if brokers is not None:
        _check_brokers(brokers)
    with file_lock(settings.state_dir / "stack.lock"):
        if brokers in (None, 3):
            Cluster.of(settings).down()
        if brokers in (None, 1):
            kafka.stop(settings)
            redis.stop(settings)


def status(settings: Settings, brokers: int | None = None) -> StackStatus:
    """Every service's state. ``brokers=None``: judge the cluster when only it runs."""
    if brokers is not None:
        _check_brokers(brokers)
    single = kafka.status(settings)
    cluster = Cluster.of(settings)
    nodes = cluster.status() if brokers == 3 or cluster.running_node_ids() else ()
    if brokers is None:
        brokers = 3 if nodes and not single.running else 1
    return StackStatus(single, redis.status(settings), nodes, brokers)


def _running_cluster(settings: Settings) -> tuple[ServiceStatus, ...]:
    cluster = Cluster.of(settings)
    return cluster.status() if cluster.running_node_ids() else ()


def _check_brokers(brokers: int) -> None:
    if brokers not in BROKER_CHOICES:
        raise ConfigError(f"the local stack runs 1 or 3 Kafka nodes, not {brokers}")
