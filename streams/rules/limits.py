"""Size limits that keep one case from jamming a partition: checked before a record touches state.

Kafka refuses any record larger than the producer's ``max_request_size`` and the topic's
``max.message.bytes``. A case's state (and its escalation packet) holds every attempt's
candidate and every verdict, so a single oversized candidate could make a state that can never
be written: the worker would fail on it forever. So inputs are bounded, the bounds are checked
against every policy and the broker at start-up, and what would still exceed the record limit is
dead-lettered ``TOO_LARGE`` instead of applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.policy import Policy
from ratifier.streams.rules.stubs import STUB_CANDIDATE_BYTES, STUB_VERDICT_BYTES

# A verdict's reasons and spans; far more than any rationale needs.
MAX_VERDICT_BYTES = 16 * 1024
# The case state's own fields and an output record's envelope, beyond candidates and verdicts.
OVERHEAD_BYTES = 8 * 1024
# A dead letter of an oversized record keeps this much of it (the source offset has the rest).
DEAD_LETTER_EXCERPT_BYTES = 4 * 1024


@dataclass(frozen=True, slots=True)
class SizeLimits:
    max_candidate_bytes: int
    max_verdict_bytes: int
    max_record_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SizeLimits:
        return cls(settings.max_candidate_bytes, MAX_VERDICT_BYTES, settings.max_record_bytes)

    def worst_case_bytes(self, policy: Policy) -> int:
        """The largest state or escalation packet a case under ``policy`` can make."""
        validators = len(policy.validators)
        # A debate keeps every round's verdicts (docs/debate.md); a verdict body is in its round
        # once (a round request's copy of the peers is not kept in the state).
        rounds = policy.debate.max_rounds if policy.debate is not None else 1
        per_attempt = self.max_candidate_bytes + rounds * validators * self.max_verdict_bytes
        if not policy.reference_earlier_attempts:
            return policy.max_attempts * per_attempt + OVERHEAD_BYTES
        # The latest attempt in full, verdicts held for the next one, earlier attempts as stubs.
        stub = STUB_CANDIDATE_BYTES + rounds * validators * STUB_VERDICT_BYTES
        held = validators * self.max_verdict_bytes if policy.max_attempts > 1 else 0
        return per_attempt + held + (policy.max_attempts - 1) * stub + OVERHEAD_BYTES

    def check_policy(self, policy: Policy) -> None:
        worst = self.worst_case_bytes(policy)
        if worst > self.max_record_bytes:
            raise ConfigError(
                f"policy {policy.name!r}: {policy.max_attempts} attempts of candidates up to "
                f"RATIFIER_MAX_CANDIDATE_BYTES={self.max_candidate_bytes} with "
                f"{len(policy.validators)} verdicts"
                + (
                    f" in each of {policy.debate.max_rounds} debate rounds"
                    if policy.debate is not None
                    else ""
                )
                + f" of up to {self.max_verdict_bytes} bytes make "
                f"cases of up to {worst} bytes, more than RATIFIER_MAX_RECORD_BYTES="
                f"{self.max_record_bytes}: lower the candidate limit or raise the record limit"
                + (
                    ""
                    if policy.reference_earlier_attempts
                    else ', or reference earlier attempts (earlier_attempts = "referenced")'
                )
            )
