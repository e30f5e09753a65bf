"""Where the learned reliability models live: in the tally's case store, one per partition and
model (the statistics are ``ratifier.streams.rules.learning``).

A model is stored under a key no case id can have (it is not UTF-8), with the partition's header
and no due time, so it travels in the same state changelog and Kafka transactions as the cases:
restored after a restart or a rebalance, exactly as of the last committed input. Each partition
learns from its own cases.

:class:`ReliabilityBook` is the processor's per-call cache over the store: a model is loaded on
first use in a call, written back and forgotten at the end of the call, like case states.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import orjson

from ratifier.core.calibration import OnlineReliability
from ratifier.core.policy import Policy
from ratifier.streams.rules.learning import effective_policy, learn, model_name, new_model
from ratifier.streams.rules.state import AttemptState
from ratifier.streams.store import CaseStore, entry_state, pack_entry

__all__ = ["ReliabilityBook", "is_model_key", "model_key"]

# 0xff never starts a UTF-8 sequence, and case ids arrive as UTF-8 keys: no collision possible.
_PREFIX = b"\xffratifier-reliability/"


def model_key(partition: int, model: str) -> bytes:
    return _PREFIX + f"{partition}/{model}".encode()


def is_model_key(key: bytes) -> bool:
    return key.startswith(_PREFIX)


class ReliabilityBook:
    """The models of one processor call, over the case store."""

    def __init__(self, store: CaseStore) -> None:
        self._store = store
        self._models: dict[tuple[int, str], OnlineReliability] = {}
        # Per (partition, model): the effective policy of each policy learning into that model.
        self._effective: dict[tuple[int, str], dict[str, Policy]] = {}
        self._dirty: set[tuple[int, str]] = set()

    def model(self, partition: int, policy: Policy) -> OnlineReliability:
        key = (partition, model_name(policy))
        model = self._models.get(key)
        if model is None:
            entry = self._store.get(model_key(partition, key[1]), partition)
            if entry is None:
                model = new_model(policy)
            else:
                model = OnlineReliability.from_json(orjson.loads(entry_state(entry)))
            self._models[key] = model
        return model

    def effective(self, policy: Policy, partition: int) -> Policy:
        """The policy the rules see: ``policy`` itself unless it learns its weights."""
        if not policy.learn_reliability:
            return policy
        key = (partition, model_name(policy))
        by_policy = self._effective.get(key)
        if by_policy is None:
            by_policy = self._effective[key] = {}
        cached = by_policy.get(policy.name)
        if cached is None:
            cached = effective_policy(policy, self.model(partition, policy))
            by_policy[policy.name] = cached
        return cached

    def policies(
        self, policies: Mapping[str, Policy], name: str | None, partition: int
    ) -> Mapping[str, Policy]:
        """``policies`` with the named one (a case's) replaced by its effective version."""
        policy = policies.get(name or "")
        if policy is None or not policy.learn_reliability:
            return policies
        return _Overlay(policies, name or "", self.effective(policy, partition))

    def learn(
        self, partition: int, policies: Mapping[str, Policy], settled: Iterable[AttemptState]
    ) -> None:
        for attempt in settled:
            policy = policies.get(attempt.candidate.policy)
            if policy is None or not policy.learn_reliability:
                continue
            if learn(self.model(partition, policy), policy, attempt):
                key = (partition, model_name(policy))
                self._dirty.add(key)
                # New weights for the next record, in every policy sharing this model (only).
                self._effective.pop(key, None)

    def write_back(self) -> None:
        """Store the models this call changed, and forget every model until the next call."""
        for partition, name in sorted(self._dirty):
            document = orjson.dumps(self._models[(partition, name)].to_json())
            self._store.put(
                model_key(partition, name), partition, pack_entry(partition, None, document)
            )
        self._models.clear()
        self._effective.clear()
        self._dirty.clear()


class _Overlay(Mapping[str, Policy]):
    """A read-only view of the loaded policies with one of them replaced."""

    __slots__ = ("_base", "_name", "_policy")

    def __init__(self, base: Mapping[str, Policy], name: str, policy: Policy) -> None:
        self._base, self._name, self._policy = base, name, policy

    def __getitem__(self, name: str) -> Policy:
        return self._policy if name == self._name else self._base[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)
