"""Where a worker talks and who it is: the typed part of ``Settings`` every component config holds.

Built once from ``Settings`` by the app (``ratifier.app.configs``); components get this, not the
whole environment object. The connections read their password files when they are built, so a
component never touches the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratifier.core.connection import KafkaConnection, RedisConnection
from ratifier.core.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Endpoints:
    kafka: KafkaConnection
    redis: RedisConnection
    topics: TopicNames  # its prefix also starts every Redis key (``topics.key_prefix``)
    worker_id: str  # this process's id: client ids, the monitor's alerts
    max_record_bytes: int  # the largest record a producer may send
