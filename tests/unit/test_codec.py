"""The wire contract: schemas/*.avsc and the single-object codec in ratifier.schemas.codec.

Conformance is checked against the official ``avro`` package, which shares no code with fastavro:
it parses the .avsc files on its own (in dependency order, as a Java or Go producer would), computes
the fingerprints, and reads and writes the bodies the codec writes and reads. It also writes
records with the released older schemas in ``schemas/history/``, which the codec must still read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any, get_args

import avro.io
import avro.name
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import load_schema, to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratifier.core import models
from ratifier.core.errors import UnknownSchema, WireFormatError
from ratifier.core.models import (
    Alert,
    AttemptRecord,
    Candidate,
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    FinalOutcomeRef,
    Outcome,
    OutcomeClass,
    PassDecision,
    PeerVerdict,
    Reason,
    RetryRequest,
    RoundRecord,
    RoundRequest,
    Severity,
    Span,
    Verdict,
    Vote,
)
from ratifier.schemas import codec

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

# Every .avsc file, dependencies first: the order a stock Avro parser needs (docs/wire-format.md).
PARSE_ORDER = (
    "Vote",
    "Severity",
    "FailureReason",
    "OutcomeClass",
    "EscalationReason",
    "DeadLetterReason",
    "Span",
    "Reason",
    "Candidate",
    "Verdict",
    "RoundRecord",
    "PeerVerdict",
    "AttemptRecord",
    "PassDecision",
    "RetryRequest",
    "EscalationPacket",
    "FinalOutcomeRef",
    "DeadLetter",
    "Outcome",
    "Alert",
    "RoundRequest",
)
# Types added after a released version: that version's history folder does not hold them.
ADDED_AFTER = {
    "Outcome": 2,
    "Alert": 2,
    "FinalOutcomeRef": 2,
    "RoundRecord": 3,
    "PeerVerdict": 3,
    "RoundRequest": 3,
}
ENUMS = (Vote, Severity, FailureReason, OutcomeClass, EscalationReason, DeadLetterReason)
NESTED = (Span, Reason, AttemptRecord, FinalOutcomeRef, RoundRecord, PeerVerdict)


def _avsc(name: str, directory: Path | None = None) -> dict[str, Any]:
    path = (directory or codec.schema_dir()) / f"ratifier.{name}.avsc"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_logical_types(n) for n in node]
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    return node


def _official_schemas(
    strip: bool = False, directory: Path | None = None
) -> dict[str, avro.schema.Schema]:
    names = avro.name.Names()

    def load(name: str) -> dict[str, Any]:
        definition = _avsc(name, directory)
        return _without_logical_types(definition) if strip else definition

    return {n: avro.schema.make_avsc_object(load(n), names) for n in _names_in(directory)}


def _names_in(directory: Path | None) -> tuple[str, ...]:
    """PARSE_ORDER, less the types a history folder was released without."""
    if directory is None:
        return PARSE_ORDER
    released = int(directory.name[1:])
    return tuple(n for n in PARSE_ORDER if ADDED_AFTER.get(n, 0) < released)


OFFICIAL = _official_schemas()
# The official Python package writes a logical-type primitive as {"type":"long"} in the canonical
# form, where Java's SchemaNormalization and fastavro write "long" (the spec's [PRIMITIVES] rule);
# logical types are not part of the canonical form anyway, so compare on the schemas without them.
OFFICIAL_PLAIN = _official_schemas(strip=True)


def _rabin64(data: bytes) -> bytes:
    """CRC-64-AVRO as the spec gives it, written here independently of both libraries."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


# --- strategies ------------------------------------------------------------------------------

# The official library turns timestamp-millis into datetime, so conformance data stays within
# what a datetime holds (years 1 to 9999); the codec itself takes any long (tested separately).
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999

texts = st.text(max_size=12)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
timestamps = st.integers(MIN_MS, MAX_MS)
doubles = st.floats(allow_nan=False)  # NaN != NaN would fail equality, not the codec


def _tuples(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements, max_size=3).map(tuple)


