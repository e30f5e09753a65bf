"""The governance monitor through the real broker and real Redis.

A tally and four validator groups run as processes, as users run them, each serving /metrics:
``yes`` approves everything (a simulated validator reading a truth that is always "accept"),
``twin-a`` and ``twin-b`` are the same seeded validator (they share every blind spot), ``other``
errs independently. The policy needs all four (so the attempts that fail show how each voted)
and escalates at once (one attempt). The monitor must raise vote inflation for ``yes``,
correlated validators for the twins (and for no other pair), and escalation capacity; keep the
scoreboard equal to the votes in the decisions; answer ``Client.case``; and show the figures on
/metrics, as must the tally and the validators.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ratifier.app.configs import monitor_config
from ratifier.core.config import Settings
from ratifier.core.models import Alert, EscalationPacket, PassDecision, RetryRequest
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.features.monitor.runtime.worker import MonitorWorker
from ratifier.io.admin import ensure_topics
from ratifier.io.client import Client
from ratifier.io.metrics import serve_metrics
from ratifier.io.readmodels import ReadModels
from ratifier.io.testing import read_topics, wait_until
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.schemas import codec
from tests.integration.monitor_support import free_port, free_ports, scrape, value

pytestmark = pytest.mark.integration

CASES = 80
POLICY = """\
name = "gov"
version = "gov-1"
max_attempts = 1
window_seconds = 10
complete_packets = true

[threshold]
accepts = 4

[monitor]
inflation_min_verdicts = 30
correlation_min_attempts = 15
review_capacity_per_hour = 10
time_to_decision_p95_max_seconds = 0.001  # 1 ms: no decision through Kafka is that fast
time_to_decision_min_decisions = 20

