"""docker-compose.yml describes the same topology, ports and settings as the local stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratifier.core.config import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SIMULATED = "ratifier.validators.builtin.simulated:SimulatedValidator"
DEFAULTS = Settings.from_env({})


def _resolve(value: Any) -> str:
    """Expand ``${VAR:-default}`` to its default, as compose does with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    return doc["services"]  # type: ignore[no-any-return]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {key: _resolve(value) for key, value in service["environment"].items()}


def _host_ports(service: dict[str, Any]) -> dict[int, int]:
    """host port -> container port, for ports published on loopback."""
    published = {}
    for spec in service.get("ports", []):
        host_ip, host_port, container_port = str(spec).split(":")
        assert host_ip == "127.0.0.1", f"{spec} must publish on loopback only"
        published[int(host_port)] = int(container_port)
    return published


def test_topology(services: dict[str, Any]) -> None:
    assert {"kafka", "redis", "tally", "generator", "redteam"} <= set(services)
    validators = [name for name, s in services.items() if "validator" in s.get("command", [])]
    assert sorted(validators) == ["redteam", "sim-a", "sim-b", "sim-c", "sim-d"]


def test_kafka_is_single_node_kraft_on_the_stack_version(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert _resolve(kafka["image"]) == f"apache/kafka:{DEFAULTS.kafka_version}"
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    ctl = DEFAULTS.kafka_controller_port
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{ctl}"
    assert f"CONTROLLER://:{ctl}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_NUM_PARTITIONS"] == str(DEFAULTS.partitions)
    assert "CLUSTER_ID" in env
    assert "healthcheck" in kafka


def test_kafka_answers_on_the_settings_port_inside_and_outside(services: dict[str, Any]) -> None:
    env = _env(services["kafka"])
    port = DEFAULTS.kafka_port
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == f"kafka:{port}"
    # the host reaches the broker at Settings' default bootstrap address
    assert advertised["HOST"] == DEFAULTS.bootstrap_servers
    host_listener_port = int(
        next(x for x in env["KAFKA_LISTENERS"].split(",") if x.startswith("HOST://")).rsplit(
            ":", 1
        )[1]
    )
    assert _host_ports(services["kafka"]) == {port: host_listener_port}


def test_redis_uses_the_settings_port(services: dict[str, Any]) -> None:
    redis = services["redis"]
    port = DEFAULTS.redis_port
    assert _host_ports(redis) == {port: port}
    command = redis["command"]
    assert command[command.index("--port") + 1] == str(port)
    assert "healthcheck" in redis


