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
    from ratifier.core.config import Settings
    from ratifier.core.errors import (
        ConfigError,
        PolicyError,
        RatifierError,
        ValidatorError,
        ValidatorTimeout,
        WireFormatError,
    )
    from ratifier.core.models import (
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
    from ratifier.core.policy import Policy, load_policies
    from ratifier.io.client import Client, SyncClient
    from ratifier.runtimes.generator import Revision

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "Client": "ratifier.io.client",
    "SyncClient": "ratifier.io.client",
    "Settings": "ratifier.core.config",
    "ConfigError": "ratifier.core.errors",
    "PolicyError": "ratifier.core.errors",
    "RatifierError": "ratifier.core.errors",
    "ValidatorError": "ratifier.core.errors",
    "ValidatorTimeout": "ratifier.core.errors",
    "WireFormatError": "ratifier.core.errors",
    "Revision": "ratifier.runtimes.generator",
    "AttemptRecord": "ratifier.core.models",
    "Candidate": "ratifier.core.models",
    "DeadLetter": "ratifier.core.models",
    "DeadLetterReason": "ratifier.core.models",
    "Decision": "ratifier.core.models",
    "EscalationPacket": "ratifier.core.models",
    "EscalationReason": "ratifier.core.models",
    "FailureReason": "ratifier.core.models",
    "Judgement": "ratifier.core.models",
    "OutcomeClass": "ratifier.core.models",
    "PassDecision": "ratifier.core.models",
    "Reason": "ratifier.core.models",
    "RetryRequest": "ratifier.core.models",
    "Severity": "ratifier.core.models",
    "Span": "ratifier.core.models",
    "Verdict": "ratifier.core.models",
    "Vote": "ratifier.core.models",
    "Policy": "ratifier.core.policy",
    "load_policies": "ratifier.core.policy",
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
