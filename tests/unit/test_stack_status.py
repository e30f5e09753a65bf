"""How the stack reports and chooses between the single node and the 3-node cluster."""

from __future__ import annotations

import pytest

from ratifier.app.cli import main
from ratifier.core.errors import ConfigError
from ratifier.ops.stack import ServiceStatus, StackStatus, up


def _service(name: str, running: bool) -> ServiceStatus:
    return ServiceStatus(name, running, 1 if running else None, "127.0.0.1:1", "detail")


NODES_UP = tuple(_service(f"kafka{i}", True) for i in (1, 2, 3))


def test_single_layout_is_judged_by_the_single_node() -> None:
    status = StackStatus(_service("kafka", True), _service("redis", True))
    assert status.running
    assert not StackStatus(_service("kafka", False), _service("redis", True)).running
    assert not StackStatus(_service("kafka", True), _service("redis", False)).running


def test_cluster_layout_needs_every_node() -> None:
    single_down = _service("kafka", False)
    redis_up = _service("redis", True)
    assert StackStatus(single_down, redis_up, NODES_UP, brokers=3).running
    one_down = (*NODES_UP[:2], _service("kafka3", False))
    assert not StackStatus(single_down, redis_up, one_down, brokers=3).running
    assert not StackStatus(single_down, redis_up, (), brokers=3).running


def test_cluster_status_hides_a_stopped_single_node() -> None:
    text = str(StackStatus(_service("kafka", False), _service("redis", True), NODES_UP, 3))
    names = [line.split()[0] for line in text.splitlines()]
    assert names == ["kafka1", "kafka2", "kafka3", "redis"]
    text = str(StackStatus(_service("kafka", False), _service("redis", True)))
    assert [line.split()[0] for line in text.splitlines()] == ["kafka", "redis"]


def test_only_one_or_three_brokers() -> None:
    from ratifier.core.config import Settings

    with pytest.raises(ConfigError, match="not 2"):
        up(Settings.from_env({}), brokers=2)


def test_env_command_points_clients_at_the_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATIFIER_KAFKA_PORT", "29092")
    assert main(["stack", "env", "--brokers", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "export RATIFIER_BOOTSTRAP_SERVERS=127.0.0.1:29192,127.0.0.1:29292,127.0.0.1:29392",
        "export RATIFIER_REPLICATION_FACTOR=3",
    ]
    # Back to the single node, whatever was exported before.
    monkeypatch.setenv("RATIFIER_BOOTSTRAP_SERVERS", "127.0.0.1:29192,127.0.0.1:29292")
    assert main(["stack", "env", "--brokers", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "export RATIFIER_BOOTSTRAP_SERVERS=127.0.0.1:29092",
        "export RATIFIER_REPLICATION_FACTOR=1",
    ]
