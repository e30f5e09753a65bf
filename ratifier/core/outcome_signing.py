"""Signed outcomes: the outcomes writer's Ed25519 signature over each outcome it writes.

An :class:`Outcome` has no signature field (its wire schema stays as it is), so the signature
and the key's id travel in two record headers. What is signed is the outcome's canonical
signing bytes (``ratifier.core.signing.signing_bytes``: every field, by value, independent of
the Avro encoding). The trusted store keeps the seal next to the outcome, so whoever reads an
answer later (``ratifier answer --verify``, ``Client.trusted_answer``) checks it again against
the writer's public key (``RATIFIER_OUTCOMES_PUBLIC_KEY``). See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ratifier.core.errors import RatifierError
from ratifier.core.models import Outcome
from ratifier.core.signing import SignatureCheck, Signer, key_id_of, signing_bytes, verify

SIGNATURE_HEADER = "ratifier-outcome-signature"
KEY_ID_HEADER = "ratifier-outcome-key-id"


class UntrustedOutcome(RatifierError):
    """A stored answer whose signature does not check out against the outcomes key."""

    def __init__(self, case_id: str, check: SignatureCheck) -> None:
        super().__init__(
            f"the trusted answer of case {case_id} is not signed by the outcomes key "
            f"(signature {check.value}): do not use it"
        )
        self.case_id = case_id
        self.check = check


@dataclass(frozen=True, slots=True)
class OutcomeSeal:
    """The outcomes writer's signature over one outcome, and the id of the key that made it."""

    key_id: str
    signature: bytes


def seal(signer: Signer, outcome: Outcome) -> OutcomeSeal:
    return OutcomeSeal(signer.key_id, signer.sign_bytes(signing_bytes(outcome)))


def check_seal(outcome: Outcome, found: OutcomeSeal | None, public_key: bytes) -> SignatureCheck:
    """Whether ``found`` is a valid signature of ``outcome`` by ``public_key`` (raw)."""
    if found is None or not found.signature:
        return SignatureCheck.UNSIGNED
    if found.key_id != key_id_of(public_key):
        return SignatureCheck.WRONG_KEY
    key = Ed25519PublicKey.from_public_bytes(public_key)
    if verify(key, found.signature, signing_bytes(outcome)):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID


def seal_headers(signer: Signer | None, outcome: Outcome) -> list[tuple[str, bytes]]:
    """The record headers that carry the outcome's seal; none without a signing key."""
    if signer is None:
        return []
    made = seal(signer, outcome)
    return [(SIGNATURE_HEADER, made.signature), (KEY_ID_HEADER, made.key_id.encode())]


def seal_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> OutcomeSeal | None:
    found = dict(headers or ())
    signature = found.get(SIGNATURE_HEADER)
    if not signature:
        return None
    return OutcomeSeal(found.get(KEY_ID_HEADER, b"").decode(errors="replace"), signature)
