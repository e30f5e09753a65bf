"""``ratifier replay``'s work: a labelled dataset through the real pipeline, per weighting mode.

For each mode it makes fresh topics (one partition, so the online mode learns from every case),
writes one policy per item (the item's workers as validators: ``streams.offline`` explains the
thresholds and weights), starts a real tally process, a :class:`LabelCrowdWorker` that answers
for every worker from the labels, and a :class:`GeneratorWorker` whose next attempt proposes the
other label. Then it submits one case per item, at most ``in_flight`` open at once, and reads the
decisions back from the broker. With ``in_flight = 1`` the tally sees the cases in the same
order as the offline replay, so every figure equals ``ratifier calibrate``'s for that M.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ratifier.app.calibration_replay import ReplayResult, ReplayScore, policy_for
from ratifier.app.configs import endpoints
from ratifier.core.calibration import LabelledSet, dawid_skene
from ratifier.core.config import Settings
from ratifier.core.models import Decision, EscalationPacket, PassDecision, RetryRequest
from ratifier.core.policy import NAME_PATTERN
from ratifier.core.polling import wait_until
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.io.client import Client
from ratifier.io.consume import PoisonHandling
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.runtimes.crowd import LabelCrowdWorker
from ratifier.runtimes.generator import GeneratorWorker

__all__ = ["PipelineReplay", "replay_through_pipeline"]


@dataclass(frozen=True, slots=True)
class PipelineReplay:
    result: ReplayResult
    seconds: float


def policy_name(mode: str, item_id: str) -> str:
    if not NAME_PATTERN.fullmatch(item_id):
        raise ValueError(f"item id {item_id!r} is not usable in a policy name")
    return f"replay-{mode}-{item_id}"


def write_policies(folder: Path, data: LabelledSet, mode: str, m: int) -> None:
    """One policy file per item, as ``streams.offline`` builds them in memory."""
    batch = dawid_skene(data).reliabilities if mode == "weighted" else None
    for item in data.items:
        policy = policy_for(item, mode, m, batch)
        lines = [
            f'name = "{policy_name(mode, item.item_id)}"',
            f'version = "{mode}-m{m}"',
            "max_attempts = 2",
            "window_seconds = 60",
            f"complete_packets = {str(policy.complete_packets).lower()}",
        ]
        if mode == "online":  # one model for every item's policy: workers recur across items
            lines += ["[reliability]", 'learn = "online"', f'model = "replay-{data.name}"']
        threshold = policy.threshold
        lines += [
            "[threshold]",
            f"accepts = {threshold.accepts}"
            if threshold.accepts is not None
            else f"ratio = {threshold.ratio!r}",
        ]
        for spec in policy.validators:  # ids checked by the policy (core.policy.NAME_PATTERN)
            lines += [
                "[[validators]]",
                f'id = "{spec.id}"',
                f"weight = {spec.weight!r}",
                f"reliability = {spec.reliability!r}",
            ]
        (folder / f"{item.item_id}.toml").write_text("\n".join(lines) + "\n")


async def replay_through_pipeline(
    settings: Settings,
    data: LabelledSet,
    mode: str,
    m: int,
    *,
    in_flight: int = 16,
    timeout_s: float = 600.0,
) -> PipelineReplay:
    started = time.monotonic()
    other = {data.positive: data.negative, data.negative: data.positive}

    async def next_label(retry: RetryRequest) -> str:
        return other[retry.candidate.content]

    labels = {item.item_id: item.labels for item in data.items}
    with tempfile.TemporaryDirectory(prefix="ratifier-replay-") as tmp:
        folder = Path(tmp)
        write_policies(folder, data, mode, m)
        tuned = settings.with_overrides(policy_dir=folder, partitions=1)
        await ensure_topics(tuned)
        # Not in the temporary folder: the tally's log must outlive a failed run, whose error
        # names it.
        fleet = Fleet(Fleet.env_for(tuned), settings.state_dir / "replay" / settings.topic_prefix)
        try:
            await fleet.start(ProcessSpec.tally())
            await fleet.wait_ready(tuned, timeout_s=120)
            where, poison = endpoints(tuned), PoisonHandling.from_settings(tuned)
            async with (
                LabelCrowdWorker(where, poison, labels) as crowd,
                GeneratorWorker(where, poison, next_label, generator_id="replay") as generator,
                Client(tuned, producer="replay") as client,
            ):
                stop = asyncio.Event()
                workers = [asyncio.create_task(w.run(stop)) for w in (crowd, generator)]
                try:
                    decisions = await _submit_all(client, data, mode, in_flight, timeout_s, fleet)
                finally:
                    stop.set()
                    await asyncio.gather(*workers, return_exceptions=True)
        finally:
            await fleet.stop()
            await _delete_topics(tuned)
    return PipelineReplay(_score(data, mode, m, decisions), time.monotonic() - started)


async def _submit_all(
    client: Client,
    data: LabelledSet,
    mode: str,
    in_flight: int,
    timeout_s: float,
    fleet: Fleet,
) -> dict[str, list[Decision]]:
    by_case: dict[str, list[Decision]] = {}
    final: set[str] = set()
    changed = asyncio.Event()

    async def collect() -> None:
        async for decision in client.decisions(from_beginning=True):
            by_case.setdefault(decision.case_id, []).append(decision)
            if isinstance(decision, PassDecision | EscalationPacket):
                final.add(decision.case_id)
            changed.set()

    reader = asyncio.create_task(collect())
    deadline = time.monotonic() + timeout_s
    try:
        for index, item in enumerate(data.items):
            while index - len(final) >= in_flight:
                if fleet.exited():
                    raise RuntimeError(f"the tally exited: {fleet.exited()} ({fleet.log_dir})")
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.0, deadline - time.monotonic()))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(final)} of {index} cases decided in {timeout_s} s")
            candidate = client.candidate(
                data.positive, policy=policy_name(mode, item.item_id), case_id=item.item_id
            )
            await client.send(candidate)

        async def all_final() -> bool:
            return len(final) >= len(data.items)

        await wait_until(all_final, max(1.0, deadline - time.monotonic()), "every final outcome")
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return by_case


def _score(
    data: LabelledSet, mode: str, m: int, by_case: Mapping[str, list[Decision]]
) -> ReplayResult:
    score = ReplayScore(data)
    for item in data.items:
        decisions = sorted(by_case[item.item_id], key=_attempt)
        score.add(item, decisions, sum(map(_verdicts_at_decision, decisions)))
    return score.result(mode, m)


def _verdicts_at_decision(decision: Decision) -> int:
    """The verdicts in when the attempt was decided: what validators asked one at a time would
    have cost."""
    if isinstance(decision, EscalationPacket):
        return len(decision.attempts[-1].verdicts)
    return len(decision.votes)


def _attempt(decision: Decision) -> int:
    return decision.attempt


async def _delete_topics(settings: Settings) -> None:
    prefix = settings.topic_prefix
    async with admin_client(settings) as admin:
        ours = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
    await delete_topics(settings, ours)
