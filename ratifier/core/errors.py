"""Ratifier's exceptions, one tree rooted at :class:`RatifierError`.

RatifierError
├── ConfigError             settings or environment are wrong
│   ├── TopicsMissing       the topics a client needs do not exist (wrong prefix, no stack)
│   └── Unreachable         Kafka or Redis does not answer at its configured address
├── PolicyError             a policy file is invalid or unknown
├── WaitTimeout             a condition waited for did not hold in time (also a TimeoutError)
├── StackError              the local Kafka/Redis stack cannot start or answer
│   ├── PrerequisiteMissing Java, Maven or redis-server is not installed
│   ├── PortInUse           a port the stack needs is taken by another process
│   └── JarResolutionFailed Maven could not resolve the broker jars
├── WireFormatError         bytes are not a record Ratifier understands
│   └── UnknownSchema       a single-object fingerprint names no known schema
├── CandidateRejected       the tally dead-lettered a candidate the client sent
├── ValidatorError          a validator callable failed (becomes an ABSTAIN verdict)
│   └── ValidatorTimeout    it exceeded its time limit
└── ReviewError             a review action was refused; nothing was changed
    ├── UnknownReviewer     no reviewer has that token or id
    ├── UnknownItem         no review item for that case
    ├── AlreadyResolved     the item was resolved already (by this or another reviewer)
    ├── StaleClaim          the reviewer's claim timed out or another reviewer holds the item
    └── InvalidResolution   the resolution itself is wrong (empty correction, unknown candidate)
"""

from __future__ import annotations

from collections.abc import Iterable


class RatifierError(Exception):
    pass


class ConfigError(RatifierError):
    pass


class TopicsMissing(ConfigError):
    """Topics a consumer was to read do not exist: usually a wrong topic prefix."""

    def __init__(self, topics: Iterable[str], bootstrap_servers: str | None = None) -> None:
        self.topics = tuple(topics)
        where = f" at {bootstrap_servers}" if bootstrap_servers else ""
        super().__init__(
            f"topics {', '.join(self.topics)} do not exist{where}: is RATIFIER_TOPIC_PREFIX "
            "right? (`ratifier stack up` creates them)"
        )


class Unreachable(ConfigError):
    """Kafka or Redis did not answer at its address: one line naming it, its setting, a check."""

    def __init__(self, service: str, address: str, variable: str, waited_s: float, check: str):
        self.service, self.address, self.variable = service, address, variable
        super().__init__(
            f"cannot reach {service} at {address} ({variable}) within {waited_s:g} s: {check}"
        )


class PolicyError(RatifierError):
    pass


class WaitTimeout(RatifierError, TimeoutError):
    """A condition waited for (ratifier.core.polling) did not hold before the deadline."""


class StackError(RatifierError):
    pass


class PrerequisiteMissing(StackError):
    pass


class PortInUse(StackError):
    pass


class JarResolutionFailed(StackError):
    pass


class WireFormatError(RatifierError):
    pass


class UnknownSchema(WireFormatError):
    pass


class CandidateRejected(RatifierError):
    """The tally dead-lettered a candidate: no decision will ever come for it.

    ``reason`` is the dead letter's reason code (e.g. ``UNKNOWN_POLICY``, ``TOO_LARGE``) and
    ``detail`` its sentence; ``source`` is where the candidate was written (topic, partition,
    offset), the dead letter's source too.
    """

    def __init__(
        self, case_id: str, reason: str, detail: str, source: tuple[str, int, int]
    ) -> None:
        self.case_id = case_id
        self.reason = reason
        self.detail = detail
        self.source = source
        topic, partition, offset = source
        super().__init__(
            f"the tally rejected the candidate for case {case_id} ({reason}): {detail} "
            f"[dead letter of {topic}[{partition}]@{offset}]"
        )


class ValidatorError(RatifierError):
    pass


class ValidatorTimeout(ValidatorError):
    pass


class ReviewError(RatifierError):
    """A review action was refused; the queue, the item and the outcomes are unchanged."""


class UnknownReviewer(ReviewError):
    pass


class UnknownItem(ReviewError):
    pass


class AlreadyResolved(ReviewError):
    pass


class StaleClaim(ReviewError):
    pass


class InvalidResolution(ReviewError):
    pass
