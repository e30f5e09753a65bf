"""Signatures in the benchmarks (``bench/run.py --signatures``, docs/signing.md).

The throughput benchmark runs its first engine once more on the same kind of input with every
verdict signed, under a copy of the built-in ``default`` policy with ``signatures = "required"``
and each validator's public key, the tally signing its decisions too; the figure is reported next
to the unsigned one. :func:`verification_cost` measures the per-verdict costs offline (no Kafka):
what the tally adds per verdict, and what a validator adds to sign one.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench import harness
from ratifier.app.chaos.forged import with_keys
from ratifier.app.chaos.policies import default_policy_text
from ratifier.core.config import Settings
from ratifier.core.policy import Policy
from ratifier.core.signing import Signer, encode_public_key, signing_bytes, verify
from ratifier.io.keys import write_private_key
from ratifier.streams.rules.verification import verdict_signature_problem


def signers() -> dict[str, Signer]:
    """A fresh key per benchmark validator."""
    return {v: Signer.generate() for v in harness.VALIDATORS}


def signed_policy_text(keys: dict[str, Signer]) -> str:
    """The built-in ``default`` policy, requiring signatures and listing each validator's key."""
    listed = {v: [{"public_key": encode_public_key(s.public_key)}] for v, s in keys.items()}
    return with_keys(default_policy_text(), "required", listed)


def signed_settings(settings: Settings, folder: Path, keys: dict[str, Signer]) -> Settings:
    """``settings`` with the signed policy folder and a tally signing key, both in ``folder``."""
    policies = folder / "policies"
    policies.mkdir(parents=True)
    (policies / "default.toml").write_text(signed_policy_text(keys))
    tally_key = folder / "tally.key"
    write_private_key(tally_key)
    return settings.with_overrides(policy_dir=policies, tally_signing_key=tally_key)


def verification_cost(verdicts: int = 5_000, rounds: int = 5) -> dict[str, Any]:
    """Median µs per verdict over ``rounds``: the tally's whole signature check (canonical bytes,
    key lookup, Ed25519 verification, window) and its parts, and signing a verdict."""
    keys = signers()
    policy = Policy.from_mapping(_toml(signed_policy_text(keys)), "bench")
    cands = [harness.candidate(f"v{i:06d}") for i in range(verdicts // len(keys) + 1)]
    plain = [
        harness.verdict(cand, validator) for cand in cands for validator in harness.VALIDATORS
    ][:verdicts]
    signed = [keys[v.validator_id].sign(v) for v in plain]
    ring = {v.validator_id: policy.key_ring.lookup(v.validator_id, v.key_id) for v in signed}
    now = time.time_ns() // 1_000_000

    def check() -> None:
        for verdict in signed:
            assert verdict_signature_problem(verdict, policy, None, now) is None

    def canonical() -> None:
        for verdict in signed:
            signing_bytes(verdict)

    def ed25519() -> None:
        for verdict in signed:
            ring_key = ring[verdict.validator_id]
            assert ring_key is not None
            verify(ring_key.key, verdict.signature, signing_bytes(verdict))

    def sign() -> None:
        for verdict in plain:
            keys[verdict.validator_id].sign(verdict)

    figures: dict[str, Any] = {"verdicts": len(signed), "rounds": rounds}
    for name, work in (
        ("check_us", check),
        ("canonical_bytes_us", canonical),
        ("canonical_and_verify_us", ed25519),
        ("sign_us", sign),
    ):
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            work()
            samples.append((time.perf_counter() - started) / len(signed) * 1e6)
        figures[name] = statistics.median(samples)
    return figures


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)
