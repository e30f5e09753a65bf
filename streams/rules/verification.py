"""The tally's check of a verdict's signature against its case's policy (docs/signing.md).

Pure, like the rest of the rules: the verdict, the policy (its ``signatures`` mode and key ring),
the case's state and the time the verdict reached the tally in, a dead-letter reason or None
out. :func:`ratifier.streams.rules.tally` calls it wherever it checks a verdict against the policy,
before the verdict can count: for a verdict as it arrives and for a held verdict when its
candidate arrives (only then is the policy known).

Each way a verdict can fail has its own reason, in this order:

* ``UNSIGNED``: no signature, and the policy requires one;
* ``UNKNOWN_KEY``: its key id is not among the keys the policy lists for that validator;
* ``REPLAYED``: the signature does not match the verdict, but it does match the same verdict
  for another attempt or candidate of the case (a genuine vote moved elsewhere);
* ``BAD_SIGNATURE``: the signature matches nothing (a forged or altered verdict);
* ``KEY_OUT_OF_WINDOW``: a genuine signature, by a listed key that is not valid at the time the
  verdict reached the tally (not the verdict's own ``produced_at_ms``, which whoever holds an
  old key can set at will).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from ratifier.core.models import DeadLetterReason, Verdict
from ratifier.core.policy import Policy
from ratifier.core.signing import RingKey, SignatureMode, signing_bytes, verify
from ratifier.streams.rules.state import CaseState

__all__ = ["verdict_signature_problem"]

Problem = tuple[DeadLetterReason, str]


def verdict_signature_problem(
    verdict: Verdict, policy: Policy, state: CaseState | None, at_ms: int
) -> Problem | None:
    """Why ``verdict``'s signature keeps it from counting under ``policy``; None if it may count."""
    mode = policy.signatures
    if mode is SignatureMode.OFF:
        return None
    who = f"validator {verdict.validator_id!r}"
    if not verdict.signature and not verdict.key_id:
        if mode is SignatureMode.REQUIRED:
            return DeadLetterReason.UNSIGNED, f"policy {policy.name!r} requires signed verdicts"
        return None
    ring_key = policy.key_ring.lookup(verdict.validator_id, verdict.key_id)
    if ring_key is None:
        detail = f"key {verdict.key_id!r} is not one policy {policy.name!r} lists for {who}"
        return DeadLetterReason.UNKNOWN_KEY, detail
    if not verify(ring_key.key, verdict.signature, signing_bytes(verdict)):
        genuine_for = _replayed_from(verdict, ring_key, state)
        if genuine_for is not None:
            attempt, candidate_id = genuine_for
            detail = (
                f"{who}'s signature is genuine, but for attempt {attempt} (candidate "
                f"{candidate_id!r}), not attempt {verdict.attempt} (candidate "
                f"{verdict.candidate_id!r})"
            )
            return DeadLetterReason.REPLAYED, detail
        detail = f"the signature does not match the verdict ({who}, key {verdict.key_id})"
        return DeadLetterReason.BAD_SIGNATURE, detail
    if not ring_key.spec.valid_at(at_ms):
        detail = (
            f"{who}'s key {verdict.key_id} is valid {_window(ring_key)}, not at "
            f"{_instant(at_ms)}, when the verdict arrived"
        )
        return DeadLetterReason.KEY_OUT_OF_WINDOW, detail
    return None


def _replayed_from(
    verdict: Verdict, ring_key: RingKey, state: CaseState | None
) -> tuple[int, str] | None:
    """The (attempt, candidate id) of the case that ``verdict``'s signature was made for, if any.

    Only on the failure path: one more verification per attempt of the case (a few at most).
    """
    if state is None:
        return None
    for attempt in state.attempts:
        number, candidate_id = attempt.candidate.attempt, attempt.candidate.candidate_id
        if (number, candidate_id) == (verdict.attempt, verdict.candidate_id):
            continue
        moved = dataclasses.replace(verdict, attempt=number, candidate_id=candidate_id)
        if verify(ring_key.key, verdict.signature, signing_bytes(moved)):
            return number, candidate_id
    return None


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _window(ring_key: RingKey) -> str:
    spec = ring_key.spec
    start = "the beginning" if spec.not_before_ms is None else _instant(spec.not_before_ms)
    end = "for good" if spec.not_after_ms is None else _instant(spec.not_after_ms)
    return f"from {start} to {end}"
