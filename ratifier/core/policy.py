"""Governance policy: who votes, with what weight, and what it takes to pass.

A policy is a TOML file (see ``docs/policy.md``). :func:`load_policy` reads one file,
:func:`load_policies` a folder of them (by default the built-in ``ratifier/core/policies/``), and
:meth:`Policy.from_mapping` builds one from already-parsed data. Every problem raises
:class:`~ratifier.core.errors.PolicyError` naming the file and the field, and unknown keys are
rejected so that a typo never passes silently.

The :class:`Policy` object precomputes what the tally's hot path needs: the voters and red-team
validators, a validator lookup by id, and per-category voter weight tables.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ratifier.core.errors import PolicyError
from ratifier.core.signing import KeyRing, PublicKeySpec, SignatureMode, decode_public_key

__all__ = [
    "NAME_PATTERN",
    "Debate",
    "MonitorSettings",
    "Policy",
    "Role",
    "Supermajority",
    "Threshold",
    "ValidatorSpec",
    "VoterWeights",
    "load_policies",
    "load_policy",
]

# What a policy name or a validator id may hold.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
DEFAULT_RELIABILITY = 0.8
# Every round repeats every validator's call and keeps its verdicts in the case (the record
# size bound grows with it, streams/limits.py): ten is far past where debates stop converging.
MAX_DEBATE_ROUNDS = 10
_MEMORY_SOURCE = "<policy>"


class Role(StrEnum):
    VOTER = "voter"  # counts toward the threshold
    RED_TEAM = "red-team"  # never counts; a CRITICAL rejection is a veto


@dataclass(frozen=True, slots=True)
class ValidatorSpec:
    id: str
    weight: float = 1.0
    role: Role = Role.VOTER
    category_weights: Mapping[str, float] = field(default_factory=dict)
    # Probability that its vote is right (one-coin model); sets the weight of its evidence in a
    # pass's posterior confidence (streams/rules/consensus.py), never whether a candidate passes.
    reliability: float = DEFAULT_RELIABILITY
    # Public keys its verdicts may be signed with (several during a rotation; docs/signing.md).
    keys: tuple[PublicKeySpec, ...] = ()

    def weight_for(self, category: str) -> float:
        """The weight for a candidate of ``category``: its own weight, else the default."""
        return self.category_weights.get(category, self.weight)

    def __hash__(self) -> int:
        # The mapping is not hashable itself; policies are hashable so they can key caches.
        return hash(
            (
                self.id,
                self.weight,
                self.role,
                frozenset(self.category_weights.items()),
                self.reliability,
                self.keys,
            )
        )


@dataclass(frozen=True, slots=True)
class Threshold:
    """Exactly one of: ``accepts`` (M accepting voters) or ``ratio`` (accepting weight share)."""

    accepts: int | None = None
    ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Supermajority:
    """The attempt supermajority (``[supermajority]``, kept for existing policies): before
    attempt ``min_rounds`` a pass also needs this weight share. Debates are ``[debate]``."""

    ratio: float
    min_rounds: int


@dataclass(frozen=True, slots=True)
class Debate:
    """Debate rounds within an attempt (``[debate]``, docs/debate.md): validators see the
    previous round's verdicts; after at least ``min_rounds`` a ``supermajority`` weight share
    either way ends the debate, else it fails at ``max_rounds`` (NO_SUPERMAJORITY)."""

    min_rounds: int = 2
    max_rounds: int = 4
    supermajority: float = 0.75
    anonymise: bool = True


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """The governance monitor's alarm limits for a policy's cases (``[monitor]``, docs/policy.md).

    The tally ignores them; every field has a default, so policies without the table keep working.
    """

    # Vote inflation: a validator's rejection rate in a category under this, over at least
    # inflation_min_verdicts verdicts in the window (a validator that approves everything).
    inflation_max_rejection_rate: float = 0.05
    inflation_min_verdicts: int = 200
    # Drift: the rejection rate of a validator's last drift_window verdicts against the
    # drift_window before them; alarm when the two-proportion z-test's |z| reaches drift_max_z.
    drift_window: int = 500
    drift_max_z: float = 4.0
    # Correlated validators: Cohen's kappa of a pair over the attempts that failed, above this,
    # over at least correlation_min_attempts such attempts both judged.
    correlation_max_kappa: float = 0.8
    correlation_min_attempts: int = 50
    # Escalation capacity: escalations in the last hour above what reviewers handle (0: no alarm).
    review_capacity_per_hour: int = 0
    # Time to decision (candidate produced -> decided), the SLO: alarm when the window's p95 is
    # above this many seconds, over at least time_to_decision_min_decisions (0: no alarm).
    time_to_decision_p95_max_seconds: float = 0.0
    time_to_decision_min_decisions: int = 20


@dataclass(frozen=True, slots=True)
class VoterWeights:
    """The voters' weights for one category, in policy order, and their total."""

    weights: tuple[tuple[str, float], ...]
    total: float


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    version: str
    validators: tuple[ValidatorSpec, ...]
    threshold: Threshold
    supermajority: Supermajority | None = None
    # Debate rounds within each attempt; None: one round (every policy before debates).
    debate: Debate | None = None
    max_attempts: int = 3
    window_ms: int = 30_000
    veto_escalates: bool = False
    # Prior probability that a candidate is acceptable, before any vote (the posterior's start).
    prior: float = 0.5
    # Hold a failing attempt's decision until every validator answered or the window closed, so
    # retry dissent and escalation packets carry every verdict (a pass is never held).
    complete_packets: bool = True
    # Carry earlier attempts in states and escalation packets by reference (their retry
    # request's decision id and stubs) instead of in full, so long retry chains fit a record.
    reference_earlier_attempts: bool = False
    # Escalate (RETRY_NOT_DIFFERENT) a retry whose candidate is at least this similar (rapidfuzz
    # ratio, 0..1) to the previous attempt's; None: no guard.
    max_retry_similarity: float | None = None
    # Online reliability ([reliability] learn = "online"): voters' weights and reliabilities are
    # learned from decided cases (ratifier.streams.rules.learning) instead of read from this file;
    # learning starts every validator at learned_prior, as if seen learned_strength times.
    learn_reliability: bool = False
    learned_prior: float = 0.8
    learned_strength: float = 2.0
    # Policies naming the same model share what they learn (a validator's reliability is its
    # own, whichever policy lists it); None: the policy's name.
    learned_model: str | None = None
    # What the tally does with verdict signatures (docs/signing.md); off: not looked at.
    signatures: SignatureMode = SignatureMode.OFF
    monitor: MonitorSettings = MonitorSettings()  # the monitor's alarm limits (not the tally's)
    # Where the policy came from, for error messages; not part of its identity.
    source: str = field(default=_MEMORY_SOURCE, compare=False)
    # Precomputed in __post_init__ for the hot path.
    voters: tuple[ValidatorSpec, ...] = field(init=False, compare=False, repr=False)
    red_team: tuple[ValidatorSpec, ...] = field(init=False, compare=False, repr=False)
    red_team_ids: tuple[str, ...] = field(init=False, compare=False, repr=False)
    _by_id: Mapping[str, ValidatorSpec] = field(init=False, compare=False, repr=False)
    _default_weights: VoterWeights = field(init=False, compare=False, repr=False)
    _weights_by_category: Mapping[str, VoterWeights] = field(init=False, compare=False, repr=False)
    key_ring: KeyRing = field(init=False, compare=False, repr=False)  # parsed once, for the tally

    def __post_init__(self) -> None:
        self._check()
        voters = tuple(v for v in self.validators if v.role is Role.VOTER)
        red_team = tuple(v for v in self.validators if v.role is Role.RED_TEAM)
        set_ = object.__setattr__  # frozen dataclass: derived fields are set once, here
        set_(self, "voters", voters)
        set_(self, "red_team", red_team)
        set_(self, "red_team_ids", tuple(v.id for v in red_team))
        set_(self, "_by_id", {v.id: v for v in self.validators})
        set_(self, "_default_weights", _voter_weights(voters, category=None))
        # Only categories some voter names get their own table, so the cache stays bounded
        # no matter which categories candidates carry.
        named = sorted({c for v in voters for c in v.category_weights})
        set_(self, "_weights_by_category", {c: _voter_weights(voters, c) for c in named})
        set_(self, "key_ring", KeyRing((v.id, key) for v in self.validators for key in v.keys))

    def validator(self, validator_id: str) -> ValidatorSpec | None:
        return self._by_id.get(validator_id)

    def voter_weights(self, category: str) -> VoterWeights:
        """The voters' weights for a candidate of ``category`` (precomputed, no allocation)."""
        return self._weights_by_category.get(category, self._default_weights)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = _MEMORY_SOURCE) -> Policy:
        """Build a policy from parsed TOML data; ``source`` names it in error messages."""
        return _parse_policy(data, source)

    def _check(self) -> None:
        where = self.source
        if not self.validators:
            raise PolicyError(f"{where}: validators: at least one validator is required")
        seen: set[str] = set()
        for spec in self.validators:
            _check_validator(spec, where)
            if spec.id in seen:
                raise PolicyError(f"{where}: validators: duplicate validator id {spec.id!r}")
            seen.add(spec.id)
        n_voters = sum(1 for v in self.validators if v.role is Role.VOTER)
        if n_voters == 0:
            raise PolicyError(f"{where}: validators: at least one validator must be a voter")
        _check_threshold(self.threshold, n_voters, where)
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise PolicyError(f"{where}: max_attempts must be >= 1, got {self.max_attempts!r}")
        if not isinstance(self.window_ms, int) or self.window_ms < 1:
            raise PolicyError(f"{where}: window_seconds must be > 0 (at least 1 ms)")
        if self.supermajority is not None:
            _check_supermajority(self.supermajority, self.max_attempts, where)
        if self.debate is not None:
            _check_debate(self.debate, where)
            if self.supermajority is not None:
                raise PolicyError(
                    f"{where}: [supermajority] (per attempt) and [debate] cannot be combined: "
                    f"a debate's supermajority is debate.supermajority (docs/debate.md)"
                )
        _check_monitor(self.monitor, where)
        _check_signatures(self, where)
        if not (math.isfinite(self.prior) and 0 < self.prior < 1):
            raise PolicyError(f"{where}: prior must be in (0, 1), got {self.prior}")
        similarity = self.max_retry_similarity
        if similarity is not None and not _ratio_in_range(similarity):
            raise PolicyError(
                f"{where}: retry_guard.max_similarity must be in (0, 1], got {similarity}"
            )
        if not (math.isfinite(self.learned_prior) and 0.5 < self.learned_prior < 1):
            raise PolicyError(f"{where}: reliability.prior must be in (0.5, 1)")
        if not _positive_number(self.learned_strength):
            raise PolicyError(f"{where}: reliability.strength must be > 0")