spans = st.builds(Span, start=int32, end=int32)
reasons = st.builds(Reason, code=texts, message=texts, span=st.none() | spans)
candidates = st.builds(
    Candidate,
    case_id=texts,
    attempt=int32,
    candidate_id=texts,
    policy=texts,
    category=texts,
    query=texts,
    content=st.text(max_size=200),
    producer=texts,
    produced_at_ms=timestamps,
    previous_candidate_ids=_tuples(texts),
    metadata=st.dictionaries(texts, texts, max_size=3),
)
verdicts = st.builds(
    Verdict,
    case_id=texts,
    attempt=int32,
    candidate_id=texts,
    validator_id=texts,
    validator_version=texts,
    vote=st.sampled_from(Vote),
    confidence=doubles,
    severity=st.none() | st.sampled_from(Severity),
    reasons=_tuples(reasons),
    latency_ms=int64,
    produced_at_ms=timestamps,
    round=st.none() | int32,
)
round_records = st.builds(
    RoundRecord, round=int32, verdicts=_tuples(verdicts), closed_at_ms=timestamps
)
pass_decisions = st.builds(
    PassDecision,
    decision_id=texts,
    case_id=texts,
    attempt=int32,
    candidate=candidates,
    confidence=doubles,
    votes=_tuples(verdicts),
    policy=texts,
    policy_version=texts,
    outcome=st.sampled_from(OutcomeClass),
    decided_at_ms=timestamps,
    rounds=_tuples(round_records),
)
retry_requests = st.builds(
    RetryRequest,
    decision_id=texts,
    case_id=texts,
    attempt=int32,
    next_attempt=int32,
    candidate=candidates,
    reason=st.sampled_from(FailureReason),
    dissent=_tuples(verdicts),
    missing_validators=_tuples(texts),
    votes=_tuples(verdicts),
    policy=texts,
    policy_version=texts,
    decided_at_ms=timestamps,
    rounds=_tuples(round_records),
)
attempt_records = st.builds(
    AttemptRecord,
    candidate=candidates,
    verdicts=_tuples(verdicts),
    failure=st.sampled_from(FailureReason),
    rounds=_tuples(round_records),
)
escalation_packets = st.builds(
    EscalationPacket,
    decision_id=texts,
    case_id=texts,
    attempts=_tuples(attempt_records),
    reason=st.sampled_from(EscalationReason),
    policy=texts,
    policy_version=texts,
    outcome=st.sampled_from(OutcomeClass),
    decided_at_ms=timestamps,
)
dead_letters = st.builds(
    DeadLetter,
    original=st.binary(max_size=64),
    source_topic=texts,
    partition=int32,
    offset=int64,
    reason=st.sampled_from(DeadLetterReason),
    detail=texts,
    dead_at_ms=timestamps,
    closed_by=st.none()
    | st.builds(
        FinalOutcomeRef,
        decision_id=texts,
        outcome=st.sampled_from(["pass", "escalate"]),
        attempt=int32,
        decided_at_ms=timestamps,
    ),
)
outcomes = st.builds(
    Outcome,
    outcome_id=texts,
    case_id=texts,
    kind=st.sampled_from(OutcomeClass),
    reviewer=texts,
    decided_at_ms=timestamps,
    attempt=st.none() | int32,
    candidate_id=st.none() | texts,
    content=st.none() | texts,
    query=texts,
    category=texts,
    note=st.none() | texts,
    policy=texts,
    policy_version=texts,
    resolves=_tuples(texts),
)
alerts = st.builds(
    Alert,
    alert_id=texts,
    kind=texts,
    state=texts,
    policy=texts,
    subject=texts,
    value=doubles,
    threshold=doubles,
    sample_size=int64,
    message=texts,
    monitor=texts,
    changed_at_ms=timestamps,
)
round_requests = st.builds(
    RoundRequest,
    request_id=texts,
    case_id=texts,
    attempt=int32,
    candidate_id=texts,
    policy=texts,
    round=int32,
    peers=_tuples(
        st.builds(
            PeerVerdict,
            peer=texts,
            vote=st.sampled_from(Vote),
            confidence=doubles,
            severity=st.none() | st.sampled_from(Severity),
            reasons=_tuples(reasons),
        )
    ),
    anonymise=st.booleans(),
    opened_at_ms=timestamps,
    closes_at_ms=timestamps,
)
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Candidate: candidates,
    Verdict: verdicts,
    PassDecision: pass_decisions,
    RetryRequest: retry_requests,
    EscalationPacket: escalation_packets,
    DeadLetter: dead_letters,
    Outcome: outcomes,
    Alert: alerts,
    RoundRequest: round_requests,
}
by_kind = pytest.mark.parametrize("kind", codec.RECORD_TYPES, ids=lambda k: k.__name__)
slow = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _verdict(**changes: Any) -> Verdict:
    base = Verdict(
        case_id="case-1",
        attempt=1,
        candidate_id="cand-1",
        validator_id="fact-checker",
        validator_version="1.0",
        vote=Vote.REJECT,
        confidence=0.9,
        severity=Severity.MAJOR,
        reasons=(Reason("factual-error", "wrong date", Span(3, 10)), Reason("style", "long")),
        latency_ms=1234,
        produced_at_ms=1_700_000_000_000,
    )
    return dataclasses.replace(base, **changes)


