"""Client-side helpers that need no broker: JSON view, decision dedup, candidates, fleet args."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace

import orjson
import pytest

from ratifier.app.cli.loading import parse_params
from ratifier.core.config import Settings
from ratifier.core.errors import CandidateRejected, TopicsMissing
from ratifier.core.jsonview import to_json
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    OutcomeClass,
    PassDecision,
    Reason,
    Severity,
    Span,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.io.client import Client, _Rejections, _SeenIds
from ratifier.ops.fleet import SIMULATED, ProcessSpec

CANDIDATE = Candidate(
    case_id="case-1",
    attempt=1,
    candidate_id="cand-1",
    policy="default",
    category="general",
    query="q",
    content="c",
    producer="me",
    produced_at_ms=5,
    previous_candidate_ids=("a", "b"),
    metadata={"truth": "accept"},
)
VERDICT = Verdict(
    "case-1", 1, "cand-1", "v1", "1", Vote.REJECT, 0.5, Severity.MAJOR,
    (Reason("R1", "msg", Span(1, 4)),), 3, 9,
)  # fmt: skip


# --- jsonview ----------------------------------------------------------------------------------


def test_to_json_names_the_type_and_keeps_fields() -> None:
    body = orjson.loads(to_json(CANDIDATE))
    assert body == {
        "type": "Candidate",
        "case_id": "case-1",
        "attempt": 1,
        "candidate_id": "cand-1",
        "policy": "default",
        "category": "general",
        "query": "q",
        "content": "c",
        "producer": "me",
        "produced_at_ms": 5,
        "previous_candidate_ids": ["a", "b"],
        "metadata": {"truth": "accept"},
    }
    assert next(iter(body)) == "type"
    assert "\n" not in to_json(CANDIDATE)


def test_to_json_nested_records_enums_and_spans() -> None:
    decision = PassDecision(
        "d", "case-1", 1, CANDIDATE, 0.75, (VERDICT,), "default", "v", OutcomeClass.CONFIRMED, 7
    )
    body = orjson.loads(to_json(decision))
    assert body["type"] == "PassDecision"
    assert body["outcome"] == "confirmed"
    assert body["candidate"]["metadata"] == {"truth": "accept"}
    assert body["votes"] == [
        {
            "case_id": "case-1",
            "attempt": 1,
            "candidate_id": "cand-1",
            "validator_id": "v1",
            "validator_version": "1",
            "vote": "REJECT",
            "confidence": 0.5,
            "severity": "MAJOR",
            "reasons": [{"code": "R1", "message": "msg", "span": {"start": 1, "end": 4}}],
            "latency_ms": 3,
            "produced_at_ms": 9,
            "signature": "",  # unsigned (base64 of no bytes)
            "key_id": "",
            "round": None,  # round 1: no debate (docs/debate.md)
        }
    ]
    assert body["rounds"] == []


def test_to_json_encodes_bytes_as_base64() -> None:
    original = b"\x00\xffraw bytes"
    letter = DeadLetter(original, "t", 1, 2, DeadLetterReason.MALFORMED, "bad", 3)
    body = orjson.loads(to_json(letter))
    assert body["type"] == "DeadLetter"
    assert base64.b64decode(body["original"]) == original
    assert body["reason"] == "MALFORMED"


def test_to_json_rejects_unknown_values() -> None:
    with pytest.raises(TypeError):
        to_json(replace(CANDIDATE, metadata={"x": object()}))


# --- _SeenIds ----------------------------------------------------------------------------------


def test_seen_ids_reports_each_id_once() -> None:
    seen = _SeenIds()
    assert [seen.add(i) for i in ("a", "b", "a", "c", "b")] == [True, True, False, True, False]


def test_seen_ids_forgets_the_oldest_beyond_capacity() -> None:
    seen = _SeenIds(capacity=3)
    for i in ("a", "b", "c", "d"):
        assert seen.add(i)
    assert [seen.add(i) for i in ("b", "c", "d")] == [False, False, False]
    assert seen.add("a")  # evicted: seen again as new


# --- _Rejections: dead letters matched to sent candidates by source ---------------------------


def letter_for(source: tuple[str, int, int], reason: DeadLetterReason) -> DeadLetter:
    topic, partition, offset = source
    return DeadLetter(b"original bytes", topic, partition, offset, reason, "why", 1)


def test_rejection_after_expect_is_reported() -> None:
    rejections, got = _Rejections(), []
    rejections.expect(("p.candidates", 0, 7), got.append)
    rejections.arrived(letter_for(("p.candidates", 0, 8), DeadLetterReason.MALFORMED))
    rejections.arrived(letter_for(("p.candidates", 1, 7), DeadLetterReason.MALFORMED))
    assert got == []
    rejections.arrived(letter_for(("p.candidates", 0, 7), DeadLetterReason.UNKNOWN_POLICY))
    assert [letter.reason for letter in got] == [DeadLetterReason.UNKNOWN_POLICY]


def test_rejection_before_expect_is_kept_for_it_without_its_bytes() -> None:
    # The tally can answer before the producer's acknowledgement reaches decide().
    rejections, got = _Rejections(), []
    rejections.arrived(letter_for(("p.candidates", 2, 3), DeadLetterReason.TOO_LARGE))
    rejections.expect(("p.candidates", 2, 3), got.append)
    (letter,) = got
    assert (letter.reason, letter.detail, letter.original) == (
        DeadLetterReason.TOO_LARGE,
        "why",
        b"",
    )
    rejections.expect(("p.candidates", 2, 3), got.append)  # claimed once
    assert len(got) == 1


def test_forgotten_expectations_and_old_unclaimed_letters_are_dropped() -> None:
    rejections, got = _Rejections(capacity=2), []
    rejections.expect(("p.candidates", 0, 1), got.append)
    rejections.forget(("p.candidates", 0, 1))
    for offset in (1, 2, 3):
        rejections.arrived(letter_for(("p.candidates", 0, offset), DeadLetterReason.MALFORMED))
    assert got == []
    rejections.expect(("p.candidates", 0, 1), got.append)  # evicted beyond capacity
    assert got == []
    rejections.expect(("p.candidates", 0, 3), got.append)
    assert len(got) == 1


def test_error_messages_name_the_reason_and_the_topics() -> None:
    rejected = CandidateRejected(
        "case-9", "UNKNOWN_POLICY", "policy 'x' is not loaded", ("t", 1, 2)
    )
    assert str(rejected) == (
        "the tally rejected the candidate for case case-9 (UNKNOWN_POLICY): "
        "policy 'x' is not loaded [dead letter of t[1]@2]"
    )
    missing = TopicsMissing(["p.a", "p.b"], "host:9092")
    assert missing.topics == ("p.a", "p.b")
    assert str(missing) == (
        "topics p.a, p.b do not exist at host:9092: is RATIFIER_TOPIC_PREFIX right? "
        "(`ratifier stack up` creates them)"
    )


# --- Client.candidate --------------------------------------------------------------------------


async def test_client_candidate_builds_a_first_attempt_without_sending() -> None:
    client = Client(Settings(bootstrap_servers="127.0.0.1:1"), producer="unit")
    try:
        before = now_ms()
        first = client.candidate("text", query="q?", metadata={"k": "v"})
        second = client.candidate("text", case_id="mine", policy="strict", category="medical")
        after = now_ms()
    finally:
        await client.stop()
    assert first.attempt == second.attempt == 1
    assert (first.content, first.query, first.producer) == ("text", "q?", "unit")
    assert (first.policy, first.category) == ("default", "general")
    assert dict(first.metadata) == {"k": "v"}
    assert first.previous_candidate_ids == ()
    assert before <= first.produced_at_ms <= after
    assert uuid.UUID(first.case_id) != uuid.UUID(first.candidate_id)
    assert (second.case_id, second.policy, second.category) == ("mine", "strict", "medical")
    assert dict(second.metadata) == {}
    assert second.candidate_id != first.candidate_id


async def test_client_candidate_copies_metadata() -> None:
    client = Client(Settings(bootstrap_servers="127.0.0.1:1"))
    metadata = {"k": "v"}
    try:
        made = client.candidate("x", metadata=metadata)
    finally:
        await client.stop()
    metadata["k"] = "changed"
    assert dict(made.metadata) == {"k": "v"}


# --- fleet -------------------------------------------------------------------------------------


def param_values(spec: ProcessSpec) -> list[str]:
    args = list(spec.args)
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--param"]


def test_validator_spec_arguments() -> None:
    spec = ProcessSpec.validator("sim-a", SIMULATED, instance=2)
    assert spec.name == "validator-sim-a-2"
    assert spec.args == ("validator", "run", SIMULATED, "--id", "sim-a")


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        pytest.param(["a", "b"], 'k=["a","b"]', id="list"),
        pytest.param(True, "k=true", id="true"),
        pytest.param(False, "k=false", id="false"),
        pytest.param(None, "k=null", id="none"),
        pytest.param(3, "k=3", id="int"),
        pytest.param(0.05, "k=0.05", id="float"),
        pytest.param({"x": 1}, 'k={"x":1}', id="dict"),
        pytest.param("plain text", "k=plain text", id="string"),
        pytest.param("007", "k=007", id="string-not-json"),
        pytest.param("true", 'k="true"', id="string-that-is-json"),
    ],
)
def test_validator_param_rendering(value: object, rendered: str) -> None:
    assert param_values(ProcessSpec.validator("v", SIMULATED, {"k": value})) == [rendered]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("text", id="text"),
        pytest.param("", id="empty-string"),
        pytest.param("true", id="string-true"),
        pytest.param("42", id="string-number"),
        pytest.param("null", id="string-null"),
        pytest.param('"quoted"', id="string-with-quotes"),
        pytest.param("[1]", id="string-list"),
        pytest.param(["a", 1, None], id="list"),
        pytest.param(False, id="bool"),
        pytest.param(0.25, id="float"),
    ],
)
def test_validator_params_round_trip_through_the_cli_parser(value: object) -> None:
    spec = ProcessSpec.validator("v", SIMULATED, {"k": value})
    assert parse_params(param_values(spec)) == {"k": value}


def test_validator_params_keep_order() -> None:
    spec = ProcessSpec.validator("v", SIMULATED, {"error_rate": 0.1, "seed": 3, "red_team": True})
    assert param_values(spec) == ["error_rate=0.1", "seed=3", "red_team=true"]


def test_tally_and_generator_specs() -> None:
    assert ProcessSpec.tally() == ProcessSpec("tally", ("tally", "run"))
    generator = ProcessSpec.generator("mod:gen", "g2")
    assert generator == ProcessSpec("generator-g2", ("generator", "run", "mod:gen", "--id", "g2"))


def test_each_process_names_the_consumer_group_it_joins() -> None:
    from ratifier.core.topics import TopicNames
    from ratifier.ops.fleet import ProcessSpec

    names = TopicNames("p")
    assert ProcessSpec.tally().group(names) == "p.tally"
    assert ProcessSpec.validator("sim-a", "m:f", instance=1).group(names) == "p.validator.sim-a"
    assert ProcessSpec.generator("m:g", "gen").group(names) == "p.generator.gen"
