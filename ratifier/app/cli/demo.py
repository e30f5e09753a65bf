"""``ratifier demo``: the whole pipeline on the local stack, ending with a summary table."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import click
import orjson

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "make demo                      # starts the local stack first",
        "ratifier demo --cases 1000 --summary-json summary.json",
        "ratifier demo --keep-running   # then review the escalations in the browser",
    ),
)
@click.option("--cases", type=int, default=300, help="cases the demo submits")
@click.option("--timeout", type=float, default=180.0, help="seconds to wait for every outcome")
@click.option(
    "--summary-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="also write the summary as JSON to this file",
)  # fmt: skip
@click.option(
    "--prefix",
    default=None,
    help="topic prefix  [default: the global --prefix, else a fresh one per run, demo-<time>]",
)
@click.option(
    "--metrics-port",
    type=int,
    default=9100,
    help="each process serves /metrics on its own port from this one up (0: none)",
)
@click.option(
    "--review-port",
    type=int,
    default=8470,
    help="the outcomes writer runs and the reviewer page serves on this port (0: neither)",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="after the summary, keep every process running (review escalations in the page, "
    "watch outcomes) until Ctrl-C",
)
@click.pass_context
def demo(
    ctx: click.Context,
    cases: int,
    timeout: float,
    summary_json: Path | None,
    prefix: str | None,
    metrics_port: int,
    review_port: int,
    keep_running: bool,
) -> int:
    """Run the whole pipeline on the local stack.

    A tally, five validators, a generator and the governance monitor judge cases with known
    ground truth.

    Ends with a summary table and the monitor's scoreboard; exit code 1 if a case lacks exactly
    one final outcome.
    """
    from ratifier.app.cli.monitor import print_board, read_board
    from ratifier.app.demo.runner import format_summary, run_demo
    from ratifier.app.demo.summary import DemoSummary

    # The demo's own --prefix, then the global one, else a fresh prefix for every run.
    topic_prefix = prefix or ctx.find_root().obj.get("topic_prefix") or f"demo-{int(time.time())}"
    settings = settings_from(ctx, topic_prefix=topic_prefix)
    click.echo(f"demo: {cases} cases on topics {topic_prefix}.* at {settings.bootstrap_servers}")
    shown: list[DemoSummary] = []

    async def report(summary: DemoSummary) -> None:
        shown.append(summary)
        if summary_json:  # now, not at the exit: --keep-running may end only with a signal
            data = orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2)
            await asyncio.to_thread(summary_json.write_bytes, data)
        click.echo()
        click.echo(format_summary(summary))
        click.echo()
        print_board(await read_board(settings))
        if review_port:
            click.echo()
            click.echo(
                f"{summary.escalated} escalated case(s) wait in the review queue: "
                f"http://127.0.0.1:{review_port}/ (token above), or "
                f"`ratifier --prefix {topic_prefix} review list`"
            )
        if keep_running:
            click.echo("every process keeps running; Ctrl-C or SIGTERM stops the demo")
            await asyncio.Event().wait()

    async def run() -> DemoSummary:
        # SIGTERM (systemd, docker, CI) stops the demo as Ctrl-C does: the run is cancelled,
        # and on the way out every child process is stopped.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_demo(
            settings,
            cases=cases,
            timeout_s=timeout,
            metrics_port=metrics_port,
            review_port=review_port,
            finished=report,
        )

    try:
        summary = asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not shown:
            return 130
        summary = shown[0]
    ok = summary.no_final_outcome == 0 and summary.more_than_one_final_outcome == 0
    return 0 if ok else 1


commands = (demo,)
