"""Topic and consumer-group names, derived from the topic prefix in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ratifier.core.config import Settings

# The tally's table of cases; faust names its changelog topic after the app id and this.
TALLY_TABLE = "cases"


@dataclass(frozen=True, slots=True)
class TopicNames:
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        return cls(settings.topic_prefix)

    @property
    def key_prefix(self) -> str:
        """Every Redis key Ratifier writes starts with the topic prefix: one Redis serves many."""
        return f"{self.prefix}:"

    @property
    def candidates(self) -> str:
        return f"{self.prefix}.candidates"

    @property
    def verdicts(self) -> str:
        return f"{self.prefix}.verdicts"

    @property
    def passed(self) -> str:
        return f"{self.prefix}.decisions.pass"

    @property
    def retry(self) -> str:
        return f"{self.prefix}.decisions.retry"

    @property
    def escalate(self) -> str:
        return f"{self.prefix}.decisions.escalate"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def outcomes(self) -> str:
        """Every case's one final outcome with its provenance (the outcomes runtime writes it)."""
        return f"{self.prefix}.outcomes"

    @property
    def alerts(self) -> str:
        """The monitor's alarms, raised and cleared (docs/monitoring.md)."""
        return f"{self.prefix}.alerts"

    @property
    def rounds(self) -> str:
        """Debate rounds the tally opens (RoundRequest, docs/debate.md), keyed by case id."""
        return f"{self.prefix}.rounds"

    @property
    def decisions(self) -> tuple[str, str, str]:
        return (self.passed, self.retry, self.escalate)

    @property
    def public(self) -> tuple[str, ...]:
        """The topics Ratifier creates for users, in a stable order."""
        return (
            self.candidates,
            self.verdicts,
            *self.decisions,
            self.deadletter,
            self.outcomes,
            self.alerts,
            self.rounds,
        )

    def validator_group(self, validator_id: str) -> str:
        return f"{self.prefix}.validator.{validator_id}"

    def generator_group(self, generator_id: str) -> str:
        return f"{self.prefix}.generator.{generator_id}"

    @property
    def outcomes_group(self) -> str:
        """The outcomes runtime's consumer group (and transactional id)."""
        return f"{self.prefix}.outcomes"

    @property
    def review_feed_group(self) -> str:
        """The consumer group that feeds escalations into the review queue."""
        return f"{self.prefix}.review"

    @property
    def trusted_group(self) -> str:
        """The consumer group that writes the trusted answers store from the outcomes."""
        return f"{self.prefix}.trusted"

    @property
    def monitor_group(self) -> str:
        """The governance monitor's consumer group."""
        return f"{self.prefix}.monitor"

    @property
    def tally_app_id(self) -> str:
        return f"{self.prefix}.tally"

    @property
    def tally_changelog(self) -> str:
        return f"{self.tally_app_id}-{TALLY_TABLE}-changelog"  # faust: <app>-<table>-changelog