def _sample(kind: type) -> Any:
    """One fixed record of each type, for tests that need a known message."""
    candidate = DOC_CANDIDATE
    samples = {
        Candidate: candidate,
        Verdict: _verdict(),
        PassDecision: PassDecision(
            "d-1", "case-1", 1, candidate, 1.0, (_verdict(),), "p", "1", OutcomeClass.CONFIRMED, 5
        ),
        RetryRequest: RetryRequest(
            "d-2",
            "case-1",
            1,
            2,
            candidate,
            FailureReason.VETO,
            (_verdict(),),
            ("v2",),
            (_verdict(),),
            "p",
            "1",
            5,
        ),
        EscalationPacket: EscalationPacket(
            "d-3",
            "case-1",
            (AttemptRecord(candidate, (_verdict(),), FailureReason.VETO),),
            EscalationReason.VETO,
            "p",
            "1",
            OutcomeClass.UNRESOLVED,
            5,
        ),
        DeadLetter: DeadLetter(b"\x01\x02", "t", 3, 42, DeadLetterReason.MALFORMED, "bad", 5),
        Outcome: Outcome(
            *("o-1", "case-1", OutcomeClass.CORRECTED, "ann", 5, None, None, "4", "2+2?"),
            *("qa", "typo", "p", "1", ("d-3",)),
        ),
        Alert: Alert("a-1", "DRIFT", "RAISED", "p", "sim-a", 4.2, 4.0, 1000, "m", "w", 5),
        RoundRequest: RoundRequest(
            "r-1",
            "case-1",
            1,
            "cand-1",
            "p",
            2,
            (PeerVerdict("peer 1", Vote.REJECT, 0.9, Severity.MAJOR, (Reason("x", "y"),)),),
            True,
            5,
            6,
        ),
    }
    return samples[kind]


# The example in docs/wire-format.md.
DOC_CANDIDATE = Candidate(
    case_id="case-42",
    attempt=1,
    candidate_id="c1",
    policy="default",
    category="qa",
    query="2+2?",
    content="4",
    producer="gen",
    produced_at_ms=1_700_000_000_000,
    metadata={"k": "v"},
)


# --- the official library's view of a datum ---------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)


