"""Signed verdicts and decisions (docs/signing.md): canonical bytes, keys, rotation, the rules."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path

import pytest

from ratifier.core.errors import ConfigError, PolicyError
from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    PassDecision,
    Reason,
    Severity,
    Span,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy
from ratifier.core.signing import (
    KeyRing,
    PublicKeySpec,
    SignatureCheck,
    SignatureMode,
    Signer,
    check_signature,
    decode_public_key,
    encode_public_key,
    key_id_of,
    signing_bytes,
)
from ratifier.io.keys import load_private_key, load_signer, write_private_key
from ratifier.schemas import codec
from ratifier.streams.rules.state import decode_state, encode_state
from ratifier.streams.rules.tally import SourceRef, TallySettings, on_candidate, on_verdict
from ratifier.streams.rules.verification import verdict_signature_problem

T0 = 1_700_000_000_000
SETTINGS = TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=120_000)
SOURCE = SourceRef("t.verdicts", 0, 7)


def _verdict(validator: str = "v1", attempt: int = 1, candidate_id: str = "cand-1") -> Verdict:
    return Verdict(
        case_id="case-1",
        attempt=attempt,
        candidate_id=candidate_id,
        validator_id=validator,
        validator_version="1.0",
        vote=Vote.REJECT,
        confidence=0.75,
        severity=Severity.MAJOR,
        reasons=(Reason("x", "wrong", Span(0, 3)), Reason("y", "unclear")),
        latency_ms=12,
        produced_at_ms=T0,
    )


def _candidate(attempt: int = 1, candidate_id: str = "cand-1", policy: str = "p") -> Candidate:
    return Candidate(
        case_id="case-1",
        attempt=attempt,
        candidate_id=candidate_id,
        policy=policy,
        category="general",
        query="q",
        content="an answer",
        producer="test",
        produced_at_ms=T0,
        metadata={"b": "2", "a": "1"},
    )


def _policy(
    mode: str, keys: dict[str, list[PublicKeySpec]], validators: tuple[str, ...] = ("v1", "v2")
) -> Policy:
    # Every validator needs a key under "required": the ones a test does not sign for get one.
    keys = {v: keys.get(v) or [PublicKeySpec(Signer.generate().public_key)] for v in validators}
    data = {
        "name": "p",
        "version": "1",
        "signatures": mode,
        "threshold": {"accepts": len(validators)},
        "validators": [
            {
                "id": v,
                "keys": [
                    {
                        "public_key": encode_public_key(k.public_key),
                        **({"not_before": _iso(k.not_before_ms)} if k.not_before_ms else {}),
                        **({"not_after": _iso(k.not_after_ms)} if k.not_after_ms else {}),
                    }
                    for k in keys.get(v, [])
                ],
            }
            for v in validators
        ],
    }
    return Policy.from_mapping(data)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# --- canonical bytes -------------------------------------------------------------------------


def test_signing_bytes_cover_every_field_but_the_signature() -> None:
    verdict = Signer.generate().sign(_verdict())
    base = signing_bytes(verdict)
    assert signing_bytes(dataclasses.replace(verdict, signature=b"other")) == base
    changes = {
        "case_id": "case-2",
        "attempt": 2,
        "candidate_id": "cand-2",
        "validator_id": "v2",
        "validator_version": "1.1",
        "vote": Vote.ACCEPT,
        "confidence": 0.7500001,
        "severity": None,
        "reasons": (Reason("x", "wrong", Span(0, 4)), Reason("y", "unclear")),
        "latency_ms": 13,
        "produced_at_ms": T0 + 1,
        "key_id": "0" * 16,
        "round": 2,  # a later field: covered once set (below)
    }
    assert set(changes) == {f.name for f in dataclasses.fields(Verdict)} - {"signature"}
    for name, value in changes.items():
        assert signing_bytes(dataclasses.replace(verdict, **{name: value})) != base, name


def test_later_fields_keep_old_bytes_until_set() -> None:
    # Verdict.round and the decisions' rounds came after the bytes were fixed: a record without
    # them signs as before, so verdicts signed by validators from before debates still verify.
    verdict = _verdict()
    assert verdict.round is None
    later = signing_bytes(dataclasses.replace(verdict, round=2))
    assert later.startswith(signing_bytes(verdict))
    assert later != signing_bytes(dataclasses.replace(verdict, round=3))
    assert later.endswith(b"s\x00\x00\x00\x05roundi" + (2).to_bytes(8, "big"))


def test_signing_bytes_are_fixed_and_unambiguous() -> None:
    # Pinned: other languages implement this encoding (docs/signing.md); it must never drift.
    verdict = Verdict("c", 1, "x", "v", "1", Vote.ACCEPT, 1.0, None, (), 5, 6, b"", "k")
    assert signing_bytes(verdict).hex() == (
        b"ratifier.sig.v1:Verdict\n".hex()
        + "7300000001" + "63"  # case_id
        + "69" + "0000000000000001"  # attempt
        + "7300000001" + "78"
        + "7300000001" + "76"
        + "7300000001" + "31"
        + "7300000006" + b"ACCEPT".hex()
        + "64" + "3ff0000000000000"  # confidence 1.0
        + "6e"  # severity None
        + "6c" + "00000000"  # no reasons
        + "69" + "0000000000000005"
        + "69" + "0000000000000006"
        + "7300000001" + "6b"  # key_id
    )  # fmt: skip
    # Length prefixes: moving a character from one string to the next changes the bytes.
    a = dataclasses.replace(verdict, case_id="ab", candidate_id="c")
    b = dataclasses.replace(verdict, case_id="a", candidate_id="bc")
    assert signing_bytes(a) != signing_bytes(b)


def test_map_order_does_not_matter_and_nested_records_are_covered() -> None:
    signer = Signer.generate()
    decision = PassDecision(
        "d", "case-1", 1, _candidate(), 0.9, (signer.sign(_verdict()),), "p", "1", "confirmed", T0
    )  # type: ignore[arg-type]
    reordered = dataclasses.replace(
        decision, candidate=dataclasses.replace(_candidate(), metadata={"a": "1", "b": "2"})
    )
    assert signing_bytes(decision) == signing_bytes(reordered)
    vote = decision.votes[0]
    tampered = dataclasses.replace(decision, votes=(dataclasses.replace(vote, vote=Vote.ACCEPT),))
    assert signing_bytes(tampered) != signing_bytes(decision)
    # A verdict's signature is never a decision's: the record type is in the bytes.
    assert signing_bytes(decision).startswith(b"ratifier.sig.v1:PassDecision\n")


# --- sign and check --------------------------------------------------------------------------


def test_sign_then_check() -> None:
    signer, other = Signer.generate(), Signer.generate()
    verdict = signer.sign(_verdict())
    assert len(verdict.signature) == 64
    assert verdict.key_id == key_id_of(signer.public_key)
    assert check_signature(verdict, signer.public_key) is SignatureCheck.VALID
    assert check_signature(verdict, other.public_key) is SignatureCheck.WRONG_KEY
    assert check_signature(_verdict(), signer.public_key) is SignatureCheck.UNSIGNED
    altered = dataclasses.replace(verdict, confidence=0.8)
    assert check_signature(altered, signer.public_key) is SignatureCheck.INVALID
    # Signing again replaces the earlier signature and key id.
    again = other.sign(verdict)
    assert check_signature(again, other.public_key) is SignatureCheck.VALID


def test_signed_records_survive_the_wire_and_the_state_codec() -> None:
    signer = Signer.generate()
    verdict = signer.sign(_verdict())
    decoded = codec.decode_as(codec.encode(verdict), Verdict)
    assert decoded == verdict
    assert check_signature(decoded, signer.public_key) is SignatureCheck.VALID
    # In the tally's state (counted and held verdicts keep their signatures).
    policy = _policy("required", {"v1": [PublicKeySpec(signer.public_key)]})
    step = on_verdict(None, verdict, SOURCE, {"p": policy}, T0, SETTINGS)  # held
    assert step.state is not None
    held = decode_state(encode_state(step.state)).held[0].verdict
    assert held == verdict
    step = on_candidate(step.state, _candidate(), policy, T0 + 1, SETTINGS)
    assert step.state is not None
    assert not step.rejected
    counted = decode_state(encode_state(step.state)).attempts[0].votes["v1"]
    assert counted == verdict
    # An unsigned verdict's state bytes are as before signatures existed (no trailing items).
    unsigned_state = on_verdict(None, _verdict(), SOURCE, {"p": policy}, T0, SETTINGS).state
    assert unsigned_state is not None
    assert b'"k' not in encode_state(unsigned_state)


def test_public_key_text_form() -> None:
    signer = Signer.generate()
    text = encode_public_key(signer.public_key)
    assert decode_public_key(text) == signer.public_key
    with pytest.raises(ValueError, match="not base64"):
        decode_public_key("not base64!")
    with pytest.raises(ValueError, match="31 bytes"):
        decode_public_key(encode_public_key(signer.public_key[:31]))


# --- key ring, rotation, windows --------------------------------------------------------------


def test_key_ring_finds_each_validators_keys_only() -> None:
    old, new = Signer.generate(), Signer.generate()
    ring = KeyRing([("v1", PublicKeySpec(old.public_key)), ("v1", PublicKeySpec(new.public_key))])
    assert len(ring) == 2
    assert ring.lookup("v1", old.key_id) is not None
    assert ring.lookup("v1", new.key_id) is not None
    assert ring.lookup("v2", old.key_id) is None  # another validator's key is not v2's
    assert ring.lookup("v1", "0" * 16) is None


def test_validity_window_is_inclusive() -> None:
    spec = PublicKeySpec(b"\x01" * 32, not_before_ms=100, not_after_ms=200)
    assert [spec.valid_at(t) for t in (99, 100, 200, 201)] == [False, True, True, False]
    assert PublicKeySpec(b"\x01" * 32).valid_at(0)


# --- the tally's check, reason by reason ----------------------------------------------------


def _problem(
    verdict: Verdict, policy: Policy, at_ms: int = T0
) -> tuple[DeadLetterReason, str] | None:
    state = on_candidate(None, _candidate(), policy, T0, SETTINGS).state
    return verdict_signature_problem(verdict, policy, state, at_ms)


def test_each_forgery_has_its_own_reason() -> None:
    v1, v2, stranger = Signer.generate(), Signer.generate(), Signer.generate()
    expired = Signer.generate()
    keys = {
        "v1": [PublicKeySpec(v1.public_key), PublicKeySpec(expired.public_key, None, T0 - 1)],
        "v2": [PublicKeySpec(v2.public_key)],
    }
    required = _policy("required", keys)
    optional = _policy("optional", keys)
    off = _policy("off", keys)
    genuine = v1.sign(_verdict())

    def reason(verdict: Verdict, policy: Policy = required) -> DeadLetterReason | None:
        problem = _problem(verdict, policy)
        return None if problem is None else problem[0]

    assert reason(genuine) is None
    assert reason(_verdict()) is DeadLetterReason.UNSIGNED
    assert reason(_verdict(), optional) is None
    assert reason(stranger.sign(_verdict())) is DeadLetterReason.UNKNOWN_KEY
    # v2's genuine key, but used under v1's name: not a key the policy lists for v1.
    assert reason(v2.sign(_verdict())) is DeadLetterReason.UNKNOWN_KEY
    assert reason(dataclasses.replace(genuine, vote=Vote.ACCEPT)) is DeadLetterReason.BAD_SIGNATURE
    assert reason(dataclasses.replace(genuine, signature=b"")) is DeadLetterReason.BAD_SIGNATURE
    assert reason(dataclasses.replace(genuine, signature=b"\0" * 64)) is (
        DeadLetterReason.BAD_SIGNATURE
    )
    # A genuine vote for candidate cand-1 (attempt 1) presented for another candidate.
    moved = dataclasses.replace(genuine, candidate_id="cand-9")
    problem = _problem(moved, required)
    assert problem is not None
    assert problem[0] is DeadLetterReason.REPLAYED
    assert "attempt 1 (candidate 'cand-1')" in problem[1]
    assert reason(expired.sign(_verdict())) is DeadLetterReason.KEY_OUT_OF_WINDOW
    # Bad signatures count in optional mode too; off looks at nothing.
    assert reason(stranger.sign(_verdict()), optional) is DeadLetterReason.UNKNOWN_KEY
    for forged in (_verdict(), stranger.sign(_verdict()), moved):
        assert reason(forged, off) is None


def test_key_window_is_judged_by_arrival_time_not_the_verdicts_claim() -> None:
    key = Signer.generate()
    policy = _policy("required", {"v1": [PublicKeySpec(key.public_key, T0, T0 + 1000)]})
    # Claims to be produced inside the window; arrives after it.
    verdict = key.sign(_verdict())
    assert _problem(verdict, policy, at_ms=T0 + 500) is None
    late = _problem(verdict, policy, at_ms=T0 + 1001)
    assert late is not None
    assert late[0] is DeadLetterReason.KEY_OUT_OF_WINDOW
    early = _problem(verdict, policy, at_ms=T0 - 1)
    assert early is not None
    assert early[0] is DeadLetterReason.KEY_OUT_OF_WINDOW


def test_rotation_both_keys_count_while_listed() -> None:
    old, new = Signer.generate(), Signer.generate()
    cutover = T0 + 10_000
    policy = _policy(
        "required",
        {
            "v1": [
                PublicKeySpec(old.public_key, None, cutover),
                PublicKeySpec(new.public_key, T0, None),
            ]
        },
    )
    assert _problem(old.sign(_verdict()), policy, T0 + 5_000) is None
    assert _problem(new.sign(_verdict()), policy, T0 + 5_000) is None
    assert _problem(new.sign(_verdict()), policy, cutover + 1) is None
    retired = _problem(old.sign(_verdict()), policy, cutover + 1)
    assert retired is not None
    assert retired[0] is DeadLetterReason.KEY_OUT_OF_WINDOW


def test_rules_dead_letter_forgeries_and_count_nothing() -> None:
    v1, v2, stranger = Signer.generate(), Signer.generate(), Signer.generate()
    policy = _policy(
        "required", {"v1": [PublicKeySpec(v1.public_key)], "v2": [PublicKeySpec(v2.public_key)]}
    )
    policies = {"p": policy}
    state = on_candidate(None, _candidate(), policy, T0, SETTINGS).state
    for forged, expected in (
        (_verdict("v1"), DeadLetterReason.UNSIGNED),
        (stranger.sign(_verdict("v1")), DeadLetterReason.UNKNOWN_KEY),
        (dataclasses.replace(v1.sign(_verdict("v1")), vote=Vote.ACCEPT), "BAD_SIGNATURE"),
    ):
        step = on_verdict(state, forged, SOURCE, policies, T0, SETTINGS)
        assert [r.reason for r in step.rejected] == [DeadLetterReason(expected)]
        assert not step.decisions
        assert not step.changed
    # Genuine votes still decide.
    accept = dataclasses.replace(_verdict("v1"), vote=Vote.ACCEPT, severity=None)
    step = on_verdict(state, v1.sign(accept), SOURCE, policies, T0, SETTINGS)
    step = on_verdict(
        step.state,
        v2.sign(dataclasses.replace(accept, validator_id="v2")),
        SOURCE,
        policies,
        T0,
        SETTINGS,
    )
    assert [type(d).__name__ for d in step.decisions] == ["PassDecision"]


def test_held_verdicts_are_checked_when_their_candidate_arrives() -> None:
    v1, stranger = Signer.generate(), Signer.generate()
    policy = _policy("required", {"v1": [PublicKeySpec(v1.public_key)]}, ("v1", "v2", "v3"))
    policies = {"p": policy}
    genuine = v1.sign(dataclasses.replace(_verdict("v1"), vote=Vote.ACCEPT, severity=None))
    state = None
    # Before the candidate there is no policy to check against: all three are held.
    for verdict in (_verdict("v2"), genuine, stranger.sign(_verdict("v3"))):
        step = on_verdict(state, verdict, SOURCE, policies, T0, SETTINGS)
        assert not step.rejected
        state = step.state
    step = on_candidate(state, _candidate(), policy, T0 + 1, SETTINGS)
    reasons = [r.reason for r in step.rejected]
    assert reasons == [DeadLetterReason.UNSIGNED, DeadLetterReason.UNKNOWN_KEY]
    assert step.state is not None
    assert list(step.state.attempts[0].votes) == ["v1"]
    # The genuine attempt-1 vote presented for attempt 2: caught as it arrives.
    moved = dataclasses.replace(genuine, attempt=2, candidate_id="cand-2")
    replayed = on_verdict(step.state, moved, SOURCE, policies, T0 + 2, SETTINGS)
    assert [r.reason for r in replayed.rejected] == [DeadLetterReason.REPLAYED]
    assert not replayed.changed


# --- policy ----------------------------------------------------------------------------------


def test_policy_parses_keys_and_windows() -> None:
    key = Signer.generate()
    text = f"""
