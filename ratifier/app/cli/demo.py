"""``ratifier demo``: the whole pipeline on the local stack, ending with a summary table."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson

from ratifier.core.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("demo", help="run the demo pipeline with known ground truth")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--summary-json", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument(
        "--prefix", default=None, help="topic prefix (default: a fresh one per run)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ratifier.app.demo.runner import format_summary, run_demo

    prefix = args.prefix or f"demo-{int(time.time())}"
    settings = Settings.from_env(topic_prefix=prefix)
    print(f"demo: {args.cases} cases on topics {prefix}.* at {settings.bootstrap_servers}")
    summary = asyncio.run(run_demo(settings, cases=args.cases, timeout_s=args.timeout))
    print()
    print(format_summary(summary))
    if args.summary_json:
        args.summary_json.write_bytes(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    ok = summary.no_final_outcome == 0 and summary.more_than_one_final_outcome == 0
    return 0 if ok else 1
