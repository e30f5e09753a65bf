"""Runs the demo: stack topics, a tally, five validator groups, a generator, N cases with truth."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratifier.app.demo.generator import chance
from ratifier.app.demo.summary import DemoSummary, summarize
from ratifier.core.config import Settings
from ratifier.core.models import Decision, EscalationPacket, PassDecision, RetryRequest
from ratifier.io.admin import ensure_topics
from ratifier.io.client import Client
from ratifier.io.readmodels import ReadModels
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec

FIRST_ATTEMPT_GOOD_RATE = 0.6
DEMO_REVIEWER = "demo-reviewer"


@dataclass(frozen=True, slots=True)
class DemoValidator:
    validator_id: str
    error_rate: float
    red_team: bool = False
    instances: int = 1


# Five groups with different error rates: one red-team, one scaled out to two instances.
DEMO_VALIDATORS = (
    DemoValidator("sim-a", 0.05, instances=2),
    DemoValidator("sim-b", 0.10),
    DemoValidator("sim-c", 0.15),
    DemoValidator("sim-d", 0.25),
    DemoValidator("redteam", 0.05, red_team=True),
)


def demo_processes(generator: str = "ratifier.app.demo.generator:improve") -> list[ProcessSpec]:
    specs = [ProcessSpec.tally()]
    for seed, v in enumerate(DEMO_VALIDATORS):
        params: dict[str, object] = {"error_rate": v.error_rate, "seed": seed + 1}
        if v.red_team:
            params["red_team"] = True
        specs += [
            ProcessSpec.validator(v.validator_id, SIMULATED, params, instance=i)
            for i in range(v.instances)
        ]
    specs.append(ProcessSpec.generator(generator))
    return specs


def demo_content(index: int, good: bool) -> tuple[str, str]:
    query = f"Q{index}: summarise the refund policy for order #{10_000 + index} in two sentences."
    verdict = "within 30 days with a receipt" if good else "at any time, no receipt needed"
    content = (
        f"Order #{10_000 + index} can be refunded {verdict}. Refunds go back to the original "
        "payment method and usually arrive within five business days of approval."
    )
    return query, content


def write_demo_reviewer(folder: Path) -> tuple[Path, str]:
    """A reviewer tokens file for the demo's review page (0600): its path and the token."""
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(16)
    path = folder / "reviewers.txt"
    path.touch(mode=0o600)
    path.write_text(f"{DEMO_REVIEWER} {token}\n", encoding="utf-8")
    return path, token


