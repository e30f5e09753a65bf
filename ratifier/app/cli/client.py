"""``ratifier submit`` and ``ratifier watch``: the client SDK on the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import uuid

from ratifier.app.cli.loading import parse_metadata
from ratifier.core.config import Settings
from ratifier.core.errors import RatifierError
from ratifier.core.jsonview import to_json
from ratifier.io.client import Client


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    submit = subparsers.add_parser("submit", help="submit a candidate for a new case")
    submit.add_argument("content", help="the candidate answer")
    submit.add_argument("--query", default="", help="the question or context it answers")
    submit.add_argument("--policy", default="default")
    submit.add_argument("--category", default="general")
    submit.add_argument("--case-id", default=None)
    submit.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait for the final outcome (fails at once, exit code 2, if the tally rejects it)",
    )
    submit.add_argument(
        "--timeout", type=float, default=300.0, help="seconds --wait waits (default: 300)"
    )
    submit.set_defaults(handler=_submit)

    watch = subparsers.add_parser("watch", help="print decisions live, one JSON object a line")
    watch.add_argument("--from-beginning", action="store_true")
    watch.add_argument("--limit", type=int, default=None, help="stop after this many decisions")
    watch.set_defaults(handler=_watch)


def _quiet_kafka_logs() -> None:
    # aiokafka logs each partition assignment at INFO: noise around the output of these
    # commands (JSON on stdout, one error line on stderr). Still shown with --log-level debug.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _submit(args: argparse.Namespace) -> int:
    _quiet_kafka_logs()
    case_id = args.case_id or str(uuid.uuid4())  # chosen here so a timeout can name it
    fields = {
        "query": args.query,
        "policy": args.policy,
        "category": args.category,
        "case_id": case_id,
        "metadata": parse_metadata(args.meta),
    }

    async def main() -> None:
        async with Client(Settings.from_env(), producer="cli") as client:
            if not args.wait:
                print(to_json(await client.submit(args.content, **fields)))
                return
            try:
                outcome = await client.decide(args.content, timeout_s=args.timeout, **fields)
            except TimeoutError:
                raise RatifierError(
                    f"no final outcome for case {case_id} within {args.timeout:g} s: are a tally, "
                    f"the validators of policy {args.policy!r} and a generator running?"
                ) from None
            print(to_json(outcome))

    asyncio.run(main())
    return 0


def _watch(args: argparse.Namespace) -> int:
    _quiet_kafka_logs()

    async def main() -> None:
        async with Client(Settings.from_env(), producer="cli") as client:
            count = 0
            async for decision in client.decisions(from_beginning=args.from_beginning):
                sys.stdout.write(to_json(decision) + "\n")
                sys.stdout.flush()
                count += 1
                if args.limit is not None and count >= args.limit:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
