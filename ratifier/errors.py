"""Ratifier's exceptions, one tree rooted at :class:`RatifierError`.

    RatifierError
    ├── ConfigError             settings or environment are wrong (retry does not help)
    ├── PolicyError             a policy file is invalid or unknown (retry does not help)
    ├── StackError              the local Kafka/Redis stack cannot start or answer
    │   ├── PrerequisiteMissing Java, Maven or redis-server is not installed
    │   ├── PortInUse           a port the stack needs is taken by another process
    │   └── JarResolutionFailed Maven could not resolve the broker jars
    ├── WireFormatError         bytes are not a record Ratifier understands (retry does not help)
    │   └── UnknownSchema       a single-object fingerprint names no known schema
    └── ValidatorError          a validator callable failed (becomes an ABSTAIN verdict)
        └── ValidatorTimeout    it exceeded its time limit

``retriable`` says whether trying the same thing again may succeed.
"""

from __future__ import annotations


class RatifierError(Exception):
    retriable: bool = False


class ConfigError(RatifierError):
    pass


class PolicyError(RatifierError):
    pass


class StackError(RatifierError):
    retriable = True


class PrerequisiteMissing(StackError):
    retriable = False


class PortInUse(StackError):
    retriable = False


class JarResolutionFailed(StackError):
    pass


class WireFormatError(RatifierError):
    pass


class UnknownSchema(WireFormatError):
    pass


class ValidatorError(RatifierError):
    retriable = True


class ValidatorTimeout(ValidatorError):
    pass