name = "p"
version = "1"
signatures = "required"
[threshold]
accepts = 1
[[validators]]
id = "v1"
[[validators.keys]]
public_key = "{encode_public_key(key.public_key)}"
not_before = 2023-11-14T22:13:20Z
not_after = "2023-11-14T22:13:30+00:00"
"""
    import tomllib

    policy = Policy.from_mapping(tomllib.loads(text), "p.toml")
    assert policy.signatures is SignatureMode.REQUIRED
    (spec,) = policy.validators[0].keys
    assert (spec.not_before_ms, spec.not_after_ms) == (T0, T0 + 10_000)
    assert policy.key_ring.lookup("v1", key.key_id) is not None
    assert hash(policy)  # still hashable


def test_policy_defaults_to_off() -> None:
    policy = Policy.from_mapping(
        {"name": "p", "version": "1", "threshold": {"accepts": 1}, "validators": [{"id": "v"}]}
    )
    assert policy.signatures is SignatureMode.OFF
    assert len(policy.key_ring) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signatures": "always"}, "signatures must be one of 'required', 'optional', 'off'"),
        ({"signatures": "required", "keys": []}, "lists no keys"),
        ({"keys": [{"public_key": "abc"}]}, "keys[0].public_key is not an Ed25519 public key"),
        ({"keys": [{"public_key": "K", "not_before": "soon"}]}, "not_before is not a date-time"),
        ({"keys": [{"public_key": "K", "not_after": "2027-01-01T00:00:00"}]}, "UTC offset"),
        (
            {
                "keys": [
                    {
                        "public_key": "K",
                        "not_before": "2027-01-02T00:00:00Z",
                        "not_after": "2027-01-01T00:00:00Z",
                    }
                ]
            },
            "not_after is before not_before",
        ),
        ({"keys": [{"public_key": "K"}, {"public_key": "K"}]}, "listed twice"),
        ({"keys": [{"public_key": "K", "expires": 1}]}, "unknown key"),
    ],
)
def test_policy_rejects_bad_signature_settings(change: dict[str, object], message: str) -> None:
    text = encode_public_key(Signer.generate().public_key)
    keys = [{**k, "public_key": text if k["public_key"] == "K" else k["public_key"]}
            for k in change.get("keys", [])]  # type: ignore[attr-defined]  # fmt: skip
    validator = {"id": "v1", **({"keys": keys} if "keys" in change else {})}
    data = {"name": "p", "version": "1", "threshold": {"accepts": 1}, "validators": [validator]}
    if "signatures" in change:
        data["signatures"] = change["signatures"]
    with pytest.raises(PolicyError, match=re.escape(message)):
        Policy.from_mapping(data)


# --- key files -------------------------------------------------------------------------------


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "v1.key"
    key = write_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = load_signer(path)
    assert signer.public_key == Signer(key).public_key
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_private_key(path)
    assert path.read_bytes() == before


def test_loading_a_bad_key_file_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_private_key(tmp_path / "missing.key")
    junk = tmp_path / "junk.key"
    junk.write_text("hello")
    os.chmod(junk, 0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_private_key(junk)


def test_the_chaos_forgers_forgeries_get_the_reasons_it_expects() -> None:
    # The bad-input chaos scenario counts on these reasons (ratifier/app/chaos/forged.py).
    import tomllib

    from ratifier.app.chaos.forged import Forger
    from ratifier.core.models import now_ms
    from ratifier.io.testing import verdict_on

    forger = Forger(("sim-a", "sim-b", "sim-c", "sim-d", "redteam"))
    policy = Policy.from_mapping(tomllib.loads(forger.policy_text()), "default.toml")
    cand = dataclasses.replace(_candidate(), policy="default")
    state = on_candidate(None, cand, policy, T0, SETTINGS).state
    at = now_ms()
    # The demo's unsigned validators and the forger's own current keys count.
    assert (
        verdict_signature_problem(verdict_on(cand, "sim-a", Vote.ACCEPT), policy, state, at) is None
    )
    genuine = forger.current["sim-b"].sign(verdict_on(cand, "sim-b", Vote.ACCEPT))
    assert verdict_signature_problem(genuine, policy, state, at) is None
    forged = forger.forgeries(cand, "sim-b")
    assert [kind for kind, _, _ in forged] == [
        "forged-altered",
        "forged-unknown-key",
        "forged-retired-key",
        "forged-replayed",
    ]
    for kind, verdict, expected in forged:
        problem = verdict_signature_problem(verdict, policy, state, at)
        assert problem is not None, kind
        assert problem[0].value == expected, kind


def test_a_held_forgery_does_not_shadow_the_genuine_vote() -> None:
    # Verdicts can reach the tally before their candidate (another partition's fetch): held
    # unchecked. A forgery held first must neither hide the genuine vote nor vanish unreported.
    v1, v2 = Signer.generate(), Signer.generate()
    policy = _policy(
        "required", {"v1": [PublicKeySpec(v1.public_key)], "v2": [PublicKeySpec(v2.public_key)]}
    )
    policies = {"p": policy}
    accept = dataclasses.replace(_verdict("v1"), vote=Vote.ACCEPT, severity=None)
    genuine = v1.sign(accept)
    state = None
    for verdict in (
        _verdict("v1"),  # unsigned REJECT
        dataclasses.replace(genuine, vote=Vote.REJECT),  # altered
        genuine,
        genuine,  # a redelivery: still held once
        v2.sign(dataclasses.replace(accept, validator_id="v2")),
    ):
        step = on_verdict(state, verdict, SOURCE, policies, T0, SETTINGS)
        assert not step.rejected
        state = step.state
    assert state is not None
    assert len(state.held) == 4
    step = on_candidate(state, _candidate(), policy, T0 + 1, SETTINGS)
    reasons = [r.reason for r in step.rejected]
    assert reasons == [DeadLetterReason.UNSIGNED, DeadLetterReason.BAD_SIGNATURE]
    assert [type(d).__name__ for d in step.decisions] == ["PassDecision"]
    assert step.decisions[0].votes[0] == genuine  # type: ignore[union-attr]


# --- the command line --------------------------------------------------------------------------


def test_keys_new_writes_a_private_key_once_and_prints_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ratifier.app.cli import main

    assert main(["keys", "new", "sim-a", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "sim-a.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = load_signer(path)
    assert f"public key:  {encode_public_key(signer.public_key)}" in out
    assert f"key id:      {signer.key_id}" in out
    before = path.read_bytes()
    assert main(["keys", "new", "sim-a", "--dir", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main(["keys", "public", str(path)]) == 0
    assert encode_public_key(signer.public_key) in capsys.readouterr().out


def test_policy_check_shows_the_signature_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ratifier.app.cli import main

    key = encode_public_key(Signer.generate().public_key)
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\nversion = "1"\nsignatures = "required"\n[threshold]\naccepts = 1\n'
        f'[[validators]]\nid = "v1"\n[[validators.keys]]\npublic_key = "{key}"\n'
    )
    assert main(["policy", "check", str(path)]) == 0
    assert "signatures required (1 keys)" in capsys.readouterr().out


def test_policy_check_reports_a_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ratifier.app.cli import main

    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\nversion = "1"\nsignatures = "required"\n[threshold]\naccepts = 1\n'
        '[[validators]]\nid = "v1"\n[[validators.keys]]\npublic_key = "c2hvcnQ="\n'
    )
    assert main(["policy", "check", str(path)]) == 2
    assert "validators[0].keys[0].public_key is not an Ed25519 public key: 5 bytes" in (
        capsys.readouterr().err
    )


def test_a_bad_tally_public_key_setting_is_one_clear_error() -> None:
    from ratifier.core.config import Settings

    key = encode_public_key(Signer.generate().public_key)
    assert Settings.from_env({"RATIFIER_TALLY_PUBLIC_KEY": key}).tally_public_key == key
    with pytest.raises(ConfigError, match="RATIFIER_TALLY_PUBLIC_KEY must be a base64 Ed25519"):
        Settings.from_env({"RATIFIER_TALLY_PUBLIC_KEY": "nope"})
    signing = Settings.from_env({"RATIFIER_SIGNING_KEY": "/keys/v1.key"})
    assert signing.signing_key == Path("/keys/v1.key")