def _voter_weights(voters: tuple[ValidatorSpec, ...], category: str | None) -> VoterWeights:
    pairs = tuple((v.id, v.weight if category is None else v.weight_for(category)) for v in voters)
    # Summed left to right in policy order, exactly as the tally sums accepting weight, so that
    # "every voter accepts" gives a share of exactly 1.0.
    total = 0.0
    for _, weight in pairs:
        total += weight
    return VoterWeights(pairs, total)


def _check_validator(spec: ValidatorSpec, where: str) -> None:
    if not NAME_PATTERN.fullmatch(spec.id):
        raise PolicyError(
            f"{where}: validators.id {spec.id!r} may hold only letters, digits, '.', '_' and '-'"
        )
    if not _positive_number(spec.weight):
        raise PolicyError(f"{where}: validator {spec.id!r}: weight must be > 0, got {spec.weight}")
    for category, weight in spec.category_weights.items():
        if not _positive_number(weight):
            raise PolicyError(
                f"{where}: validator {spec.id!r}: category_weights.{category} must be > 0, "
                f"got {weight}"
            )
    if not (math.isfinite(spec.reliability) and 0.5 < spec.reliability < 1):
        raise PolicyError(
            f"{where}: validator {spec.id!r}: reliability must be in (0.5, 1), "
            f"got {spec.reliability}"
        )