[[validators]]
id = "yes"
[[validators]]
id = "twin-a"
[[validators]]
id = "twin-b"
[[validators]]
id = "other"
"""


@pytest.fixture
async def governed(stack: object, settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "gov.toml").write_text(POLICY)
    tuned = settings.with_overrides(policy_dir=tmp_path / "policies", tick_interval_s=0.2)
    await ensure_topics(tuned)
    yield tuned
    async with ReadModels.from_settings(tuned) as models:
        await models.delete_all()


async def test_alarms_read_models_and_metrics_end_to_end(governed: Settings) -> None:
    settings = governed
    names = TopicNames.from_settings(settings)
    fleet = Fleet(
        Fleet.env_for(settings),
        settings.state_dir / "e2e-monitor" / settings.topic_prefix,
        metrics_port=free_ports(5),
    )
    validators = [
        ProcessSpec.validator("yes", SIMULATED, {"error_rate": 0, "truth_key": "always"}),
        ProcessSpec.validator("twin-a", SIMULATED, {"error_rate": 0.3, "seed": 7}),
        ProcessSpec.validator("twin-b", SIMULATED, {"error_rate": 0.3, "seed": 7}),
        ProcessSpec.validator("other", SIMULATED, {"error_rate": 0.3, "seed": 8}),
    ]
    monitor_settings = settings.with_overrides(metrics_port=free_port(), worker_id="monitor-1")
    monitor = MonitorWorker(monitor_config(monitor_settings), load_policies(settings.policy_dir))
    stop = asyncio.Event()
    await fleet.start(ProcessSpec.tally(), *validators)
    try:
        async with serve_metrics(monitor_settings, monitor.observability()), monitor:
            running = asyncio.create_task(monitor.run(stop))
            await fleet.wait_ready(settings)
            port = monitor_settings.metrics_port
            await wait_until(
                lambda: _ready(port), 30, "the monitor's /readyz (partitions assigned)"
            )
            async with Client(settings, producer="e2e") as client:
                case_ids = []
                for i in range(CASES):
                    candidate = client.candidate(
                        f"answer {i}",
                        query=f"question {i}",
                        policy="gov",
                        category="billing",
                        metadata={"truth": "accept" if i % 2 else "reject", "always": "accept"},
                    )
                    case_ids.append(candidate.case_id)
                    await client.send(candidate)

                async def all_decided() -> bool:
                    async with _read_models(settings) as models:
                        figures = await models.figures()
                    return figures.get("gov", {}).get("final_outcomes") == CASES

                await wait_until(all_decided, 90, f"the monitor's figures over {CASES} cases")
                await wait_until(lambda: _alarm_count(settings, 4), 30, "four alarms")
                view = await client.case(case_ids[0])
            tally_metrics = await scrape(fleet.metrics_ports["tally"])
            validator_metrics = await scrape(fleet.metrics_ports["validator-yes-0"])
            monitor_metrics = await scrape(port)
            stop.set()
            await running
    finally:
        stop.set()
        await fleet.stop()

    # Alerts on the topic, Avro: exactly the expected alarms, raised.
    alerts = [codec.decode_as(v, Alert) for v in await read_topics(settings, [names.alerts])]
    raised = {(a.kind, a.subject) for a in alerts if a.state == "RAISED"}
    assert raised == {
        ("VOTE_INFLATION", "yes/billing"),
        ("CORRELATED_VALIDATORS", "twin-a+twin-b"),
        ("ESCALATION_CAPACITY", "gov"),
        ("TIME_TO_DECISION", "gov"),
    }, alerts
    inflation = next(a for a in alerts if a.kind == "VOTE_INFLATION")
    assert (inflation.value, inflation.threshold, inflation.policy) == (0.0, 0.05, "gov")
    twins = next(a for a in alerts if a.kind == "CORRELATED_VALIDATORS")
    assert twins.value == pytest.approx(1.0)
    assert twins.sample_size >= 15
    slo = next(a for a in alerts if a.kind == "TIME_TO_DECISION")
    assert slo.threshold == 0.001
    assert slo.value > 0.001
    assert slo.sample_size >= 20
    # Redis holds the same four, as current alarms.
    async with _read_models(settings) as models:
        current = await models.alarms()
        scoreboard = await models.scoreboard()
        figures = (await models.figures())["gov"]
    assert sorted(a["kind"] for a in current.values()) == sorted(k for k, _ in raised)

    # The scoreboard counts exactly the votes the decisions carry.
    decisions = [codec.decode(v) for v in await read_topics(settings, names.decisions)]
    counted: Counter[tuple[str, str]] = Counter()
    finals = 0
    for decision in decisions:
        if isinstance(decision, PassDecision | RetryRequest):
            votes = decision.votes
        else:
            assert isinstance(decision, EscalationPacket)
            votes = decision.attempts[-1].verdicts
        finals += not isinstance(decision, RetryRequest)
        counted.update((v.validator_id, v.vote.value) for v in votes)
    assert finals == CASES
    board = {
        (row.validator, vote): getattr(row, vote.lower())
        for row in scoreboard
        for vote in ("ACCEPT", "REJECT", "ABSTAIN")
        if getattr(row, vote.lower())
    }
    assert board == dict(counted)
    assert all(row.policy == "gov" and row.category == "billing" for row in scoreboard)
    escalated = sum(isinstance(d, EscalationPacket) for d in decisions)
    assert figures["escalation_ratio"] == pytest.approx(escalated / CASES)
    assert figures["first_attempt_consensus_ratio"] == pytest.approx(1 - escalated / CASES)
    # Time to decision, from the decisions themselves: the monitor's p50 is theirs.
    spans = sorted(d.decided_at_ms - _produced(d) for d in decisions)
    timed = figures["time_to_decision_ms"]
    assert figures["decisions_timed"] == len(decisions)
    assert timed["all"]["p50"] == pytest.approx(statistics.median(spans))
    assert timed["all"]["p50"] <= timed["all"]["p95"] <= timed["all"]["p99"] <= spans[-1]

    # The case view.
    assert view is not None
    assert view.status in ("passed", "escalated")
    assert (view.policy, view.policy_version) == ("gov", "gov-1")
    assert set(view.attempts[0].verdicts) == {"yes", "twin-a", "twin-b", "other"}

    # /metrics of the monitor, the tally and a validator, with non-zero values.
    status, text = monitor_metrics
    assert status == 200
    passed = value(text, 'ratifier_decisions_total{outcome="pass",policy="gov"}')
    assert passed + value(text, 'ratifier_decisions_total{outcome="escalate",policy="gov"}') == (
        CASES
    )
    assert value(text, 'ratifier_verdicts_total{category="billing",validator="yes",vote="ACCEPT"}')
    assert value(text, 'ratifier_agreement_kappa{pair="twin-a+twin-b",policy="gov"}') == 1.0
    assert value(text, 'ratifier_escalation_ratio{policy="gov"}') > 0
    assert value(text, 'ratifier_first_attempt_consensus_ratio{policy="gov"}') > 0
    assert value(text, 'ratifier_alarms_active{kind="VOTE_INFLATION"}') == 1
    assert value(text, 'ratifier_validator_latency_seconds_count{validator="yes"}') > 0
    status, text = tally_metrics
    assert status == 200
    assert value(text, 'ratifier_tally_records_total{kind="candidate"}') == CASES
    assert value(text, 'ratifier_tally_decisions_total{outcome="escalate"}') == escalated
    assert re.search(r"^ratifier_open_windows ", text, re.M)
    assert value(text, "ratifier_tally_finished_cases") == CASES  # each case left its marker
    # The tally's own time-to-decision histogram: one observation per decision, per outcome.
    for outcome in ("pass", "escalate"):
        labels = f'outcome="{outcome}",policy="gov"'
        count = value(text, f"ratifier_time_to_decision_seconds_count{{{labels}}}")
        assert count == sum(1 for d in decisions if _outcome(d) == outcome)
        total = value(text, f"ratifier_time_to_decision_seconds_sum{{{labels}}}")
        spent = sum(d.decided_at_ms - _produced(d) for d in decisions if _outcome(d) == outcome)
        assert total == pytest.approx(spent / 1000)
        inf = value(text, f'ratifier_time_to_decision_seconds_bucket{{le="+Inf",{labels}}}')
        assert inf == count
    assert 'ratifier_dead_letters_total{reason="MALFORMED"} 0.0' in text
    assert re.search(r'^ratifier_consumer_lag\{partition="\d",topic="[^"]+"\} 0\.0$', text, re.M)
    status, text = validator_metrics
    assert status == 200
    assert value(text, 'ratifier_validator_verdicts_total{validator="yes",vote="ACCEPT"}') == CASES


def _produced(decision: object) -> int:
    if isinstance(decision, EscalationPacket):
        return decision.attempts[-1].candidate.produced_at_ms
    assert isinstance(decision, PassDecision | RetryRequest)
    return decision.candidate.produced_at_ms


def _outcome(decision: object) -> str:
    if isinstance(decision, PassDecision):
        return "pass"
    return "escalate" if isinstance(decision, EscalationPacket) else "retry"


def _read_models(settings: Settings) -> ReadModels:
    return ReadModels.from_settings(settings)


async def _ready(port: int) -> bool:
    status, _ = await scrape(port, "/readyz")
    return status == 200


async def _alarm_count(settings: Settings, count: int) -> bool:
    async with _read_models(settings) as models:
        return len(await models.alarms()) >= count
