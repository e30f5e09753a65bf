"""Two Kafka requests the cluster tooling needs, spoken over a plain socket.

``metadata`` (Metadata v1) gives the live brokers and each partition's leader, replicas and ISR;
``quorum_leader`` (DescribeQuorum v0) names the active KRaft controller. Metadata cannot name
the controller: under KRaft it answers with a random broker there, since clients never talk to
controllers directly. Raw requests keep these checks synchronous, usable from the CLI and from a
worker thread alike, and independent of any client library's admin API.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ratifier.core.errors import StackError

METADATA_TOPIC = "__cluster_metadata"  # the KRaft metadata log, partition 0
_METADATA = 3
_DESCRIBE_QUORUM = 55
_CLIENT_ID = b"ratifier-stack"
_CORRELATION_ID = 0x5A7B


@dataclass(frozen=True, slots=True)
class PartitionState:
    leader: int  # -1 while the partition has no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    """What one broker knows: the live (unfenced) brokers and every partition's state."""

    brokers: frozenset[int]
    partitions: dict[tuple[str, int], PartitionState]
    topic_errors: dict[str, int]  # topics that answered with an error code (3: unknown topic)


def metadata(host: str, port: int, topics: list[str] | None = None) -> ClusterMetadata:
    """Metadata v1 for ``topics`` (None: every topic, the internal ones included)."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics)
    return parse_metadata(_request(host, port, _METADATA, 1, body, flexible=False))


def parse_metadata(body: bytes) -> ClusterMetadata:
    """A Metadata v1 response body (after the response header)."""
    reader = _Reader(body)
    brokers = set()
    for _ in range(reader.int32()):
        brokers.add(reader.int32())
        reader.string()  # host
        reader.int32()  # port
        reader.string()  # rack (nullable)
    reader.int32()  # controller id: a random broker under KRaft, see the module doc
    partitions: dict[tuple[str, int], PartitionState] = {}
    topic_errors: dict[str, int] = {}
    for _ in range(reader.int32()):
        error = reader.int16()
        name = reader.string() or ""
        reader.int8()  # is_internal
        if error:
            topic_errors[name] = error
        for _ in range(reader.int32()):
            reader.int16()  # partition error (e.g. leader not available): the leader says it
            index = reader.int32()
            leader = reader.int32()
            replicas = reader.int32_array()
            isr = reader.int32_array()
            partitions[(name, index)] = PartitionState(leader, replicas, isr)
    return ClusterMetadata(frozenset(brokers), partitions, topic_errors)


def quorum_leader(host: str, port: int) -> int:
    """The node id of the active KRaft controller (-1 while an election runs).

    A broker forwards DescribeQuorum to the active controller, so any broker can be asked.
    """
    body = (
        _uvarint(2)  # one topic (compact arrays store length + 1)
        + _compact_string(METADATA_TOPIC)
        + _uvarint(2)  # one partition
        + struct.pack(">i", 0)
        + _uvarint(0)  # partition's tagged fields
        + _uvarint(0)  # topic's tagged fields
        + _uvarint(0)  # request's tagged fields
    )
    response = _request(host, port, _DESCRIBE_QUORUM, 0, body, flexible=True)
    try:
        return parse_quorum_leader(response)
    except StackError as exc:
        raise StackError(f"DescribeQuorum on {host}:{port}: {exc}") from exc


def parse_quorum_leader(body: bytes) -> int:
    """The leader id in a DescribeQuorum v0 response body (after the response header)."""
    reader = _Reader(body)
    error = reader.int16()
    if error:
        raise StackError(f"error code {error}")
    if reader.uvarint() - 1 < 1:
        raise StackError("answered without the metadata topic")
    reader.compact_string()  # topic name
    if reader.uvarint() - 1 < 1:
        raise StackError("answered without partition 0")
    reader.int32()  # partition index
    partition_error = reader.int16()
    leader = reader.int32()
    if partition_error:
        raise StackError(f"partition error code {partition_error}")
    return leader


def _request(
    host: str, port: int, api_key: int, version: int, body: bytes, *, flexible: bool
) -> bytes:
    """Send one request and return the response body (its header already checked and skipped)."""
    header = struct.pack(">hhih", api_key, version, _CORRELATION_ID, len(_CLIENT_ID)) + _CLIENT_ID
    if flexible:
        header += _uvarint(0)  # request header v2: no tagged fields
    frame = header + body
    try:
        with socket.create_connection((host, port), timeout=5.0) as sock:
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
    except OSError as exc:
        raise StackError(f"Kafka at {host}:{port} did not answer: {exc}") from exc
    reader = _Reader(response)
    if reader.int32() != _CORRELATION_ID:
        raise StackError(f"Kafka at {host}:{port} answered another request")
    if flexible:
        reader.skip_tagged_fields()  # response header v1
    return response[reader.offset :]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed mid-response")
        buf += chunk
    return buf


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _compact_string(value: str) -> bytes:
    raw = value.encode()
    return _uvarint(len(raw) + 1) + raw


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    """Big-endian reads from a response body, as the Kafka protocol encodes it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return int(value)

    def int8(self) -> int:
        return self._take(">b")

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int32_array(self) -> tuple[int, ...]:
        return tuple(self.int32() for _ in range(self.int32()))

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        raw = self.data[self.offset : self.offset + length]
        self.offset += length
        return raw.decode()

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.offset]
            self.offset += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        raw = self.data[self.offset : self.offset + length]
        self.offset += length
        return raw.decode()

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.offset += self.uvarint()  # size, then the field's bytes