def _expected_datum(record: Any) -> Any:
    """The Avro datum a record stands for, derived from the model alone (not from the codec)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, StrEnum):
            return value.value
        return value

    return plain(dataclasses.asdict(record))


def _from_official(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // MS
    if isinstance(value, list):
        return [_from_official(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_official(v) for k, v in value.items()}
    return value


def _to_official(schema: avro.schema.Schema, value: Any) -> Any:
    """``value`` as the official writer wants it: datetimes where the schema says timestamp."""
    if isinstance(schema, avro.schema.RecordSchema):
        return {f.name: _to_official(f.type, value[f.name]) for f in schema.fields}
    if isinstance(schema, avro.schema.ArraySchema):
        return [_to_official(schema.items, v) for v in value]
    if isinstance(schema, avro.schema.MapSchema):
        return {k: _to_official(schema.values, v) for k, v in value.items()}
    if isinstance(schema, avro.schema.UnionSchema):
        if value is None:
            return None
        (branch,) = [s for s in schema.schemas if s.type != "null"]
        return _to_official(branch, value)
    if isinstance(schema, avro.schema.TimestampMillisSchema):
        return EPOCH + value * MS
    return value


# --- the schemas -----------------------------------------------------------------------------


def test_every_schema_file_is_one_named_type_in_the_parse_order() -> None:
    files = sorted(p.name for p in codec.schema_dir().glob("*.avsc"))
    assert files == sorted(f"ratifier.{n}.avsc" for n in PARSE_ORDER)
    for name in PARSE_ORDER:
        definition = _avsc(name)
        assert (definition["namespace"], definition["name"]) == ("ratifier", name)


@pytest.mark.parametrize("kind", codec.RECORD_TYPES + NESTED, ids=lambda k: k.__name__)
def test_record_fields_mirror_the_dataclass(kind: type) -> None:
    definition = _avsc(kind.__name__)
    assert definition["type"] == "record"
    assert definition["doc"]
    assert [f["name"] for f in definition["fields"]] == [f.name for f in dataclasses.fields(kind)]
    for f in definition["fields"]:
        assert f.get("doc"), f"{kind.__name__}.{f['name']} has no doc"
        ftype = f["type"]
        if isinstance(ftype, list):  # optional: null first, default null
            assert ftype[0] == "null"
            assert f["default"] is None
        is_timestamp = f["name"].endswith("_at_ms")
        logical = ftype.get("logicalType") if isinstance(ftype, dict) else None
        assert (logical == "timestamp-millis") == is_timestamp, f["name"]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_enum_symbols_are_the_model_values(enum: type[StrEnum]) -> None:
    definition = _avsc(enum.__name__)
    assert definition["type"] == "enum"
    assert definition["doc"]
    # Same set; the order in the .avsc is the wire contract (symbols travel as indexes).
    assert sorted(definition["symbols"]) == sorted(m.value for m in enum)


@by_kind
def test_fingerprint_and_canonical_form_match_the_official_library(kind: type) -> None:
    official = OFFICIAL_PLAIN[kind.__name__]
    assert codec.canonical_form(kind) == official.canonical_form
    assert codec.fingerprint(kind) == official.fingerprint("CRC-64-AVRO")
    assert codec.fingerprint(kind) == _rabin64(codec.canonical_form(kind).encode())
    assert codec.canonical_form(kind).startswith(f'{{"name":"ratifier.{kind.__name__}","type"')


@by_kind
def test_official_python_canonical_form_differs_only_in_logical_types(kind: type) -> None:
    # Documented in docs/wire-format.md: Python producers using the avro package must not take
    # fingerprint() of the schemas with logical types. If avro fixes this, both sides are equal.
    official = OFFICIAL[kind.__name__].canonical_form
    assert official.replace('{"type":"long"}', '"long"') == codec.canonical_form(kind)


@by_kind
def test_fastavro_load_schema_finds_the_files_by_full_name(kind: type) -> None:
    # The <full name>.avsc convention lets stock fastavro resolve references across files.
    loaded = load_schema(str(codec.schema_dir() / f"ratifier.{kind.__name__}.avsc"))
    assert to_parsing_canonical_form(loaded) == codec.canonical_form(kind)


@by_kind
def test_schema_is_the_published_contract(kind: type) -> None:
    parsed = codec.schema(kind)
    assert parsed["name"] == f"ratifier.{kind.__name__}"
    # The contract keeps its logical types; only the codec's private copy drops them.
    assert "timestamp-millis" in json.dumps(parsed, default=str)


def test_fingerprints_are_distinct() -> None:
    assert len({codec.fingerprint(k) for k in codec.RECORD_TYPES}) == len(codec.RECORD_TYPES)


def test_record_union_is_the_codecs_record_types() -> None:
    assert set(codec.RECORD_TYPES) == set(get_args(models.Record))


# --- round trips -----------------------------------------------------------------------------


@by_kind
@slow
@given(data=st.data())
def test_round_trip(kind: type, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[kind])
    encoded = codec.encode(record)
    assert encoded[:2] == codec.MARKER
    assert encoded[2:10] == codec.fingerprint(kind)
    assert codec.decode(encoded) == record
    assert codec.decode_as(encoded, kind) == record


def test_decoded_record_types_are_exact() -> None:
    decoded = codec.decode_as(codec.encode(_verdict()), Verdict)
    assert type(decoded.vote) is Vote
    assert type(decoded.severity) is Severity
    assert type(decoded.reasons) is tuple
    assert type(decoded.produced_at_ms) is int  # not a datetime
    assert type(decoded.reasons[0].span) is Span


def test_timestamps_take_the_whole_long_range() -> None:
    for ms in (-(2**63), -1, 0, 2**63 - 1):
        verdict = _verdict(produced_at_ms=ms, latency_ms=ms)
        assert codec.decode(codec.encode(verdict)) == verdict


def test_empty_collections_and_defaults_round_trip() -> None:
    candidate = Candidate("", 1, "", "", "", "", "", "", 0)
    assert codec.decode(codec.encode(candidate)) == candidate
    verdict = _verdict(severity=None, reasons=())
    assert codec.decode(codec.encode(verdict)) == verdict


def test_any_mapping_is_accepted_as_metadata() -> None:
    from types import MappingProxyType

    candidate = Candidate(
        "c", 1, "x", "p", "k", "q", "a", "g", 0, metadata=MappingProxyType({"a": "b"})
    )
    assert codec.decode_as(codec.encode(candidate), Candidate).metadata == {"a": "b"}


# --- conformance with the official avro package ------------------------------------------------


@by_kind
@slow
@given(data=st.data())
def test_official_reader_reads_what_the_codec_writes(kind: type, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[kind])
    encoded = codec.encode(record)
    schema = OFFICIAL[kind.__name__]
    assert encoded[2:10] == OFFICIAL_PLAIN[kind.__name__].fingerprint("CRC-64-AVRO")
    body = BytesIO(encoded[codec.HEADER_SIZE :])
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(body))
    assert body.read() == b""  # the official reader consumed the body exactly
    assert _from_official(datum) == _expected_datum(record)


@by_kind
@slow
@given(data=st.data())
def test_codec_reads_what_the_official_writer_writes(kind: type, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[kind])
    schema = OFFICIAL[kind.__name__]
    out = BytesIO()
    datum = _to_official(schema, _expected_datum(record))
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
    header = b"\xc3\x01" + OFFICIAL_PLAIN[kind.__name__].fingerprint("CRC-64-AVRO")
    message = header + out.getvalue()
    assert codec.decode(message) == record
    assert codec.encode(record) == message  # Avro binary is canonical: same bytes both ways


# --- errors ----------------------------------------------------------------------------------


def _message_of(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc_info.value)


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (b"", WireFormatError, "empty"),
        (b"\xc3\x01\x00", WireFormatError, "too short: 3 bytes"),
        (b"\xc3", WireFormatError, "too short: 1 bytes"),
        (b'{"case_id": "c-1", "x": 1}', WireFormatError, "looks like JSON"),
        (b"\x00\x00\x00\x00\x07" + b"\x02" * 20, WireFormatError, "Confluent"),
        (b"\xc3\x02" + b"\x00" * 20, WireFormatError, "expected marker c3 01, got c3 02"),
        (b"\xc3\x01" + bytes(range(8)) + b"\x00", UnknownSchema, "0001020304050607"),
    ],
    ids=["empty", "short", "one-byte", "json", "confluent", "marker", "fingerprint"],
)
def test_bad_header(data: bytes, kind: type[Exception], words: str) -> None:
    with pytest.raises(WireFormatError) as exc_info:
        codec.decode(data)
    assert type(exc_info.value) is kind
    assert words in _message_of(exc_info)
    with pytest.raises(kind):
        codec.decode_as(data, Candidate)


def test_unknown_fingerprint_message_names_the_known_schemas() -> None:
    with pytest.raises(UnknownSchema) as exc_info:
        codec.decode(b"\xc3\x01" + b"\xff" * 8 + b"\x00")
    message = _message_of(exc_info)
    assert "ffffffffffffffff" in message
    assert f"Candidate={codec.fingerprint(Candidate).hex()}" in message


@by_kind
def test_every_truncation_is_a_wire_format_error(kind: type) -> None:
    encoded = codec.encode(_sample(kind))
    for size in range(codec.HEADER_SIZE, len(encoded)):
        with pytest.raises(WireFormatError, match=f"^truncated {kind.__name__}") as exc_info:
            codec.decode(encoded[:size])
        assert type(exc_info.value) is WireFormatError


def test_truncation_message() -> None:
    encoded = codec.encode(_verdict())
    with pytest.raises(WireFormatError, match=r"truncated Verdict: the body \(93 bytes\) ends"):
        codec.decode(encoded[:-3])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(WireFormatError, match="2 unexpected bytes after the end of the Verdict"):
        codec.decode(codec.encode(_verdict()) + b"\x00\x00")


def test_invalid_utf8_is_a_wire_format_error() -> None:
    encoded = bytearray(codec.encode(_verdict()))
    encoded[11] = 0xFF  # first character of case_id ("c")
    with pytest.raises(WireFormatError, match=r"garbled Verdict body.*UnicodeDecodeError"):
        codec.decode(bytes(encoded))


def test_enum_index_out_of_range_is_a_wire_format_error() -> None:
    header = b"\xc3\x01" + codec.fingerprint(DeadLetter)
    # original=b"", topic="", partition=0, offset=0, reason=index 99 (zigzag 198 = c6 01)
    body = b"\x00\x00\x00\x00\xc6\x01\x00\x00"
    with pytest.raises(WireFormatError, match="garbled DeadLetter"):
        codec.decode(header + body)


@settings(max_examples=500)
@given(kind=st.sampled_from(codec.RECORD_TYPES), body=st.binary(max_size=80))
def test_garbage_after_a_known_header_never_escapes_as_another_error(
    kind: type, body: bytes
) -> None:
    message = b"\xc3\x01" + codec.fingerprint(kind) + body
    try:
        record = codec.decode(message)
    except WireFormatError as exc:
        error = str(exc)
        assert re.match(r"truncated |garbled |\d+ unexpected bytes after the end", error), error
    else:  # some garbage happens to be a valid record
        assert type(record) is kind


@given(data=st.binary(max_size=40))
def test_random_bytes_never_escape_as_another_error(data: bytes) -> None:
    with pytest.raises(WireFormatError):
        codec.decode(data)


def test_decode_as_names_both_types() -> None:
    encoded = codec.encode(Candidate("c", 1, "x", "p", "k", "q", "a", "g", 0))
    with pytest.raises(WireFormatError, match=r"^expected Verdict, got Candidate$"):
        codec.decode_as(encoded, Verdict)


def test_tombstones_and_other_byte_types() -> None:
    with pytest.raises(WireFormatError, match="tombstone"):
        codec.decode(None)  # type: ignore[arg-type]
    with pytest.raises(WireFormatError, match="expected bytes, got str"):
        codec.decode("c3 01")  # type: ignore[arg-type]
    encoded = codec.encode(_verdict())
    assert codec.decode(bytearray(encoded)) == _verdict()  # type: ignore[arg-type]
    assert codec.decode_as(memoryview(encoded), Verdict) == _verdict()  # type: ignore[arg-type]


def test_non_records_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="Span is not a Ratifier record type"):
        codec.encode(Span(1, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Reason is not a Ratifier record type"):
        codec.fingerprint(Reason)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Span is not a Ratifier record type"):
        codec.decode_as(codec.encode(_verdict()), Span)  # type: ignore[type-var]


# --- the documentation -----------------------------------------------------------------------


def test_docs_list_the_current_fingerprints() -> None:
    text = DOC.read_text(encoding="utf-8")
    for kind in codec.RECORD_TYPES:
        assert f"| {kind.__name__} | `{codec.fingerprint(kind).hex()}` |" in text, kind.__name__


def test_docs_hex_dump_is_what_the_codec_writes() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- example-candidate -->\n```text\n(.*?)```", text, re.S)
    assert block is not None
    # "0000  c3 01 8b ...  |ascii|": keep the hex columns only.
    dumped = bytes.fromhex(
        "".join(line[6:].split("  |")[0] for line in block.group(1).splitlines())
    )
    assert dumped == codec.encode(DOC_CANDIDATE)


# --- schema evolution: older writers, enum defaults --------------------------------------------

HISTORY = codec.history_dir()
VERSIONS = sorted((p.name for p in HISTORY.iterdir() if p.is_dir()), key=lambda v: int(v[1:]))
# Released fingerprints never change: editing a file in schemas/history/ would orphan every
# record written with it. A new release adds a folder (and a row here); it changes none.
RELEASED = {
    "v1": {
        Candidate: "8be7a3f5c84901da",
        Verdict: "56566470984b4412",
        PassDecision: "d995af8d590b7f0e",
        RetryRequest: "2b5a2f922d3bf5c9",
        EscalationPacket: "b2242b56491b42c7",
        DeadLetter: "1cde92dd25b77c59",
    },
    "v2": {
        Candidate: "8be7a3f5c84901da",
        Verdict: "56566470984b4412",
        PassDecision: "d995af8d590b7f0e",
        RetryRequest: "2b5a2f922d3bf5c9",
        EscalationPacket: "367e828482b06833",
        DeadLetter: "56513212d96581ad",
    },
    "v3": {
        Candidate: "8be7a3f5c84901da",
        Verdict: "e3a45bb42b102ada",
        PassDecision: "28b0e1d6785cd605",
        RetryRequest: "67dff1adafb53062",
        EscalationPacket: "fb4f5dc7505d7506",
        DeadLetter: "f96c81204e8e8098",
        Outcome: "5c99390ef307b8a1",
        Alert: "5ac4c7167a46643d",
    },
}
# What a reader of this version reads for a symbol it does not know (a newer writer's).
ENUM_DEFAULTS = {
    Vote: Vote.ABSTAIN,
    Severity: Severity.MAJOR,
    FailureReason: FailureReason.THRESHOLD_UNREACHABLE,
    OutcomeClass: OutcomeClass.UNRESOLVED,
    EscalationReason: EscalationReason.MAX_ATTEMPTS_EXHAUSTED,
    DeadLetterReason: DeadLetterReason.PROCESSING_ERROR,
}
OLD_OFFICIAL = {v: _official_schemas(directory=HISTORY / v) for v in VERSIONS}
OLD_OFFICIAL_PLAIN = {v: _official_schemas(strip=True, directory=HISTORY / v) for v in VERSIONS}
by_version_and_kind = pytest.mark.parametrize(
    ("version", "kind"),
    [(v, k) for v in VERSIONS for k in codec.RECORD_TYPES if k in RELEASED[v]],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)


def _old_symbols(version: str) -> set[tuple[str, str]]:
    """Every (enum, symbol) ``version`` knows; a record using another one it could not have held.
    By enum: WINDOW_TIMEOUT was a FailureReason long before it was an EscalationReason."""
    return {(e.__name__, s) for e in ENUMS for s in _avsc(e.__name__, HISTORY / version)["symbols"]}


def _enum_values(record: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, StrEnum):
            found.add((type(value).__name__, value.value))
        elif dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)

    walk(record)
    return found


def test_history_holds_the_released_versions_unchanged() -> None:
    assert sorted(RELEASED) == VERSIONS
    for version, fingerprints in RELEASED.items():
        files = sorted(p.name for p in (HISTORY / version).glob("*.avsc"))
        assert files == sorted(f"ratifier.{n}.avsc" for n in _names_in(HISTORY / version)), version
        for kind, expected in fingerprints.items():
            official = OLD_OFFICIAL_PLAIN[version][kind.__name__]
            assert official.fingerprint("CRC-64-AVRO").hex() == expected, (version, kind)


@by_version_and_kind
def test_every_released_fingerprint_is_readable(version: str, kind: type) -> None:
    fingerprint = bytes.fromhex(RELEASED[version][kind])
    readable = codec.readable_fingerprints(kind)
    assert fingerprint in readable
    assert next(iter(readable)) == codec.fingerprint(kind)  # the current one first
    # A record unchanged since an earlier version is read by that version's (the same) schema.
    same = [v for v in VERSIONS if RELEASED[v].get(kind) == RELEASED[version][kind]]
    assert readable[fingerprint] in ("current", *same)


def test_the_changed_records_have_new_fingerprints_and_encode_only_those() -> None:
    # v2 appended enum symbols (EscalationPacket, DeadLetter). Since v2: PassDecision.accept_share,
    # FailureReason.RETRY_NOT_DIFFERENT (RetryRequest), EscalationReason symbols and
    # AttemptRecord.late_verdicts (EscalationPacket); and whatever else the table below lists.
    changed = {k for k, fp in RELEASED["v1"].items() if codec.fingerprint(k).hex() != fp}
    assert {EscalationPacket, DeadLetter, PassDecision, RetryRequest} <= changed
    changed = {k for k, fp in RELEASED["v2"].items() if codec.fingerprint(k).hex() != fp}
    assert {EscalationPacket, PassDecision, RetryRequest} <= changed
    for kind in codec.RECORD_TYPES:
        assert codec.encode(_sample(kind))[2:10] == codec.fingerprint(kind)


@by_version_and_kind
@slow
@given(data=st.data())
def test_a_record_written_with_an_older_schema_decodes(
    version: str, kind: type, data: st.DataObject
) -> None:
    # The official library writes with the released files, as a producer not yet upgraded does.
    known = _old_symbols(version)
    record = data.draw(STRATEGIES[kind].filter(lambda r: _enum_values(r) <= known))
    if isinstance(record, DeadLetter):  # closed_by came after v2: old writers leave it out
        record = dataclasses.replace(record, closed_by=None)
    record = _without_rounds(record)  # debate rounds came after v3
    schema = OLD_OFFICIAL[version][kind.__name__]
    out = BytesIO()
    avro.io.DatumWriter(schema).write(
        _to_official(schema, _expected_datum(record)), avro.io.BinaryEncoder(out)
    )
    header = codec.MARKER + bytes.fromhex(RELEASED[version][kind])
    message = header + out.getvalue()
    assert codec.decode(message) == record
    assert codec.decode_as(message, kind) == record
    assert codec.encode(record)[2:10] == codec.fingerprint(kind)  # re-encoded: current schema


def _without_rounds(value: Any) -> Any:
    """``value`` as a writer from before debate rounds made it: no Verdict.round, no rounds."""
    if isinstance(value, tuple):
        return tuple(_without_rounds(item) for item in value)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes = {f.name: _without_rounds(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Verdict):
        changes["round"] = None
    if "rounds" in changes:
        changes["rounds"] = ()
    return dataclasses.replace(value, **changes)


def test_old_enum_symbols_resolve_by_name() -> None:
    # v1 DeadLetter with reason index 7: PROCESSING_ERROR in v1 and now (TOO_LARGE is index 8).
    header = codec.MARKER + bytes.fromhex(RELEASED["v1"][DeadLetter])
    body = b"\x00\x00\x00\x00\x0e\x00\x00"  # original=b"", "", 0, 0, reason=7, detail="", 0
    assert codec.decode_as(header + body, DeadLetter).reason is DeadLetterReason.PROCESSING_ERROR
    with pytest.raises(WireFormatError, match="garbled DeadLetter"):
        codec.decode(header + b"\x00\x00\x00\x00\x10\x00\x00")  # index 8: v1 had no TOO_LARGE


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_an_unknown_symbol_reads_as_the_enums_default(enum: type[StrEnum]) -> None:
    # A newer writer's symbol, read by this version's schema (Avro resolution, as Java's
    # BinaryMessageDecoder with the newer schema added, or fastavro, do it).
    definition = _avsc(enum.__name__)
    assert definition["default"] == ENUM_DEFAULTS[enum]
    assert definition["default"] in definition["symbols"]
    newer = {**definition, "symbols": [*definition["symbols"], "FROM_THE_FUTURE"]}
    newer.pop("default")
    writer, reader = parse_schema(newer, named_schemas={}), parse_schema(definition, {})
    out = BytesIO()
    schemaless_writer(out, writer, "FROM_THE_FUTURE")
    out.seek(0)
    assert schemaless_reader(out, writer, reader) == ENUM_DEFAULTS[enum]


def _parsed(schema: Any) -> Any:
    return parse_schema(schema, named_schemas={})


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "ratifier.T", "fields": list(fields)}


@pytest.mark.parametrize(
    ("writer", "reader", "problem"),
    [
        pytest.param(_record({"name": "a", "type": "int"}), _record(), None, id="field-dropped"),
        pytest.param(
            _record(),
            _record({"name": "a", "type": "int", "default": 0}),
            None,
            id="field-added-with-default",
        ),
        pytest.param(
            _record(),
            _record({"name": "a", "type": "int"}),
            "ratifier.T.a: added without a default",
            id="field-added-without-default",
        ),
        pytest.param(
            _record({"name": "a", "type": "int"}),
            _record({"name": "a", "type": "long"}),
            None,
            id="int-promoted-to-long",
        ),
        pytest.param(
            _record({"name": "a", "type": "long"}),
            _record({"name": "a", "type": "string"}),
            "ratifier.T.a: type 'long' became 'string'",
            id="type-changed",
        ),
        pytest.param(
            {"type": "enum", "name": "ratifier.E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "ratifier.E", "symbols": ["A"]},
            "ratifier.T: enum symbols ['B'] were removed and the enum has no default",
            id="symbol-removed",
        ),
        pytest.param(
            {"type": "enum", "name": "ratifier.E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "ratifier.E", "symbols": ["A"], "default": "A"},
            None,
            id="symbol-removed-into-default",
        ),
        pytest.param(
            {"type": "array", "items": ["null", "string"]},
            {"type": "array", "items": ["null", "string", "int"]},
            None,
            id="union-branch-added",
        ),
        pytest.param(
            ["null", "string"],
            ["null", "int"],
            "ratifier.T: union branch 'string' has no match",
            id="union-branch-lost",
        ),
    ],
)
def test_resolution_problems(writer: Any, reader: Any, problem: str | None) -> None:
    where = "ratifier.T"
    assert codec._resolution_problem(_parsed(writer), _parsed(reader), where) == problem


def test_a_history_the_current_schemas_cannot_read_fails_at_load(tmp_path: Path) -> None:
    broken = tmp_path / "v9"
    broken.mkdir()
    for name in PARSE_ORDER:
        definition = _avsc(name)
        if name == "Verdict":  # as if latency_ms had been released as a string
            for f in definition["fields"]:
                if f["name"] == "latency_ms":
                    f["type"] = "string"
        (broken / f"ratifier.{name}.avsc").write_text(json.dumps(definition), encoding="utf-8")
    with pytest.raises(ValueError, match=r"schema history v9: Verdict\.latency_ms: type 'string'"):
        list(codec._build_older_codecs(tmp_path, codec._BY_TYPE))


def test_docs_list_the_older_fingerprints_still_read() -> None:
    text = DOC.read_text(encoding="utf-8")
    for version, fingerprints in RELEASED.items():
        for kind, fingerprint in fingerprints.items():
            if codec.fingerprint(kind).hex() != fingerprint:
                assert f"| {kind.__name__} | {version} | `{fingerprint}` |" in text


def test_a_missing_history_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"schema history .* is missing"):
        list(codec._build_older_codecs(tmp_path / "history", codec._BY_TYPE))


# --- the generated fast path (schemas/binding.py) -------------------------------------------------


def _fastavro_encode(record: Any) -> bytes:
    """``record`` written the general way: the binding's datum through fastavro."""
    compiled = codec._BY_TYPE[type(record)]
    out = BytesIO()
    out.write(compiled.header)
    schemaless_writer(out, compiled.wire, compiled.to_avro(record))
    return out.getvalue()


