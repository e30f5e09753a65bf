"""Through the real broker: signed verdicts and decisions (docs/signing.md).

A tally under a ``signatures = "required"`` policy reads a normal load of honestly signed
verdicts with more than a thousand forged ones mixed in, every kind of forgery, some sent
before the honest vote of the validator they impersonate (where, counted, they would become its
vote and fail the case). One validator rotates its key while the tally runs. Every forged record
must be dead-lettered exactly once with its own reason, none counted, and every honest case
decided as it would be without the forgeries; the tally's decisions are signed and the client
verifies them. Candidates are never signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import RecordMetadata

from ratifier.core.config import Settings
from ratifier.core.errors import WaitTimeout
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    Judgement,
    PassDecision,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.core.policy import load_policies
from ratifier.core.polling import wait_until
from ratifier.core.signing import SignatureCheck, Signer, check_signature, encode_public_key
from ratifier.core.topics import TopicNames
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.keys import write_private_key
from ratifier.io.testing import read_records, verdict_on
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec
from ratifier.streams.engines.transactional import TransactionalTally
from ratifier.validators.runtime import ValidatorWorker

pytestmark = pytest.mark.integration

VOTERS = ("v1", "v2", "v3")
CASES_PER_PHASE = 200
FORGED_PER_CASE = 3  # 2 phases x 200 cases x 3 = 1 200 forged verdicts
ROTATION_S = 20.0  # v1's old key is retired this long after the test starts


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclasses.dataclass
class Keys:
    v1_old: Signer
    v1_new: Signer
    v2: Signer
    v3: Signer
    v3_retired: Signer  # listed, but its window ended an hour ago
    attacker: Signer  # listed nowhere
    cutover_ms: int

    def for_voter(self, voter: str, phase: int) -> Signer:
        if voter == "v1":
            return self.v1_old if phase == 1 else self.v1_new
        return self.v2 if voter == "v2" else self.v3


def write_signed_policy(folder: Path, keys: Keys) -> None:
    folder.mkdir(parents=True, exist_ok=True)

    def key(signer: Signer, not_before: int | None = None, not_after: int | None = None) -> str:
        lines = ["[[validators.keys]]", f'public_key = "{encode_public_key(signer.public_key)}"']
        if not_before is not None:
            lines.append(f'not_before = "{_iso(not_before)}"')
        if not_after is not None:
            lines.append(f'not_after = "{_iso(not_after)}"')
        return "\n".join(lines)

    hour_ago = now_ms() - 3_600_000
    (folder / "signed.toml").write_text(
        "\n".join(
            [
                'name = "signed"',
                'version = "sig-1"',
                'signatures = "required"',
                "max_attempts = 2",
                "window_seconds = 60",
                "[threshold]",
                "accepts = 3",
                '[[validators]]\nid = "v1"',
                # Rotation: the new key is valid from now on, the old one until the cut-over.
                key(keys.v1_old, not_after=keys.cutover_ms),
                key(keys.v1_new, not_before=hour_ago),
                '[[validators]]\nid = "v2"',
                key(keys.v2),
                '[[validators]]\nid = "v3"',
                key(keys.v3),
                key(keys.v3_retired, not_after=hour_ago),
            ]
        )
        + "\n"
    )


def candidate(i: int) -> Candidate:
    return Candidate(
        case_id=f"s{i:05d}",
        attempt=1,
        candidate_id=f"s{i:05d}-1",
        policy="signed",
        category="general",
        query="q",
        content=f"answer {i}",
        producer="it",
        produced_at_ms=now_ms(),
    )


def forgeries(
    cand: Candidate, honest: dict[str, Verdict], keys: Keys, phase: int, index: int
) -> Iterator[tuple[Verdict, DeadLetterReason]]:
    """Forged verdicts for one case, each with the reason it must be dead-lettered for."""
    kinds = [
        DeadLetterReason.UNSIGNED,
        DeadLetterReason.BAD_SIGNATURE,
        DeadLetterReason.UNKNOWN_KEY,
        DeadLetterReason.KEY_OUT_OF_WINDOW,
        DeadLetterReason.REPLAYED,
    ]
    for j in range(FORGED_PER_CASE):
        kind = kinds[(index * FORGED_PER_CASE + j) % len(kinds)]
        voter = VOTERS[(index + j) % len(VOTERS)]
        reject = verdict_on(cand, voter, Vote.REJECT)  # counted, it would fail the case
        if kind is DeadLetterReason.UNSIGNED:
            forged = reject
        elif kind is DeadLetterReason.BAD_SIGNATURE:  # a genuine vote, altered
            forged = dataclasses.replace(honest[voter], vote=Vote.REJECT)
        elif kind is DeadLetterReason.UNKNOWN_KEY:
            forged = keys.attacker.sign(reject)
        elif kind is DeadLetterReason.KEY_OUT_OF_WINDOW:
            # After the cut-over, v1's old key is retired too; before it, v3's long-retired one.
            if phase == 2 and voter == "v1":
                owner, retired = "v1", keys.v1_old
            else:
                owner, retired = "v3", keys.v3_retired
            forged = retired.sign(dataclasses.replace(reject, validator_id=owner))
        else:  # a genuine vote moved to another candidate, or to the next attempt
            genuine = honest[voter]
            if j % 2:
                forged = dataclasses.replace(genuine, candidate_id=f"{cand.candidate_id}-x")
            else:
                forged = dataclasses.replace(genuine, attempt=2, candidate_id=f"{cand.case_id}-2")
        yield forged, kind


@dataclasses.dataclass
class Sent:
    honest: dict[str, dict[str, Verdict]] = dataclasses.field(default_factory=dict)  # case -> voter
    forged: dict[tuple[int, int], DeadLetterReason] = dataclasses.field(default_factory=dict)


async def produce_phase(
    settings: Settings, keys: Keys, phase: int, cases: range, sent: Sent
) -> None:
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id=f"it-signed-{phase}", linger_ms=5)
    await producer.start()
    forged_futures: list[tuple[asyncio.Future[RecordMetadata], DeadLetterReason]] = []
    try:
        for i in cases:
            cand = candidate(i)
            key = cand.case_id.encode()
            await producer.send(names.candidates, codec.encode(cand), key=key)  # never signed
            honest = {
                voter: keys.for_voter(voter, phase).sign(verdict_on(cand, voter, Vote.ACCEPT))
                for voter in VOTERS
            }
            sent.honest[cand.case_id] = honest
            forged = list(forgeries(cand, honest, keys, phase, i))
            # The first forgery goes before the honest votes: counted, it would be its
            # validator's first (so only) vote for the attempt.
            for record, reason in forged[:1]:
                future = await producer.send(names.verdicts, codec.encode(record), key=key)
                forged_futures.append((future, reason))
            for record in honest.values():
                await producer.send(names.verdicts, codec.encode(record), key=key)
            for record, reason in forged[1:]:
                future = await producer.send(names.verdicts, codec.encode(record), key=key)
                forged_futures.append((future, reason))
        await producer.flush()
        for future, reason in forged_futures:
            meta = await future
            sent.forged[(meta.partition, meta.offset)] = reason
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running_tally(settings: Settings) -> AsyncIterator[TransactionalTally]:
    stop = asyncio.Event()
    async with TransactionalTally(settings, load_policies(settings.policy_dir)) as tally:
        task = asyncio.create_task(tally.run(stop))
        try:
            yield tally
        finally:
            stop.set()
            await task


async def decisions(settings: Settings) -> list[Decision]:
    names = TopicNames.from_settings(settings)
    topics = [names.passed, names.retry, names.escalate]
    out = []
    for record in await read_records(settings, topics, idle_s=0.5):
        decision = codec.decode(record.value or b"")
        assert isinstance(decision, Decision)
        out.append(decision)
    return out


async def dead_letters(settings: Settings) -> list[DeadLetter]:
    names = TopicNames.from_settings(settings)
    records = await read_records(settings, [names.deadletter], idle_s=0.5)
    return [codec.decode_as(r.value or b"", DeadLetter) for r in records]


async def test_forged_verdicts_are_dead_lettered_once_and_never_counted(
    settings: Settings, tmp_path: Path
) -> None:
    started = now_ms()
    keys = Keys(*(Signer.generate() for _ in range(6)), cutover_ms=started + int(ROTATION_S * 1000))
    tally_key = tmp_path / "tally.key"
    tally_signer = Signer(write_private_key(tally_key))
    write_signed_policy(tmp_path / "policies", keys)
    tuned = settings.with_overrides(
        policy_dir=tmp_path / "policies", tally_signing_key=tally_key, tick_interval_s=0.2
    )
    names = TopicNames.from_settings(tuned)
    sent = Sent()
    phase_1 = range(CASES_PER_PHASE)
    phase_2 = range(CASES_PER_PHASE, 2 * CASES_PER_PHASE)

    async def decided(count: int) -> bool:
        return len(await decisions(tuned)) >= count

    async with running_tally(tuned):
        # Phase 1: v1 signs with its old key, which is still valid.
        await produce_phase(tuned, keys, 1, phase_1, sent)
        await wait_until(lambda: decided(len(phase_1)), 90, "phase 1's decisions", poll_s=1)
        # The rotation, while the tally runs: the old key's window closes.
        await asyncio.sleep(max(0.0, (keys.cutover_ms - now_ms()) / 1000 + 0.5))
        # Phase 2: v1 signs with its new key; its old key's signatures are now out of window.
        await produce_phase(tuned, keys, 2, phase_2, sent)
        total = len(phase_1) + len(phase_2)
        await wait_until(lambda: decided(total), 90, "phase 2's decisions", poll_s=1)

        async def all_dead_lettered() -> bool:
            return len(await dead_letters(tuned)) >= len(sent.forged)

        # A shortfall is reported by the assertions below, which say what is missing.
        with contextlib.suppress(WaitTimeout):
            await wait_until(all_dead_lettered, 60, "every forged verdict's dead letter", poll_s=1)

    assert len(sent.forged) == 2 * CASES_PER_PHASE * FORGED_PER_CASE >= 1000
    # Every forged record dead-lettered exactly once, for its own reason; nothing else was.
    letters = await dead_letters(tuned)
    origins = Counter((letter.partition, letter.offset) for letter in letters)
    assert all(letter.source_topic == names.verdicts for letter in letters)
    assert max(origins.values()) == 1
    missing = Counter(reason.value for at, reason in sent.forged.items() if at not in origins)
    assert not missing, f"forged verdicts not dead-lettered, by reason: {missing}"
    assert set(origins) == set(sent.forged)
    for letter in letters:
        assert letter.reason is sent.forged[(letter.partition, letter.offset)], letter.detail
    # After the cut-over v1's old key was refused (phase 2), while phase 1's honest votes
    # signed with it were counted (checked with the decisions below).
    retired_v1 = [
        letter
        for letter in letters
        if letter.reason is DeadLetterReason.KEY_OUT_OF_WINDOW
        and keys.v1_old.key_id in letter.detail
    ]
    assert len(retired_v1) >= 10
    by_reason = Counter(reason.value for reason in sent.forged.values())
    assert Counter(letter.reason.value for letter in letters) == by_reason
    assert set(by_reason) == {
        "UNSIGNED",
        "BAD_SIGNATURE",
        "UNKNOWN_KEY",
        "KEY_OUT_OF_WINDOW",
        "REPLAYED",
    }

    # Every honest case passed, on exactly its honest votes: no forged vote was counted.
    decided_ = await decisions(tuned)
    assert all(isinstance(d, PassDecision) for d in decided_)
    passes = {d.case_id: d for d in decided_ if isinstance(d, PassDecision)}
    assert len(decided_) == len(passes) == 2 * CASES_PER_PHASE
    for case_id, decision in passes.items():
        assert {v.validator_id: v for v in decision.votes} == sent.honest[case_id]
        # The tally signed it, and the votes it carries still verify.
        assert check_signature(decision, tally_signer.public_key) is SignatureCheck.VALID
        for vote in decision.votes:
            phase = 1 if int(case_id[1:]) < CASES_PER_PHASE else 2
            signer = keys.for_voter(vote.validator_id, phase)
            assert check_signature(vote, signer.public_key) is SignatureCheck.VALID

    # The client takes only decisions signed by the tally's key; a forged one is set aside
    # (and shown, flagged, on request).
    genuine = passes["s00000"]
    forged_pass = Signer.generate().sign(dataclasses.replace(genuine, confidence=0.01))
    producer = make_producer(tuned, client_id="it-forged-decision")
    await producer.start()
    try:
        await producer.send_and_wait(names.passed, codec.encode(forged_pass), key=b"s00000")
    finally:
        await producer.stop()
    client = Client(tuned, tally_public_key=encode_public_key(tally_signer.public_key))
    async with client:
        shown = await _collect(
            client.decisions(from_beginning=True, include_unverified=True),
            2 * CASES_PER_PHASE + 1,
        )
        flagged = [d for d in shown if client.check_decision(d) is not SignatureCheck.VALID]
        assert flagged == [forged_pass]
        assert client.check_decision(forged_pass) is SignatureCheck.WRONG_KEY
        assert client.unverified_decisions == 1
        # Without include_unverified: everything there is to read, and the forged one not.
        trusted = await _collect(client.decisions(from_beginning=True), None)
        assert len(trusted) == len(passes)
        assert {d.case_id for d in trusted} == set(passes)
        assert all(client.check_decision(d) is SignatureCheck.VALID for d in trusted)
        assert client.unverified_decisions == 2  # the forged decision, met once more

    # `ratifier watch --verify` shows every decision with its signature check.
    lines = await watch_verify(tuned, encode_public_key(tally_signer.public_key), len(passes) + 1)
    assert Counter(line["signature_check"] for line in lines) == {"valid": 400, "wrong-key": 1}
    (flagged_line,) = [line for line in lines if line["signature_check"] == "wrong-key"]
    assert flagged_line["confidence"] == 0.01


async def watch_verify(settings: Settings, public_key: str, limit: int) -> list[dict[str, Any]]:
    env = {**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"}
    args = ["watch", "--from-beginning", "--verify", "--tally-public-key", public_key]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ratifier",
        *args,
        "--limit",
        str(limit),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return [orjson.loads(line) for line in out.splitlines()]


async def _collect(stream: AsyncIterator[Decision], count: int | None) -> list[Decision]:
    """``count`` decisions from ``stream``; with None, all until none comes for 3 s."""
    out: list[Decision] = []
    iterator = aiter(stream)
    try:
        while count is None or len(out) < count:
            try:
                out.append(await asyncio.wait_for(anext(iterator), 3 if count is None else 60))
            except TimeoutError:
                if count is None:
                    break
                raise
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]
    return out


async def test_validator_runtime_signs_with_its_key_file(
    settings: Settings, tmp_path: Path
) -> None:
    # The runtime reads RATIFIER_SIGNING_KEY (here the setting) and signs every verdict; the
    # tally, requiring signatures, counts them; the candidates are unsigned, as always. The
    # client, given the tally's public key (RATIFIER_TALLY_PUBLIC_KEY), takes only decisions
    # the tally signed.
    key_files = {voter: tmp_path / f"{voter}.key" for voter in ("r1", "r2")}
    signers = {voter: Signer(write_private_key(path)) for voter, path in key_files.items()}
    folder = tmp_path / "policies"
    folder.mkdir()
    lines = [
        'name = "rt"',
        'version = "1"',
        'signatures = "required"',
        "[threshold]",
        "accepts = 2",
    ]
    for voter, signer in signers.items():
        lines += [
            f'[[validators]]\nid = "{voter}"',
            f'[[validators.keys]]\npublic_key = "{encode_public_key(signer.public_key)}"',
        ]
    (folder / "rt.toml").write_text("\n".join(lines) + "\n")
    tally_key = tmp_path / "tally.key"
    tally_public_key = encode_public_key(Signer(write_private_key(tally_key)).public_key)
    tuned = settings.with_overrides(policy_dir=folder, tally_signing_key=tally_key)

    async def accept(_: Candidate) -> Judgement:
        return Judgement(Vote.ACCEPT, 0.9)

    workers = [
        ValidatorWorker(tuned.with_overrides(signing_key=path), voter, accept)
        for voter, path in key_files.items()
    ]
    stop = asyncio.Event()
    async with running_tally(tuned), contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
        try:
            async with Client(tuned.with_overrides(tally_public_key=tally_public_key)) as client:
                outcomes = await asyncio.gather(
                    *(client.decide(f"answer {i}", policy="rt", timeout_s=60) for i in range(20))
                )
                assert client.unverified_decisions == 0
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    assert all(isinstance(o, PassDecision) for o in outcomes)
    for outcome in outcomes:
        assert isinstance(outcome, PassDecision)
        assert len(outcome.votes) == 2
        for vote in outcome.votes:
            assert vote.signature  # signed by the runtime, with the key file's key
            expected = signers[vote.validator_id].public_key  # the key in its key file
            assert check_signature(vote, expected) is SignatureCheck.VALID


async def test_the_faust_engine_verifies_and_signs_too(settings: Settings, tmp_path: Path) -> None:
    # Same rules, other engine: the faust adapter (a `ratifier tally run` process).
    keys = Keys(*(Signer.generate() for _ in range(6)), cutover_ms=now_ms() + 3_600_000)
    tally_key = tmp_path / "tally.key"
    tally_signer = Signer(write_private_key(tally_key))
    write_signed_policy(tmp_path / "policies", keys)
    tuned = settings.with_overrides(
        policy_dir=tmp_path / "policies", tally_signing_key=tally_key, tally_engine="faust"
    )
    sent = Sent()
    cases = range(30)
    await produce_phase(tuned, keys, 1, cases, sent)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-signed-faust" / tuned.topic_prefix)
    await fleet.start(ProcessSpec.tally())
    try:

        async def done() -> bool:
            decided = len(await decisions(tuned)) >= len(cases)
            return decided and len(await dead_letters(tuned)) >= len(sent.forged)

        with contextlib.suppress(WaitTimeout):
            await wait_until(done, 120, "the faust tally's decisions and dead letters", poll_s=1)
    finally:
        await fleet.stop()
    letters = await dead_letters(tuned)
    assert sorted((letter.partition, letter.offset) for letter in letters) == sorted(sent.forged)
    for letter in letters:
        assert letter.reason is sent.forged[(letter.partition, letter.offset)], letter.detail
    decided = await decisions(tuned)
    assert len(decided) == len(cases)
    for decision in decided:
        assert isinstance(decision, PassDecision)
        assert {v.validator_id: v for v in decision.votes} == sent.honest[decision.case_id]
        assert check_signature(decision, tally_signer.public_key) is SignatureCheck.VALID
