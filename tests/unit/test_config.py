"""Settings: environment parsing, derived addresses, validation, and a repr without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError


def test_defaults_describe_the_local_stack() -> None:
    s = Settings.from_env({})
    assert (s.kafka_port, s.kafka_controller_port, s.redis_port) == (19092, 19093, 16379)
    assert s.kafka_version == "4.3.0"
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.redis_url == "redis://127.0.0.1:16379/0"
    assert s.topic_prefix == "ratifier"
    assert (s.partitions, s.replication_factor) == (4, 1)
    assert s.state_dir.is_absolute()
    assert s.cache_dir.is_absolute()


def test_environment_values_are_parsed_by_type(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "RATIFIER_KAFKA_PORT": "29092",
            "RATIFIER_REDIS_PORT": "26379",
            "RATIFIER_PARTITIONS": "8",
            "RATIFIER_TICK_INTERVAL_S": "0.25",
            "RATIFIER_STATE_DIR": str(tmp_path / "state"),
            "RATIFIER_TOPIC_PREFIX": "team-a.prod",
            "RATIFIER_KAFKA_VERSION": "4.2.1",
        }
    )
    assert s.kafka_port == 29092
    assert s.partitions == 8
    assert s.tick_interval_s == 0.25
    assert s.state_dir == tmp_path / "state"
    assert s.topic_prefix == "team-a.prod"
    assert s.kafka_version == "4.2.1"
    # addresses follow the ports unless set explicitly
    assert s.bootstrap_servers == "127.0.0.1:29092"
    assert s.redis_url == "redis://127.0.0.1:26379/0"


def test_explicit_addresses_win_over_ports() -> None:
    s = Settings.from_env(
        {
            "RATIFIER_KAFKA_PORT": "29092",
            "RATIFIER_BOOTSTRAP_SERVERS": "kafka:19092,kafka2:19092",
            "RATIFIER_REDIS_URL": "redis://redis:16379/1",
        }
    )
    assert s.bootstrap_servers == "kafka:19092,kafka2:19092"
    assert s.kafka_url == "kafka://kafka:19092,kafka://kafka2:19092"
    assert s.redis_url == "redis://redis:16379/1"


def test_empty_variables_mean_default() -> None:
    assert Settings.from_env({"RATIFIER_PARTITIONS": ""}).partitions == 4


def test_keyword_overrides_win_over_environment() -> None:
    s = Settings.from_env({"RATIFIER_TOPIC_PREFIX": "from-env"}, topic_prefix="t123")
    assert s.topic_prefix == "t123"
    assert s.with_overrides(partitions=2).partitions == 2


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"RATIFIER_KAFKA_PORT": "nineteen"}, "RATIFIER_KAFKA_PORT"),
        ({"RATIFIER_TICK_INTERVAL_S": "fast"}, "RATIFIER_TICK_INTERVAL_S"),
        ({"RATIFIER_PARTITIONS": "0"}, "RATIFIER_PARTITIONS"),
        ({"RATIFIER_REPLICATION_FACTOR": "0"}, "RATIFIER_REPLICATION_FACTOR"),
        ({"RATIFIER_TOPIC_PREFIX": "has space"}, "RATIFIER_TOPIC_PREFIX"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_repr_masks_the_redis_password() -> None:
    s = Settings.from_env({"RATIFIER_REDIS_URL": "redis://user:s3cr3t-pw@cache.internal:6379/0"})
    shown = repr(s)
    assert "s3cr3t-pw" not in shown
    assert "s3cr3t-pw" not in str(s)
    assert "redis://user:***@cache.internal:6379/0" in shown
    assert s.redis_url_masked == "redis://user:***@cache.internal:6379/0"
    # the real value stays usable
    assert s.redis_url == "redis://user:s3cr3t-pw@cache.internal:6379/0"


def test_repr_masks_a_password_without_user() -> None:
    s = Settings.from_env({"RATIFIER_REDIS_URL": "redis://:hunter2@127.0.0.1:16379/0"})
    assert "hunter2" not in repr(s)
    assert s.redis_url_masked == "redis://:***@127.0.0.1:16379/0"


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.partitions = 9  # type: ignore[misc]


def test_a_bad_variable_is_one_line_naming_it_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ratifier.app.cli import main

    monkeypatch.setenv("RATIFIER_PARTITIONS", "abc")
    assert main(["tally", "status"]) == 2
    err = capsys.readouterr().err
    assert err == "ratifier: error: RATIFIER_PARTITIONS must be an integer, got 'abc'\n"


def test_poison_setting_is_dead_letter_or_skip() -> None:
    assert Settings.from_env({"RATIFIER_POISON": "skip"}).poison == "skip"
    with pytest.raises(ConfigError, match="RATIFIER_POISON must be dead-letter or skip"):
        Settings.from_env({"RATIFIER_POISON": "ignore"})