def _fastavro_decode(data: bytes, kind: type) -> Any:
    compiled = codec._BY_TYPE[kind]
    body = BytesIO(data[codec.HEADER_SIZE :])
    return compiled.from_avro(schemaless_reader(body, compiled.wire, None))


def test_every_current_record_type_is_compiled() -> None:
    for kind in codec.RECORD_TYPES:
        compiled = codec._BY_TYPE[kind]
        assert compiled.read_fast is not None, kind
        assert compiled.write_fast is not None, kind


def test_older_schema_versions_are_never_compiled() -> None:
    for _, older in codec._OLDER:
        assert older.read_fast is None
        assert older.write_fast is None


@by_kind
@slow
@given(data=st.data())
def test_compiled_path_writes_and_reads_what_fastavro_does(kind: type, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[kind])
    compiled = codec._BY_TYPE[kind]
    encoded = codec._fast_encode(compiled, record)
    assert encoded is not None
    assert encoded == _fastavro_encode(record)
    decoded = codec._fast_decode(compiled, encoded)
    assert decoded == _fastavro_decode(encoded, kind) == record
    assert type(decoded) is kind


def test_compiled_reader_gives_the_models_types() -> None:
    encoded = codec.encode(_verdict())
    decoded = codec._fast_decode(codec._BY_TYPE[Verdict], encoded)
    assert type(decoded) is Verdict
    assert type(decoded.vote) is Vote
    assert type(decoded.severity) is Severity
    assert type(decoded.reasons) is tuple
    assert type(decoded.reasons[0].span) is Span


