"""``ratifier gateway serve``: the HTTP API for services not written in Python."""

from __future__ import annotations

from pathlib import Path

import click

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, setting_option, settings_from


@click.group(context_settings=CONTEXT_SETTINGS)
def gateway() -> None:
    """HTTP gateway: submit cases, read their decisions and outcomes (docs/gateway.md)."""


@gateway.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier gateway serve --tokens-file gateway-tokens.txt",
        "RATIFIER_METRICS_PORT=9101 ratifier gateway serve --host 0.0.0.0 --port 8480",
        "curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8480/openapi.json",
    ),
)
@click.option("--host", default="127.0.0.1", help="address the API listens on")
@click.option("--port", type=int, default=8480, help="port of the API")
@setting_option(
    "gateway_tokens_file",
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="clients allowed in: 'name token' lines (tokens of 16+ characters)",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024),
    default=256 * 1024,
    help="largest request body; larger ones get 413",
)
@click.option(
    "--max-wait-s",
    type=click.FloatRange(0),
    default=60.0,
    help="longest long-poll a request may ask for (?wait=S)",
)
@click.option(
    "--max-streams", type=click.IntRange(1), default=64, help="concurrent /v1/decisions streams"
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    gateway_tokens_file: Path | None,
    max_body_bytes: int,
    max_wait_s: float,
    max_streams: int,
) -> int:
    """Serve the HTTP API: POST /v1/cases, GET /v1/cases/{id}, GET /v1/decisions (SSE).

    Every /v1 request needs an `Authorization: Bearer TOKEN` header with a token of the tokens
    file. The OpenAPI document is at /openapi.json; /metrics, /healthz and /readyz are on
    RATIFIER_METRICS_PORT, as for every worker.
    """
    from ratifier.app.cli import _version
    from ratifier.runtimes.gateway import GatewayLimits, GatewayService

    settings = settings_from(ctx, gateway_tokens_file=gateway_tokens_file)
    limits = GatewayLimits(max_body_bytes, max_wait_s, max_streams)
    return run_worker(
        lambda: GatewayService(settings, host=host, port=port, limits=limits, version=_version()),
        settings,
    )


commands = (gateway,)