@pytest.mark.parametrize(
    "name", ["tally", "sim-a", "sim-b", "sim-c", "sim-d", "redteam", "generator"]
)
def test_ratifier_services_share_image_and_settings(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["build"] == "."
    assert service["command"][0] == "ratifier"
    env = _env(service)
    assert set(env) <= {f.upper() for f in ("RATIFIER_" + n for n in Settings.__slots__)}
    settings = Settings.from_env(env)  # the environment is valid for Settings
    assert settings.bootstrap_servers == f"kafka:{DEFAULTS.kafka_port}"
    assert settings.redis_url == f"redis://redis:{DEFAULTS.redis_port}/0"
    assert settings.topic_prefix == DEFAULTS.topic_prefix
    assert settings.partitions == DEFAULTS.partitions
    assert "kafka" in service["depends_on"]
    assert "redis" in service["depends_on"]


def test_process_commands(services: dict[str, Any]) -> None:
    assert services["tally"]["command"] == ["ratifier", "tally", "run"]
    assert services["generator"]["command"] == [
        "ratifier",
        "generator",
        "run",
        "ratifier.app.demo.generator:improve",
    ]
    for name in ("sim-a", "sim-b", "sim-c", "sim-d", "redteam"):
        command = services[name]["command"]
        assert command[:4] == ["ratifier", "validator", "run", SIMULATED]
        assert command[command.index("--id") + 1] == name
        params = [command[i + 1] for i, arg in enumerate(command) if arg == "--param"]
        assert any(p.startswith("error_rate=") for p in params)
        assert ("red_team=true" in params) == (name == "redteam")


def test_validators_wait_for_a_ready_tally(services: dict[str, Any]) -> None:
    assert services["tally"]["healthcheck"]["test"] == ["CMD", "ratifier", "tally", "status"]
    for name in ("sim-a", "sim-b", "sim-c", "sim-d", "redteam", "generator"):
        assert services[name]["depends_on"]["tally"] == {"condition": "service_healthy"}
    assert services["tally"]["environment"]["RATIFIER_TALLY_ENGINE"].endswith("transactional}")


def test_one_validator_runs_two_replicas(services: dict[str, Any]) -> None:
    replicas = {
        name: s.get("deploy", {}).get("replicas", 1)
        for name, s in services.items()
        if "validator" in s.get("command", [])
    }
    assert sorted(replicas.values()) == [1, 1, 1, 1, 2]


def test_dockerfile_installs_every_mapped_folder() -> None:
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    for folder in ("ratifier", "streams", "schemas", "validators"):
        assert re.search(rf"^COPY {folder} {folder}$", dockerfile, re.M), folder


def test_validators_match_the_demo_topology(services: dict[str, Any]) -> None:
    """Compose runs the very processes `ratifier demo` starts: same ids, params and replicas."""
    from ratifier.app.demo.runner import demo_processes

    demo: dict[str, list[str]] = {}
    replicas: dict[str, int] = {}
    for spec in demo_processes():
        if spec.args[0] != "validator":
            continue
        validator_id = spec.args[spec.args.index("--id") + 1]
        demo[validator_id] = ["ratifier", *spec.args]
        replicas[validator_id] = replicas.get(validator_id, 0) + 1
    for validator_id, command in demo.items():
        assert services[validator_id]["command"] == command
        assert services[validator_id].get("deploy", {}).get("replicas", 1) == replicas[validator_id]
    generator = next(s for s in demo_processes() if s.args[0] == "generator")
    assert services["generator"]["command"][:4] == ["ratifier", *generator.args[:3]]


def test_every_ratifier_process_serves_metrics_and_has_a_healthcheck(
    services: dict[str, Any],
) -> None:
    ours = {name: s for name, s in services.items() if s.get("image") == "ratifier:local"}
    assert "monitor" in ours
    for name, service in ours.items():
        assert _env(service)["RATIFIER_METRICS_PORT"] == "9100", name
        check = " ".join(service["healthcheck"]["test"])
        assert "/healthz" in check or "/readyz" in check or "tally status" in check, name
    assert "/readyz" in " ".join(ours["monitor"]["healthcheck"]["test"])
    assert _host_ports(ours["monitor"]) == {9100: 9100}


def test_outcomes_and_review_run_as_the_demo_runs_them(services: dict[str, Any]) -> None:
    """The demo's outcomes writer and reviewer page, with the tokens as a secret file."""
    from pathlib import Path

    from ratifier.ops.fleet import ProcessSpec

    assert services["outcomes"]["command"] == ["ratifier", *ProcessSpec.outcomes().args]
    review = services["review"]["command"]
    demo = ProcessSpec.review(8470, Path("/run/secrets/reviewers")).args
    assert review[:3] == ["ratifier", *demo[:2]]
    for option in ("--port", "--tokens-file"):
        assert review[review.index(option) + 1] == demo[demo.index(option) + 1]
    assert review[review.index("--host") + 1] == "0.0.0.0"  # reachable through the port mapping
    assert _host_ports(services["review"]) == {8470: 8470}
    assert services["review"]["secrets"] == ["reviewers"]


def test_the_gateway_serves_on_its_port_with_its_tokens_as_a_secret(
    services: dict[str, Any],
) -> None:
    gateway = services["gateway"]
    command = gateway["command"]
    assert command[:3] == ["ratifier", "gateway", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--tokens-file") + 1] == "/run/secrets/gateway_tokens"
    assert _host_ports(gateway) == {8480: int(command[command.index("--port") + 1])}
    assert gateway["secrets"] == ["gateway_tokens"]
    assert gateway["depends_on"]["tally"] == {"condition": "service_healthy"}
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
