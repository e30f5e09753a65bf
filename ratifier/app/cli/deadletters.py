"""``ratifier deadletters tail | replay``: see what the tally set aside, and send it again."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import orjson

from ratifier.core.config import Settings
from ratifier.core.jsonview import to_json
from ratifier.core.models import DeadLetter, DeadLetterReason

REASONS = [reason.value for reason in DeadLetterReason]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "deadletters", help="records the tally set aside: show them, send fixed ones again"
    )
    commands = parser.add_subparsers(dest="deadletters_command", required=True)
    tail = commands.add_parser(
        "tail",
        help="print dead letters as JSON lines: reason, detail, origin, the decoded record",
        description="Example: ratifier deadletters tail --reason UNKNOWN_POLICY --limit 10",
    )
    tail.add_argument(
        "--follow", action="store_true", help="keep waiting for new ones (default: stop when idle)"
    )
    tail.add_argument("--reason", action="append", choices=REASONS, help="only these (repeatable)")
    tail.add_argument("--limit", type=int, default=None, help="stop after this many")
    tail.set_defaults(handler=_tail)

    replay = commands.add_parser(
        "replay",
        help="send the dead-lettered candidates and verdicts with these reasons again to the "
        "topic they came from (after fixing the cause, e.g. loading the missing policy)",
        description="Example: ratifier deadletters replay --reason UNKNOWN_POLICY --dry-run",
    )
    replay.add_argument(
        "--reason", action="append", choices=REASONS, required=True, help="repeatable"
    )
    replay.add_argument("--dry-run", action="store_true", help="count, send nothing")
    replay.add_argument("--limit", type=int, default=None, help="send at most this many")
    replay.set_defaults(handler=_replay)


def _tail(args: argparse.Namespace) -> int:
    from ratifier.io.deadletters import dead_letters, original_record

    wanted = set(args.reason or REASONS)

    async def main() -> None:
        shown = 0
        idle_s = None if args.follow else 2.0
        async for letter in dead_letters(Settings.from_env(), idle_s=idle_s):
            if letter.reason.value not in wanted:
                continue
            sys.stdout.write(_line(letter, original_record(letter)) + "\n")
            sys.stdout.flush()
            shown += 1
            if args.limit is not None and shown >= args.limit:
                return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _line(letter: DeadLetter, record: object | None) -> str:
    body = {
        "reason": letter.reason.value,
        "detail": letter.detail,
        "source": f"{letter.source_topic}[{letter.partition}]@{letter.offset}",
        "dead_at_ms": letter.dead_at_ms,
        "record": None if record is None else orjson.loads(to_json(record)),
        "original_bytes": len(letter.original),
    }
    return orjson.dumps(body).decode()


def _replay(args: argparse.Namespace) -> int:
    from ratifier.io.deadletters import replay

    reasons = {DeadLetterReason(reason) for reason in args.reason}
    report = asyncio.run(
        replay(Settings.from_env(), reasons, dry_run=args.dry_run, limit=args.limit)
    )
    verb = "would send" if args.dry_run else "sent"
    print(
        f"{verb} {report.sent} record(s) {report.by_reason}; "
        f"{report.not_replayable} matching record(s) cannot be replayed (undecodable or excerpt)"
    )
    return 0
