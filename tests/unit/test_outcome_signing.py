"""Outcome seals: the outcomes writer's signature in record headers, checked by value."""

from __future__ import annotations

import dataclasses

from ratifier.core.models import Outcome, OutcomeClass
from ratifier.core.outcome_signing import check_seal, seal, seal_from_headers, seal_headers
from ratifier.core.signing import SignatureCheck, Signer

OUTCOME = Outcome(
    outcome_id="o-1",
    case_id="c-1",
    kind=OutcomeClass.CONFIRMED,
    reviewer="auto",
    decided_at_ms=1_700_000_000_000,
    attempt=1,
    candidate_id="cand-1",
    content="Refunds within 30 days with a receipt.",
    query="refund policy?",
    category="general",
    note=None,
    policy="default",
    policy_version="v1",
    resolves=("d-1",),
)


def test_a_sealed_outcome_checks_out_through_its_headers() -> None:
    signer = Signer.generate()
    headers = seal_headers(signer, OUTCOME)
    found = seal_from_headers(headers)
    assert found == seal(signer, OUTCOME)
    assert check_seal(OUTCOME, found, signer.public_key) is SignatureCheck.VALID


def test_what_does_not_check_out() -> None:
    signer, forger = Signer.generate(), Signer.generate()
    assert seal_headers(None, OUTCOME) == []
    assert seal_from_headers([]) is None
    assert check_seal(OUTCOME, None, signer.public_key) is SignatureCheck.UNSIGNED
    by_forger = seal(forger, OUTCOME)
    assert check_seal(OUTCOME, by_forger, signer.public_key) is SignatureCheck.WRONG_KEY
    altered = dataclasses.replace(OUTCOME, content="Refunds at any time.")
    genuine = seal(signer, OUTCOME)
    assert check_seal(altered, genuine, signer.public_key) is SignatureCheck.INVALID
