"""The two raw Kafka responses the cluster tooling decodes, built byte by byte per the protocol."""

from __future__ import annotations

import struct

import pytest

from ratifier.core.errors import StackError
from ratifier.ops.stack import wire


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(value)) + value.encode()


def _int32s(values: list[int]) -> bytes:
    return struct.pack(">i", len(values)) + b"".join(struct.pack(">i", v) for v in values)


def _metadata_v1() -> bytes:
    brokers = struct.pack(">i", 2) + b"".join(
        struct.pack(">i", node) + _string("127.0.0.1") + struct.pack(">i", port) + _string(None)
        for node, port in ((1, 19192), (3, 19392))
    )
    controller = struct.pack(">i", 3)
    partition = (
        struct.pack(">hii", 0, 0, 3)  # no error, partition 0, leader 3
        + _int32s([3, 1, 2])
        + _int32s([3, 1])
    )
    topic = struct.pack(">h", 0) + _string("orders") + b"\x00" + struct.pack(">i", 1) + partition
    unknown = struct.pack(">h", 3) + _string("missing") + b"\x00" + struct.pack(">i", 0)
    return brokers + controller + struct.pack(">i", 2) + topic + unknown


def test_metadata_v1_is_decoded() -> None:
    found = wire.parse_metadata(_metadata_v1())
    assert found.brokers == frozenset({1, 3})
    assert found.partitions == {("orders", 0): wire.PartitionState(3, (3, 1, 2), (3, 1))}
    assert found.topic_errors == {"missing": 3}


def _describe_quorum_v0(*, error: int = 0, partition_error: int = 0, leader: int = 2) -> bytes:
    name = wire.METADATA_TOPIC.encode()
    return (
        struct.pack(">h", error)
        + bytes([2])  # one topic
        + bytes([len(name) + 1])
        + name
        + bytes([2])  # one partition
        + struct.pack(">ihiiq", 0, partition_error, leader, 7, 1234)
        + bytes([1, 1])  # empty voters and observers; the decoder stops before them
    )


def test_describe_quorum_names_the_leader() -> None:
    assert wire.parse_quorum_leader(_describe_quorum_v0(leader=2)) == 2
    assert wire.parse_quorum_leader(_describe_quorum_v0(leader=-1)) == -1


def test_describe_quorum_errors_are_raised() -> None:
    with pytest.raises(StackError, match="error code 6"):
        wire.parse_quorum_leader(_describe_quorum_v0(partition_error=6))
    with pytest.raises(StackError, match="error code 29"):
        wire.parse_quorum_leader(_describe_quorum_v0(error=29))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16384, 2**31])
def test_unsigned_varints_round_trip(value: int) -> None:
    reader = wire._Reader(wire._uvarint(value))
    assert reader.uvarint() == value
    assert reader.offset == len(wire._uvarint(value))


def test_a_closed_port_is_a_stack_error() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    with pytest.raises(StackError, match="did not answer"):
        wire.metadata("127.0.0.1", 1)
