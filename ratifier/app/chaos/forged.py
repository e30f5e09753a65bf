"""Forged verdicts for the bad-input scenario (docs/signing.md, docs/chaos.md).

The scenario's tally loads a copy of the built-in ``default`` policy with
``signatures = "optional"`` and a public key for each of its validators, whose private keys only
this module holds: the demo's validators stay unsigned (optional lets their verdicts count), and
every signed verdict must verify. For a decided case of the load, :meth:`Forger.forgeries` makes
one verdict of each kind below; each must be dead-lettered with its reason and never counted.

| kind | expected |
|---|---|
| forged-altered | BAD_SIGNATURE (signed with the validator's listed key, then its vote changed) |
| forged-unknown-key | UNKNOWN_KEY (signed with a key the policy does not list) |
| forged-retired-key | KEY_OUT_OF_WINDOW (a listed key whose validity ended an hour ago) |
| forged-replayed | REPLAYED (a genuine signature for the decided candidate, sent for another) |

``UNSIGNED`` cannot occur under ``optional``; the broker test
``tests/integration/test_signed_verdicts.py`` covers it with ``required``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from ratifier.app.chaos.policies import default_policy_text
from ratifier.core.models import Candidate, DeadLetterReason, Verdict, Vote, now_ms, verdict_on
from ratifier.core.signing import Signer, encode_public_key

__all__ = ["Forger", "with_keys"]

_HOUR_MS = 3_600_000


def with_keys(text: str, mode: str, keys: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """The policy ``text`` with ``signatures = mode`` and, under each validator named in
    ``keys``, its keys (each a ``public_key`` and optional ``not_before`` / ``not_after``)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("[threshold]"):
            lines += [f'signatures = "{mode}"', ""]
        lines.append(line)
        for validator, entries in keys.items():
            if line.strip() == f'id = "{validator}"':
                tables = (", ".join(f'{k} = "{v}"' for k, v in e.items()) for e in entries)
                # Inline tables: they must come before the validator's other keys (role).
                lines.append("keys = [" + ", ".join(f"{{ {t} }}" for t in tables) + "]")
    return "\n".join(lines) + "\n"


class Forger:
    """The keys behind the scenario's policy, and forged verdicts made with them."""

    def __init__(self, validators: tuple[str, ...]) -> None:
        self.validators = validators
        self.current = {v: Signer.generate() for v in validators}
        self.retired = {v: Signer.generate() for v in validators}
        self.attacker = Signer.generate()
        self.retired_until_ms = now_ms() - _HOUR_MS

    def policy_text(self) -> str:
        """The built-in ``default`` policy, signatures optional, with every validator's keys."""
        until = datetime.fromtimestamp(self.retired_until_ms / 1000, UTC).isoformat()
        keys = {
            validator: [
                {"public_key": encode_public_key(self.current[validator].public_key)},
                {
                    "public_key": encode_public_key(self.retired[validator].public_key),
                    "not_after": until,
                },
            ]
            for validator in self.validators
        }
        return with_keys(default_policy_text(), "optional", keys)

    def forgeries(self, candidate: Candidate, validator: str) -> list[tuple[str, Verdict, str]]:
        """(kind, verdict, expected dead-letter reason) of each forgery against ``candidate``."""
        vote = verdict_on(candidate, validator, Vote.REJECT, confidence=1.0, version="chaos-forger")
        genuine = self.current[validator].sign(vote)
        moved = dataclasses.replace(genuine, candidate_id=f"{candidate.candidate_id}-forged")
        return [
            (
                "forged-altered",
                dataclasses.replace(genuine, vote=Vote.ACCEPT),
                DeadLetterReason.BAD_SIGNATURE.value,
            ),
            ("forged-unknown-key", self.attacker.sign(vote), DeadLetterReason.UNKNOWN_KEY.value),
            (
                "forged-retired-key",
                self.retired[validator].sign(vote),
                DeadLetterReason.KEY_OUT_OF_WINDOW.value,
            ),
            ("forged-replayed", moved, DeadLetterReason.REPLAYED.value),
        ]