def _check_monitor(settings: MonitorSettings, where: str) -> None:
    for name in ("inflation_max_rejection_rate", "correlation_max_kappa"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise PolicyError(f"{where}: monitor.{name} must be in [0, 1], got {value}")
    slo = settings.time_to_decision_p95_max_seconds
    if not (math.isfinite(slo) and slo >= 0):
        raise PolicyError(
            f"{where}: monitor.time_to_decision_p95_max_seconds must be >= 0 (0: no alarm), "
            f"got {slo}"
        )
    names = ("inflation_min_verdicts", "drift_window", "correlation_min_attempts")
    for name in (*names, "time_to_decision_min_decisions"):
        if getattr(settings, name) < 1:
            raise PolicyError(
                f"{where}: monitor.{name} must be >= 1, got {getattr(settings, name)}"
            )
    if not _positive_number(settings.drift_max_z):
        raise PolicyError(f"{where}: monitor.drift_max_z must be > 0, got {settings.drift_max_z}")
    if settings.review_capacity_per_hour < 0:
        raise PolicyError(
            f"{where}: monitor.review_capacity_per_hour must be >= 0 (0: no alarm), "
            f"got {settings.review_capacity_per_hour}"
        )


def _check_threshold(threshold: Threshold, n_voters: int, where: str) -> None:
    if (threshold.accepts is None) == (threshold.ratio is None):
        raise PolicyError(f"{where}: threshold: set exactly one of 'accepts' or 'ratio'")
    if threshold.accepts is not None and not 1 <= threshold.accepts <= n_voters:
        raise PolicyError(
            f"{where}: threshold.accepts must be between 1 and the number of voters "
            f"({n_voters}), got {threshold.accepts}"
        )
    if threshold.ratio is not None and not _ratio_in_range(threshold.ratio):
        raise PolicyError(f"{where}: threshold.ratio must be in (0, 1], got {threshold.ratio}")


def _check_supermajority(rule: Supermajority, max_attempts: int, where: str) -> None:
    if not _ratio_in_range(rule.ratio):
        raise PolicyError(f"{where}: supermajority.ratio must be in (0, 1], got {rule.ratio}")
    if not 1 <= rule.min_rounds <= max_attempts:
        raise PolicyError(
            f"{where}: supermajority.min_rounds must be between 1 and max_attempts "
            f"({max_attempts}), got {rule.min_rounds}"
        )


def _check_debate(debate: Debate, where: str) -> None:
    if not 1 <= debate.min_rounds <= debate.max_rounds:
        raise PolicyError(
            f"{where}: debate: need 1 <= min_rounds <= max_rounds, got min_rounds = "
            f"{debate.min_rounds}, max_rounds = {debate.max_rounds}"
        )
    if debate.max_rounds > MAX_DEBATE_ROUNDS:
        raise PolicyError(
            f"{where}: debate.max_rounds must be at most {MAX_DEBATE_ROUNDS}, "
            f"got {debate.max_rounds}"
        )
    if not (math.isfinite(debate.supermajority) and 0.5 < debate.supermajority <= 1):
        # At or below one half both sides could hold it at once.
        raise PolicyError(
            f"{where}: debate.supermajority must be in (0.5, 1], got {debate.supermajority}"
        )


def _positive_number(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _ratio_in_range(value: float) -> bool:
    return math.isfinite(value) and 0 < value <= 1


# --- parsing: TOML data -> Policy --------------------------------------------------------------

_TOP_KEYS = frozenset(
    {"name", "version", "max_attempts", "window_seconds", "threshold", "supermajority", "monitor"}
    | {"veto", "validators", "prior", "complete_packets", "retry_guard", "signatures"}
    | {"reliability", "earlier_attempts", "debate"}
)
_VALIDATOR_KEYS = frozenset({"id", "weight", "role", "category_weights", "reliability", "keys"})


def _parse_policy(data: Mapping[str, Any], source: str) -> Policy:
    fields_ = _Fields(data, source, prefix="")
    fields_.reject_unknown(_TOP_KEYS)
    name = fields_.string("name")
    if not NAME_PATTERN.fullmatch(name):
        raise PolicyError(f"{source}: name {name!r} may hold only letters, digits, '.', '_', '-'")
    window_seconds = fields_.number("window_seconds", default=30.0)
    window_ms = round(window_seconds * 1000)
    if window_ms < 1:
        raise PolicyError(f"{source}: window_seconds must be > 0, got {window_seconds}")
    threshold = fields_.optional_table("threshold")
    if threshold is None:
        raise PolicyError(f"{source}: [threshold] is required (accepts = M or ratio = r)")
    return Policy(
        name=name,
        version=fields_.string("version"),
        validators=_parse_validators(data.get("validators"), source),
        threshold=_parse_threshold(threshold, source),
        supermajority=_parse_supermajority(fields_.optional_table("supermajority"), source),
        debate=_parse_debate(fields_.optional_table("debate"), source),
        max_attempts=fields_.integer("max_attempts", default=3),
        window_ms=window_ms,
        veto_escalates=_parse_veto(fields_.optional_table("veto"), source),
        prior=fields_.number("prior", default=0.5),
        complete_packets=fields_.boolean("complete_packets", default=True),
        reference_earlier_attempts=_parse_earlier_attempts(
            fields_.string("earlier_attempts", default="full"), source
        ),
        max_retry_similarity=_parse_retry_guard(fields_.optional_table("retry_guard"), source),
        **_parse_reliability(fields_.optional_table("reliability"), source),
        signatures=_parse_signature_mode(fields_.string("signatures", default="off"), source),
        monitor=_parse_monitor(fields_.optional_table("monitor"), source),
        source=source,
    )


def _parse_monitor(table: Mapping[str, Any] | None, source: str) -> MonitorSettings:
    if table is None:
        return MonitorSettings()
    fields_ = _Fields(table, source, prefix="monitor.")
    fields_.reject_unknown(frozenset(MonitorSettings.__dataclass_fields__))
    default = MonitorSettings()
    return MonitorSettings(
        inflation_max_rejection_rate=fields_.number(
            "inflation_max_rejection_rate", default=default.inflation_max_rejection_rate
        ),
        inflation_min_verdicts=fields_.integer(
            "inflation_min_verdicts", default=default.inflation_min_verdicts
        ),
        drift_window=fields_.integer("drift_window", default=default.drift_window),
        drift_max_z=fields_.number("drift_max_z", default=default.drift_max_z),
        correlation_max_kappa=fields_.number(
            "correlation_max_kappa", default=default.correlation_max_kappa
        ),
        correlation_min_attempts=fields_.integer(
            "correlation_min_attempts", default=default.correlation_min_attempts
        ),
        review_capacity_per_hour=fields_.integer(
            "review_capacity_per_hour", default=default.review_capacity_per_hour
        ),
        time_to_decision_p95_max_seconds=fields_.number(
            "time_to_decision_p95_max_seconds", default=default.time_to_decision_p95_max_seconds
        ),
        time_to_decision_min_decisions=fields_.integer(
            "time_to_decision_min_decisions", default=default.time_to_decision_min_decisions
        ),
    )


def _parse_threshold(table: Mapping[str, Any], source: str) -> Threshold:
    fields_ = _Fields(table, source, prefix="threshold.")
    fields_.reject_unknown(frozenset({"accepts", "ratio"}))
    return Threshold(
        accepts=fields_.optional_integer("accepts"), ratio=fields_.optional_number("ratio")
    )


def _parse_supermajority(table: Mapping[str, Any] | None, source: str) -> Supermajority | None:
    if table is None:
        return None
    fields_ = _Fields(table, source, prefix="supermajority.")
    fields_.reject_unknown(frozenset({"ratio", "min_rounds"}))
    return Supermajority(ratio=fields_.number("ratio"), min_rounds=fields_.integer("min_rounds"))


def _parse_debate(table: Mapping[str, Any] | None, source: str) -> Debate | None:
    if table is None:
        return None
    fields_ = _Fields(table, source, prefix="debate.")
    fields_.reject_unknown(frozenset(Debate.__dataclass_fields__))
    default = Debate()
    return Debate(
        min_rounds=fields_.integer("min_rounds", default=default.min_rounds),
        max_rounds=fields_.integer("max_rounds", default=default.max_rounds),
        supermajority=fields_.number("supermajority", default=default.supermajority),
        anonymise=fields_.boolean("anonymise", default=default.anonymise),
    )


def _parse_earlier_attempts(value: str, source: str) -> bool:
    if value not in ("full", "referenced"):
        raise PolicyError(
            f"{source}: earlier_attempts must be 'full' or 'referenced', got {value!r}"
        )
    return value == "referenced"


def _parse_veto(table: Mapping[str, Any] | None, source: str) -> bool:
    if table is None:
        return False
    fields_ = _Fields(table, source, prefix="veto.")
    fields_.reject_unknown(frozenset({"action"}))
    action = fields_.string("action")
    if action not in ("retry", "escalate"):
        raise PolicyError(f"{source}: veto.action must be 'retry' or 'escalate', got {action!r}")
    return action == "escalate"


def _parse_reliability(table: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    if table is None:
        return {}
    fields_ = _Fields(table, source, prefix="reliability.")
    fields_.reject_unknown(frozenset({"learn", "prior", "strength", "model"}))
    learn = fields_.string("learn", default="fixed")
    if learn not in ("fixed", "online"):
        raise PolicyError(f"{source}: reliability.learn must be 'fixed' or 'online', got {learn!r}")
    return {
        "learn_reliability": learn == "online",
        "learned_prior": fields_.number("prior", default=0.8),
        "learned_strength": fields_.number("strength", default=2.0),
        "learned_model": fields_.string("model") if "model" in table else None,
    }


def _parse_retry_guard(table: Mapping[str, Any] | None, source: str) -> float | None:
    if table is None:
        return None
    fields_ = _Fields(table, source, prefix="retry_guard.")
    fields_.reject_unknown(frozenset({"max_similarity"}))
    return fields_.number("max_similarity")


def _parse_validators(value: Any, source: str) -> tuple[ValidatorSpec, ...]:
    if value is None:
        raise PolicyError(f"{source}: validators: at least one [[validators]] entry is required")
    if not isinstance(value, list):
        raise PolicyError(f"{source}: validators must be an array of tables ([[validators]])")
    return tuple(_parse_validator(entry, index, source) for index, entry in enumerate(value))


def _parse_validator(entry: Any, index: int, source: str) -> ValidatorSpec:
    prefix = f"validators[{index}]."
    fields_ = _Fields(entry, source, prefix=prefix)
    fields_.reject_unknown(_VALIDATOR_KEYS)
    role_name = fields_.string("role", default=Role.VOTER.value)
    try:
        role = Role(role_name)
    except ValueError:
        raise PolicyError(
            f"{source}: {prefix}role must be 'voter' or 'red-team', got {role_name!r}"
        ) from None
    return ValidatorSpec(
        id=fields_.string("id"),
        weight=fields_.number("weight", default=1.0),
        role=role,
        category_weights=_parse_category_weights(
            fields_.optional_table("category_weights"), f"{prefix}category_weights.", source
        ),
        reliability=fields_.number("reliability", default=DEFAULT_RELIABILITY),
        keys=_parse_keys(entry.get("keys"), f"{prefix}keys", source),
    )


def _parse_category_weights(
    table: Mapping[str, Any] | None, prefix: str, source: str
) -> dict[str, float]:
    if table is None:
        return {}
    fields_ = _Fields(table, source, prefix=prefix)
    return {category: fields_.number(category) for category in table}


# --- signatures (docs/signing.md) ----------------------------------------------------------------


def _check_signatures(policy: Policy, where: str) -> None:
    for spec in policy.validators:
        ids = [key.key_id for key in spec.keys]
        if len(set(ids)) != len(ids):
            raise PolicyError(
                f"{where}: validator {spec.id!r}: the same public key is listed twice"
            )
        for key in spec.keys:
            before, after = key.not_before_ms, key.not_after_ms
            if before is not None and after is not None and after < before:
                raise PolicyError(
                    f"{where}: validator {spec.id!r}: key {key.key_id}: not_after is before "
                    f"not_before"
                )
        if policy.signatures is SignatureMode.REQUIRED and not spec.keys:
            raise PolicyError(
                f'{where}: signatures = "required", but validator {spec.id!r} lists no keys '
                f"(every verdict of it would be dead-lettered)"
            )


def _parse_signature_mode(value: str, source: str) -> SignatureMode:
    try:
        return SignatureMode(value)
    except ValueError:
        modes = ", ".join(repr(mode.value) for mode in SignatureMode)
        raise PolicyError(f"{source}: signatures must be one of {modes}, got {value!r}") from None


def _parse_keys(value: Any, prefix: str, source: str) -> tuple[PublicKeySpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"{source}: {prefix} must be an array of tables ([[validators.keys]])")
    return tuple(
        _parse_key(entry, f"{prefix}[{index}].", source) for index, entry in enumerate(value)
    )


def _parse_key(entry: Any, prefix: str, source: str) -> PublicKeySpec:
    fields_ = _Fields(entry, source, prefix=prefix)
    fields_.reject_unknown(frozenset({"public_key", "not_before", "not_after"}))
    text = fields_.string("public_key")
    try:
        raw = decode_public_key(text)
    except ValueError as exc:
        raise PolicyError(
            f"{source}: {prefix}public_key is not an Ed25519 public key: {exc}"
        ) from None
    return PublicKeySpec(
        raw,
        _parse_instant(entry.get("not_before"), f"{prefix}not_before", source),
        _parse_instant(entry.get("not_after"), f"{prefix}not_after", source),
    )


def _parse_instant(value: Any, name: str, source: str) -> int | None:
    """A TOML offset date-time (or its RFC 3339 text) as epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PolicyError(f"{source}: {name} is not a date-time, got {value!r}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise PolicyError(
            f"{source}: {name} must be a date-time with a UTC offset "
            f"(e.g. 2027-01-01T00:00:00Z), got {value!r}"
        )
    return round(value.timestamp() * 1000)


class _Fields:
    """Typed access to one TOML table, with errors that name the file and the dotted field."""

    def __init__(self, data: Any, source: str, prefix: str) -> None:
        if not isinstance(data, Mapping):
            raise PolicyError(f"{source}: {prefix.rstrip('.') or 'policy'} must be a table")
        self._data: Mapping[str, Any] = data
        self._source = source
        self._prefix = prefix

    def reject_unknown(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self._data) - allowed)
        if unknown:
            names = ", ".join(f"{self._prefix}{key}" for key in unknown)
            raise PolicyError(
                f"{self._source}: unknown key(s) {names} (allowed: {', '.join(sorted(allowed))})"
            )

    def string(self, key: str, default: str | None = None) -> str:
        value = self._required(key) if default is None else self._data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self._error(key, "must be a non-empty string", value)
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self._required(key) if default is None else self._data.get(key, default)
        # bool is an int subclass: `accepts = true` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(key, "must be an integer", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key, default)
        if not isinstance(value, bool):
            raise self._error(key, "must be true or false", value)
        return value

    def optional_integer(self, key: str) -> int | None:
        return self.integer(key) if key in self._data else None

    def number(self, key: str, default: float | None = None) -> float:
        value = self._required(key) if default is None else self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(key, "must be a number", value)
        if not math.isfinite(value):
            raise self._error(key, "must be finite", value)
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return self.number(key) if key in self._data else None

    def optional_table(self, key: str) -> Mapping[str, Any] | None:
        value = self._data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise self._error(key, "must be a table", value)
        return value

    def _required(self, key: str) -> Any:
        if key not in self._data:
            raise PolicyError(f"{self._source}: {self._prefix}{key} is required")
        return self._data[key]

    def _error(self, key: str, problem: str, value: Any) -> PolicyError:
        return PolicyError(f"{self._source}: {self._prefix}{key} {problem}, got {value!r}")


# --- loading files -----------------------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc.strerror or exc}") from exc
    return _policy_from_text(text, str(path))


def load_policies(directory: str | Path | None = None) -> dict[str, Policy]:
    """Every ``*.toml`` policy in ``directory`` (None: the built-in policies), by name."""
    folder: Traversable = (
        resources.files("ratifier.core.policies") if directory is None else Path(directory)
    )
    if not folder.is_dir():
        raise PolicyError(f"{folder}: policy folder does not exist")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".toml") and entry.is_file()),
        key=lambda entry: entry.name,
    )
    if not files:
        raise PolicyError(f"{folder}: no policy files (*.toml) found")
    policies: dict[str, Policy] = {}
    for entry in files:
        policy = _policy_from_text(entry.read_text(encoding="utf-8"), str(entry))
        earlier = policies.get(policy.name)
        if earlier is not None:
            raise PolicyError(
                f"{entry}: policy name {policy.name!r} is already defined in {earlier.source}"
            )
        policies[policy.name] = policy
    return policies


def _policy_from_text(text: str, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    return Policy.from_mapping(data, source)
