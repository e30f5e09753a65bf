"""Ratifier: Kafka-native M-of-N consensus for AI outputs.

The names below are the public surface::

    from ratifier import Client, Candidate, PassDecision

They are loaded on first use, so ``import ratifier`` (and every ``import ratifier.<module>``,
which runs this file first) stays cheap: neither the Kafka client nor faust is imported until a
name that needs it is touched.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ratifier.client import Client, SyncClient
    from ratifier.config import Settings
    from ratifier.errors import (
        ConfigError,
        PolicyError,
        RatifierError,
        ValidatorError,
        ValidatorTimeout,
        WireFormatError,
    )
    from ratifier.generator import Revision
    from ratifier.models import (
        AttemptRecord,
        Candidate,
        DeadLetter,
        DeadLetterReason,
        Decision,
        EscalationPacket,
        EscalationReason,
        FailureReason,
        Judgement,
        OutcomeClass,
        PassDecision,
        Reason,
        RetryRequest,
        Severity,
        Span,
        Verdict,
        Vote,
    )
    from ratifier.policy import Policy, load_policies

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "Client": "ratifier.client",
    "SyncClient": "ratifier.client",
    "Settings": "ratifier.config",
    "ConfigError": "ratifier.errors",
    "PolicyError": "ratifier.errors",
    "RatifierError": "ratifier.errors",
    "ValidatorError": "ratifier.errors",
    "ValidatorTimeout": "ratifier.errors",
    "WireFormatError": "ratifier.errors",
    "Revision": "ratifier.generator",
    "AttemptRecord": "ratifier.models",
    "Candidate": "ratifier.models",
    "DeadLetter": "ratifier.models",
    "DeadLetterReason": "ratifier.models",
    "Decision": "ratifier.models",
    "EscalationPacket": "ratifier.models",
    "EscalationReason": "ratifier.models",
    "FailureReason": "ratifier.models",
    "Judgement": "ratifier.models",
    "OutcomeClass": "ratifier.models",
    "PassDecision": "ratifier.models",
    "Reason": "ratifier.models",
    "RetryRequest": "ratifier.models",
    "Severity": "ratifier.models",
    "Span": "ratifier.models",
    "Verdict": "ratifier.models",
    "Vote": "ratifier.models",
    "Policy": "ratifier.policy",
    "load_policies": "ratifier.policy",
}

__all__ = [
    "AttemptRecord",
    "Candidate",
    "Client",
    "ConfigError",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "EscalationPacket",
    "EscalationReason",
    "FailureReason",
    "Judgement",
    "OutcomeClass",
    "PassDecision",
    "Policy",
    "PolicyError",
    "RatifierError",
    "Reason",
    "RetryRequest",
    "Revision",
    "Settings",
    "Severity",
    "Span",
    "SyncClient",
    "ValidatorError",
    "ValidatorTimeout",
    "Verdict",
    "Vote",
    "WireFormatError",
    "load_policies",
]


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
