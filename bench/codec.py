"""``bench/run.py codec``: the wire codec's encode and decode speed, per operation, offline.

The records are the throughput benchmark's (a candidate with ~300 characters of content, four
accepting verdicts and a rejecting one with two reasons, the pass decision holding them all),
built here from the models alone so that the same code also runs against an earlier commit:

    .venv/bin/python bench/run.py codec                      # this checkout
    .venv/bin/python bench/run.py codec --baseline 5ddc36b   # and that commit, same run

With ``--baseline`` both sides run in alternate child processes, ``--rounds`` times each
(bench/baseline.py), and the table gives each figure's median and spread over the rounds and the
speed-up (baseline / now). Figures are CPU µs per operation (the median of five timings of a
few thousand calls each). ``fastavro`` rows are the general path (fastavro + the model/datum
conversion) that both versions keep for unusual input and older schema versions: the same work
on both sides, so it shows how noisy the run was. ``spliced`` rows copy the inputs' bodies into
the decision (codec ``bodies``; only commits that have it).
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from io import BytesIO
from typing import Any

import orjson
from fastavro import schemaless_reader, schemaless_writer

from ratifier.core.models import (
    Candidate,
    OutcomeClass,
    PassDecision,
    Reason,
    Span,
    Verdict,
    Vote,
)
from ratifier.schemas import codec

CONTENT = (
    "Canberra is the capital of Australia. It was chosen in 1908 as a compromise between the "
    "rivals Sydney and Melbourne, and purpose-built: the site lies about 280 km south-west of "
    "Sydney, and Parliament moved there from Melbourne in 1927. The city plan is the work of "
    "Walter Burley Griffin and Marion Mahony Griffin, who won an international competition."
)
T0 = 1_800_000_000_000


def records() -> tuple[Candidate, tuple[Verdict, ...], PassDecision]:
    candidate = Candidate(
        "c00000001", 1, "c00000001-1", "default", "general",
        "What is the capital of Australia, and why was it chosen?", CONTENT, "bench", T0,
    )  # fmt: skip
    verdicts = []
    for validator_id in ("sim-a", "sim-b", "sim-c", "sim-d", "redteam"):
        rejects = validator_id == "sim-d"
        reasons = (
            Reason("unsupported-claim", "the 280 km figure is not in the sources", Span(240, 270)),
            Reason("style", "answer is longer than the question needs"),
        )
        vote = Vote.REJECT if rejects else Vote.ACCEPT
        verdict = Verdict(
            candidate.case_id, 1, candidate.candidate_id, validator_id, "1.0", vote, 0.9, None,
            reasons if rejects else (), 12, T0 + 5,
        )  # fmt: skip
        verdicts.append(verdict)
    decision = PassDecision(
        "5b8e0c1e-0b7a-5f43-9a51-2d7a1c1f0e11", candidate.case_id, 1, candidate, 0.97,
        tuple(verdicts), "default", "1", OutcomeClass.CONFIRMED, T0 + 9,
    )  # fmt: skip
    return candidate, tuple(verdicts), decision


def _per_call_us(operation: Callable[[], object], number: int) -> float:
    timings = timeit.repeat(operation, number=number, repeat=5, timer=time.process_time)
    return statistics.median(timings) / number * 1e6


def _fastavro_encode(record: Any) -> bytes:
    compiled = codec._BY_TYPE[type(record)]
    out = BytesIO()
    schemaless_writer(out, compiled.wire, compiled.to_avro(record))
    return out.getvalue()


def _fastavro_decode(data: bytes, kind: type) -> Any:
    compiled = codec._BY_TYPE[kind]
    body = BytesIO(data)
    body.seek(codec.HEADER_SIZE)
    return compiled.from_avro(schemaless_reader(body, compiled.wire, None))


def measure() -> dict[str, float]:
    candidate, verdicts, decision = records()
    accept, reject = codec.encode(verdicts[0]), codec.encode(verdicts[3])
    encoded_candidate, encoded_decision = codec.encode(candidate), codec.encode(decision)
    figures = {
        "decode Verdict (accept)": _per_call_us(lambda: codec.decode_as(accept, Verdict), 20_000),
        "decode Verdict (reject, 2 reasons)": _per_call_us(
            lambda: codec.decode_as(reject, Verdict), 20_000
        ),
        "decode Candidate": _per_call_us(
            lambda: codec.decode_as(encoded_candidate, Candidate), 20_000
        ),
        "decode PassDecision": _per_call_us(lambda: codec.decode(encoded_decision), 4_000),
        "encode Verdict (accept)": _per_call_us(lambda: codec.encode(verdicts[0]), 20_000),
        "encode Candidate": _per_call_us(lambda: codec.encode(candidate), 20_000),
        "encode PassDecision (6 records)": _per_call_us(lambda: codec.encode(decision), 4_000),
    }
    spliced = _spliced(encoded_candidate, [codec.encode(v) for v in verdicts], decision)
    if spliced is not None:
        figures["encode PassDecision, spliced"] = _per_call_us(spliced, 4_000)
    figures["fastavro: decode Verdict (accept)"] = _per_call_us(
        lambda: _fastavro_decode(accept, Verdict), 5_000
    )
    figures["fastavro: encode PassDecision"] = _per_call_us(
        lambda: _fastavro_encode(decision), 1_000
    )
    return figures


def _spliced(
    encoded_candidate: bytes, encoded_verdicts: list[bytes], decision: PassDecision
) -> Callable[[], object] | None:
    """Encoding ``decision`` rebuilt from decoded inputs, with their bodies; None if the codec
    has no ``bodies`` (an earlier commit)."""
    bodies: dict[int, Any] = {}
    try:
        candidate = codec.decode_as(encoded_candidate, Candidate, bodies)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return None
    votes = tuple(codec.decode_as(v, Verdict, bodies) for v in encoded_verdicts)  # type: ignore[call-arg,unused-ignore]
    rebuilt = PassDecision(
        decision.decision_id, decision.case_id, 1, candidate, decision.confidence, votes,
        decision.policy, decision.policy_version, decision.outcome, decision.decided_at_ms,
    )  # fmt: skip
    if codec.encode(rebuilt, bodies) != codec.encode(rebuilt):  # type: ignore[call-arg,unused-ignore]
        raise AssertionError("a spliced decision differs from the encoded one")
    return lambda: codec.encode(rebuilt, bodies)  # type: ignore[call-arg,unused-ignore]


def main(rounds: int, baseline: str | None, child: bool) -> int:
    if child:  # one measurement, as JSON, for the parent below
        print(orjson.dumps(measure()).decode())
        return 0
    from bench import baseline as baselines

    if baseline is None:
        figures = baselines.repeated(["codec", "--child"], rounds)
        print(f"codec, µs per operation, median (min-max) of {rounds} rounds")
        print("\n".join(baselines.table(figures, {}, "-", "µs")))
        return 0
    with baselines.exported(baseline) as path:
        new_figures, old_figures = baselines.interleaved(["codec", "--child"], path, rounds)
    print(f"codec, µs per operation, median (min-max) of {rounds} interleaved rounds")
    print("\n".join(baselines.table(new_figures, old_figures, baseline, "µs")))
    return 0
