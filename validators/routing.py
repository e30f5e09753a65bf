"""Which candidates a validator judges: those whose policy lists its id.

The validator loads the same policies as the tally (``RATIFIER_POLICY_DIR``, else the built-in
ones) with the project's policy loader. A candidate whose policy does not list the validator is
committed past with no call to the judge and no verdict (the tally would dead-letter the verdict
as UNKNOWN_VALIDATOR). A candidate whose policy the validator does not know is judged as before:
a validator whose policy folder lags the tally's costs calls, never a case its verdict.

Policy changes: the folder is looked at again at most every ``RECHECK_S`` seconds, and at once
when a candidate names an unknown policy (no more often than that either). Files whose name, size
or modification time changed are loaded again; a folder that no longer loads keeps the policies
last loaded, with a warning. A candidate read before a change is routed by the policies then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ratifier.core.errors import PolicyError
from ratifier.core.policy import Policy, load_policies

__all__ = ["RECHECK_S", "PolicyRouting"]

logger = logging.getLogger(__name__)

RECHECK_S = 5.0

_Signature = tuple[tuple[str, int, int], ...]


class PolicyRouting:
    def __init__(
        self,
        validator_id: str,
        policy_dir: Path | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.validator_id = validator_id
        self.policy_dir = policy_dir
        self._clock = clock
        self._signature: _Signature = ()
        self._checked_at = float("-inf")
        self._policies: Mapping[str, Policy] = {}
        self._unknown_warned: set[str] = set()
        self.reload()
        if not any(p.validator(validator_id) for p in self._policies.values()):
            logger.warning(
                "validator %s is listed in no policy of %s: it will judge only candidates of "
                "policies it does not know", validator_id, policy_dir or "the built-in policies",
            )  # fmt: skip

    def judges(self, policy_name: str) -> bool:
        """True when this validator should judge a candidate of ``policy_name``."""
        policy = self._policies.get(policy_name)
        if policy is None or self._clock() - self._checked_at >= RECHECK_S:
            self._recheck()
            policy = self._policies.get(policy_name)
        if policy is None:
            if policy_name not in self._unknown_warned:
                self._unknown_warned.add(policy_name)
                logger.warning("policy %r unknown to validator %s: judging its candidates",
                               policy_name, self.validator_id)  # fmt: skip
            return True
        return policy.validator(self.validator_id) is not None

    def policy(self, policy_name: str) -> Policy | None:
        """The loaded policy of that name (as last loaded), if any."""
        return self._policies.get(policy_name)

    def _recheck(self) -> None:
        if self._clock() - self._checked_at < RECHECK_S:
            return
        if self.policy_dir is None:  # built-in policies never change
            self._checked_at = self._clock()
            return
        if _signature(self.policy_dir) != self._signature:
            self.reload()
        self._checked_at = self._clock()

    def reload(self) -> None:
        self._checked_at = self._clock()
        signature = _signature(self.policy_dir) if self.policy_dir is not None else ()
        try:
            self._policies = load_policies(self.policy_dir)
        except PolicyError as exc:
            if not self._policies:
                raise
            logger.warning("keeping the policies loaded before: %s", exc)
            return
        self._signature = signature
        self._unknown_warned.clear()


def _signature(folder: Path) -> _Signature:
    try:
        entries = sorted(folder.glob("*.toml"))
        return tuple((e.name, (s := e.stat()).st_size, s.st_mtime_ns) for e in entries)
    except OSError:
        return ()
