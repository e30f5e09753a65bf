"""The model <-> Avro binding (ratifier.schemas.binding) and the body splicing it allows.

The binding is generated from the models and the .avsc files; test_codec.py checks its bytes and
records against fastavro and the official avro package on generated records. Here: that a
disagreement between the two sides fails loudly, that the generated reader builds the same
objects as the constructors, and that copying a decoded input's body into a decision (splicing)
gives exactly the bytes encoding it would.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from fastavro import parse_schema

from ratifier.core.models import (
    Candidate,
    OutcomeClass,
    PassDecision,
    Reason,
    Severity,
    Span,
    Verdict,
    Vote,
)
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.schemas import binding, codec
from ratifier.streams.processor import InputRecord, TallyProcessor
from ratifier.streams.rules import tally
from ratifier.streams.rules.limits import SizeLimits
from ratifier.streams.store import DictCaseStore

T0 = 1_700_000_000_000


def _span_schema(fields: list[dict[str, Any]]) -> dict[str, Any]:
    schema = {"type": "record", "name": "Span", "namespace": "ratifier", "fields": fields}
    return parse_schema(schema, named_schemas={})  # type: ignore[no-any-return]


def _candidate(**changes: Any) -> Candidate:
    candidate = Candidate(
        "case-1", 1, "c1", "default", "qa", "2+2?", "4", "gen", T0, (), {"k": "v"}
    )
    return dataclasses.replace(candidate, **changes)


def _verdict(validator_id: str, vote: Vote = Vote.ACCEPT, **changes: Any) -> Verdict:
    reasons = ()
    if vote is Vote.REJECT:
        reasons = (Reason("wrong", "it is wrong", Span(0, 1)), Reason("style", "meh"))
    verdict = Verdict(
        "case-1", 1, "c1", validator_id, "1.0", vote, 0.875,
        Severity.MAJOR if vote is Vote.REJECT else None, reasons, 12, T0 + 5,
    )  # fmt: skip
    return dataclasses.replace(verdict, **changes)


def _decision(candidate: Candidate, votes: tuple[Verdict, ...]) -> PassDecision:
    return PassDecision(
        "d-1", "case-1", 1, candidate, 0.9, votes, "default", "1", OutcomeClass.CONFIRMED, T0 + 9
    )


# --- the declaration ---------------------------------------------------------------------------


def test_a_schema_field_without_a_model_field_fails_naming_it() -> None:
    schema = _span_schema([{"name": n, "type": "int"} for n in ("start", "end", "middle")])
    with pytest.raises(binding.BindingError, match=r"only in the schema \['middle'\]"):
        binding.bind(schema)


def test_a_model_field_without_a_schema_field_fails_naming_it() -> None:
    schema = _span_schema([{"name": "start", "type": "int"}])
    with pytest.raises(binding.BindingError, match=r"only in the model \['end'\]"):
        binding.bind(schema)


def test_enum_symbols_must_be_the_enum_values() -> None:
    vote = {"type": "enum", "name": "Vote", "namespace": "ratifier", "symbols": ["ACCEPT", "NO"]}
    schema = parse_schema(
        {
            "type": "record",
            "name": "Span",
            "namespace": "ratifier",
            "fields": [{"name": "start", "type": vote}, {"name": "end", "type": "int"}],
        },
        named_schemas={},
    )
    with pytest.raises(binding.BindingError, match=r"not ratifier\.Vote's symbols"):
        binding.bind(schema)


def test_field_order_may_differ_between_model_and_schema() -> None:
    schema = _span_schema([{"name": "end", "type": "int"}, {"name": "start", "type": "int"}])
    bound = binding.bind(schema)
    out = bytearray()
    bound.write(out, Span(3, 7), None)
    assert bytes(out) == b"\x0e\x06"  # end first, as the schema says
    assert bound.read(bytes(out), 0) == (Span(3, 7), 2)
    assert bound.from_datum({"start": 3, "end": 7}) == Span(3, 7)


def test_generated_readers_build_the_objects_the_constructors_build() -> None:
    # Slotted frozen dataclasses are built through their slots' setters: every field set.
    for record in (_candidate(), _verdict("a"), _verdict("b", Vote.REJECT)):
        decoded = codec.decode(codec.encode(record))
        assert decoded == record
        assert repr(decoded) == repr(record)
        assert hash(decoded.case_id) == hash(record.case_id)
        assert copy.copy(decoded) == record  # the usual protocols work on them


def test_every_current_record_type_has_generated_source() -> None:
    for kind in codec.RECORD_TYPES:
        wire = codec._BY_TYPE[kind].wire
        assert f"def read_{kind.__name__}(" in binding.bind(wire).source


# --- strict reading: only the one encoding a writer writes ----------------------------------------


def test_a_map_key_written_twice_is_left_to_fastavro() -> None:
    candidate = _candidate(metadata={"k": "v"})
    encoded = codec.encode(candidate)
    one = b"\x02\x02k\x02v\x00"
    assert encoded.endswith(one)
    twice = encoded[: -len(one)] + b"\x04\x02k\x02v\x02k\x02w\x00"
    assert codec._fast_decode(codec._BY_TYPE[Candidate], twice) is None
    assert codec.decode(twice) == dataclasses.replace(candidate, metadata={"k": "w"})


def test_an_over_long_varint_is_left_to_fastavro() -> None:
    encoded = codec.encode(_verdict("a"))
    position = codec.HEADER_SIZE + 1 + len(b"case-1")  # the attempt, after case_id
    assert encoded[position] == 0x02
    overlong = encoded[:position] + b"\x82\x00" + encoded[position + 1 :]
    assert codec._fast_decode(codec._BY_TYPE[Verdict], overlong) is None
    assert codec.decode(overlong) == _verdict("a")


# --- splicing ------------------------------------------------------------------------------------


def test_spliced_decision_is_byte_for_byte_the_encoded_one() -> None:
    bodies: codec.Bodies = {}
    candidate = codec.decode_as(codec.encode(_candidate()), Candidate, bodies)
    votes = tuple(
        codec.decode_as(codec.encode(_verdict(v, vote)), Verdict, bodies)
        for v, vote in (("a", Vote.ACCEPT), ("b", Vote.REJECT), ("c", Vote.ABSTAIN))
    )
    assert len(bodies) == 4
    decision = _decision(candidate, votes)
    assert codec.encode(decision, bodies) == codec.encode(decision)
    assert codec.decode(codec.encode(decision, bodies)) == decision


def test_a_remembered_body_is_what_the_writer_copies() -> None:
    verdict = _verdict("a")
    bodies: codec.Bodies = {id(verdict): (verdict, memoryview(b"<body>"))}
    assert b"<body>" in codec.encode(_decision(_candidate(), (verdict,)), bodies)


def test_an_equal_record_is_not_the_remembered_one() -> None:
    remembered, other = _verdict("a"), _verdict("a")
    assert remembered == other
    assert remembered is not other
    bodies: codec.Bodies = {id(other): (remembered, memoryview(b"<body>"))}  # id reused
    assert codec.encode(_decision(_candidate(), (other,)), bodies) == codec.encode(
        _decision(_candidate(), (other,))
    )


def test_unusual_encodings_are_not_remembered() -> None:
    encoded = codec.encode(_verdict("a"))
    position = codec.HEADER_SIZE + 1 + len(b"case-1")
    overlong = encoded[:position] + b"\x82\x00" + encoded[position + 1 :]
    bodies: codec.Bodies = {}
    verdict = codec.decode_as(overlong, Verdict, bodies)
    assert bodies == {}  # fastavro read it: its body is not what a writer writes
    assert codec.encode(_decision(_candidate(), (verdict,)), bodies) == codec.encode(
        _decision(_candidate(), (verdict,))
    )


def _processor() -> TallyProcessor:
    return TallyProcessor(
        TopicNames("splice"),
        load_policies(),
        DictCaseStore(),
        tally.TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=60_000),
        clock=lambda: T0,
        limits=SizeLimits(200_000, 16_384, 1_048_576),
    )


def test_processor_decisions_are_the_same_bytes_in_one_batch_or_record_by_record() -> None:
    # In one batch the decision is spliced from the inputs' bodies; record by record, every
    # input comes back from the stored state and is encoded: the bytes must not differ.
    topics = TopicNames("splice")
    policy = load_policies()["default"]
    candidate = _candidate(policy=policy.name)
    records = [InputRecord(topics.candidates, 0, 0, b"case-1", codec.encode(candidate), T0)]
    red_team = set(policy.red_team_ids)
    for offset, validator in enumerate(policy.validators):
        # The red team rejects (with reasons and spans), not critically: no veto, a pass.
        vote = Vote.REJECT if validator.id in red_team else Vote.ACCEPT
        value = codec.encode(_verdict(validator.id, vote))
        records.append(InputRecord(topics.verdicts, 0, offset, b"case-1", value, T0 + 1))
    together = _processor().handle_batch(records)
    one_by_one = _processor()
    apart = [out for record in records for out in one_by_one.handle_batch([record])]
    decisions = [o for o in together if o.topic == topics.passed]
    assert len(decisions) == 1
    assert [o for o in apart if o.topic == topics.passed] == decisions
    assert together == apart
