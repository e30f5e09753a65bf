"""The secure stack (``ratifier stack up --secure``): real TLS, real SCRAM, the broker's own
StandardAuthorizer with the ACLs of ``ratifier acl plan``.

The module starts its own secure stack on free ports in a temporary state dir (the shared
plaintext stack keeps running) and stops it at the end, so it runs the same on a clean machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from ratifier.core.acl import plan
from ratifier.core.config import TALLY_ENGINES, Settings
from ratifier.core.errors import StackError
from ratifier.core.models import PassDecision
from ratifier.core.topics import TopicNames
from ratifier.io.acl import apply_acls
from ratifier.io.admin import delete_topics, ensure_topics
from ratifier.io.client import Client
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.redis_client import connect
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops import stack as local_stack
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.ops.stack import kafka, secure
from tests.integration.monitor_support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_base(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A secure stack of this module's own; its settings connect as nobody (PLAINTEXT)."""
    own = base_settings.with_overrides(
        state_dir=tmp_path_factory.mktemp("secure-stack"),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        bootstrap_servers="",  # derived again from the ports above
        redis_url="",
    )
    status = local_stack.up(own, secure_stack=True)
    try:
        assert status.running, str(status)
        yield own
    finally:
        local_stack.down(own)


@pytest.fixture
async def admin(secure_base: Settings) -> AsyncIterator[Settings]:
    """The admin's settings for a topic prefix of this test, its topics and ACLs in place."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    settings = secure.client_settings(secure_base, secure.ADMIN).with_overrides(topic_prefix=prefix)
    await ensure_topics(settings)
    await apply_acls(settings, plan(prefix))
    yield settings
    await delete_topics(settings, TopicNames(prefix).public)


def as_role(admin: Settings, role: str) -> Settings:
    return secure.client_settings(admin, role)


@pytest.mark.parametrize("engine", TALLY_ENGINES)
async def test_a_decision_end_to_end_over_sasl_ssl(
    admin: Settings, tmp_path: Path, engine: str
) -> None:
    """Tally, two validators, the outcomes writer and the client, each as its own SCRAM user
    with only its ACLs; the answer lands signed in the trusted store (redis with a password)."""
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "duo", ["v-a", "v-b"], accepts=2, window_seconds=20, max_attempts=1)
    tuned = admin.with_overrides(
        policy_dir=policy_dir, hold_ms=4_000, tick_interval_s=0.2, tally_engine=engine
    )
    specs = [
        _as(ProcessSpec.tally(), admin, "tally"),
        *(
            _as(ProcessSpec.validator(v, SIMULATED, {"error_rate": 0.0}), admin, "validator")
            for v in ("v-a", "v-b")
        ),
        _as(ProcessSpec.outcomes(), admin, "outcomes"),
    ]
    fleet = Fleet(Fleet.env_for(tuned), tmp_path / "logs")
    await fleet.start(*specs)
    try:
        await fleet.wait_ready(tuned, timeout_s=90)
        async with Client(as_role(tuned, "producer"), producer="secure-e2e") as client:
            outcome = await client.decide(
                "Refunds within 30 days.", policy="duo", metadata={"truth": "accept"}, timeout_s=60
            )
            assert isinstance(outcome, PassDecision)
            assert {v.validator_id for v in outcome.votes} == {"v-a", "v-b"}

            async def answered() -> bool:
                return await client.trusted_answer(outcome.case_id, verify=True) is not None

            await wait_until(answered, 30, "the signed answer in the trusted store")
    finally:
        await fleet.stop()


async def test_the_other_roles_run_with_their_own_acls(admin: Settings, tmp_path: Path) -> None:
    """Monitor, generator and reviewer page: each joins its group on its topics as its user
    (a missing ACL stops a process at subscription, and wait_ready names it)."""
    tokens = tmp_path / "reviewers.txt"
    tokens.write_text("ann tok-ann-0123456789abcdef\n")
    specs = [
        _as(ProcessSpec.monitor(), admin, "monitor"),
        _as(ProcessSpec.generator("ratifier.app.demo.generator:improve"), admin, "generator"),
        _as(ProcessSpec.review(free_port(), tokens), admin, "reviewer"),
    ]
    fleet = Fleet(Fleet.env_for(admin), tmp_path / "logs")
    await fleet.start(*specs)
    try:
        await fleet.wait_ready(admin, timeout_s=60)
        assert fleet.exited() == {}
    finally:
        await fleet.stop()


def _as(spec: ProcessSpec, admin: Settings, role: str) -> ProcessSpec:
    env = secure.client_environment(admin, role)
    return ProcessSpec(spec.name, spec.args, tuple(env.items()))


async def test_a_validator_may_not_write_decisions_nor_read_outcomes(admin: Settings) -> None:
    validator = as_role(admin, "validator")
    names = TopicNames.from_settings(admin)
    producer = make_producer(validator, client_id="forger")
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError) as writing:
            await producer.send_and_wait(names.passed, b"forged", key=b"case")
    finally:
        await producer.stop()
    assert str(writing.value) == f"[Error 29] TopicAuthorizationFailedError: {names.passed}"
    # Its own group prefix, but a topic it has no READ on: refused at start.
    consumer = make_consumer(
        validator, names.outcomes, group_id=names.validator_group("snoop"), client_id="snoop"
    )
    with pytest.raises(TopicAuthorizationFailedError) as reading:
        await consumer.start()
    await consumer.stop()
    assert str(reading.value) == f"[Error 29] TopicAuthorizationFailedError: {names.outcomes}"
    # What it may do, it can: the same producer writes its verdicts topic.
    allowed = make_producer(validator, client_id="honest")
    await allowed.start()
    try:
        await allowed.send_and_wait(names.verdicts, b"not avro, but allowed", key=b"case")
    finally:
        await allowed.stop()


async def test_a_wrong_password_fails_in_seconds_in_one_line(admin: Settings) -> None:
    wrong = as_role(admin, "validator").with_overrides(
        kafka_sasl_password_file=None, kafka_sasl_password="not-the-password"
    )
    started = time.monotonic()
    with pytest.raises(StackError) as failed:
        await ensure_topics(wrong, [TopicNames.from_settings(admin).verdicts])
    assert time.monotonic() - started < 10
    message = str(failed.value)
    assert "\n" not in message
    assert "SASL_SSL SCRAM-SHA-512 as validator) refused the credentials" in message
    assert "not-the-password" not in message
    # The CLI: exit 2, one line naming the connection, no traceback, no password.
    env = {
        **os.environ,
        **secure.client_environment(admin, "validator"),
        "RATIFIER_KAFKA_SASL_PASSWORD_FILE": "",
        "RATIFIER_KAFKA_SASL_PASSWORD": "not-the-password",
        "RATIFIER_TOPIC_PREFIX": admin.topic_prefix,
        "PYTHONSAFEPATH": "1",  # the installed package, not the source folder in the cwd
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ratifier", "--log-level", "error", "acl", "apply"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert stderr.strip().count("\n") == 0, stderr
    assert "as validator" in stderr
    assert b"not-the-password" not in out + err


async def test_the_plaintext_port_refuses(admin: Settings, secure_base: Settings) -> None:
    assert not kafka.api_versions_ok(kafka.HOST, secure_base.kafka_port)
    plain = secure_base.with_overrides(topic_prefix=admin.topic_prefix)
    with pytest.raises(StackError, match=r"cannot reach Kafka at .* \(PLAINTEXT\): .*closed"):
        await asyncio.wait_for(ensure_topics(plain), 30)


async def test_redis_needs_the_password(admin: Settings, secure_base: Settings) -> None:
    async with connect(admin) as authorised:
        assert await authorised.ping()
    anonymous = connect(secure_base)
    with pytest.raises(Exception, match=r"(?i)auth"):
        await anonymous.ping()
    await anonymous.aclose()