def test_unusual_but_valid_encodings_are_left_to_fastavro() -> None:
    # previous_candidate_ids as two blocks, the second with its byte size (count -1, size 2):
    # legal Avro that fastavro reads and the compiled reader declines.
    candidate = Candidate("c", 1, "x", "p", "k", "q", "a", "g", 0, ("ab", "c"))
    standard = codec.encode(candidate)
    one_block = b"\x04\x04ab\x02c\x00"  # count 2, "ab", "c", end
    two_blocks = b"\x02\x04ab\x01\x04\x02c\x00"  # count 1, "ab"; count -1 of 2 bytes, "c"; end
    assert one_block in standard
    unusual = standard.replace(one_block, two_blocks)
    assert codec._fast_decode(codec._BY_TYPE[Candidate], unusual) is None
    assert codec.decode(unusual) == candidate
    # An over-long varint (attempt 1 as two bytes) is read to the same value by both paths.
    overlong = bytearray(codec.encode(_verdict(case_id="c", attempt=1)))
    position = codec.HEADER_SIZE + 1 + len(b"c")  # after case_id "c"
    assert overlong[position] == 0x02
    overlong[position : position + 1] = b"\x82\x00"
    assert codec.decode(bytes(overlong)) == _fastavro_decode(bytes(overlong), Verdict)


def _outcome(encode: Any, record: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(record)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize(
    "changes",
    [{"latency_ms": 1.5}, {"latency_ms": "3"}, {"attempt": 2**40}, {"vote": "MAYBE"}],
    ids=["float-long", "str-long", "int-overflow", "unknown-symbol"],
)
def test_values_the_compiled_writer_refuses_get_fastavros_answer(changes: dict[str, Any]) -> None:
    bad = dataclasses.replace(_verdict(), **changes)
    assert codec._fast_encode(codec._BY_TYPE[Verdict], bad) is None
    assert _outcome(codec.encode, bad) == _outcome(_fastavro_encode, bad)
