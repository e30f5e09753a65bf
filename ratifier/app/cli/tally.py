"""``ratifier tally run``: the stateful M-of-N tally, on the transactional or the faust engine."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ratifier.app.cli._runner import run_worker
from ratifier.core.config import TALLY_ENGINES, Settings
from ratifier.core.policy import load_policies
from ratifier.io.admin import ensure_topics


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("tally", help="the stateful M-of-N tally")
    commands = parser.add_subparsers(dest="tally_command", required=True)
    run = commands.add_parser("run", help="run a tally worker (start more to share partitions)")
    run.add_argument("--policies", type=Path, default=None, help="folder of policy *.toml files")
    run.add_argument(
        "--engine",
        choices=TALLY_ENGINES,
        default=None,
        help="transactional: exactly-once on Kafka transactions (default); faust: the "
        "at-least-once faust adapter (default: RATIFIER_TALLY_ENGINE, else transactional)",
    )
    run.set_defaults(handler=_run)
    status = commands.add_parser(
        "status",
        help="show the tally workers of this state dir; exit 0 only when all running ones are "
        "ready (partitions assigned, state restored)",
    )
    status.set_defaults(handler=_status)


def _run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"policy_dir": args.policies} if args.policies else {}
    if args.engine:
        overrides["tally_engine"] = args.engine
    settings = Settings.from_env(**overrides)
    policies = load_policies(settings.policy_dir)
    asyncio.run(ensure_topics(settings))
    if settings.tally_engine == "faust":
        from ratifier.streams.worker import run_tally  # imports faust: only when running it

        run_tally(settings, policies)
        return 0
    from ratifier.streams.transactional import TransactionalTally

    return run_worker(lambda: TransactionalTally(settings, policies))


def _status(args: argparse.Namespace) -> int:
    from ratifier.io.readiness import all_statuses, is_alive

    settings = Settings.from_env()
    running = [s for s in all_statuses(settings) if is_alive(s)]
    for worker in running:
        state = "ready" if worker.ready else "restoring"
        print(
            f"{worker.worker_id:<30} {worker.engine:<13} pid {worker.pid:<7} {state:<9} "
            f"partitions {list(worker.partitions)}"
        )
    if not running:
        print(f"no tally worker running (state dir {settings.state_dir})")
        return 1
    return 0 if all(worker.ready for worker in running) else 1