async def run_demo(
    settings: Settings,
    *,
    cases: int,
    timeout_s: float = 180.0,
    progress: Callable[[str], None] = print,
    metrics_port: int = 0,
    review_port: int = 0,
    finished: Callable[[DemoSummary], Awaitable[None]] | None = None,
) -> DemoSummary:
    """Run the demo; with ``review_port``, also the outcomes writer and the reviewer page.

    ``finished`` is awaited with the summary while every process still runs (the demo's
    ``--keep-running`` waits there, so escalations can be reviewed).
    """
    await ensure_topics(settings)
    state = settings.state_dir / "demo" / settings.topic_prefix
    fleet = Fleet(Fleet.env_for(settings), state, metrics_port=metrics_port)
    processes = [*demo_processes(), ProcessSpec.monitor()]
    if review_port:
        tokens_file, token = write_demo_reviewer(state)
        processes += [ProcessSpec.outcomes(), ProcessSpec.review(review_port, tokens_file)]
    decisions: list[Decision] = []
    finals: set[str] = set()
    case_ids: list[str] = []
    async with Client(settings, producer="demo") as client:
        watcher = asyncio.create_task(_collect(client, decisions, finals))
        # Everything from the first start on is inside the try: a stop at any moment (Ctrl-C,
        # SIGTERM, a failure) stops every process started so far.
        try:
            await fleet.start(*processes)
            progress(f"started {len(processes)} processes; logs in {fleet.log_dir}")
            for name, port in fleet.metrics_ports.items():
                progress(f"  {name:<20} http://127.0.0.1:{port}/metrics")
            if review_port:
                progress(
                    f"  review page          http://127.0.0.1:{review_port}/  "
                    f"(reviewer {DEMO_REVIEWER}, token {token})"
                )
            await fleet.wait_ready(settings)
            started = time.monotonic()
            for i in range(cases):
                good = chance("first", settings.topic_prefix, i) < FIRST_ATTEMPT_GOOD_RATE
                query, content = demo_content(i, good)
                candidate = client.candidate(
                    content,
                    query=query,
                    category="billing",
                    metadata={"truth": "accept" if good else "reject"},
                )
                case_ids.append(candidate.case_id)
                await client.send(candidate)
            while len(finals & set(case_ids)) < cases:
                elapsed = time.monotonic() - started
                if elapsed > timeout_s:
                    progress(f"timed out after {elapsed:.0f}s")
                    break
                if exited := fleet.exited():
                    raise RuntimeError(f"processes exited early: {exited}; see {fleet.log_dir}")
                line = _progress_line(decisions, len(finals), cases, elapsed)
                progress(f"{line}  | {await _monitor_line(settings)}")
                await asyncio.sleep(1.0)
            progress(_progress_line(decisions, len(finals), cases, time.monotonic() - started))
            await _monitor_caught_up(settings, cases)
            progress(f"monitor: {await _monitor_line(settings)}")
            summary = summarize(case_ids, decisions)
            if finished is not None:
                await finished(summary)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await fleet.stop()
    return summary


async def _collect(client: Client, into: list[Decision], finals: set[str]) -> None:
    async for decision in client.decisions(from_beginning=True):
        into.append(decision)
        if isinstance(decision, PassDecision | EscalationPacket):
            finals.add(decision.case_id)


async def _monitor_figures(settings: Settings) -> dict[str, Any]:
    async with ReadModels.from_settings(settings) as models:
        return (await models.figures()).get("default", {})


async def _monitor_line(settings: Settings) -> str:
    """The monitor's live figures for the demo policy, from its read models in Redis."""
    try:
        f = await _monitor_figures(settings)
        async with ReadModels.from_settings(settings) as models:
            alarms = len(await models.alarms())
    except Exception as exc:  # the demo goes on without the monitor's figures
        return f"monitor: no figures ({exc})"
    if not f:
        return "monitor: waiting for decisions"
    kappas = [k["kappa"] for k in f["pair_kappas"].values() if k["kappa"] is not None]
    return (
        f"1st-attempt {_share(f['first_attempt_consensus_ratio'])}  "
        f"escalated {_share(f['escalation_ratio'])}  "
        f"attempts {_plain(f['mean_attempts'])}  "
        f"verdicts/outcome {_plain(f['verdicts_per_outcome'])}  "
        f"max kappa {_plain(max(kappas) if kappas else None)}  alarms {alarms}"
    )


async def _monitor_caught_up(settings: Settings, cases: int, timeout_s: float = 15.0) -> None:
    """Give the monitor time to count the last decisions before the fleet stops."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if (await _monitor_figures(settings)).get("final_outcomes", 0) >= cases:
                return
        await asyncio.sleep(0.5)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _plain(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _progress_line(decisions: list[Decision], finished: int, cases: int, elapsed: float) -> str:
    passed = sum(isinstance(d, PassDecision) for d in decisions)
    retried = sum(isinstance(d, RetryRequest) for d in decisions)
    escalated = sum(isinstance(d, EscalationPacket) for d in decisions)
    return (
        f"{elapsed:6.1f}s  final {finished}/{cases}  pass {passed}  retry {retried}  "
        f"escalate {escalated}"
    )


def format_summary(summary: DemoSummary) -> str:
    rows = summary.rows()
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)
