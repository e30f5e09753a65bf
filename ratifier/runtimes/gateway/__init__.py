"""The HTTP gateway (``ratifier gateway serve``): Ratifier for services not written in Python.

    POST /v1/cases              submit a candidate (idempotent by case_id); ?wait=S long-polls
    GET  /v1/cases/{case_id}    the case's status, final decision and outcome; ?wait=S long-polls
    GET  /v1/decisions          every decision as Server-Sent Events (read_committed)
    GET  /openapi.json          the OpenAPI 3.1 document of the above

Layers inside: :mod:`.index` (what the gateway knows of each case, fed from the decision and
outcomes topics), :mod:`.api` (the aiohttp handlers: auth, limits, JSON), :mod:`.openapi` (the
document), :mod:`.service` (the worker ``_runner.serve`` runs; its /metrics, /healthz and
/readyz are the project's one metrics endpoint on ``RATIFIER_METRICS_PORT``). Candidates go out
through :class:`ratifier.io.client.Client`. See docs/gateway.md.
"""

from ratifier.runtimes.gateway.service import GatewayLimits, GatewayService

__all__ = ["GatewayLimits", "GatewayService"]
